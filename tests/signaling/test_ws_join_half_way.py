"""A fresh ``join`` (a reloaded page: no resume id) that the broker fails half-way, after it
named itself its seat's current participant: the seat's earlier participant stays the current
one, so it can still resume or ends at its window's end, and the room hears the truth."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.broker import Broker
from app.errors import WS_TRY_AGAIN_LATER
from app.scheduling.models import Appointment, RoomState
from app.settings import Settings
from app.signaling.hub import Hub
from tests.factories import Demo, make_appointment, patient_token
from tests.live import Live, live_server
from tests.services import REDIS_URL, require_redis
from tests.signaling.test_ws_broker_down import dropped
from tests.signaling.test_ws_resume import Call, call_in_progress, random_id
from tests.signaling.wsclient import Client, ws_connect
from tests.waiting import until

# Where the fresh join fails: (broker call, key or channel it acts on, whether Redis carried the
# call out before the connection broke, so that only its reply was lost).
STEPS = {
    "naming": ("put", "konsil:current:", True),
    "record": ("put", "konsil:resume:", False),
    "announcement": ("publish", "konsil:room:", False),
}


def fail_once(
    monkeypatch: pytest.MonkeyPatch, broker: Broker, name: str, prefix: str, *, done: bool
) -> None:
    """The broker's next ``name`` call on a key or channel starting with ``prefix`` fails
    (a Redis hiccup); other calls, and later ones, work. ``done``: the call is carried out
    first, and then fails."""
    original = getattr(broker, name)
    armed = [True]

    async def hiccup(target: str, *args: Any, **kwargs: Any) -> Any:
        if not (armed[0] and target.startswith(prefix)):
            return await original(target, *args, **kwargs)
        armed[0] = False
        if done:
            await original(target, *args, **kwargs)
        raise RedisConnectionError("Connection reset by peer")

    monkeypatch.setattr(broker, name, hiccup)


async def reload_refused(live: Live, call: Call) -> None:
    """The patient's reloaded page joins afresh; the broker fails half-way: 1013. The page
    does not come back (the phone went away)."""
    async with ws_connect(live, call.query, call.cookie) as page:
        await refused(page)


async def refused(page: Client) -> None:
    """Sends a fresh ``join`` that is refused with ``unavailable`` and 1013 (after ``joined``
    if the join failed only as the room was told)."""
    await page.send(type="join")
    error = await page.recv()
    while error["type"] in ("joined", "room_state"):
        error = await page.recv()
    assert (error["type"], error["code"], error["ref"]) == ("error", "unavailable", "join")
    assert await page.closed_with() == WS_TRY_AGAIN_LATER


async def next_told(client: Client, kinds: tuple[str, ...]) -> dict[str, Any]:
    """The next message of one of ``kinds`` (skipping what a room's gap and the seat's state
    bring: ``renegotiate``, ``peer_state``)."""
    while True:
        told = await client.recv()
        if told["type"] in kinds:
            return told
        assert told["type"] in ("renegotiate", "peer_state", "room_state"), told


async def told_left(client: Client, participant: str, reason: str) -> None:
    """The next of ``peer_left`` / ``peer_joined`` that ``client`` is told is ``participant``
    leaving for ``reason``."""
    left = await next_told(client, ("peer_left", "peer_joined"))
    assert (left["type"], left["peer_id"], left["reason"]) == ("peer_left", participant, reason)


def hub_of(live: Live) -> Hub:
    found = live.app.state.resources.hub
    assert isinstance(found, Hub)
    return found


@pytest.mark.parametrize("step", list(STEPS))
async def test_a_reload_failed_half_way_leaves_the_seat_to_end_at_its_window_end(
    step: str,
    make_settings: Callable[..., Settings],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The patient's page dropped (its seat held), then reloaded; the reload's join failed after
    # it had named itself the seat's participant. Nobody comes back: a window after the drop
    # the specialist must hear that the patient was lost, not see "reconnecting" for good.
    cfg = make_settings(ws_resume_seconds=5)
    async with live_server(cfg) as live, call_in_progress(live, demo, cfg, sessions) as call:
        patient = call.joined["participant_id"]
        await dropped(live, call)
        with monkeypatch.context() as patch:
            name, prefix, done = STEPS[step]
            fail_once(patch, live.app.state.resources.broker, name, prefix, done=done)
            await reload_refused(live, call)
        await told_left(call.specialist, patient, "lost")
        assert call.appointment.id is not None
        local = hub_of(live).replicas.rooms[call.appointment.id]
        # Nobody left in the room but the specialist, and no seat held any more.
        assert [mb.role for mb in local.room.members.values()] == ["specialist"]
        assert not local.timers


async def test_a_seat_given_back_only_after_the_broker_is_back_still_ends_at_the_window_end(
    make_settings: Callable[..., Settings],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The broker also refuses to give the seat back at once: it is given back a second later.
    cfg = make_settings(ws_resume_seconds=5)
    async with live_server(cfg) as live, call_in_progress(live, demo, cfg, sessions) as call:
        await dropped(live, call)
        broker = live.app.state.resources.broker
        with monkeypatch.context() as patch:
            fail_once(patch, broker, *STEPS["record"][:2], done=False)
            fail_once(patch, broker, "put_if", "konsil:current:", done=False)
            await reload_refused(live, call)
            await told_left(call.specialist, call.joined["participant_id"], "lost")


@pytest.mark.redis
async def test_a_reload_failed_half_way_on_another_process_leaves_the_seat_to_end_there(
    make_settings: Callable[..., Settings],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The dropped seat is held by the first process; the reload reached the second one.
    require_redis()
    cfg = make_settings(broker_url=REDIS_URL, ws_resume_seconds=5)
    async with (
        live_server(cfg) as first,
        live_server(cfg) as second,
        call_in_progress(first, demo, cfg, sessions) as call,
    ):
        await dropped(first, call)
        with monkeypatch.context() as patch:
            fail_once(patch, second.app.state.resources.broker, *STEPS["record"][:2], done=False)
            await reload_refused(second, call)
        await told_left(call.specialist, call.joined["participant_id"], "lost")


async def test_a_reload_failed_half_way_leaves_the_dropped_page_its_resume(
    make_settings: Callable[..., Settings],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The failed reload replaced nobody: the dropped page, back within its window, resumes.
    cfg = make_settings(ws_resume_seconds=30)
    async with live_server(cfg) as live, call_in_progress(live, demo, cfg, sessions) as call:
        await dropped(live, call)
        with monkeypatch.context() as patch:
            fail_once(patch, live.app.state.resources.broker, *STEPS["record"][:2], done=False)
            await reload_refused(live, call)
        async with ws_connect(live, call.query, call.cookie) as back:
            await back.send(type="join", resume=call.joined["resume_id"])
            joined = await back.expect("joined")
            assert (joined["resumed"], joined["participant_id"]) == (
                True,
                call.joined["participant_id"],
            )


async def test_a_reload_failed_half_way_can_be_tried_again(
    make_settings: Callable[..., Settings],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The page that got 1013 tries again (afresh, as the page does): it takes the seat over, the
    # specialist hears the dropped participant left and the new one joined.
    cfg = make_settings(ws_resume_seconds=30)
    async with live_server(cfg) as live, call_in_progress(live, demo, cfg, sessions) as call:
        await dropped(live, call)
        with monkeypatch.context() as patch:
            fail_once(
                patch, live.app.state.resources.broker, *STEPS["announcement"][:2], done=False
            )
            await reload_refused(live, call)
        async with ws_connect(live, call.query, call.cookie) as again:
            await again.send(type="join")
            joined = await again.expect("joined")
            assert joined["resumed"] is False
            await told_left(call.specialist, call.joined["participant_id"], "left")
            new = await next_told(call.specialist, ("peer_left", "peer_joined"))
            assert (new["type"], new["peer"]["id"]) == ("peer_joined", joined["participant_id"])


async def room_state(sessions: async_sessionmaker[AsyncSession], appointment_id: int) -> RoomState:
    async with sessions() as session:
        found = await session.get(Appointment, appointment_id, populate_existing=True)
        assert found is not None
        return found.room_state


async def test_a_waiting_patient_whose_reload_failed_half_way_leaves_the_queue_at_the_window_end(
    make_settings: Callable[..., Settings],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A patient waiting alone: the page dropped, its reload failed half-way, nobody came back.
    # The specialist's queue must not show the patient waiting for good.
    cfg = make_settings(ws_resume_seconds=5)
    appointment = await make_appointment(sessions, demo, appointment_id=random_id())
    assert appointment.id is not None
    cookie = f"konsil_patient={await patient_token(sessions, cfg, appointment)}"
    query = f"as=patient&appointment={appointment.id}"
    room = appointment.id
    async with live_server(cfg) as live:
        hub = hub_of(live)
        async with ws_connect(live, query, cookie) as first:
            await first.send(type="join")
            await first.expect("joined")
        await until(lambda: bool(hub.replicas.rooms[room].timers), 10, "seat held")
        with monkeypatch.context() as patch:
            fail_once(patch, live.app.state.resources.broker, *STEPS["record"][:2], done=False)
            async with ws_connect(live, query, cookie) as page:
                await refused(page)
        assert await room_state(sessions, appointment.id) is RoomState.WAITING
        await until(lambda: room not in hub.replicas.rooms, 15, "replica released")
        assert await room_state(sessions, appointment.id) is RoomState.SCHEDULED


async def test_a_first_join_failed_half_way_leaves_the_room_as_it_was(
    live: Live,
    demo: Demo,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Nobody was in the room: the failed join's arrival must not leave the patient shown as
    # waiting in the specialist's queue when the page never comes back.
    appointment = await make_appointment(sessions, demo, appointment_id=random_id())
    assert appointment.id is not None
    cookie = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    query = f"as=patient&appointment={appointment.id}"
    with monkeypatch.context() as patch:
        fail_once(patch, live.app.state.resources.broker, *STEPS["record"][:2], done=False)
        async with ws_connect(live, query, cookie) as page:
            await refused(page)
    assert await room_state(sessions, appointment.id) is RoomState.SCHEDULED
