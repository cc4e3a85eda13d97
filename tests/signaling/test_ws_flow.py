"""The waiting room and call flow over a real websocket: join, wait, admit, relay, leave."""

from __future__ import annotations

import httpx2
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import utcnow
from app.errors import WS_FORBIDDEN, WS_ROOM_CLOSED, WS_UNAUTHENTICATED
from app.scheduling.models import Appointment, RoomState
from app.settings import Settings
from tests.factories import Demo, link_token, make_appointment, patient_token
from tests.live import Live
from tests.signaling.wsclient import LOGIN_TIMEOUT, ORIGIN, staff_api, staff_cookie, ws_connect


async def test_ws_patient_waits_specialist_admits_and_signalling_flows(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo)
    query = f"appointment={appointment.id}"
    patient = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    staff = await staff_cookie(live, demo.specialist)
    async with (
        ws_connect(live, "as=staff", staff) as dashboard,
        ws_connect(live, f"as=patient&{query}", patient) as p,
        ws_connect(live, f"as=staff&{query}", staff) as s,
    ):
        first = await dashboard.expect("queue")
        assert first["waiting"] == []
        await p.send(type="join")
        joined = await p.recv()
        assert (joined["type"], joined["room_state"]) == ("joined", "waiting")
        waiting = await dashboard.expect("queue")
        assert [e["appointment_id"] for e in waiting["waiting"]] == [appointment.id]

        await s.send(type="join")
        s_joined = await s.expect("joined")
        await s.send(type="admit")
        peer = await s.expect("peer_joined")
        assert (peer["offer"], peer["peer"]["id"]) == (True, joined["participant_id"])
        p_peer = await p.expect("peer_joined")
        assert (p_peer["offer"], p_peer["peer"]["id"]) == (False, s_joined["participant_id"])

        await s.send(type="offer", to=peer["peer"]["id"], sdp="v=0\r\n")
        offer = await p.expect("offer")
        assert offer["from"] == s_joined["participant_id"]
        await p.send(type="answer", to=offer["from"], sdp="v=0\r\n")
        assert (await s.expect("answer"))["from"] == joined["participant_id"]
        await p.send(type="chat", text="Guten Tag")
        chat = await s.expect("chat")
        assert (chat["text"], chat["from"]) == ("Guten Tag", joined["participant_id"])

        await p.send(type="leave")
        assert await p.closed_with() == 1000
        assert (await s.expect("peer_left"))["peer_id"] == joined["participant_id"]
    async with sessions() as session:
        stored = await session.get(Appointment, appointment.id)
    assert stored is not None
    assert stored.room_state is RoomState.IN_CALL


async def test_ws_end_closes_everyone_with_4410(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo)
    query = f"appointment={appointment.id}"
    patient = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    staff = await staff_cookie(live, demo.specialist)
    async with ws_connect(live, f"as=patient&{query}", patient) as p:
        await p.send(type="join")
        await p.expect("joined")
        async with ws_connect(live, f"as=staff&{query}", staff) as s:
            await s.send(type="join")
            await s.expect("joined")
            await s.send(type="admit")
            await s.expect("peer_joined")
            async with staff_api(live, demo.specialist) as http:
                ended = await http.post(f"/api/v1/rooms/{appointment.id}/end")
                assert ended.status_code == 200, ended.text
            assert await s.closed_with() == WS_ROOM_CLOSED
        assert await p.closed_with() == WS_ROOM_CLOSED


async def test_ws_revoking_the_link_closes_the_patients_connection(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo)
    query = f"appointment={appointment.id}"
    patient = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    async with ws_connect(live, f"as=patient&{query}", patient) as p:
        await p.send(type="join")
        await p.expect("joined")
        async with staff_api(live, demo.gp) as http:
            revoked = await http.delete(f"/api/v1/appointments/{appointment.id}/link")
            assert revoked.status_code == 204, revoked.text
        assert await p.closed_with() == WS_UNAUTHENTICATED
    # Coming back with the old cookie is refused before anything is read.
    async with ws_connect(live, f"as=patient&{query}", patient) as again:
        assert await again.closed_with() == WS_UNAUTHENTICATED


async def test_ws_link_opened_on_a_second_device_takes_the_patients_place(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo)
    query = f"as=patient&appointment={appointment.id}"
    phone = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    async with ws_connect(live, query, phone) as p:
        await p.send(type="join")
        await p.expect("joined")
        async with httpx2.AsyncClient(
            base_url=live.url, headers={"Origin": ORIGIN}, timeout=LOGIN_TIMEOUT
        ) as laptop_http:
            token = await link_token(sessions, appointment)
            redeemed = await laptop_http.post("/api/v1/patient/session", json={"token": token})
            assert redeemed.status_code == 200, redeemed.text
            laptop = f"konsil_patient={laptop_http.cookies['konsil_patient']}"
        assert await p.closed_with() == WS_UNAUTHENTICATED
        async with ws_connect(live, query, laptop) as second:
            await second.send(type="join")
            assert (await second.expect("joined"))["resumed"] is False


