"""GPs' presence counts over a real websocket: pushed when a specialist toggles, when a call
starts, when the specialist's session ends, only when a count changed, and across two server
processes on one Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx2
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from app.db import utcnow
from app.errors import WS_GOING_AWAY
from app.scheduling.models import RoomState
from app.settings import Settings
from app.signaling.connection import Connection
from app.signaling.hub import Hub
from app.signaling.presence import counts_may_change
from tests.factories import Demo, make_appointment
from tests.live import Live, live_server
from tests.services import REDIS_URL, require_redis
from tests.signaling.wsclient import Client, staff_api, staff_cookie, ws_connect


async def set_to(client: httpx2.AsyncClient, status: str) -> None:
    response = await client.put("/api/v1/presence", json={"status": status})
    assert response.status_code == 200, response.text


async def cardiology(gp: Client, demo: Demo) -> tuple[int, int]:
    """The next ``presence`` message's cardiology counts: (on duty, in a call)."""
    message = await gp.expect("presence")
    assert set(message) == {"type", "specialties"}
    (found,) = [s for s in message["specialties"] if s["specialty_id"] == demo.cardiology.id]
    return found["on_duty"], found["in_call"]


async def test_ws_presence_reaches_the_gp_when_the_specialist_toggles_and_logs_out(
    live: Live, demo: Demo
) -> None:
    gp = await staff_cookie(live, demo.gp)
    async with ws_connect(live, "as=staff", gp) as dashboard, staff_api(live, demo.specialist) as s:
        assert await cardiology(dashboard, demo) == (0, 0)  # on connect
        await set_to(s, "on_duty")
        assert await cardiology(dashboard, demo) == (1, 0)
        await set_to(s, "away")
        assert await cardiology(dashboard, demo) == (0, 0)
        await set_to(s, "on_duty")
        assert await cardiology(dashboard, demo) == (1, 0)
        logout = await s.post("/api/v1/auth/logout")
        assert logout.status_code in (200, 204), logout.text
        assert await cardiology(dashboard, demo) == (0, 0)


async def test_ws_presence_says_nothing_when_no_count_changed(live: Live, demo: Demo) -> None:
    gp = await staff_cookie(live, demo.gp)
    async with ws_connect(live, "as=staff", gp) as dashboard:
        assert await cardiology(dashboard, demo) == (0, 0)
        # Another GP's logout makes every process count again: the counts stay, nothing said.
        async with staff_api(live, demo.other_gp) as other:
            assert (await other.post("/api/v1/auth/logout")).status_code in (200, 204)
        async with staff_api(live, demo.dermatologist) as dermatologist:
            await set_to(dermatologist, "on_duty")
        message = await dashboard.expect("presence")
        (skin,) = [s for s in message["specialties"] if s["specialty_id"] == demo.dermatology.id]
        assert skin["on_duty"] == 1  # the next message is this change, no repeat before it


async def test_ws_presence_counts_a_call_that_starts(
    live: Live, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(
        sessions, demo, room_state=RoomState.WAITING, waiting_since=utcnow()
    )
    gp = await staff_cookie(live, demo.gp)
    async with ws_connect(live, "as=staff", gp) as dashboard, staff_api(live, demo.specialist) as s:
        assert await cardiology(dashboard, demo) == (0, 0)
        await set_to(s, "on_duty")
        assert await cardiology(dashboard, demo) == (1, 0)
        admitted = await s.post(f"/api/v1/rooms/{appointment.id}/admit")
        assert admitted.status_code == 200, admitted.text
        assert await cardiology(dashboard, demo) == (0, 1)
        ended = await s.post(f"/api/v1/rooms/{appointment.id}/end")
        assert ended.status_code == 200, ended.text
        assert await cardiology(dashboard, demo) == (1, 0)


@pytest.mark.redis
async def test_ws_presence_reaches_a_gp_on_another_server_process(
    make_settings: Callable[..., Settings], demo: Demo
) -> None:
    require_redis()
    cfg = make_settings(broker_url=REDIS_URL)
    async with live_server(cfg) as first, live_server(cfg) as second:
        gp = await staff_cookie(second, demo.gp)
        async with (
            ws_connect(second, "as=staff", gp) as dashboard,
            staff_api(first, demo.specialist) as specialist,
        ):
            assert await cardiology(dashboard, demo) == (0, 0)
            await set_to(specialist, "on_duty")
            assert await cardiology(dashboard, demo) == (1, 0)


@pytest.mark.parametrize(
    ("previous", "state", "expected"),
    [
        (RoomState.WAITING, RoomState.ADMITTED, True),  # the call starts
        (RoomState.IN_CALL, RoomState.ENDED, True),  # it ends
        (RoomState.ADMITTED, RoomState.IN_CALL, True),
        (RoomState.SCHEDULED, RoomState.CANCELLED, False),
        (RoomState.SCHEDULED, RoomState.NO_SHOW, False),
        (RoomState.ENDED, RoomState.ENDED, False),
    ],
)
def test_presence_counts_may_change_with_a_room(
    previous: RoomState, state: RoomState, expected: bool
) -> None:
    assert counts_may_change(previous, state) is expected


async def test_presence_board_closes_gp_dashboards_with_1001_at_shutdown(
    app: Starlette, demo: Demo
) -> None:
    hub = app.state.resources.hub
    assert isinstance(hub, Hub)
    conn = Connection(limit=8, role="dashboard")
    await hub.presence.watch(conn)
    await hub.shutdown()
    assert conn.close_code == WS_GOING_AWAY
    first = await asyncio.wait_for(conn.next(), 10)
    assert first is not None
    assert json.loads(first)["type"] == "presence"
    assert hub.presence.watchers == {}
