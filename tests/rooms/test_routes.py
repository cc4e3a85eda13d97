"""Rooms API: the queue, admit / end / no-show / transfer with their rules, ICE servers."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx2
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from app.audit.models import AuditEvent
from app.db import utcnow
from app.main import create_app
from app.rooms import history
from app.scheduling.models import Appointment, AppointmentStatus, RoomState, Urgency
from app.settings import Settings
from tests.conftest import new_client
from tests.factories import Demo, login, make_appointment, patient_token

ORIGIN = {"Origin": "http://127.0.0.1:8000"}
BERLIN = ZoneInfo("Europe/Berlin")


async def transfer_to_colleague(
    client: httpx2.AsyncClient, demo: Demo, appointment: Appointment
) -> httpx2.Response:
    """The demo specialist hands ``appointment`` to the other cardiologist."""
    return await client.post(
        f"/api/v1/rooms/{appointment.id}/transfer",
        json={"specialist_id": demo.other_specialist.id},
        headers=ORIGIN,
    )


async def test_rooms_queue_orders_waiting_urgent_first_then_slot(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    now = utcnow().replace(microsecond=0)
    # Slots anchored to the specialist's local noon, so all of them lie in "today" whatever
    # the hour the suite runs at (a slot 90 minutes from now may fall on tomorrow).
    noon = datetime.combine(now.astimezone(BERLIN).date(), time(12), BERLIN)
    later = await make_appointment(
        sessions,
        demo,
        starts_at=noon + timedelta(minutes=30),
        room_state=RoomState.WAITING,
        waiting_since=now - timedelta(minutes=5),
    )
    urgent = await make_appointment(
        sessions,
        demo,
        starts_at=noon + timedelta(minutes=60),
        urgency=Urgency.URGENT,
        room_state=RoomState.WAITING,
        waiting_since=now,
    )
    early = await make_appointment(
        sessions, demo, starts_at=noon, room_state=RoomState.WAITING, waiting_since=now
    )
    idle = await make_appointment(sessions, demo, starts_at=noon + timedelta(minutes=90))
    await make_appointment(sessions, demo, specialist_id=demo.other_specialist.id)
    await login(client, demo.specialist)
    body = (await client.get("/api/v1/queue")).json()
    assert [e["appointment_id"] for e in body["waiting"]] == [urgent.id, early.id, later.id]
    assert idle.id in [e["appointment_id"] for e in body["today"]]
    assert body["waiting"][2]["waiting_seconds"] >= 300


async def test_rooms_queue_is_for_specialists(client: httpx2.AsyncClient, demo: Demo) -> None:
    await login(client, demo.gp)
    assert (await client.get("/api/v1/queue")).status_code == 403


async def test_rooms_admit_by_gp_records_audit(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(
        sessions, demo, room_state=RoomState.WAITING, waiting_since=utcnow()
    )
    await login(client, demo.gp)
    response = await client.post(f"/api/v1/rooms/{appointment.id}/admit", headers=ORIGIN)
    assert response.status_code == 200, response.text
    assert response.json()["room_state"] == "admitted"
    async with sessions() as session:
        actions = (
            (
                await session.execute(
                    select(AuditEvent.action).where(
                        col(AuditEvent.appointment_id) == appointment.id
                    )
                )
            )
            .scalars()
            .all()
        )
    assert actions == ["room.admit"]


async def test_rooms_other_gp_cannot_admit(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(
        sessions, demo, room_state=RoomState.WAITING, waiting_since=utcnow()
    )
    await login(client, demo.other_gp)
    response = await client.post(f"/api/v1/rooms/{appointment.id}/admit", headers=ORIGIN)
    assert response.status_code == 404  # someone else's room answers like an unknown one
    async with sessions() as session:
        stored = await session.get(Appointment, appointment.id)
    assert stored is not None
    assert stored.room_state is RoomState.WAITING


async def test_rooms_admit_with_nobody_waiting_is_409(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo)
    await login(client, demo.specialist)
    response = await client.post(f"/api/v1/rooms/{appointment.id}/admit", headers=ORIGIN)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "invalid_transition"


async def test_rooms_no_show_only_after_the_slot_began(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    future = await make_appointment(sessions, demo, starts_at=utcnow() + timedelta(hours=2))
    past = await make_appointment(sessions, demo, starts_at=utcnow() - timedelta(minutes=10))
    await login(client, demo.specialist)
    early = await client.post(f"/api/v1/rooms/{future.id}/no-show", headers=ORIGIN)
    assert early.status_code == 422
    marked = await client.post(f"/api/v1/rooms/{past.id}/no-show", headers=ORIGIN)
    assert marked.json()["room_state"] == "no_show"


async def test_rooms_transfer_to_same_specialty_only(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo)
    await login(client, demo.specialist)
    url = f"/api/v1/rooms/{appointment.id}/transfer"
    wrong = await client.post(url, json={"specialist_id": demo.dermatologist.id}, headers=ORIGIN)
    assert wrong.status_code == 422
    ok = await client.post(url, json={"specialist_id": demo.other_specialist.id}, headers=ORIGIN)
    assert ok.status_code == 200, ok.text
    assert ok.json()["specialist_id"] == demo.other_specialist.id


async def test_rooms_transfer_refused_when_colleague_is_booked(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    start = utcnow().replace(microsecond=0) + timedelta(hours=1)
    appointment = await make_appointment(sessions, demo, starts_at=start)
    await make_appointment(sessions, demo, starts_at=start, specialist_id=demo.other_specialist.id)
    await login(client, demo.specialist)
    response = await transfer_to_colleague(client, demo, appointment)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "slot_taken"


async def test_rooms_transfer_refused_during_call(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo, room_state=RoomState.IN_CALL)
    await login(client, demo.specialist)
    response = await transfer_to_colleague(client, demo, appointment)
    assert response.status_code == 409


async def test_rooms_transfer_refused_once_the_report_completed_it(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo, status=AppointmentStatus.COMPLETED)
    await login(client, demo.specialist)
    response = await transfer_to_colleague(client, demo, appointment)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    async with sessions() as session:
        stored = await session.get(Appointment, appointment.id)
    assert stored is not None
    assert stored.specialist_id == demo.specialist.id


async def test_rooms_queue_is_not_cached(client: httpx2.AsyncClient, demo: Demo) -> None:
    await login(client, demo.specialist)
    response = await client.get("/api/v1/queue")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"


async def test_rooms_ice_gives_turn_rest_credentials_to_the_patient(
    make_settings: Callable[..., Settings],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    cfg = make_settings(turn_urls=["turn:127.0.0.1:3478"], turn_secret="s3cret")
    appointment = await make_appointment(sessions, demo)
    other = await make_appointment(sessions, demo)
    token = await patient_token(sessions, cfg, appointment)
    turn_app = create_app(cfg)  # same database, TURN configured
    async with turn_app.router.lifespan_context(turn_app), new_client(turn_app) as http:
        http.cookies.set("konsil_patient", token)
        body = (await http.get(f"/api/v1/rooms/{appointment.id}/ice")).json()
        refused = await http.get(f"/api/v1/rooms/{other.id}/ice")
    server = body["iceServers"][0]
    assert server["username"].split(":")[1] == str(appointment.id)
    digest = hmac.new(b"s3cret", server["username"].encode(), hashlib.sha1).digest()
    assert server["credential"] == base64.b64encode(digest).decode()
    assert body["ttl"] == cfg.turn_ttl_seconds
    assert refused.status_code == 404


async def test_rooms_ice_refused_once_the_room_is_closed(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    ended = await make_appointment(sessions, demo, room_state=RoomState.ENDED)
    await login(client, demo.specialist)
    response = await client.get(f"/api/v1/rooms/{ended.id}/ice")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "room_closed"


async def test_rooms_ice_needs_a_session(client: httpx2.AsyncClient, demo: Demo) -> None:
    assert (await client.get("/api/v1/rooms/1/ice")).status_code == 401


async def test_queue_says_a_consultation_is_going_on_whatever_day_its_slot_is_on(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    now = utcnow()
    await login(client, demo.specialist)
    assert (await client.get("/api/v1/queue")).json()["in_consultation"] is False

    # Forgotten since yesterday (admitted 13 hours ago, never ended): not a consultation now.
    await make_appointment(
        sessions,
        demo,
        starts_at=now - timedelta(hours=13, minutes=10),
        room_state=RoomState.ADMITTED,
        admitted_at=now - timedelta(hours=13),
    )
    # A colleague's call does not count for this specialist.
    await make_appointment(
        sessions,
        demo,
        specialist_id=demo.other_specialist.id,
        room_state=RoomState.IN_CALL,
        admitted_at=now,
    )
    assert (await client.get("/api/v1/queue")).json()["in_consultation"] is False

    # A call whose slot was yesterday (an appointment run late past midnight): neither in
    # today's list nor waiting, and yet the specialist is in it.
    yesterday = await make_appointment(
        sessions,
        demo,
        starts_at=now - timedelta(days=1),
        room_state=RoomState.IN_CALL,
        admitted_at=now - timedelta(minutes=5),
    )
    body = (await client.get("/api/v1/queue")).json()
    assert yesterday.id not in [e["appointment_id"] for e in body["today"] + body["waiting"]]
    assert body["in_consultation"] is True


async def test_queue_keeps_quiet_while_the_patient_is_sent_back(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A patient sent back to the waiting room (the specialist talks to the GP alone) is the
    same consultation going on: no knock for the patient coming back into the line."""
    now = utcnow()
    await login(client, demo.specialist)
    # Only waiting, never admitted: a new arrival, not a consultation.
    await make_appointment(
        sessions, demo, starts_at=now, room_state=RoomState.WAITING, waiting_since=now
    )
    assert (await client.get("/api/v1/queue")).json()["in_consultation"] is False
    sent_back = await make_appointment(
        sessions,
        demo,
        starts_at=now + timedelta(minutes=30),
        room_state=RoomState.WAITING,
        waiting_since=now,
        admitted_at=now - timedelta(minutes=4),
    )
    assert (await client.get("/api/v1/queue")).json()["in_consultation"] is True
    # For that patient's own waiting-time estimate, their consultation is not another one
    # the specialist is busy with.
    assert sent_back.id is not None
    assert demo.specialist.id is not None
    async with sessions() as session:
        assert not await history.in_consultation(
            session, specialist_id=demo.specialist.id, now=now, besides=sent_back.id
        )


