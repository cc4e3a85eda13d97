"""A database (SQLite and PostgreSQL) with the demo data, without a running app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import create_engine, session_factory
from app.settings import Settings
from tests.conftest import create_schema
from tests.factories import Demo, seed


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    await create_schema(database_url)
    engine = create_engine(database_url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def people(db: async_sessionmaker[AsyncSession]) -> Demo:
    return await seed(db)


@pytest.fixture
def retention_settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url)
