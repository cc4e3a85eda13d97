"""The specialist's late notice through the API: set, repeat, replace, withdraw; who may; what
bad input gets; what the queue shows; the event and the audit rows (no note in either)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx2
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select
from starlette.applications import Starlette

from app.audit.models import AuditEvent
from app.db import unit_of_work, utcnow
from app.events import types as ev
from app.rooms.models import SpecialistDelay
from app.settings import Settings
from tests.factories import Demo, login

ORIGIN = {"Origin": "http://127.0.0.1:8000"}
DELAY = "/api/v1/queue/delay"
NOTE = "Notfall dazwischen, bitte etwas Geduld."


def heard(app: Starlette) -> list[ev.DelayChanged]:
    """The late-notice events the dispatcher delivers from now on."""
    events: list[ev.DelayChanged] = []

    async def listener(event: ev.DomainEvent) -> None:
        if isinstance(event, ev.DelayChanged):
            events.append(event)

    app.state.resources.events.subscribe("test.delays", listener)
    return events


async def delivered(events: list[ev.DelayChanged], count: int) -> None:
    async with asyncio.timeout(10):
        while len(events) < count:  # noqa: ASYNC110 (the dispatcher's listener fills it)
            await asyncio.sleep(0.02)


async def audited(sessions: async_sessionmaker[AsyncSession]) -> list[dict[str, object]]:
    async with sessions() as session:
        query = select(AuditEvent).where(col(AuditEvent.action) == "queue.delay")
        rows = (await session.execute(query.order_by(col(AuditEvent.id)))).scalars().all()
    return [dict(row.detail) for row in rows]


async def test_delay_set_shows_in_the_queue_and_is_announced_once(
    app: Starlette,
    client: httpx2.AsyncClient,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    events = heard(app)
    await login(client, demo.specialist)
    before = utcnow().astimezone(settings.tz).date().isoformat()
    response = await client.put(DELAY, json={"minutes": 15, "note": NOTE}, headers=ORIGIN)
    after = utcnow().astimezone(settings.tz).date().isoformat()
    assert response.status_code == 200, response.text
    body = response.json()
    # The server's local day (the test may run across midnight).
    assert body["day"] in {before, after}
    assert (body["minutes"], body["note"]) == (15, NOTE)
    queue = (await client.get("/api/v1/queue")).json()
    assert queue["delay"] == body
    # Said again: nothing changes, nobody is told twice.
    again = await client.put(DELAY, json={"minutes": 15, "note": NOTE}, headers=ORIGIN)
    assert again.json() == body
    await delivered(events, 1)
    await asyncio.sleep(0.2)
    assert [e.specialist_id for e in events] == [demo.specialist.id]
    assert await audited(sessions) == [{"minutes": 15, "note": 1}]
    assert NOTE not in str(await audited(sessions))


async def test_delay_replaced_and_withdrawn(
    app: Starlette,
    client: httpx2.AsyncClient,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    events = heard(app)
    await login(client, demo.specialist)
    await client.put(DELAY, json={"minutes": 5}, headers=ORIGIN)
    replaced = await client.put(DELAY, json={"minutes": 10}, headers=ORIGIN)
    assert (replaced.json()["minutes"], replaced.json()["note"]) == (10, None)
    withdrawn = await client.delete(DELAY, headers=ORIGIN)
    assert withdrawn.status_code == 204
    assert (await client.get("/api/v1/queue")).json()["delay"] is None
    # Withdrawing what is not there is no change.
    assert (await client.delete(DELAY, headers=ORIGIN)).status_code == 204
    await delivered(events, 3)
    assert await audited(sessions) == [
        {"minutes": 5, "note": 0},
        {"minutes": 10, "note": 0},
        {"minutes": 0, "note": 0},
    ]


async def test_delay_of_yesterday_is_no_delay_today(
    client: httpx2.AsyncClient,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    assert demo.specialist.id is not None
    yesterday = (utcnow() - timedelta(days=1)).astimezone(settings.tz).date()
    async with unit_of_work(sessions) as session:
        session.add(SpecialistDelay(specialist_id=demo.specialist.id, day=yesterday, minutes=30))
    await login(client, demo.specialist)
    assert (await client.get("/api/v1/queue")).json()["delay"] is None
    before = utcnow().astimezone(settings.tz).date().isoformat()
    fresh = await client.put(DELAY, json={"minutes": 30}, headers=ORIGIN)
    after = utcnow().astimezone(settings.tz).date().isoformat()
    assert fresh.json()["day"] in {before, after}


async def test_delay_bad_input_is_422_with_a_german_message(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.specialist)
    for body, field in (
        ({}, ""),
        ({"minutes": 500}, "minutes"),
        ({"minutes": -5}, "minutes"),
        ({"minutes": True}, "minutes"),
        ({"minutes": "10"}, "minutes"),
        ({"minutes": 10.0}, "minutes"),
        ({"note": "x" * 141}, "note"),
        ({"note": "Zeile\u0000"}, "note"),
        ({"minutes": 5, "extra": 1}, "extra"),
    ):
        response = await client.put(DELAY, json=body, headers=ORIGIN)
        assert response.status_code == 422, (body, response.text)
        error = response.json()["error"]
        assert [d["field"] for d in error["detail"]["fields"]] == [field]
        assert error["message"]
    broken = await client.put(
        DELAY, content=b"{", headers={**ORIGIN, "Content-Type": "application/json"}
    )
    assert broken.status_code in (400, 422)
    assert (await client.get("/api/v1/queue")).json()["delay"] is None


async def test_delay_is_for_specialists_only(client: httpx2.AsyncClient, demo: Demo) -> None:
    assert (await client.put(DELAY, json={"minutes": 5}, headers=ORIGIN)).status_code == 401
    await login(client, demo.gp)
    assert (await client.put(DELAY, json={"minutes": 5}, headers=ORIGIN)).status_code == 403
    assert (await client.delete(DELAY, headers=ORIGIN)).status_code == 403


async def test_delay_needs_the_csrf_token(client: httpx2.AsyncClient, demo: Demo) -> None:
    await login(client, demo.specialist)
    del client.headers["X-CSRF-Token"]
    response = await client.put(DELAY, json={"minutes": 5}, headers=ORIGIN)
    assert response.status_code == 403