# ---------------------------------------------------------------- send back to the waiting room


async def audit_actions(
    sessions: async_sessionmaker[AsyncSession], appointment_id: int
) -> list[str]:
    async with sessions() as session:
        rows = await session.execute(
            select(AuditEvent.action)
            .where(col(AuditEvent.appointment_id) == appointment_id)
            .order_by(col(AuditEvent.id))
        )
    return list(rows.scalars())


async def test_rooms_send_back_moves_the_patient_to_the_waiting_room(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    admitted = utcnow() - timedelta(minutes=5)
    appointment = await make_appointment(
        sessions, demo, room_state=RoomState.IN_CALL, admitted_at=admitted
    )
    assert appointment.id is not None
    await login(client, demo.specialist)
    response = await client.post(f"/api/v1/rooms/{appointment.id}/send-back", headers=ORIGIN)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["room_state"] == "waiting"
    assert datetime.fromisoformat(body["waiting_since"]) > admitted
    assert await audit_actions(sessions, appointment.id) == ["room.send_back"]
    again = await client.post(f"/api/v1/rooms/{appointment.id}/admit", headers=ORIGIN)
    assert again.status_code == 200, again.text
    assert again.json()["room_state"] == "admitted"


async def test_rooms_send_back_is_for_the_rooms_specialist(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(
        sessions, demo, room_state=RoomState.ADMITTED, admitted_at=utcnow()
    )
    url = f"/api/v1/rooms/{appointment.id}/send-back"
    await login(client, demo.gp)
    assert (await client.post(url, headers=ORIGIN)).status_code == 403
    await login(client, demo.other_specialist)
    assert (await client.post(url, headers=ORIGIN)).status_code == 404  # as if unknown
    await login(client, demo.specialist)
    del client.headers["X-CSRF-Token"]
    refused = await client.post(url, headers=ORIGIN)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "csrf_failed")
    async with sessions() as session:
        stored = await session.get(Appointment, appointment.id)
    assert stored is not None
    assert stored.room_state is RoomState.ADMITTED


async def test_rooms_send_back_with_nobody_in_the_call_is_409(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    waiting = await make_appointment(
        sessions, demo, room_state=RoomState.WAITING, waiting_since=utcnow()
    )
    idle = await make_appointment(sessions, demo)
    await login(client, demo.specialist)
    for appointment in (waiting, idle):
        response = await client.post(f"/api/v1/rooms/{appointment.id}/send-back", headers=ORIGIN)
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "invalid_transition"


async def test_rooms_patient_sent_back_heads_the_line(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    now = utcnow().replace(microsecond=0)
    noon = datetime.combine(now.astimezone(BERLIN).date(), time(12), BERLIN)
    urgent = await make_appointment(
        sessions,
        demo,
        starts_at=noon,
        urgency=Urgency.URGENT,
        room_state=RoomState.WAITING,
        waiting_since=now - timedelta(minutes=30),
    )
    back = await make_appointment(
        sessions,
        demo,
        starts_at=noon + timedelta(minutes=30),
        room_state=RoomState.IN_CALL,
        admitted_at=now - timedelta(minutes=10),
    )
    await login(client, demo.specialist)
    sent = await client.post(f"/api/v1/rooms/{back.id}/send-back", headers=ORIGIN)
    assert sent.status_code == 200, sent.text
    body = (await client.get("/api/v1/queue")).json()
    assert [e["appointment_id"] for e in body["waiting"]] == [back.id, urgent.id]


async def test_rooms_sent_back_consultation_cannot_be_cancelled_or_handed_over(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(
        sessions, demo, room_state=RoomState.IN_CALL, admitted_at=utcnow()
    )
    await login(client, demo.specialist)
    sent = await client.post(f"/api/v1/rooms/{appointment.id}/send-back", headers=ORIGIN)
    assert sent.status_code == 200, sent.text
    moved = await transfer_to_colleague(client, demo, appointment)
    assert (moved.status_code, moved.json()["error"]["code"]) == (409, "invalid_transition")
    await login(client, demo.gp)
    cancelled = await client.post(f"/api/v1/appointments/{appointment.id}/cancel", headers=ORIGIN)
    assert (cancelled.status_code, cancelled.json()["error"]["code"]) == (409, "invalid_transition")
    async with sessions() as session:
        stored = await session.get(Appointment, appointment.id)
    assert stored is not None
    assert (stored.room_state, stored.specialist_id) == (RoomState.WAITING, demo.specialist.id)


async def test_rooms_consultation_begun_then_left_is_no_no_show_and_not_moved(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # Sent back, then the patient left the waiting room: the room is scheduled again, but the
    # consultation had begun.
    appointment = await make_appointment(
        sessions,
        demo,
        starts_at=utcnow().replace(microsecond=0) - timedelta(minutes=10),
        admitted_at=utcnow() - timedelta(minutes=5),
    )
    await login(client, demo.specialist)
    marked = await client.post(f"/api/v1/rooms/{appointment.id}/no-show", headers=ORIGIN)
    assert (marked.status_code, marked.json()["error"]["code"]) == (409, "invalid_transition")
    await login(client, demo.gp)
    moved = await client.post(
        f"/api/v1/appointments/{appointment.id}/reschedule",
        json={"starts_at": (utcnow() + timedelta(days=2)).isoformat()},
        headers=ORIGIN,
    )
    assert (moved.status_code, moved.json()["error"]["code"]) == (409, "invalid_transition")
