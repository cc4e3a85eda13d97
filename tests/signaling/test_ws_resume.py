"""Resume after a dropped connection, and a second connection replacing the first."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import WS_REPLACED
from app.scheduling.models import Appointment, RoomState
from app.settings import Settings
from app.signaling.hub import Hub
from tests.factories import Demo, make_appointment, patient_token
from tests.live import Live, live_server
from tests.services import REDIS_URL, require_redis
from tests.signaling.wsclient import TIMEOUT, Client, staff_cookie, ws_connect


async def test_ws_resume_keeps_participant_and_asks_offerer_to_restart_ice(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo)
    query = f"appointment={appointment.id}"
    patient = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    staff = await staff_cookie(live, demo.specialist)
    async with ws_connect(live, f"as=staff&{query}", staff) as s:
        await s.send(type="join")
        await s.expect("joined")
        async with ws_connect(live, f"as=patient&{query}", patient) as p:
            await p.send(type="join")
            first = await p.expect("joined")
            await s.send(type="admit")
            await s.expect("peer_joined")
        # The patient's socket dropped without "leave"; it comes back with its resume id.
        async with ws_connect(live, f"as=patient&{query}", patient) as p2:
            await p2.send(type="join", resume=first["resume_id"])
            again = await p2.expect("joined")
            assert again["resumed"] is True
            assert again["participant_id"] == first["participant_id"]
            assert again["resume_id"] != first["resume_id"]
            restart = await s.expect("renegotiate")
            assert restart == {
                "type": "renegotiate",
                "peer_id": first["participant_id"],
                "ice_restart": True,
                "reason": "resumed",
            }


async def test_ws_resume_after_the_window_fails_and_the_peer_hears_peer_left(
    make_settings: Callable[..., Settings],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    cfg = make_settings(ws_resume_seconds=1)
    async with live_server(cfg) as live, call_in_progress(live, demo, cfg, sessions) as call:
        # Dropped without "leave", and not back within the window: the seat is gone.
        await call.patient.ws.close()
        left = await call.specialist.expect("peer_left")
        assert left["peer_id"] == call.joined["participant_id"]
        async with ws_connect(live, call.query, call.cookie) as late:
            await late.send(type="join", resume=call.joined["resume_id"])
            assert (await late.expect("error"))["code"] == "resume_failed"
            joined = await late.expect("joined")
            assert joined["resumed"] is False
            assert joined["participant_id"] != call.joined["participant_id"]


async def test_ws_resume_id_is_single_use_and_bound_to_the_session(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo)
    query = f"as=patient&appointment={appointment.id}"
    cookie = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    other = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    async with ws_connect(live, query, cookie) as p:
        await p.send(type="join")
        first = await p.expect("joined")
    async with ws_connect(live, query, other) as thief:
        await thief.send(type="join", resume=first["resume_id"])
        assert (await thief.expect("error"))["code"] == "resume_failed"
        joined = await thief.expect("joined")
        assert joined["resumed"] is False
        assert joined["participant_id"] != first["participant_id"]


async def test_ws_second_connection_of_same_participant_replaces_first(
    live: Live, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo)
    query = f"as=staff&appointment={appointment.id}"
    staff = await staff_cookie(live, demo.specialist)
    async with ws_connect(live, query, staff) as old:
        await old.send(type="join")
        await old.expect("joined")
        async with ws_connect(live, query, staff) as new:
            await new.send(type="join")
            await new.expect("joined")
            assert await old.closed_with() == WS_REPLACED


@dataclass
class Call:
    """A specialist and an admitted patient, both still connected."""

    appointment: Appointment
    specialist: Client
    patient: Client
    joined: dict[str, Any]
    query: str
    cookie: str


@asynccontextmanager
async def call_in_progress(
    server: Live,
    demo: Demo,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    patient_server: Live | None = None,
) -> AsyncIterator[Call]:
    # A random id keeps this room's Redis channel and keys apart from other test runs.
    appointment = await make_appointment(sessions, demo, appointment_id=random_id())
    query = f"as=patient&appointment={appointment.id}"
    cookie = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    staff = await staff_cookie(server, demo.specialist)
    async with AsyncExitStack() as stack:
        s = await stack.enter_async_context(
            ws_connect(server, f"as=staff&appointment={appointment.id}", staff)
        )
        await s.send(type="join")
        await s.expect("joined")
        p = await stack.enter_async_context(ws_connect(patient_server or server, query, cookie))
        await p.send(type="join")
        joined = await p.expect("joined")
        await s.send(type="admit")
        await s.expect("peer_joined")
        await p.expect("peer_joined")
        yield Call(appointment, s, p, joined, query, cookie)


def random_id() -> int:
    return 1_000_000 + secrets.randbelow(1_000_000_000)


async def connections_in_room(live: Live, appointment_id: int, count: int) -> None:
    """Waits until the server holds ``count`` connections in the room (old ones handled)."""
    found = live.app.state.resources.hub
    assert isinstance(found, Hub)
    # The hub has no event for it; a short poll, bounded by the caller's timeout.
    while True:
        if len(found.replicas.rooms[appointment_id].conns) == count:
            return
        await asyncio.sleep(0.01)


async def test_ws_resume_onto_open_connection_takes_the_seat_over(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with (
        call_in_progress(live, demo, settings, sessions) as call,
        # The client lost its network; the server still holds the half-open old socket.
        ws_connect(live, call.query, call.cookie) as again,
    ):
        await again.send(type="join", resume=call.joined["resume_id"])
        joined = await again.expect("joined")
        assert joined["resumed"] is True
        assert joined["participant_id"] == call.joined["participant_id"]
        assert await call.patient.closed_with() == WS_REPLACED
        restart = await call.specialist.expect("renegotiate")
        assert restart["peer_id"] == call.joined["participant_id"]
        assert restart["reason"] == "resumed"


async def test_ws_resume_onto_open_connection_old_disconnect_keeps_participant(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with (
        call_in_progress(live, demo, settings, sessions) as call,
        ws_connect(live, call.query, call.cookie) as again,
    ):
        await again.send(type="join", resume=call.joined["resume_id"])
        await again.expect("joined")
        assert await call.patient.closed_with() == WS_REPLACED
        assert call.appointment.id is not None
        await asyncio.wait_for(connections_in_room(live, call.appointment.id, 2), TIMEOUT)
        await again.send(type="chat", text="Wieder da.")
        # No peer_left before it (expect fails on one): still the same participant.
        await call.specialist.expect("renegotiate")
        chat = await call.specialist.expect("chat")
        assert (chat["from"], chat["text"]) == (call.joined["participant_id"], "Wieder da.")


async def test_ws_connection_replaced_while_its_join_finishes_leaves_the_room(
    live: Live,
    demo: Demo,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The client hears ``joined`` before the server's join has finished (the patient's place in
    # line is read after it). A resume onto that connection closes it meanwhile (4409); the
    # join must still end with a seat that the old connection's end gives up again.
    hub = live.app.state.resources.hub
    assert isinstance(hub, Hub)
    gate, paused = asyncio.Event(), asyncio.Event()
    watch = hub.waiting.watch

    async def slow_first_watch(conn: Any, appointment_id: int) -> None:
        if not paused.is_set():
            paused.set()
            await gate.wait()
        await watch(conn, appointment_id)

    monkeypatch.setattr(hub.waiting, "watch", slow_first_watch)
    appointment = await make_appointment(sessions, demo, appointment_id=random_id())
    assert appointment.id is not None
    query = f"as=patient&appointment={appointment.id}"
    cookie = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    async with (
        ws_connect(live, query, cookie) as old,
        ws_connect(live, query, cookie) as again,
    ):
        await old.send(type="join")
        joined = await old.expect("joined")
        await asyncio.wait_for(paused.wait(), TIMEOUT)
        (first,) = hub.replicas.rooms[appointment.id].conns.values()
        await again.send(type="join", resume=joined["resume_id"])
        assert (await again.expect("joined"))["resumed"] is True
        await asyncio.wait_for(first.closing.wait(), TIMEOUT)
        assert first.close_code == WS_REPLACED
        gate.set()
        assert await old.closed_with() == WS_REPLACED
        await asyncio.wait_for(connections_in_room(live, appointment.id, 1), TIMEOUT)


async def test_ws_resume_id_taken_over_once_cannot_be_used_again(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with call_in_progress(live, demo, settings, sessions) as call:
        resume_id = call.joined["resume_id"]
        async with ws_connect(live, call.query, call.cookie) as again:
            await again.send(type="join", resume=resume_id)
            assert (await again.expect("joined"))["resumed"] is True
            async with ws_connect(live, call.query, call.cookie) as third:
                await third.send(type="join", resume=resume_id)
                assert (await third.expect("error"))["code"] == "resume_failed"
                assert (await third.expect("joined"))["resumed"] is False


async def test_ws_resume_id_of_open_connection_refused_for_another_session(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with call_in_progress(live, demo, settings, sessions) as call:
        other = f"konsil_patient={await patient_token(sessions, settings, call.appointment)}"
        async with ws_connect(live, call.query, other) as thief:
            await thief.send(type="join", resume=call.joined["resume_id"])
            assert (await thief.expect("error"))["code"] == "resume_failed"
            joined = await thief.expect("joined")
            assert joined["participant_id"] != call.joined["participant_id"]


async def test_ws_refused_foreign_resume_does_not_use_up_the_owners_id(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with call_in_progress(live, demo, settings, sessions) as call:
        other = f"konsil_patient={await patient_token(sessions, settings, call.appointment)}"
        async with ws_connect(live, call.query, other) as thief:
            await thief.send(type="join", resume=call.joined["resume_id"])
            assert (await thief.expect("error"))["code"] == "resume_failed"
        async with ws_connect(live, call.query, call.cookie) as again:
            await again.send(type="join", resume=call.joined["resume_id"])
            assert (await again.expect("joined"))["resumed"] is True


@pytest.mark.redis
async def test_ws_resume_onto_open_connection_on_another_server_process(
    make_settings: Callable[..., Settings],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    require_redis()
    cfg = make_settings(broker_url=REDIS_URL)
    async with (
        live_server(cfg) as first,
        live_server(cfg) as second,
        call_in_progress(first, demo, cfg, sessions) as call,
        ws_connect(second, call.query, call.cookie) as again,
    ):
        await again.send(type="join", resume=call.joined["resume_id"])
        joined = await again.expect("joined")
        assert (joined["resumed"], joined["participant_id"]) == (
            True,
            call.joined["participant_id"],
        )
        assert await call.patient.closed_with() == WS_REPLACED
        restart = await call.specialist.expect("renegotiate")
        # The ICE-restart offer reaches the patient on the other process.
        await call.specialist.send(type="offer", to=restart["peer_id"], sdp="v=0\r\n")
        offer = await again.expect("offer")
        assert offer["sdp"] == "v=0\r\n"


async def test_ws_a_waiting_patient_who_reloads_the_page_stays_in_the_waiting_room(
    make_settings: Callable[..., Settings],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A reloaded page has no resume id: it joins afresh and replaces the dropped seat. That
    seat's expiry, a window later, must not take the patient out of the waiting room."""
    cfg = make_settings(ws_resume_seconds=1)
    appointment = await make_appointment(sessions, demo, appointment_id=random_id())
    assert appointment.id is not None
    cookie = f"konsil_patient={await patient_token(sessions, cfg, appointment)}"
    query = f"as=patient&appointment={appointment.id}"
    async with live_server(cfg) as live:
        async with ws_connect(live, query, cookie) as first:
            await first.send(type="join")
            await first.expect("joined")
        # Dropped (no "leave"): the seat waits a window for a resume that never comes.
        await asyncio.wait_for(expiry_pending(live, appointment.id), TIMEOUT)
        async with ws_connect(live, query, cookie) as reloaded:
            await reloaded.send(type="join")
            assert (await reloaded.expect("joined"))["resumed"] is False
            # The dropped seat's window passes (nothing to wait for but time: the point is
            # that nothing happens).
            await asyncio.sleep(cfg.ws_resume_seconds + 2)
            async with sessions() as session:
                now = await session.get(Appointment, appointment.id, populate_existing=True)
                assert now is not None
                assert now.room_state is RoomState.WAITING
            # Nor was the page told otherwise, up to the answer to a message of its own.
            await reloaded.send(type="chat", text="-")
            told = [await reloaded.recv()]
            while told[-1]["type"] != "error":
                told.append(await reloaded.recv())
            states = [m["state"] for m in told if m["type"] == "room_state"]
            assert set(states) <= {"waiting"}, told


