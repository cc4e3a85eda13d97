"""iCalendar files: staff files without health data, stable UID, SEQUENCE, cancellation."""

from __future__ import annotations

from datetime import datetime

import httpx2
from icalendar import Calendar, Component

from tests.factories import Demo, login
from tests.scheduling.helpers import book, free_slots

HEALTH_DATA = ("Erika", "Mustermann", "1956", "erika@example.org", "Belastungsdyspnoe", "EKG")


def event_of(ics: bytes | str) -> Component:
    events = Calendar.from_ical(ics).walk("VEVENT")
    assert len(events) == 1
    return events[0]


async def test_calendar_staff_ics_parses_and_has_no_health_data(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.gp)
    booking = await book(client, demo.specialist)
    appointment = booking["appointment"]
    response = await client.get(f"/api/v1/appointments/{appointment['id']}/calendar.ics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/calendar")
    assert response.headers["content-disposition"].startswith("attachment;")
    event = event_of(response.content)
    assert str(event["summary"]) == f"Telekonsil #{appointment['id']} – Kardiologie"
    assert event.decoded("dtstart") == datetime.fromisoformat(appointment["starts_at"])
    assert event.decoded("dtend") == datetime.fromisoformat(appointment["ends_at"])
    assert str(event["status"]) == "CONFIRMED"
    assert event.decoded("sequence") == 0
    text = response.content.decode()
    for secret in HEALTH_DATA:
        assert secret not in text
    assert "/join#" not in text


async def test_calendar_uid_stable_sequence_bumped_on_reschedule_and_cancel(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.gp)
    booking = await book(client, demo.specialist)
    one = f"/api/v1/appointments/{booking['appointment']['id']}"
    before = event_of((await client.get(one + "/calendar.ics")).content)
    target = (await free_slots(client, demo.specialist))[2]["starts_at"]
    assert (await client.post(one + "/reschedule", json={"starts_at": target})).status_code == 200
    moved = event_of((await client.get(one + "/calendar.ics")).content)
    assert (await client.post(one + "/cancel")).status_code == 200
    cancelled = event_of((await client.get(one + "/calendar.ics")).content)
    assert str(before["uid"]) == str(moved["uid"]) == str(cancelled["uid"])
    assert [e.decoded("sequence") for e in (before, moved, cancelled)] == [0, 1, 2]
    assert moved.decoded("dtstart") == datetime.fromisoformat(target)
    assert str(cancelled["status"]) == "CANCELLED"


async def test_calendar_patient_ics_contains_join_link_but_no_question(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.gp)
    booking = await book(client, demo.specialist)
    ics = booking["link"]["patient_ics"]
    event = event_of(ics)
    assert booking["link"]["join_url"] in str(event["description"])
    assert str(event["summary"]) == "Video-Sprechstunde – Kardiologie"
    assert event.decoded("dtstart") == datetime.fromisoformat(booking["appointment"]["starts_at"])
    for secret in HEALTH_DATA:
        assert secret not in ics
    staff = await client.get(f"/api/v1/appointments/{booking['appointment']['id']}/calendar.ics")
    assert str(event["uid"]) != str(event_of(staff.content)["uid"])
