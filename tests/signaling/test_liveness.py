"""Which server processes count as dead (``app.signaling.liveness``), and a process that only
stalled keeps its participants. (A process really killed: tests/chaos/test_kill.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.settings import Settings
from app.signaling.hub import Hub
from app.signaling.liveness import Deaths
from tests.factories import Demo
from tests.live import Live, live_server
from tests.services import REDIS_URL
from tests.signaling.test_ws_resume import call_in_progress
from tests.signaling.wsclient import TIMEOUT, Client


def test_a_process_missing_for_less_than_the_threshold_is_not_dead() -> None:
    deaths = Deaths(6.0)
    assert deaths.saw({"a": False, "b": True}, 100.0) == set()
    assert deaths.saw({"a": False, "b": True}, 105.9) == set()
    assert deaths.saw({"a": False, "b": False}, 106.0) == {"a"}
    assert deaths.saw({"a": False, "b": False}, 112.0) == {"a", "b"}


def test_a_process_seen_alive_again_starts_afresh() -> None:
    deaths = Deaths(6.0)
    deaths.saw({"a": False}, 0.0)
    deaths.saw({"a": True}, 3.0)
    assert deaths.saw({"a": False}, 7.0) == set()
    assert deaths.saw({"a": False}, 13.0) == {"a"}


def test_a_broker_out_of_reach_proves_nothing() -> None:
    # Redis restarted: every key is gone until each process writes its own again.
    deaths = Deaths(6.0)
    deaths.saw({"a": False}, 0.0)
    deaths.blind()
    assert deaths.saw({"a": False}, 7.0) == set()


def test_a_process_no_longer_in_this_process_rooms_is_forgotten() -> None:
    deaths = Deaths(6.0)
    deaths.saw({"a": False}, 0.0)
    deaths.saw({}, 3.0)
    assert deaths.saw({"a": False}, 7.0) == set()


def hub_of(server: Live) -> Hub:
    found = server.app.state.resources.hub
    assert isinstance(found, Hub)
    return found


async def until_message(client: Client, wanted: Callable[[dict[str, Any]], bool]) -> None:
    """Reads until a message ``wanted`` says yes to; a ``peer_left`` on the way fails."""
    async with asyncio.timeout(TIMEOUT):
        while not wanted(message := await client.recv()):
            assert message["type"] != "peer_left", message


async def messages_within(client: Client, seconds: float) -> list[dict[str, Any]]:
    """Everything ``client`` receives in the next ``seconds``."""
    heard: list[dict[str, Any]] = []
    with suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                heard.append(await client.recv())
    return heard


@pytest.mark.redis
@pytest.mark.usefixtures("quick_liveness")
async def test_a_process_that_only_stalled_keeps_its_participants(
    make_settings: Callable[..., Settings],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    window = 2
    cfg = make_settings(broker_url=REDIS_URL, ws_resume_seconds=window)
    async with (
        live_server(cfg) as first,
        live_server(cfg) as second,
        call_in_progress(second, demo, cfg, sessions, patient_server=first) as call,
    ):
        patient_id = call.joined["participant_id"]
        stalled = hub_of(first)
        # Its liveness key is gone, as if its event loop had stalled for many seconds.
        await stalled.liveness.stop()
        # The specialist's process takes it for dead and the patient for away...
        await until_message(
            call.specialist,
            lambda m: m["type"] == "peer_state" and m["connection"] == "reconnecting",
        )
        # ...and the stalled process, which still holds the patient's connection, says so.
        await until_message(
            call.specialist,
            lambda m: m["type"] == "peer_state" and m["connection"] == "connected",
        )
        await stalled.liveness.start(first.app.state.resources.tasks)
        # The adopted seat's window passes: the process is alive again, the seat is kept.
        heard = await messages_within(call.specialist, window + 2)
        assert [m for m in heard if m["type"] == "peer_left"] == []
        assert call.appointment.id is not None
        assert patient_id in hub_of(second).replicas.rooms[call.appointment.id].room.members
        await call.specialist.send(type="offer", to=patient_id, sdp="v=0\r\n")
        assert (await call.patient.expect("offer"))["sdp"] == "v=0\r\n"
        # Its seat's record was not cut short by the adoption: when the patient's connection
        # really drops later, the stalled process holds the seat and ends it as ever.
        call.patient.ws.transport.abort()
        await until_message(
            call.specialist,
            lambda m: m["type"] == "peer_state" and m["connection"] == "reconnecting",
        )
        async with asyncio.timeout(TIMEOUT):
            while (message := await call.specialist.recv())["type"] != "peer_left":
                pass
        assert (message["peer_id"], message["reason"]) == (patient_id, "lost")
