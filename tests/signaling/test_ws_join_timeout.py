"""A room connection must send ``join`` soon after the handshake; dashboards need no join."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import WS_POLICY_VIOLATION
from app.settings import Settings
from tests.factories import Demo, make_appointment, patient_token
from tests.live import Live
from tests.signaling.wsclient import staff_cookie, ws_connect


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(ws_join_timeout_seconds=1.0)


async def test_ws_join_timeout_closes_a_room_connection_that_never_joins_with_1008(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo)
    cookie = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    async with ws_connect(live, f"as=patient&appointment={appointment.id}", cookie) as idle:
        assert await idle.closed_with() == WS_POLICY_VIOLATION
        assert idle.ws.close_reason == "join timeout"


async def test_ws_join_timeout_spares_joined_connections_and_dashboards(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo)
    query = f"as=patient&appointment={appointment.id}"
    joined = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    never = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    staff = await staff_cookie(live, demo.specialist)
    async with (
        ws_connect(live, "as=staff", staff) as dashboard,
        ws_connect(live, query, joined) as p,
    ):
        await dashboard.expect("queue")  # its connection is being served from here on
        await p.send(type="join")
        await p.expect("joined")
        # Connected last, so its deadline passes after the deadlines the others would have had.
        async with ws_connect(live, query, never) as idle:
            assert await idle.closed_with() == WS_POLICY_VIOLATION
        await p.send(type="chat", text="Hallo?")
        assert (await p.expect("error"))["code"] == "not_in_call"
        await dashboard.send(type="join")
        assert (await dashboard.expect("error"))["code"] == "not_in_room"
