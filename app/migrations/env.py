"""Alembic environment: runs migrations on the async engine from Konsil's settings."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from app.db import create_engine
from app.models import metadata
from app.settings import Settings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = config.attributes.get("database_url")
    return str(url) if url else Settings().database_url


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch mode rebuilds a table (new table, copy, drop the old one, rename), and dropping
        # a table that others point at trips their foreign keys: SQLite's documented procedure
        # turns them off meanwhile (only possible outside a transaction) and checks afterwards.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=sqlite,
        compare_type=True,
    )
    with context.begin_transaction():
        if sqlite:
            # Python's sqlite3 opens a transaction only before a row is written, so a batch
            # rebuild's CREATE TABLE would stand on its own: a migration that then refuses (a
            # downgrade that would lose data) left its half-built table behind. Begun here,
            # every statement of the run is in the one transaction and is undone with it.
            connection.exec_driver_sql("BEGIN")
        context.run_migrations()
        if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first():
            raise RuntimeError("the migration left rows whose foreign keys point nowhere")
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")


async def _run_async() -> None:
    engine = create_engine(_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        # Also when a migration refuses (e.g. a downgrade that would lose data).
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
