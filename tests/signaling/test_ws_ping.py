"""``ping``: every connection may ask whether it is still alive, before and after ``join``, and
is answered ``pong`` at once; a malformed one is refused, and pings count against the rate
limit like every message."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from websockets.exceptions import ConnectionClosed

from app.errors import WS_POLICY_VIOLATION, WS_RATE_LIMITED
from app.settings import Settings
from tests.factories import Demo, make_appointment, patient_token
from tests.live import Live, live_server
from tests.signaling.wsclient import staff_cookie, ws_connect


async def test_ws_ping_is_answered_before_and_after_join(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo)
    cookie = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    async with ws_connect(live, f"as=patient&appointment={appointment.id}", cookie) as p:
        await p.send(type="ping")
        assert await p.recv() == {"type": "pong"}  # nothing before it: not joined yet
        await p.send(type="join")
        joined = await p.recv()
        assert (joined["type"], joined["resumed"]) == ("joined", False)
        await p.send(type="ping")
        assert await p.expect("pong") == {"type": "pong"}
        # Still the same participant, still joined: a second join is refused.
        await p.send(type="join")
        assert (await p.expect("error"))["code"] == "already_joined"


async def test_ws_ping_is_no_join(
    make_settings: Callable[..., Settings], demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    cfg = make_settings(ws_join_timeout_seconds=1)
    appointment = await make_appointment(sessions, demo)
    cookie = f"konsil_patient={await patient_token(sessions, cfg, appointment)}"
    async with (
        live_server(cfg) as server,
        ws_connect(server, f"as=patient&appointment={appointment.id}", cookie) as p,
    ):
        await p.send(type="ping")
        assert await p.recv() == {"type": "pong"}
        # A room connection that only pings is closed at the join deadline all the same.
        assert await p.closed_with() == WS_POLICY_VIOLATION
        assert p.ws.close_reason == "join timeout"


async def test_ws_ping_on_a_dashboard_and_a_malformed_one(live: Live, demo: Demo) -> None:
    cookie = await staff_cookie(live, demo.specialist)
    async with ws_connect(live, "as=staff", cookie) as dashboard:
        await dashboard.expect("queue")
        await dashboard.send(type="ping")
        assert await dashboard.expect("pong") == {"type": "pong"}
        await dashboard.send(type="ping", id=7)
        error = await dashboard.expect("error")
        assert (error["code"], error["ref"]) == ("invalid_message", None)
        await dashboard.send(type="ping")  # the connection stayed
        await dashboard.expect("pong")


async def test_ws_pings_count_against_the_rate_limit(
    make_settings: Callable[..., Settings], demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # A token a minute: the burst is all this connection gets within the test.
    cfg = make_settings(ws_rate_per_second=1 / 60, ws_rate_burst=3)
    appointment = await make_appointment(sessions, demo)
    cookie = f"konsil_patient={await patient_token(sessions, cfg, appointment)}"
    async with (
        live_server(cfg) as server,
        ws_connect(server, f"as=patient&appointment={appointment.id}", cookie) as p,
    ):
        for _ in range(3):
            await p.send(type="ping")
            assert await p.recv() == {"type": "pong"}
        await p.send(type="ping")
        assert await p.closed_with() == WS_RATE_LIMITED
        assert p.ws.close_reason == "rate limited"
        with pytest.raises(ConnectionClosed):  # and no pong for the one over the limit
            await p.recv()
