"""Websocket authorization: who may connect to which room, and nothing crosses rooms."""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from websockets.exceptions import InvalidStatus

from app.errors import (
    WS_FORBIDDEN,
    WS_MESSAGE_TOO_BIG,
    WS_NOT_FOUND,
    WS_POLICY_VIOLATION,
    WS_RATE_LIMITED,
    WS_ROOM_CLOSED,
    WS_UNAUTHENTICATED,
)
from app.scheduling.models import RoomState
from app.settings import Settings
from tests.factories import Demo, make_appointment, patient_token
from tests.live import Live, live_server
from tests.signaling.wsclient import Client, staff_cookie, ws_connect

STAFF = ["specialist", "gp", "other_gp", "other_specialist", "dermatologist", "admin"]
EXPECTED = {"specialist": None, "gp": None}  # everybody else: 4403


@pytest.mark.parametrize("who", STAFF)
async def test_ws_auth_only_the_appointments_staff_may_enter(
    live: Live, demo: Demo, sessions: async_sessionmaker[AsyncSession], who: str
) -> None:
    appointment = await make_appointment(sessions, demo)
    cookie = await staff_cookie(live, getattr(demo, who))
    async with ws_connect(live, f"as=staff&appointment={appointment.id}", cookie) as c:
        if who in EXPECTED:
            await c.send(type="join")
            assert (await c.recv())["type"] == "joined"
        else:
            assert await c.closed_with() == WS_FORBIDDEN