async def expiry_pending(live: Live, appointment_id: int) -> None:
    """Waits until a seat of the room waits for its resume (its expiry timer runs)."""
    found = live.app.state.resources.hub
    assert isinstance(found, Hub)
    # The hub has no event for it; a short poll, bounded by the caller's timeout.
    while True:
        if found.replicas.rooms[appointment_id].timers:
            return
        await asyncio.sleep(0.01)


async def test_ws_the_resume_id_of_a_seat_replaced_by_a_reload_no_longer_resumes(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """An old tab coming back with its resume id after the page was reloaded elsewhere: the
    seat is the reloaded page's now, so the old tab joins afresh (and replaces it in turn)
    rather than putting a second participant of the session into the room."""
    appointment = await make_appointment(sessions, demo, appointment_id=random_id())
    assert appointment.id is not None
    cookie = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    query = f"as=patient&appointment={appointment.id}"
    async with ws_connect(live, query, cookie) as old:
        await old.send(type="join")
        first = await old.expect("joined")
    await asyncio.wait_for(expiry_pending(live, appointment.id), TIMEOUT)
    async with ws_connect(live, query, cookie) as reloaded:
        await reloaded.send(type="join")
        fresh = await reloaded.expect("joined")
        async with ws_connect(live, query, cookie) as back:
            await back.send(type="join", resume=first["resume_id"])
            assert (await back.expect("error"))["code"] == "resume_failed"
            again = await back.expect("joined")
            assert again["resumed"] is False
            assert await reloaded.closed_with() == WS_REPLACED
            hub = live.app.state.resources.hub
            assert isinstance(hub, Hub)
            members = hub.replicas.rooms[appointment.id].room.members
            assert list(members) == [again["participant_id"]]
            assert {first["participant_id"], fresh["participant_id"]}.isdisjoint(members)
