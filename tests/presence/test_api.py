"""Presence through the API: who may set and read it, what bad input gets, what it means
after a logout, a timeout, a deactivation and during a consultation, and what GPs see: counts
per specialty, never a name or an appointment."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import httpx2
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select
from starlette.applications import Starlette

from app.accounts.models import AuthSession
from app.audit.models import AuditEvent
from app.db import unit_of_work, utcnow
from app.events import types as ev
from app.presence.models import SpecialistPresence
from app.scheduling.models import RoomState
from app.settings import Settings
from tests.factories import Demo, login, make_appointment

ORIGIN = {"Origin": "http://127.0.0.1:8000"}
PRESENCE = "/api/v1/presence"
COUNTS = "/api/v1/specialties/presence"


def heard(app: Starlette) -> list[ev.PresenceChanged]:
    events: list[ev.PresenceChanged] = []

    async def listener(event: ev.DomainEvent) -> None:
        if isinstance(event, ev.PresenceChanged):
            events.append(event)

    app.state.resources.events.subscribe("test.presence", listener)
    return events


async def set_to(client: httpx2.AsyncClient, status: str) -> dict[str, object]:
    response = await client.put(PRESENCE, json={"status": status}, headers=ORIGIN)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def cardiology(client: httpx2.AsyncClient, demo: Demo) -> dict[str, object]:
    response = await client.get(COUNTS)
    assert response.status_code == 200, response.text
    (found,) = [s for s in response.json() if s["specialty_id"] == demo.cardiology.id]
    return dict(found)


async def test_presence_set_on_duty_is_counted_for_gps_and_audited_once(
    app: Starlette,
    client_factory: Callable[[], httpx2.AsyncClient],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    events = heard(app)
    async with client_factory() as specialist, client_factory() as gp:
        await login(specialist, demo.specialist)
        await login(gp, demo.gp)
        first = (await specialist.get(PRESENCE)).json()
        assert (first["status"], first["on_duty"], first["updated_at"]) == ("away", False, None)
        assert (await cardiology(gp, demo))["on_duty"] == 0

        mine = await set_to(specialist, "on_duty")
        assert (mine["status"], mine["on_duty"]) == ("on_duty", True)
        again = await set_to(specialist, "on_duty")  # the same again: no news
        assert again == mine
        counted = await cardiology(gp, demo)
        assert counted == {
            "specialty_id": demo.cardiology.id,
            "slug": "kardiologie",
            "name_de": demo.cardiology.name_de,
            "name_en": demo.cardiology.name_en,
            "on_duty": 1,
            "in_call": 0,
        }
        assert (await set_to(specialist, "away"))["status"] == "away"
        assert (await cardiology(gp, demo))["on_duty"] == 0
    async with asyncio.timeout(10):
        while len(events) < 2:  # noqa: ASYNC110 (the dispatcher's listener fills it)
            await asyncio.sleep(0.02)
    assert [e.specialist_id for e in events] == [demo.specialist.id] * 2
    async with sessions() as session:
        query = select(AuditEvent).where(col(AuditEvent.action) == "presence.set")
        rows = (await session.execute(query.order_by(col(AuditEvent.id)))).scalars().all()
    assert [(r.actor_id, r.appointment_id, dict(r.detail)) for r in rows] == [
        (demo.specialist.id, None, {"on_duty": 1}),
        (demo.specialist.id, None, {"on_duty": 0}),
    ]


async def test_presence_counts_name_nobody_and_no_appointment(
    client_factory: Callable[[], httpx2.AsyncClient],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    busy = await make_appointment(sessions, demo, room_state=RoomState.IN_CALL)
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(type(busy)).where(col(type(busy).id) == busy.id).values(admitted_at=utcnow())
        )
    async with client_factory() as specialist, client_factory() as gp:
        await login(specialist, demo.other_specialist)
        await set_to(specialist, "on_duty")
        await login(gp, demo.gp)
        response = await gp.get(COUNTS)
    assert response.status_code == 200
    text = response.text
    for name in (demo.specialist.display_name, demo.other_specialist.display_name, "Erika"):
        assert name not in text
    assert all(
        set(s) == {"specialty_id", "slug", "name_de", "name_en", "on_duty", "in_call"}
        for s in response.json()
    )
    (counted,) = [s for s in response.json() if s["specialty_id"] == demo.cardiology.id]
    # The one in the call counts as in a call without ever setting anything.
    assert (counted["on_duty"], counted["in_call"]) == (1, 1)


async def test_presence_in_a_consultation_whatever_the_toggle(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await login(client, demo.specialist)
    await set_to(client, "on_duty")
    appointment = await make_appointment(sessions, demo, room_state=RoomState.ADMITTED)
    async with unit_of_work(sessions) as session:
        model = type(appointment)
        await session.execute(
            update(model).where(col(model.id) == appointment.id).values(admitted_at=utcnow())
        )
    mine = (await client.get(PRESENCE)).json()
    assert (mine["status"], mine["on_duty"]) == ("in_call", True)
    assert (await set_to(client, "away"))["status"] == "in_call"


async def test_presence_is_away_after_logout_until_set_again(
    client_factory: Callable[[], httpx2.AsyncClient], demo: Demo
) -> None:
    async with client_factory() as specialist, client_factory() as gp:
        await login(specialist, demo.specialist)
        await login(gp, demo.gp)
        await set_to(specialist, "on_duty")
        assert (await cardiology(gp, demo))["on_duty"] == 1
        logout = await specialist.post("/api/v1/auth/logout", headers=ORIGIN)
        assert logout.status_code in (200, 204)
        assert (await cardiology(gp, demo))["on_duty"] == 0
        await login(specialist, demo.specialist)  # a new session: away until said again
        mine = (await specialist.get(PRESENCE)).json()
        assert (mine["status"], mine["on_duty"]) == ("away", False)
        assert (await set_to(specialist, "on_duty"))["status"] == "on_duty"


async def test_presence_is_away_once_the_session_is_idle_too_long(
    client_factory: Callable[[], httpx2.AsyncClient],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    async with client_factory() as specialist, client_factory() as gp:
        await login(specialist, demo.specialist)
        await set_to(specialist, "on_duty")
        idle = timedelta(minutes=settings.session_idle_minutes)
        async with unit_of_work(sessions) as session:
            await session.execute(
                update(AuthSession)
                .where(col(AuthSession.user_id) == demo.specialist.id)
                .values(last_seen_at=utcnow() - idle - timedelta(seconds=5))
            )
        await login(gp, demo.gp)
        assert (await cardiology(gp, demo))["on_duty"] == 0


async def test_presence_goes_with_a_deactivated_account(
    client_factory: Callable[[], httpx2.AsyncClient],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with client_factory() as specialist, client_factory() as admin:
        await login(specialist, demo.specialist)
        await set_to(specialist, "on_duty")
        await login(admin, demo.admin)
        assert (await cardiology(admin, demo))["on_duty"] == 1
        response = await admin.patch(
            f"/api/v1/admin/users/{demo.specialist.id}", json={"is_active": False}, headers=ORIGIN
        )
        assert response.status_code == 200, response.text
        assert (await cardiology(admin, demo))["on_duty"] == 0
    async with sessions() as session:
        assert await session.get(SpecialistPresence, demo.specialist.id) is None


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"status": "in_call"}, 422),  # never set: it follows from the rooms
        ({"status": "busy"}, 422),
        ({"status": 1}, 422),
        ({}, 422),
        ({"status": "on_duty", "who": 3}, 422),
        ([], 422),
    ],
)
async def test_presence_bad_input_gets_a_message(
    client: httpx2.AsyncClient, demo: Demo, body: object, status: int
) -> None:
    await login(client, demo.specialist)
    response = await client.put(PRESENCE, json=body, headers=ORIGIN)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["message"]
    if isinstance(body, dict) and body.get("status") in ("in_call", "busy", 1):
        assert "on_duty" in error["detail"]["fields"][0]["message"]


async def test_presence_is_the_specialists_own(
    client_factory: Callable[[], httpx2.AsyncClient], demo: Demo
) -> None:
    async with client_factory() as nobody:
        assert (await nobody.get(PRESENCE)).status_code == 401
        assert (await nobody.get(COUNTS)).status_code == 401
    for user in (demo.gp, demo.admin):
        async with client_factory() as client:
            await login(client, user)
            refused = await client.put(PRESENCE, json={"status": "on_duty"}, headers=ORIGIN)
            assert refused.status_code == 403
            assert (await client.get(PRESENCE)).status_code == 403
            assert (await client.get(COUNTS)).status_code == 200
    async with client_factory() as specialist:
        await login(specialist, demo.specialist)
        del specialist.headers["X-CSRF-Token"]
        refused = await specialist.put(PRESENCE, json={"status": "on_duty"}, headers=ORIGIN)
        assert refused.status_code == 403
