"""Who may see and change an appointment: its GP and its specialist, nobody else."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.scheduling.models import Appointment
from tests.factories import Demo, login
from tests.scheduling.helpers import ClientFactory, book, free_slots

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


async def booked_with_document(client: httpx2.AsyncClient, demo: Demo) -> tuple[int, int]:
    await login(client, demo.gp)
    booking = await book(client, demo.specialist)
    appointment_id = booking["appointment"]["id"]
    uploaded = await client.post(
        f"/api/v1/appointments/{appointment_id}/documents",
        files={"file": ("befund.pdf", PDF, "application/pdf")},
    )
    assert uploaded.status_code == 201, uploaded.text
    return appointment_id, uploaded.json()["id"]


def requests_for(appointment_id: int, document_id: int) -> list[tuple[str, str, Any]]:
    one = f"/api/v1/appointments/{appointment_id}"
    return [
        ("GET", one, None),
        ("GET", one + "/calendar.ics", None),
        ("GET", one + "/documents", None),
        ("GET", f"{one}/documents/{document_id}", None),
        ("GET", one + "/report", None),
        ("POST", one + "/cancel", None),
        ("POST", one + "/link", None),
        ("DELETE", one + "/link", None),
        ("POST", one + "/reschedule", {"starts_at": "2030-01-07T08:00:00+00:00"}),
        ("PUT", one + "/report", {"body": "Befund"}),
    ]


@pytest.mark.parametrize(
    ("who", "expected"),
    [("other_gp", 404), ("other_specialist", 404), ("dermatologist", 404), ("admin", 403)],
)
async def test_permissions_other_staff_cannot_read_or_change(
    client: httpx2.AsyncClient,
    demo: Demo,
    client_factory: ClientFactory,
    sessions: async_sessionmaker[AsyncSession],
    who: str,
    expected: int,
) -> None:
    appointment_id, document_id = await booked_with_document(client, demo)
    async with client_factory() as stranger:
        await login(stranger, getattr(demo, who))
        for method, path, body in requests_for(appointment_id, document_id):
            response = await stranger.request(method, path, json=body)
            # A role that may never do this at all (a GP writing a report) gets 403 without
            # the appointment being looked at; otherwise a foreign appointment is "not found".
            role_refused = who == "other_gp" and method == "PUT"
            assert response.status_code == (403 if role_refused else expected), (method, path)
            assert "Mustermann" not in response.text
    async with sessions() as session:
        appointment = await session.get(Appointment, appointment_id)
    assert appointment is not None
    assert appointment.status == "booked"


async def test_permissions_anonymous_and_patient_are_401(
    client: httpx2.AsyncClient, demo: Demo, client_factory: ClientFactory
) -> None:
    appointment_id, document_id = await booked_with_document(client, demo)
    async with client_factory() as anonymous:
        for method, path, body in requests_for(appointment_id, document_id):
            response = await anonymous.request(method, path, json=body)
            assert response.status_code == 401, (method, path)


async def test_permissions_unknown_id_looks_like_a_foreign_one(
    client: httpx2.AsyncClient, demo: Demo, client_factory: ClientFactory
) -> None:
    appointment_id, _ = await booked_with_document(client, demo)
    async with client_factory() as stranger:
        await login(stranger, demo.other_gp)
        foreign = await stranger.get(f"/api/v1/appointments/{appointment_id}")
        missing = await stranger.get("/api/v1/appointments/999999")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()


async def test_permissions_gp_and_specialist_of_the_appointment_can_read(
    client: httpx2.AsyncClient, demo: Demo, client_factory: ClientFactory
) -> None:
    appointment_id, document_id = await booked_with_document(client, demo)
    async with client_factory() as specialist:
        await login(specialist, demo.specialist)
        for actor in (client, specialist):
            for path in ("", "/calendar.ics", "/documents", f"/documents/{document_id}"):
                response = await actor.get(f"/api/v1/appointments/{appointment_id}{path}")
                assert response.status_code == 200, (path, response.text)


async def test_permissions_specialist_cannot_reschedule_reissue_or_upload(
    client: httpx2.AsyncClient, demo: Demo, client_factory: ClientFactory
) -> None:
    appointment_id, _ = await booked_with_document(client, demo)
    target = (await free_slots(client, demo.specialist))[3]["starts_at"]
    async with client_factory() as specialist:
        await login(specialist, demo.specialist)
        one = f"/api/v1/appointments/{appointment_id}"
        moved = await specialist.post(one + "/reschedule", json={"starts_at": target})
        reissued = await specialist.post(one + "/link")
        uploaded = await specialist.post(
            one + "/documents", files={"file": ("x.pdf", PDF, "application/pdf")}
        )
    assert (moved.status_code, reissued.status_code, uploaded.status_code) == (403, 403, 403)


async def test_permissions_specialist_may_cancel_own_appointment(
    client: httpx2.AsyncClient, demo: Demo, client_factory: ClientFactory
) -> None:
    appointment_id, _ = await booked_with_document(client, demo)
    async with client_factory() as specialist:
        await login(specialist, demo.specialist)
        response = await specialist.post(f"/api/v1/appointments/{appointment_id}/cancel")
        assert response.status_code == 200
        assert response.json()["status"] == "cancelled"
        again = await specialist.post(f"/api/v1/appointments/{appointment_id}/cancel")
        assert again.status_code == 409


async def test_permissions_listing_shows_only_own_appointments(
    client: httpx2.AsyncClient, demo: Demo, client_factory: ClientFactory
) -> None:
    await login(client, demo.gp)
    mine = await book(client, demo.specialist)
    async with client_factory() as other_gp, client_factory() as specialist:
        await login(other_gp, demo.other_gp)
        theirs = await book(other_gp, demo.other_specialist)
        await login(specialist, demo.specialist)
        gp_list = (await client.get("/api/v1/appointments")).json()
        other_list = (await other_gp.get("/api/v1/appointments")).json()
        specialist_list = (await specialist.get("/api/v1/appointments")).json()
    assert [a["id"] for a in gp_list] == [mine["appointment"]["id"]]
    assert [a["id"] for a in other_list] == [theirs["appointment"]["id"]]
    assert [a["id"] for a in specialist_list] == [mine["appointment"]["id"]]


async def test_listing_filters_by_status_and_date_range(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.gp)
    first = await book(client, demo.specialist, slot_index=0)
    second = await book(client, demo.specialist, slot_index=0)
    await client.post(f"/api/v1/appointments/{first['appointment']['id']}/cancel")
    booked = (await client.get("/api/v1/appointments", params={"status": "booked"})).json()
    assert [a["id"] for a in booked] == [second["appointment"]["id"]]
    day = second["appointment"]["starts_at"][:10]
    far = (await client.get("/api/v1/appointments", params={"from": "2099-01-01"})).json()
    assert far == []
    around = await client.get("/api/v1/appointments", params={"from": day, "to": day})
    assert around.status_code == 200
    bad = await client.get("/api/v1/appointments", params={"status": "lost", "limit": "0"})
    assert bad.status_code == 422
    assert {f["field"] for f in bad.json()["error"]["detail"]["fields"]} == {"status", "limit"}
