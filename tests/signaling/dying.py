"""A waiting patient on a server process that dies, beside a survivor, both on real Redis
(``patient_on_a_dying_process``); the tests of a dead process's seats start from there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.scheduling.models import Appointment, RoomState
from app.settings import Settings
from app.signaling import envelope as env
from app.signaling.hub import Hub
from tests.factories import Demo, make_appointment, patient_token
from tests.live import Live, live_server
from tests.signaling.test_liveness import hub_of
from tests.signaling.test_ws_resume import random_id
from tests.signaling.wsclient import ws_connect


async def room_state(sessions: async_sessionmaker[AsyncSession], appointment_id: int) -> RoomState:
    async with sessions() as session:
        appointment = await session.get(Appointment, appointment_id, populate_existing=True)
        assert appointment is not None
        return appointment.room_state


def dies(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on the process does nothing about its seats, as if killed: no liveness key,
    and a connection that ends is not noticed (no expiry timer, the index as it was)."""

    async def nothing(*args: object, **kwargs: object) -> None:
        return None

    monkeypatch.setattr(hub.seats, "disconnect", nothing)


@dataclass
class Dying:
    """The processes (``first`` died, ``second`` survives), and the patient who was waiting
    on the first: how to connect again, and what its join was told."""

    first: Live
    second: Live
    appointment_id: int
    query: str
    cookie: str
    joined: dict[str, Any]

    @property
    def dead(self) -> Hub:
        return hub_of(self.first)

    @property
    def survivor(self) -> Hub:
        return hub_of(self.second)


@asynccontextmanager
async def patient_on_a_dying_process(
    cfg: Settings,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Dying]:
    """Two live servers on ``cfg`` (real Redis); a patient joins the waiting room on the first,
    alone in the room; then the first dies (``dies``, its liveness key gone) and the patient's
    device is gone too (its connection cut, no ``leave``). Yields right after."""
    async with live_server(cfg) as first, live_server(cfg) as second:
        appointment = await make_appointment(sessions, demo, appointment_id=random_id())
        assert appointment.id is not None
        query = f"as=patient&appointment={appointment.id}"
        cookie = f"konsil_patient={await patient_token(sessions, cfg, appointment)}"
        dead, survivor = hub_of(first), hub_of(second)
        async with ws_connect(first, query, cookie) as patient:
            await patient.send(type="join")
            joined = await patient.expect("joined")
            assert await room_state(sessions, appointment.id) is RoomState.WAITING
            # The room is on the dying process only: no survivor has a replica to adopt from.
            assert appointment.id not in survivor.replicas.rooms
            indexed = await survivor.replicas.broker.filed(env.seats_key(dead.replicas.origin))
            assert list(indexed.values()) == [str(appointment.id).encode()]
            dies(dead, monkeypatch)
            await dead.liveness.stop()
            patient.ws.transport.abort()
        yield Dying(first, second, appointment.id, query, cookie, joined)
