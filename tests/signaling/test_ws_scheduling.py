"""Changes made through the scheduling API reach open rooms and dashboards live."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import WS_ROOM_CLOSED
from app.settings import Settings
from tests.factories import Demo, make_appointment, patient_token
from tests.live import Live
from tests.signaling.wsclient import staff_api, staff_cookie, ws_connect


async def test_ws_cancelling_a_booking_closes_the_waiting_room_and_updates_the_queue(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo)
    patient = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    staff = await staff_cookie(live, demo.specialist)
    async with (
        ws_connect(live, "as=staff", staff) as dashboard,
        ws_connect(live, f"as=patient&appointment={appointment.id}", patient) as p,
    ):
        await dashboard.expect("queue")
        await p.send(type="join")
        await p.expect("joined")
        waiting = await dashboard.expect("queue")
        assert [e["appointment_id"] for e in waiting["waiting"]] == [appointment.id]

        async with staff_api(live, demo.gp) as gp:
            cancelled = await gp.post(f"/api/v1/appointments/{appointment.id}/cancel")
            assert cancelled.status_code == 200, cancelled.text

        assert await p.closed_with() == WS_ROOM_CLOSED
        while (update := await dashboard.expect("queue"))["waiting"]:
            pass
        assert update["waiting"] == []
