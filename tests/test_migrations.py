"""The Alembic migrations (what `make run`, compose and systemd apply) build the schema the
models describe, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from app.db import create_engine
from app.models import metadata

ROOT = Path(__file__).resolve().parents[1]


def upgrade(database_url: str, revision: str = "head") -> None:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "app" / "migrations"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False  # leave the test run's logging alone
    command.upgrade(config, revision)


def differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_migrations_build_the_schema_of_the_models(database_url: str) -> None:
    # env.py runs its own event loop, as it does under `python -m app.cli migrate`.
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(differences)
    finally:
        await engine.dispose()
    assert diff == []


async def test_migrations_run_twice_change_nothing(database_url: str) -> None:
    await asyncio.to_thread(upgrade, database_url)
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            version = await connection.run_sync(
                lambda c: MigrationContext.configure(c).get_current_revision()
            )
    finally:
        await engine.dispose()
    assert version is not None


async def test_migrations_comparison_sees_a_missing_revision(sqlite_url: str) -> None:
    # The check above can fail: stopping one revision short leaves a column out.
    await asyncio.to_thread(upgrade, sqlite_url, "0001")
    engine = create_engine(sqlite_url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(differences)
    finally:
        await engine.dispose()
    assert diff != []
