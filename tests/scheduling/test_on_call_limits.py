"""A GP's open on-call requests are capped (``KONSIL_ON_CALL_OPEN_PER_GP``): a slip or a script
cannot fill a specialty's queue, also with requests sent at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx2
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, func, select

from app.scheduling.models import Appointment, AppointmentKind
from app.settings import Settings
from tests.factories import Demo, login
from tests.scheduling.test_on_call import ON_CALL, ORIGIN, on_call_body

LIMIT = 2


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    """On SQLite and on PostgreSQL alike."""
    return make_settings(database_url=database_url, on_call_open_per_gp=LIMIT)


async def requests_stored(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        query = select(func.count()).select_from(Appointment)
        return (
            await session.scalar(query.where(col(Appointment.kind) == AppointmentKind.ON_CALL)) or 0
        )


async def test_on_call_requests_beyond_the_cap_are_refused_until_one_is_no_longer_open(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await login(client, demo.gp)
    body = on_call_body(demo.cardiology)
    first, second = [await client.post(ON_CALL, json=body, headers=ORIGIN) for _ in range(LIMIT)]
    assert first.status_code == second.status_code == 201

    refused = await client.post(ON_CALL, json=body, headers=ORIGIN)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "too_many_open_requests"
    assert await requests_stored(sessions) == LIMIT  # nothing written for it

    # A withdrawn request is no longer open: room for one more.
    withdrawn = await client.post(
        f"{ON_CALL}/{first.json()['appointment']['id']}/withdraw", headers=ORIGIN
    )
    assert withdrawn.status_code == 200, withdrawn.text
    again = await client.post(ON_CALL, json=body, headers=ORIGIN)
    assert again.status_code == 201, again.text


async def test_on_call_requests_sent_at_once_stay_within_the_cap(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await login(client, demo.gp)
    body = on_call_body(demo.cardiology)
    answers = await asyncio.gather(
        *(client.post(ON_CALL, json=body, headers=ORIGIN) for _ in range(6))
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] * LIMIT + [409] * (6 - LIMIT), [a.text for a in answers]
    assert await requests_stored(sessions) == LIMIT
