"""Queue dashboards: a snapshot on watch, a fresh one per domain event, 1001 at shutdown."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.applications import Starlette

from app.db import unit_of_work
from app.errors import WS_GOING_AWAY
from app.events import outbox
from app.events.types import AppointmentBooked
from app.resources import Resources
from app.signaling.connection import Connection
from app.signaling.hub import Hub
from tests.factories import Demo, make_appointment

TIMEOUT = 10.0


def _hub(app: Starlette) -> Hub:
    res: Resources = app.state.resources
    found = res.hub
    assert isinstance(found, Hub)
    return found


async def _frame(conn: Connection) -> dict[str, Any] | None:
    frame = await asyncio.wait_for(conn.next(), TIMEOUT)
    return None if frame is None else dict(json.loads(frame))


async def test_dashboards_send_a_snapshot_on_watch_and_after_each_change(
    app: Starlette, demo: Demo
) -> None:
    hub, conn = _hub(app), Connection(limit=8, role="dashboard")
    assert demo.specialist.id is not None
    await hub.watch_queue(conn, demo.specialist.id)
    first = await _frame(conn)
    assert first is not None
    assert (first["type"], first["today"]) == ("queue", [])

    sessions = app.state.resources.sessions
    appointment = await make_appointment(sessions, demo)
    assert appointment.id is not None
    async with unit_of_work(sessions) as session:  # as booking does, through the outbox
        booked = AppointmentBooked(
            appointment_id=appointment.id, specialist_id=demo.specialist.id, gp_id=1
        )
        outbox.record(session, booked)
    second = await _frame(conn)
    assert second is not None
    assert [e["appointment_id"] for e in second["today"]] == [appointment.id]
    await hub.unwatch_queue(conn, demo.specialist.id)


async def test_dashboards_are_closed_with_1001_when_the_hub_shuts_down(
    app: Starlette, demo: Demo
) -> None:
    hub = _hub(app)
    conns = [Connection(limit=8, role="dashboard") for _ in range(3)]
    owners = [demo.specialist.id, demo.specialist.id, demo.other_specialist.id]
    for conn, specialist_id in zip(conns, owners, strict=True):
        assert specialist_id is not None
        await hub.watch_queue(conn, specialist_id)
    await hub.shutdown()
    assert [conn.close_code for conn in conns] == [WS_GOING_AWAY] * 3
    for conn in conns:
        assert (await _frame(conn) or {}).get("type") == "queue"  # queued before the close
        assert await _frame(conn) is None
    assert hub.dashboards.watchers == {}
