"""The broker (Redis) down while a call runs: the socket stays and the client is told; a join
is refused with ``unavailable`` and close 1013. (With real processes and a real Redis stopped
for 30 s: tests/chaos/test_redis_down.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.broker import Broker
from app.errors import WS_TRY_AGAIN_LATER
from app.settings import Settings
from tests.factories import Demo, make_appointment, patient_token
from tests.live import Live, live_server
from tests.signaling.test_ws_resume import Call, call_in_progress
from tests.signaling.wsclient import staff_cookie, ws_connect
from tests.waiting import until

MEDIA = {"muted": True, "camera_off": False, "audio_only": False, "screen_sharing": False}


BROKEN = ("publish", "put", "take", "take_reading", "get", "refresh")


def break_broker(
    monkeypatch: pytest.MonkeyPatch, broker: Broker, names: tuple[str, ...] = BROKEN
) -> None:
    async def down(*args: Any, **kwargs: Any) -> None:
        raise RedisConnectionError("Connection refused")

    for name in names:
        monkeypatch.setattr(broker, name, down)


CallOnServer = Callable[[int], AbstractAsyncContextManager[tuple[Live, Call]]]


@pytest.fixture
def call_on_server(
    make_settings: Callable[..., Settings],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> CallOnServer:
    """A live server with the given resume window (s) and a call in progress on it."""

    @asynccontextmanager
    async def start(resume_seconds: int) -> AsyncIterator[tuple[Live, Call]]:
        cfg = make_settings(ws_resume_seconds=resume_seconds)
        async with live_server(cfg) as live, call_in_progress(live, demo, cfg, sessions) as call:
            yield live, call

    return start


async def test_broker_down_keeps_the_call_socket_and_refuses_a_join_with_1013(
    live: Live,
    demo: Demo,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    appointment = await make_appointment(sessions, demo)
    query = f"appointment={appointment.id}"
    patient = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    staff = await staff_cookie(live, demo.specialist)
    later = await make_appointment(sessions, demo)
    newcomer = f"konsil_patient={await patient_token(sessions, settings, later)}"
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
        await p.expect("peer_joined")
        with monkeypatch.context() as patch:
            break_broker(patch, live.app.state.resources.broker)
            await p.send(type="media_state", **MEDIA)
            refused = await p.expect("error")
            assert refused["code"] == "unavailable"
            assert refused["ref"] == "media_state"
            assert refused["message"]
            async with ws_connect(live, f"as=patient&appointment={later.id}", newcomer) as n:
                await n.send(type="join")
                error = await n.expect("error")
                assert (error["code"], error["ref"]) == ("unavailable", "join")
                assert await n.closed_with() == WS_TRY_AGAIN_LATER
        # The broker is back: the same socket carries the call on. The refused message used a
        # sequence number nobody heard, so the peer notices the gap and is asked to renegotiate.
        await p.send(type="media_state", **MEDIA)
        heard = [await s.recv(), await s.recv()]
        assert [m["type"] for m in heard] == ["renegotiate", "peer_state"], heard
        assert heard[0]["reason"] == "gap"
        assert heard[1]["muted"] is True


async def test_broker_failing_half_way_through_a_join_leaves_nothing_behind(
    live: Live,
    demo: Demo,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The seat's record is stored, then the announcement to the room fails (a Redis hiccup):
    # the join is refused as when the broker is down, and the process keeps no replica of the
    # room for a connection that is gone. Once the broker is back, the patient joins.
    appointment = await make_appointment(sessions, demo)
    query = f"as=patient&appointment={appointment.id}"
    cookie = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    hub = live.app.state.resources.hub
    with monkeypatch.context() as patch:
        break_broker(patch, live.app.state.resources.broker, ("publish",))
        async with ws_connect(live, query, cookie) as p:
            await p.send(type="join")
            await p.expect("joined")  # (sent before the room is told)
            error = await p.expect("error")
            assert (error["code"], error["ref"]) == ("unavailable", "join")
            assert await p.closed_with() == WS_TRY_AGAIN_LATER
        await until(lambda: appointment.id not in hub.replicas.rooms, 10, "replica released")
    async with ws_connect(live, query, cookie) as p:
        await p.send(type="join")
        assert (await p.expect("joined"))["resumed"] is False


async def test_broker_down_when_a_connection_drops_its_seat_is_held_for_the_window(
    call_on_server: CallOnServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The patient's phone goes away while Redis is down: the seat is held for the resume
    # window as after any drop (no traceback, no replica left behind), and once the broker is
    # back, the window's end tells the specialist the patient was lost.
    async with call_on_server(5) as (live, call):
        with monkeypatch.context() as patch:
            break_broker(patch, live.app.state.resources.broker)
            await dropped(live, call)
        left = await call.specialist.expect("peer_left")
        assert (left["peer_id"], left["reason"]) == (call.joined["participant_id"], "lost")


def fail_first(monkeypatch: pytest.MonkeyPatch, broker: Broker, name: str) -> None:
    """The broker's ``name`` fails once (a Redis hiccup), then works again."""
    original = getattr(broker, name)
    calls = [0]

    async def hiccup(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            raise RedisConnectionError("Connection reset by peer")
        return await original(*args, **kwargs)

    monkeypatch.setattr(broker, name, hiccup)


async def dropped(live: Live, call: Call) -> None:
    """The patient's connection ends without ``leave``: its seat is held for the window."""
    hub = live.app.state.resources.hub
    await call.patient.ws.close()
    await until(lambda: bool(hub.replicas.rooms[call.appointment.id].timers), 10, "seat held")


async def resume_refused(live: Live, call: Call) -> None:
    async with ws_connect(live, call.query, call.cookie) as again:
        await again.send(type="join", resume=call.joined["resume_id"])
        error = await again.expect("error")
        assert (error["code"], error["ref"]) == ("unavailable", "join")
        assert await again.closed_with() == WS_TRY_AGAIN_LATER


async def test_a_resume_the_broker_fails_half_way_can_be_tried_again_with_the_same_id(
    call_on_server: CallOnServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The resume took the seat's record; storing the new one failed. The old record is put
    # back: the client's next try with the same resume id gets its seat.
    async with call_on_server(30) as (live, call):
        patient = call.joined["participant_id"]
        await dropped(live, call)
        away = await call.specialist.expect("peer_state")
        assert (away["peer_id"], away["connection"]) == (patient, "reconnecting")
        with monkeypatch.context() as patch:
            fail_first(patch, live.app.state.resources.broker, "put")
            await resume_refused(live, call)
        async with ws_connect(live, call.query, call.cookie) as again:
            await again.send(type="join", resume=call.joined["resume_id"])
            joined = await again.expect("joined")
            assert (joined["resumed"], joined["participant_id"]) == (True, patient)
            back = await call.specialist.expect("peer_state")
            assert (back["peer_id"], back["connection"]) == (patient, "connected")


async def test_a_resume_the_broker_fails_for_good_ends_the_seat_at_the_window_end(
    call_on_server: CallOnServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The resume took the seat's record and neither a new one nor the old one could be
    # stored: nobody can resume the seat any more, and it must not stay in the room with
    # nobody on it. Its expiry (this process's again) ends it once the broker is back.
    async with call_on_server(5) as (live, call):
        await dropped(live, call)
        with monkeypatch.context() as patch:
            break_broker(patch, live.app.state.resources.broker, ("put",))
            await resume_refused(live, call)
        left = await call.specialist.expect("peer_left")
        assert (left["peer_id"], left["reason"]) == (call.joined["participant_id"], "lost")


async def test_a_leave_whose_announcement_fails_ends_the_seat_as_left_at_the_window_end(
    call_on_server: CallOnServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The patient said ``leave``; the server took the seat's record and then could not tell
    # the room (publish failed). The seat is held, and ends as "left" once the broker is back.
    async with call_on_server(5) as (live, call):
        hub = live.app.state.resources.hub
        room = call.appointment.id
        with monkeypatch.context() as patch:
            break_broker(patch, live.app.state.resources.broker, ("publish",))
            await call.patient.send(type="leave")
            await call.patient.closed_with()
            await until(lambda: bool(hub.replicas.rooms[room].timers), 10, "the seat held")
        # (The room's messages the broker refused meanwhile show as a gap: ``renegotiate``.)
        told = await call.specialist.recv()
        while told["type"] in ("renegotiate", "peer_state"):
            told = await call.specialist.recv()
        assert (told["type"], told["peer_id"], told["reason"]) == (
            "peer_left",
            call.joined["participant_id"],
            "left",
        )