async def test_ws_auth_patient_of_another_appointment_is_forbidden(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    mine = await make_appointment(sessions, demo)
    other = await make_appointment(sessions, demo, specialist_id=demo.other_specialist.id)
    cookie = f"konsil_patient={await patient_token(sessions, settings, mine)}"
    async with ws_connect(live, f"as=patient&appointment={other.id}", cookie) as c:
        assert await c.closed_with() == WS_FORBIDDEN


@pytest.mark.parametrize(
    ("query", "cookie", "code"),
    [
        ("as=patient&appointment=1", None, WS_UNAUTHENTICATED),
        ("as=staff&appointment=1", "konsil_staff=forged", WS_UNAUTHENTICATED),
        ("as=patient&appointment=1", "konsil_staff=x", WS_UNAUTHENTICATED),
        ("as=nobody&appointment=1", None, WS_POLICY_VIOLATION),
        ("as=staff&appointment=abc", None, WS_POLICY_VIOLATION),
        ("as=staff&appointment=1&token=x", None, WS_POLICY_VIOLATION),
    ],
)
async def test_ws_auth_refusals_have_precise_close_codes(
    live: Live, query: str, cookie: str | None, code: int
) -> None:
    async with ws_connect(live, query, cookie) as c:
        assert await c.closed_with() == code


async def test_ws_auth_unknown_appointment_is_4404(live: Live, demo: Demo) -> None:
    cookie = await staff_cookie(live, demo.specialist)
    async with ws_connect(live, "as=staff&appointment=999999", cookie) as c:
        assert await c.closed_with() == WS_NOT_FOUND


async def test_ws_auth_closed_room_is_4410(
    live: Live, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo, room_state=RoomState.ENDED)
    cookie = await staff_cookie(live, demo.specialist)
    async with ws_connect(live, f"as=staff&appointment={appointment.id}", cookie) as c:
        assert await c.closed_with() == WS_ROOM_CLOSED


async def test_ws_auth_foreign_origin_gets_http_403(live: Live, demo: Demo) -> None:
    cookie = await staff_cookie(live, demo.specialist)
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(live, "as=staff", cookie, origin="https://evil.example"):
            pass
    assert refused.value.response.status_code == 403


async def test_ws_auth_dashboard_is_for_specialists_and_gps_only(live: Live, demo: Demo) -> None:
    # GPs get the presence counts on it (tests/signaling/test_ws_presence.py); admins nothing.
    cookie = await staff_cookie(live, demo.admin)
    async with ws_connect(live, "as=staff", cookie) as c:
        assert await c.closed_with() == WS_FORBIDDEN


async def test_ws_auth_patient_cannot_admit(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo)
    cookie = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    async with ws_connect(live, f"as=patient&appointment={appointment.id}", cookie) as c:
        await c.send(type="join")
        await c.expect("joined")
        await c.send(type="admit")
        error = await c.expect("error")
        assert error["code"] == "forbidden"


async def _admitted_room(
    live: Live,
    demo: Demo,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    specialist: str,
    gp: str,
    stack: AsyncExitStack,
) -> tuple[dict[str, Client], dict[str, str]]:
    """Patient, specialist and GP of one new appointment, joined and admitted."""
    appointment = await make_appointment(
        sessions, demo, specialist_id=getattr(demo, specialist).id, gp_id=getattr(demo, gp).id
    )
    query = f"appointment={appointment.id}"
    cookies = {
        "patient": f"konsil_patient={await patient_token(sessions, settings, appointment)}",
        "specialist": await staff_cookie(live, getattr(demo, specialist)),
        "gp": await staff_cookie(live, getattr(demo, gp)),
    }
    clients: dict[str, Client] = {}
    ids: dict[str, str] = {}
    for role, cookie in cookies.items():
        kind = "patient" if role == "patient" else "staff"
        clients[role] = await stack.enter_async_context(
            ws_connect(live, f"as={kind}&{query}", cookie)
        )
        await clients[role].send(type="join")
        ids[role] = (await clients[role].expect("joined"))["participant_id"]
    await clients["specialist"].send(type="admit")
    for client in clients.values():
        for _ in range(2):
            await client.expect("peer_joined")
    return clients, ids


async def test_ws_auth_nothing_crosses_rooms(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with AsyncExitStack() as stack:
        room_a, ids_a = await _admitted_room(
            live, demo, settings, sessions, "specialist", "gp", stack
        )
        room_b, ids_b = await _admitted_room(
            live, demo, settings, sessions, "other_specialist", "other_gp", stack
        )
        for sender in room_b.values():
            for target in ids_a.values():
                for kind in ("offer", "answer"):
                    await sender.send(type=kind, to=target, sdp="v=0\r\n")
                    assert (await sender.expect("error"))["code"] == "unknown_peer"
                await sender.send(type="candidate", to=target, candidate=None)
                assert (await sender.expect("error"))["code"] == "unknown_peer"
        await room_b["patient"].send(type="chat", text="nur für Raum B")
        # A sentinel inside room A: whatever room A receives first must be it.
        await room_a["specialist"].send(type="chat", text="sentinel")
        for role in ("patient", "gp"):
            got = await room_a[role].expect("chat")
            assert (got["text"], got["from"]) == ("sentinel", ids_a["specialist"])
        for role in ("specialist", "gp"):
            got = await room_b[role].expect("chat")
            assert (got["text"], got["from"]) == ("nur für Raum B", ids_b["patient"])


async def test_ws_auth_oversized_frame_closes_1009(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo)
    cookie = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    async with ws_connect(live, f"as=patient&appointment={appointment.id}", cookie) as c:
        await c.send(type="chat", text="x" * (settings.ws_max_frame_bytes + 1))
        assert await c.closed_with() == WS_MESSAGE_TOO_BIG


async def test_ws_auth_flood_closes_4429(
    make_settings: object, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    cfg: Settings = make_settings(ws_rate_per_second=1.0, ws_rate_burst=5)  # type: ignore[operator]
    appointment = await make_appointment(sessions, demo)
    cookie = f"konsil_patient={await patient_token(sessions, cfg, appointment)}"
    async with (
        live_server(cfg) as server,
        ws_connect(server, f"as=patient&appointment={appointment.id}", cookie) as c,
    ):
        for _ in range(50):
            try:
                await c.send(type="leave_not")
            except Exception:
                break
        assert await c.closed_with() == WS_RATE_LIMITED
