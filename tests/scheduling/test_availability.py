"""Specialties, specialists, weekly rules, exceptions and the slots endpoint."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx2

from tests.factories import Demo, login
from tests.scheduling.helpers import ClientFactory, book, booking_body, free_slots

BERLIN = ZoneInfo("Europe/Berlin")


def next_weekday(weekday: int, after_days: int = 2) -> date:
    day = datetime.now(UTC).date() + timedelta(days=after_days)
    return day + timedelta(days=(weekday - day.weekday()) % 7)


def local(starts_at: str) -> datetime:
    return datetime.fromisoformat(starts_at).astimezone(BERLIN)


async def test_specialties_and_specialists_listing(client: httpx2.AsyncClient, demo: Demo) -> None:
    await login(client, demo.gp)
    specialties = (await client.get("/api/v1/specialties")).json()
    assert [s["slug"] for s in specialties] == ["dermatologie", "kardiologie"]
    cardiologists = await client.get("/api/v1/specialists", params={"specialty": "kardiologie"})
    assert {s["id"] for s in cardiologists.json()} == {demo.specialist.id, demo.other_specialist.id}
    by_id = await client.get("/api/v1/specialists", params={"specialty": str(demo.dermatology.id)})
    assert [s["id"] for s in by_id.json()] == [demo.dermatologist.id]
    assert len((await client.get("/api/v1/specialists")).json()) == 3
    unknown = await client.get("/api/v1/specialists", params={"specialty": "astrologie"})
    assert unknown.status_code == 404


async def test_slots_follow_demo_hours_in_local_time(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.gp)
    monday = next_weekday(0)
    slots = await free_slots(client, demo.specialist, first=monday, days=7)
    times = [local(s["starts_at"]) for s in slots]
    assert {t.date().weekday() for t in times} == {0, 1, 2, 3, 4}
    monday_times = [t.time() for t in times if t.date() == monday]
    assert monday_times[0] == time(8, 0)
    assert monday_times[-1] == time(15, 30)
    assert time(12, 0) not in monday_times
    assert len(monday_times) == 14


async def test_slots_for_a_specialty_are_merged_and_labelled(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.gp)
    monday = next_weekday(0)
    params = {"specialty": "kardiologie", "from": monday.isoformat(), "to": monday.isoformat()}
    slots = (await client.get("/api/v1/slots", params=params)).json()
    assert len(slots) == 28
    assert {s["specialist_id"] for s in slots} == {demo.specialist.id, demo.other_specialist.id}
    assert [s["starts_at"] for s in slots] == sorted(s["starts_at"] for s in slots)
    assert all(s["specialist_name"] for s in slots)


async def test_slots_query_validation(client: httpx2.AsyncClient, demo: Demo) -> None:
    await login(client, demo.gp)
    both = await client.get("/api/v1/slots", params={"specialist": 1, "specialty": "kardiologie"})
    neither = await client.get("/api/v1/slots")
    too_long = await client.get(
        "/api/v1/slots",
        params={"specialist": demo.specialist.id, "from": "2030-01-01", "to": "2030-06-01"},
    )
    backwards = await client.get(
        "/api/v1/slots",
        params={"specialist": demo.specialist.id, "from": "2030-01-10", "to": "2030-01-01"},
    )
    bad_date = await client.get("/api/v1/slots", params={"specialist": 1, "from": "morgen"})
    assert [r.status_code for r in (both, neither, too_long, backwards, bad_date)] == [422] * 5
    assert (await client.get("/api/v1/slots", params={"specialist": demo.gp.id})).status_code == 404


async def test_rules_replace_changes_offered_slots(client: httpx2.AsyncClient, demo: Demo) -> None:
    await login(client, demo.specialist)
    rules = [
        {"weekday": 2, "start_time": "09:00", "end_time": "10:00", "slot_minutes": 20},
        {"weekday": 2, "start_time": "14:00", "end_time": "15:00", "slot_minutes": 60},
    ]
    response = await client.put("/api/v1/availability/rules", json={"rules": rules})
    assert response.status_code == 200, response.text
    stored = (await client.get("/api/v1/availability/rules")).json()
    assert [(r["start_time"], r["slot_minutes"]) for r in stored] == [
        ("09:00:00", 20),
        ("14:00:00", 60),
    ]
    wednesday = next_weekday(2)
    slots = await free_slots(client, demo.specialist, first=wednesday - timedelta(days=2), days=7)
    assert [local(s["starts_at"]).strftime("%a %H:%M") for s in slots] == [
        "Wed 09:00", "Wed 09:20", "Wed 09:40", "Wed 14:00",
    ]  # fmt: skip


async def test_rules_replace_keeps_existing_bookings(
    client: httpx2.AsyncClient, demo: Demo, client_factory: ClientFactory
) -> None:
    await login(client, demo.gp)
    booking = await book(client, demo.specialist)
    async with client_factory() as specialist:
        await login(specialist, demo.specialist)
        cleared = await specialist.put("/api/v1/availability/rules", json={"rules": []})
        assert cleared.status_code == 200
    detail = await client.get(f"/api/v1/appointments/{booking['appointment']['id']}")
    assert detail.json()["status"] == "booked"
    assert await free_slots(client, demo.specialist) == []


async def test_rules_invalid_sets_are_422_and_change_nothing(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.specialist)
    before = (await client.get("/api/v1/availability/rules")).json()
    bad_sets = [
        [{"weekday": 0, "start_time": "10:00", "end_time": "09:00"}],
        [{"weekday": 0, "start_time": "09:00", "end_time": "09:20", "slot_minutes": 30}],
        [{"weekday": 7, "start_time": "09:00", "end_time": "10:00"}],
        [
            {"weekday": 0, "start_time": "09:00", "end_time": "11:00"},
            {"weekday": 0, "start_time": "10:30", "end_time": "12:00"},
        ],
        [{"weekday": 0, "start_time": "09:00", "end_time": "10:00", "valid_from": "2030-02-01",
          "valid_until": "2030-01-01"}],
    ]  # fmt: skip
    for rules in bad_sets:
        response = await client.put("/api/v1/availability/rules", json={"rules": rules})
        assert response.status_code == 422, rules
        assert response.json()["error"]["detail"]["fields"]
    assert (await client.get("/api/v1/availability/rules")).json() == before


async def test_rules_same_weekday_with_disjoint_validity_may_overlap_in_time(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.specialist)
    rules = [
        {"weekday": 0, "start_time": "09:00", "end_time": "11:00", "valid_until": "2030-01-31"},
        {"weekday": 0, "start_time": "10:00", "end_time": "12:00", "valid_from": "2030-02-01"},
    ]
    assert (
        await client.put("/api/v1/availability/rules", json={"rules": rules})
    ).status_code == 200


async def test_rules_and_exceptions_are_for_specialists_only(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.gp)
    assert (await client.get("/api/v1/availability/rules")).status_code == 403
    assert (await client.put("/api/v1/availability/rules", json={"rules": []})).status_code == 403
    assert (await client.get("/api/v1/availability/exceptions")).status_code == 403


async def test_exception_absence_removes_slots_and_reports_conflicts(
    client: httpx2.AsyncClient, demo: Demo, client_factory: ClientFactory
) -> None:
    await login(client, demo.gp)
    monday = next_weekday(0)
    slot = (await free_slots(client, demo.specialist, first=monday, days=1))[0]
    booked = await client.post(
        "/api/v1/appointments", json=booking_body(demo.specialist, slot["starts_at"])
    )
    assert booked.status_code == 201
    async with client_factory() as specialist:
        await login(specialist, demo.specialist)
        absence = await specialist.post(
            "/api/v1/availability/exceptions",
            json={"starts_at": f"{monday}T00:00:00", "ends_at": f"{monday}T23:59:00"},
        )
        assert absence.status_code == 201, absence.text
        assert absence.json()["conflicting_appointment_ids"] == [booked.json()["appointment"]["id"]]
        assert await free_slots(client, demo.specialist, first=monday, days=1) == []
        listed = (await specialist.get("/api/v1/availability/exceptions")).json()
        assert [e["id"] for e in listed] == [absence.json()["id"]]
        deleted = await specialist.delete(f"/api/v1/availability/exceptions/{absence.json()['id']}")
        assert deleted.status_code == 204
        again = await specialist.delete(f"/api/v1/availability/exceptions/{absence.json()['id']}")
        assert again.status_code == 404
    assert len(await free_slots(client, demo.specialist, first=monday, days=1)) == 13


async def test_exception_extra_hours_on_a_saturday(
    client: httpx2.AsyncClient, demo: Demo, client_factory: ClientFactory
) -> None:
    saturday = next_weekday(5)
    async with client_factory() as specialist:
        await login(specialist, demo.specialist)
        extra = await specialist.post(
            "/api/v1/availability/exceptions",
            json={"starts_at": f"{saturday}T10:00:00", "ends_at": f"{saturday}T11:00:00",
                  "available": True, "slot_minutes": 15},
        )  # fmt: skip
        assert extra.status_code == 201, extra.text
        invalid = await specialist.post(
            "/api/v1/availability/exceptions",
            json={"starts_at": f"{saturday}T12:00:00", "ends_at": f"{saturday}T11:00:00"},
        )
        assert invalid.status_code == 422
    await login(client, demo.gp)
    slots = await free_slots(client, demo.specialist, first=saturday, days=1)
    assert [local(s["starts_at"]).strftime("%H:%M") for s in slots] == [
        "10:00", "10:15", "10:30", "10:45",
    ]  # fmt: skip


async def test_exception_of_another_specialist_cannot_be_deleted(
    client: httpx2.AsyncClient, demo: Demo, client_factory: ClientFactory
) -> None:
    await login(client, demo.specialist)
    created = await client.post(
        "/api/v1/availability/exceptions",
        json={"starts_at": "2030-01-07T09:00:00+01:00", "ends_at": "2030-01-07T12:00:00+01:00"},
    )
    async with client_factory() as other:
        await login(other, demo.other_specialist)
        response = await other.delete(f"/api/v1/availability/exceptions/{created.json()['id']}")
    assert response.status_code == 404


async def test_openapi_documents_scheduling_endpoints(client: httpx2.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "post" in paths["/api/v1/appointments"]
    assert "get" in paths["/api/v1/appointments/{id}/calendar.ics"]
    assert set(paths["/api/v1/appointments/{id}/link"]) == {"post", "delete"}
    assert "post" in paths["/api/v1/patient/session"]
    assert "/api/v1/slots" in paths