async def test_ws_logout_closes_the_sessions_open_websockets(
    live: Live, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo)
    other = await staff_cookie(live, demo.specialist)  # the same person on another device
    async with staff_api(live, demo.specialist) as http:
        cookie = f"konsil_staff={http.cookies['konsil_staff']}"
        async with (
            ws_connect(live, "as=staff", cookie) as dashboard,
            ws_connect(live, f"as=staff&appointment={appointment.id}", cookie) as room,
            ws_connect(live, "as=staff", other) as elsewhere,
        ):
            await dashboard.expect("queue")
            await room.send(type="join")
            await room.expect("joined")
            await elsewhere.expect("queue")
            assert (await http.post("/api/v1/auth/logout")).status_code == 204
            assert await dashboard.closed_with() == WS_UNAUTHENTICATED
            assert await room.closed_with() == WS_UNAUTHENTICATED
            await elsewhere.send(type="leave")
            assert await elsewhere.closed_with() == 1000  # other sessions stay open


async def test_ws_patient_logout_closes_the_patients_websocket(
    live: Live, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo)
    query = f"as=patient&appointment={appointment.id}"
    async with httpx2.AsyncClient(
        base_url=live.url, headers={"Origin": ORIGIN}, timeout=LOGIN_TIMEOUT
    ) as patient_http:
        redeemed = await patient_http.post(
            "/api/v1/patient/session", json={"token": await link_token(sessions, appointment)}
        )
        assert redeemed.status_code == 200, redeemed.text
        patient_http.headers["X-CSRF-Token"] = redeemed.json()["csrf_token"]
        cookie = f"konsil_patient={patient_http.cookies['konsil_patient']}"
        async with ws_connect(live, query, cookie) as p:
            await p.send(type="join")
            await p.expect("joined")
            assert (await patient_http.post("/api/v1/patient/logout")).status_code == 204
            assert await p.closed_with() == WS_UNAUTHENTICATED
    async with ws_connect(live, query, cookie) as again:
        assert await again.closed_with() == WS_UNAUTHENTICATED


async def test_ws_transfer_closes_the_previous_specialists_room_and_updates_both_queues(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo)
    query = f"appointment={appointment.id}"
    patient = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    colleague = await staff_cookie(live, demo.other_specialist)
    async with staff_api(live, demo.specialist) as http:
        cookie = f"konsil_staff={http.cookies['konsil_staff']}"
        async with (
            ws_connect(live, f"as=patient&{query}", patient) as p,
            ws_connect(live, f"as=staff&{query}", cookie) as s,
            ws_connect(live, "as=staff", colleague) as colleague_queue,
        ):
            await p.send(type="join")
            await p.expect("joined")
            await s.send(type="join")
            await s.expect("joined")
            assert (await colleague_queue.expect("queue"))["waiting"] == []
            moved = await http.post(
                f"/api/v1/rooms/{appointment.id}/transfer",
                json={"specialist_id": demo.other_specialist.id},
            )
            assert moved.status_code == 200, moved.text
            assert await s.closed_with() == WS_FORBIDDEN
            waiting = await colleague_queue.expect("queue")
            assert [e["appointment_id"] for e in waiting["waiting"]] == [appointment.id]
            await p.send(type="leave")
            assert await p.closed_with() == 1000  # the patient waits on, for the colleague


async def test_ws_deactivating_an_account_closes_its_websockets(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo)
    query = f"appointment={appointment.id}"
    cookie = await staff_cookie(live, demo.gp)
    patient = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    async with (
        ws_connect(live, f"as=patient&{query}", patient) as p,
        ws_connect(live, f"as=staff&{query}", cookie) as gp,
    ):
        await p.send(type="join")
        await p.expect("joined")
        await gp.send(type="join")
        gp_joined = await gp.expect("joined")
        await gp.send(type="admit")
        await p.expect("peer_joined")
        async with staff_api(live, demo.admin) as admin:
            response = await admin.patch(
                f"/api/v1/admin/users/{demo.gp.id}", json={"is_active": False}
            )
            assert response.status_code == 200, response.text
        assert await gp.closed_with() == WS_UNAUTHENTICATED
        # At once, not after the resume window: an ended session cannot come back.
        assert (await p.expect("peer_left"))["peer_id"] == gp_joined["participant_id"]


async def test_ws_joining_an_admitted_room_reports_no_waiting_since(
    live: Live, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(
        sessions, demo, room_state=RoomState.ADMITTED, waiting_since=utcnow()
    )
    staff = await staff_cookie(live, demo.gp)
    async with ws_connect(live, f"as=staff&appointment={appointment.id}", staff) as gp:
        await gp.send(type="join")
        assert (await gp.recv())["room_state"] == "admitted"
        assert await gp.recv() == {
            "type": "room_state",
            "state": "admitted",
            "waiting_since": None,
        }
