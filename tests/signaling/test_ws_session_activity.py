"""Websocket activity and the staff session's idle timeout: messages and being in a
consultation keep the session; a session that timed out is not revived by a late message, and
the sockets of timed-out sessions close (4401, as after a logout)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from app.accounts import sweep
from app.accounts.models import AuthSession
from app.db import unit_of_work, utcnow
from app.errors import WS_UNAUTHENTICATED
from app.settings import Settings
from app.signaling import endpoint
from tests.factories import Demo, make_appointment, patient_token
from tests.live import Live
from tests.signaling.wsclient import staff_cookie, ws_connect


async def idle_for(
    sessions: async_sessionmaker[AsyncSession], user_id: int | None, minutes: float = 20
) -> None:
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(AuthSession)
            .where(col(AuthSession.user_id) == user_id)
            .values(last_seen_at=utcnow() - timedelta(minutes=minutes))
        )


async def idle(sessions: async_sessionmaker[AsyncSession], user_id: int | None) -> timedelta:
    async with sessions() as session:
        seen = (
            await session.execute(
                select(AuthSession.last_seen_at).where(col(AuthSession.user_id) == user_id)
            )
        ).scalar_one()
    return utcnow() - seen


async def ended(sessions: async_sessionmaker[AsyncSession], user_id: int | None) -> bool:
    async with sessions() as session:
        at = (
            await session.execute(
                select(AuthSession.ended_at).where(col(AuthSession.user_id) == user_id)
            )
        ).scalar_one()
    return at is not None


@pytest.fixture(autouse=True)
def often(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(endpoint, "ACTIVITY_EVERY_SECONDS", 0.2)


async def test_being_in_a_consultation_counts_as_activity(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo)
    patient = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    query = f"appointment={appointment.id}"
    staff = await staff_cookie(live, demo.specialist)
    async with (
        ws_connect(live, f"as=patient&{query}", patient) as p,
        ws_connect(live, f"as=staff&{query}", staff) as s,
    ):
        await p.send(type="join")
        await p.expect("joined")
        await s.send(type="join")
        await s.expect("joined")
        await s.send(type="admit")
        await s.expect("peer_joined")
        await idle_for(sessions, demo.specialist.id)
        await asyncio.sleep(1.0)
        assert await idle(sessions, demo.specialist.id) < timedelta(seconds=5)


async def test_sitting_in_a_room_nobody_was_admitted_to_is_not_activity(
    live: Live, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo)
    staff = await staff_cookie(live, demo.specialist)
    async with ws_connect(live, f"as=staff&appointment={appointment.id}", staff) as s:
        await s.send(type="join")
        joined = await s.expect("joined")
        assert joined["room_state"] in ("scheduled", "waiting")
        await idle_for(sessions, demo.specialist.id)
        await asyncio.sleep(1.0)
        assert await idle(sessions, demo.specialist.id) > timedelta(minutes=19)


async def test_an_unused_queue_page_is_not_activity_but_its_messages_are(
    live: Live, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    dashboard = await staff_cookie(live, demo.other_specialist)
    async with ws_connect(live, "as=staff", dashboard) as queue:
        await queue.expect("queue")
        await idle_for(sessions, demo.other_specialist.id)
        await asyncio.sleep(1.0)
        assert await idle(sessions, demo.other_specialist.id) > timedelta(minutes=19)
        await queue.send(type="join")
        assert (await queue.expect("error"))["code"] == "not_in_room"
        assert await idle(sessions, demo.other_specialist.id) < timedelta(seconds=5)


async def test_a_pages_ping_is_not_activity(
    live: Live, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # Every open page pings when it has heard nothing for a while: an unattended one would
    # otherwise never idle out.
    dashboard = await staff_cookie(live, demo.other_specialist)
    async with ws_connect(live, "as=staff", dashboard) as queue:
        await queue.expect("queue")
        await idle_for(sessions, demo.other_specialist.id)
        await asyncio.sleep(0.5)  # past ACTIVITY_EVERY_SECONDS: a message now would count
        await queue.send(type="ping")
        await queue.expect("pong")
        assert await idle(sessions, demo.other_specialist.id) > timedelta(minutes=19)


async def test_a_message_after_the_idle_timeout_closes_the_socket_and_revives_nothing(
    live: Live, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    dashboard = await staff_cookie(live, demo.specialist)
    async with ws_connect(live, "as=staff", dashboard) as queue:
        await queue.expect("queue")
        await idle_for(sessions, demo.specialist.id, minutes=31)
        await queue.send(type="join")
        assert await queue.closed_with() == WS_UNAUTHENTICATED
        assert queue.ws.close_reason == "session ended"
    assert await idle(sessions, demo.specialist.id) > timedelta(minutes=30)


async def test_a_call_past_the_idle_timeout_is_closed_as_an_ended_session(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # (A call keeps the session alive; this one missed its writes, e.g. the database was away.)
    appointment = await make_appointment(sessions, demo)
    patient = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    query = f"appointment={appointment.id}"
    staff = await staff_cookie(live, demo.specialist)
    async with (
        ws_connect(live, f"as=patient&{query}", patient) as p,
        ws_connect(live, f"as=staff&{query}", staff) as s,
    ):
        await p.send(type="join")
        await p.expect("joined")
        await s.send(type="join")
        await s.expect("joined")
        await s.send(type="admit")
        await s.expect("peer_joined")
        await idle_for(sessions, demo.specialist.id, minutes=31)
        assert await s.closed_with() == WS_UNAUTHENTICATED
    assert await idle(sessions, demo.specialist.id) > timedelta(minutes=30)


async def test_the_idle_sweep_ends_timed_out_sessions_and_closes_their_sockets(
    live: Live, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    gone = await staff_cookie(live, demo.specialist)
    kept = await staff_cookie(live, demo.other_specialist)
    async with (
        ws_connect(live, "as=staff", gone) as unused,
        ws_connect(live, "as=staff", kept) as used,
    ):
        await unused.expect("queue")
        await used.expect("queue")
        await idle_for(sessions, demo.specialist.id, minutes=31)
        await idle_for(sessions, demo.other_specialist.id, minutes=29)

        assert await sweep.round_(live.app.state.resources) == 1

        assert await unused.closed_with() == WS_UNAUTHENTICATED
        assert await ended(sessions, demo.specialist.id)
        assert not await ended(sessions, demo.other_specialist.id)
        await used.send(type="join")  # still open and served
        assert (await used.expect("error"))["code"] == "not_in_room"
