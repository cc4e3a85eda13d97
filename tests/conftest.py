"""Fixtures: settings, a fresh database per test (SQLite file or PostgreSQL database), the app,
HTTP clients and small factories."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx2
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from app.db import create_engine
from app.main import create_app
from app.models import metadata
from app.settings import Settings
from tests.factories import Demo, seed
from tests.services import PG_ADMIN_DSN, require_postgres

BASE_URL = "http://127.0.0.1:8000"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'konsil.db'}"


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database for this test, dropped afterwards."""
    require_postgres()
    name = f"konsil_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    yield f"{base}/{name}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Runs the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def make_settings(sqlite_url: str) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "environment": "test",
            "database_url": sqlite_url,
            "base_url": BASE_URL,
            "log_json": False,
            "log_level": "WARNING",
            # A throttled client waits a minute, not a second: no test races the clock.
            "login_first_delay_seconds": 60,
            # Refusals at once (their pacing: tests/accounts/test_throttle.py).
            "login_refusal_pace_seconds": 0,
            # Two-factor sign-in has its own tests (tests/accounts/test_second_factor.py).
            "second_factor_roles": [],
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


async def create_schema(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    await engine.dispose()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    await create_schema(settings.database_url)
    application = create_app(settings)
    async with lifespan_in_own_task(application):
        yield application


@asynccontextmanager
async def lifespan_in_own_task(application: Starlette) -> AsyncIterator[None]:
    """Runs the app's lifespan in one task of its own, start to end, as a server does (a
    fixture's setup and teardown may run in different tasks, which a task group forbids)."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def host() -> None:
        async with application.router.lifespan_context(application):
            started.set()
            await stop.wait()

    task = asyncio.create_task(host())
    ready = asyncio.create_task(started.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if not started.is_set():
        ready.cancel()
        await task  # raises what the start-up raised
    try:
        yield
    finally:
        stop.set()
        await task


@pytest.fixture
def sessions(app: Starlette) -> async_sessionmaker[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = app.state.resources.sessions
    return factory


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx2.AsyncClient]:
    async with new_client(app) as c:
        yield c


@pytest.fixture
def client_factory(app: Starlette) -> Callable[[], httpx2.AsyncClient]:
    """More clients for the same app (a second browser: another GP, the patient)."""
    return lambda: new_client(app)


def new_client(app: Starlette) -> httpx2.AsyncClient:
    transport = httpx2.ASGITransport(app=app, client=("198.51.100.7", 40000))
    return httpx2.AsyncClient(transport=transport, base_url=BASE_URL)


@pytest.fixture
async def demo(sessions: async_sessionmaker[AsyncSession]) -> Demo:
    """The demo data of ``make run``: admin, two GPs, three specialists, consultation hours."""
    return await seed(sessions)
