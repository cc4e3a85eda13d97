"""A throw-away PostgreSQL database for the benchmark's two-instance step.

Two Konsil processes need PostgreSQL, as in production: SQLite is the one-process setup
(docs/architecture.md, "Delivery"). Shared by two processes, its outbox loses events: both
dispatchers claim the same rows (SQLite has no ``SKIP LOCKED``), and SQLite gives a deleted
row's id to the next event, so the slower dispatcher's delete takes a newer event with it.
``BENCH_POSTGRES`` names the server (a superuser's DSN; trust on 127.0.0.1 by default).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

ADMIN_DSN = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def unreachable() -> str | None:
    """Why PostgreSQL at ``ADMIN_DSN`` cannot be used (None: it can)."""

    async def probe() -> None:
        conn = await asyncpg.connect(ADMIN_DSN, timeout=5)
        await conn.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@contextmanager
def database() -> Iterator[str]:
    """The SQLAlchemy URL of a new, empty database, dropped afterwards."""
    name = f"konsil_bench_{uuid.uuid4().hex[:8]}"

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(ADMIN_DSN, timeout=30)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        base = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        yield f"{base}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
