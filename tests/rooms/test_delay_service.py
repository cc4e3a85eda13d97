"""The late notice's service on SQLite and PostgreSQL: two first notices at once (two tabs of
the same specialist) both succeed and leave one row; withdrawing twice at once is fine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, func, select

from app.accounts.models import Role, SessionKind
from app.accounts.service import Principal
from app.db import create_engine, session_factory, unit_of_work
from app.events.outbox import OutboxEvent
from app.rooms import delay
from app.rooms.models import SpecialistDelay
from app.settings import Settings
from tests.conftest import create_schema
from tests.factories import Demo, seed

NOW = datetime(2026, 3, 12, 9, 0, tzinfo=UTC)


@pytest.fixture
async def db(
    make_settings: Callable[..., Settings], database_url: str
) -> AsyncIterator[tuple[Settings, async_sessionmaker[AsyncSession], Demo]]:
    settings = make_settings(database_url=database_url)
    await create_schema(settings.database_url)
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    yield settings, sessions, await seed(sessions)
    await engine.dispose()


def specialist(demo: Demo) -> Principal:
    return Principal(
        kind=SessionKind.STAFF,
        session_id="s",
        csrf_token="c",
        user_id=demo.specialist.id,
        role=Role.SPECIALIST,
    )


async def test_delay_two_first_notices_at_once_leave_one_row(
    db: tuple[Settings, async_sessionmaker[AsyncSession], Demo],
) -> None:
    settings, sessions, demo = db
    who = specialist(demo)

    async def give(minutes: int) -> int | None:
        async with unit_of_work(sessions) as session:
            notice = await delay.set_delay(
                session, who=who, minutes=minutes, note=None, now=NOW, tz=settings.tz
            )
            await asyncio.sleep(0.05)  # both transactions are open at once
            return notice.minutes

    results = await asyncio.gather(give(10), give(20))
    assert sorted(m for m in results if m is not None) == [10, 20]
    async with sessions() as session:
        rows = (await session.execute(select(SpecialistDelay))).scalars().all()
        events = await session.scalar(
            select(func.count()).where(col(OutboxEvent.type) == "delay.changed")
        )
    assert len(rows) == 1
    assert rows[0].minutes in (10, 20)
    assert events == 2


async def test_delay_withdrawn_twice_at_once(
    db: tuple[Settings, async_sessionmaker[AsyncSession], Demo],
) -> None:
    settings, sessions, demo = db
    who = specialist(demo)
    async with unit_of_work(sessions) as session:
        await delay.set_delay(session, who=who, minutes=5, note=None, now=NOW, tz=settings.tz)

    async def withdraw() -> None:
        async with unit_of_work(sessions) as session:
            await delay.clear_delay(session, who=who, now=NOW, tz=settings.tz)
            await asyncio.sleep(0.05)

    await asyncio.gather(withdraw(), withdraw())
    async with sessions() as session:
        assert (await session.execute(select(SpecialistDelay))).first() is None
        today = NOW.astimezone(settings.tz).date()
        assert (
            await delay.current(session, specialist_id=demo.specialist.id or 0, today=today) is None
        )
