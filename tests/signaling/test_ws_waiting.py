"""Waiting patients over a real websocket: their place in the specialist's line and the late
notice arrive after ``join`` and whenever they change, once each, and stop at admission."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts.service import open_patient_session
from app.db import unit_of_work, utcnow
from app.scheduling.models import Appointment, Urgency
from app.settings import Settings
from tests.factories import Demo, consultation_history, make_appointment
from tests.live import Live
from tests.signaling.wsclient import Client, staff_api, ws_connect

DELAY = "/api/v1/queue/delay"


def noon(settings: Settings) -> datetime:
    """Local noon today: every slot around it lies on today's local day, at any hour."""
    return datetime.combine(utcnow().astimezone(settings.tz).date(), time(12), settings.tz)


async def patient_cookie(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, appointment: Appointment
) -> str:
    assert appointment.id is not None
    async with unit_of_work(sessions) as session:
        opened = open_patient_session(
            session,
            settings=settings,
            appointment_id=appointment.id,
            not_after=utcnow() + timedelta(hours=2),
        )
    return f"konsil_patient={opened.token}"


@asynccontextmanager
async def waiting_patient(
    live: Live,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    appointment: Appointment,
) -> AsyncIterator[Client]:
    cookie = await patient_cookie(sessions, settings, appointment)
    async with ws_connect(live, f"as=patient&appointment={appointment.id}", cookie) as client:
        await client.send(type="join")
        assert (await client.recv())["type"] == "joined"
        yield client


async def next_status(client: Client, kind: str) -> dict[str, object]:
    """The next ``position`` or ``delay`` (room_state and queue in between are skipped)."""
    while True:
        message = await client.recv()
        if message["type"] in ("position", "delay"):
            assert message["type"] == kind, message
            return message
        assert message["type"] in ("room_state", "queue"), message


async def test_ws_waiting_patients_hear_about_how_long_from_the_specialists_last_consultations(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await consultation_history(sessions, demo)
    first = await make_appointment(sessions, demo, starts_at=noon(settings))
    second = await make_appointment(sessions, demo, starts_at=noon(settings) + timedelta(hours=1))
    async with waiting_patient(live, sessions, settings, first) as patient:
        # Next, with the specialist free: about five minutes (12 in the middle of the five).
        assert await next_status(patient, "position") == {
            "type": "position",
            "ahead": 0,
            "eta_minutes": 5,
        }
        async with waiting_patient(live, sessions, settings, second) as later:
            assert await next_status(later, "position") == {
                "type": "position",
                "ahead": 1,
                "eta_minutes": 15,
            }


async def test_ws_waiting_patients_hear_their_place_and_the_late_notice(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    later = await make_appointment(sessions, demo, starts_at=noon(settings) + timedelta(hours=1))
    earlier = await make_appointment(sessions, demo, starts_at=noon(settings))
    async with waiting_patient(live, sessions, settings, later) as second:
        assert await next_status(second, "position") == {
            "type": "position",
            "ahead": 0,
            # The specialist has no consultations behind her yet: no estimate.
            "eta_minutes": None,
        }
        async with waiting_patient(live, sessions, settings, earlier) as first:
            assert (await next_status(first, "position"))["ahead"] == 0
            # The earlier slot goes first: the later patient moves back.
            assert (await next_status(second, "position"))["ahead"] == 1

            async with staff_api(live, demo.specialist) as http:
                response = await http.put(
                    DELAY, json={"minutes": 15, "note": "Notfall, bitte Geduld."}
                )
                assert response.status_code == 200, response.text
                for patient in (first, second):
                    notice = await next_status(patient, "delay")
                    assert (notice["minutes"], notice["note"]) == (15, "Notfall, bitte Geduld.")
                    assert notice["specialist_name"] == demo.specialist.display_name
                withdrawn = await http.delete(DELAY)
                assert withdrawn.status_code == 204
                for patient in (first, second):
                    assert await next_status(patient, "delay") == {
                        "type": "delay",
                        "minutes": None,
                        "note": None,
                        "specialist_name": "",
                        "updated_at": None,
                    }
            await first.send(type="leave")
            assert await first.closed_with() == 1000
        # The earlier patient left for good: the later one is next again.
        assert (await next_status(second, "position"))["ahead"] == 0


async def test_ws_waiting_patient_hears_a_notice_given_before_they_came(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo, starts_at=noon(settings))
    async with staff_api(live, demo.specialist) as http:
        assert (await http.put(DELAY, json={"minutes": 10})).status_code == 200
    async with waiting_patient(live, sessions, settings, appointment) as patient:
        assert (await next_status(patient, "position"))["ahead"] == 0
        notice = await next_status(patient, "delay")
        assert (notice["minutes"], notice["note"]) == (10, None)


async def test_ws_waiting_an_urgent_arrival_goes_first_and_admission_ends_the_news(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    routine = await make_appointment(sessions, demo, starts_at=noon(settings))
    urgent = await make_appointment(
        sessions, demo, starts_at=noon(settings) + timedelta(hours=2), urgency=Urgency.URGENT
    )
    async with waiting_patient(live, sessions, settings, routine) as patient:
        assert (await next_status(patient, "position"))["ahead"] == 0
        async with waiting_patient(live, sessions, settings, urgent) as other:
            assert (await next_status(other, "position"))["ahead"] == 0
            assert (await next_status(patient, "position"))["ahead"] == 1
            async with staff_api(live, demo.specialist) as http:
                admitted = await http.post(f"/api/v1/rooms/{urgent.id}/admit")
                assert admitted.status_code == 200, admitted.text
                assert (await next_status(patient, "position"))["ahead"] == 0
                assert (await http.put(DELAY, json={"minutes": 20})).status_code == 200
                assert (await next_status(patient, "delay"))["minutes"] == 20
            # The admitted patient heard of neither change: only their room's state.
            assert await other.expect("room_state") == {
                "type": "room_state",
                "state": "admitted",
                "waiting_since": None,
            }


async def test_ws_waiting_patient_follows_a_transfer_to_a_colleague(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(
        sessions, demo, starts_at=noon(settings) + timedelta(hours=3)
    )
    async with staff_api(live, demo.other_specialist) as colleague:
        assert (await colleague.put(DELAY, json={"minutes": 25})).status_code == 200
    async with waiting_patient(live, sessions, settings, appointment) as patient:
        assert (await next_status(patient, "position"))["ahead"] == 0
        async with staff_api(live, demo.specialist) as http:
            moved = await http.post(
                f"/api/v1/rooms/{appointment.id}/transfer",
                json={"specialist_id": demo.other_specialist.id},
            )
            assert moved.status_code == 200, moved.text
        notice = await next_status(patient, "delay")
        assert (notice["minutes"], notice["specialist_name"]) == (
            25,
            demo.other_specialist.display_name,
        )
