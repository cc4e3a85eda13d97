"""The written Telekonsil through the API: a GP sends a question to a specialty without video,
every specialist of it sees the request in the queue (without the patient's name), the first to
take it answers (after asking back, if need be) with a report that completes it; it has no link,
no room, no guest, no time in a calendar; the EBM export lists it without the video surcharge."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx2
import pytest
from fhir.resources.R4B.servicerequest import ServiceRequest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, func, select

from app.db import utcnow
from app.events import types as ev
from app.scheduling.models import Appointment, AppointmentKind, Specialty
from app.settings import Settings
from tests.factories import Demo, login
from tests.fhir.helpers import assert_outcome
from tests.records.test_letter import flat, pages

ORIGIN = {"Origin": "http://127.0.0.1:8000"}
WRITTEN = "/api/v1/written-requests"
NAME = "Erika Mustermann"
LIMIT = 3


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    """On SQLite and on PostgreSQL alike (the claim is one conditional UPDATE on both)."""
    return make_settings(database_url=database_url, written_open_per_gp=LIMIT)


def written_body(specialty: Specialty, **overrides: Any) -> dict[str, Any]:
    # A week ahead: never in the past, whatever the hour and the time zone.
    answer_by = (utcnow() + timedelta(days=7)).date().isoformat()
    body: dict[str, Any] = {
        "specialty_id": specialty.id,
        "patient_name": NAME,
        "patient_birth_date": "1956-04-12",
        "clinical_question": "Belastungsdyspnoe seit 3 Monaten, EKG anbei: weitere Abklärung?",
        "diagnosis_code": "R06.0",
        "diagnosis_certainty": "V",
        "patient_insurance_number": "A123456780",
        "answer_by": answer_by,
        "consent_recorded": True,
    }
    body.update(overrides)
    return body


async def send(client: httpx2.AsyncClient, demo: Demo, **overrides: Any) -> dict[str, Any]:
    response = await client.post(
        WRITTEN, json=written_body(demo.cardiology, **overrides), headers=ORIGIN
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def written_queue(client: httpx2.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/queue")
    assert response.status_code == 200, response.text
    return list(response.json()["written"])


async def stored(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        query = select(func.count()).select_from(Appointment)
        kind = col(Appointment.kind) == AppointmentKind.WRITTEN
        return await session.scalar(query.where(kind)) or 0


async def test_a_written_request_is_open_to_the_specialty_and_has_no_video(
    client_factory: Callable[[], httpx2.AsyncClient], demo: Demo
) -> None:
    async with (
        client_factory() as gp,
        client_factory() as cardiologist,
        client_factory() as dermatologist,
    ):
        await login(gp, demo.gp)
        await login(cardiologist, demo.specialist)
        await login(dermatologist, demo.dermatologist)
        sent = await send(gp, demo)
        assert (sent["kind"], sent["specialist_id"], sent["status"]) == ("written", None, "booked")
        assert sent["link"] is None
        assert sent["starts_at"] == sent["ends_at"]  # no time in anyone's calendar
        assert (sent["diagnosis_code"], sent["diagnosis_certainty"]) == ("R06.0", "V")
        assert sent["consent_recorded_at"] is not None

        (entry,) = await written_queue(cardiologist)
        assert (entry["appointment_id"], entry["mine"], entry["patient_name"]) == (
            sent["id"],
            False,
            None,
        )
        assert entry["gp_name"] == demo.gp.display_name
        assert entry["answer_by"] == sent["answer_by"]
        assert entry["overdue"] is False
        assert entry["patient_age"] >= 69
        queue = (await cardiologist.get("/api/v1/queue")).json()
        assert NAME not in str(queue)  # not who the patient is before somebody takes it
        assert queue["on_call"] == []
        assert queue["today"] == []
        assert await written_queue(dermatologist) == []
        assert (await cardiologist.get(f"/api/v1/appointments/{sent['id']}")).status_code == 404

        one = f"/api/v1/appointments/{sent['id']}"
        no_video = [
            await gp.post(f"{one}/link", headers=ORIGIN),
            await gp.post(
                f"{one}/guest", json={"name": "Olena K.", "kind": "interpreter"}, headers=ORIGIN
            ),
            await gp.post(
                f"{one}/reschedule",
                json={"starts_at": (utcnow() + timedelta(days=2)).isoformat()},
                headers=ORIGIN,
            ),
            await gp.get(f"{one}/calendar.ics"),
            await gp.post(f"/api/v1/rooms/{sent['id']}/admit", headers=ORIGIN),
        ]
        for answer in no_video:
            assert (answer.status_code, answer.json()["error"]["code"]) == (409, "no_video_room")
        assert (await gp.delete(f"{one}/link", headers=ORIGIN)).status_code == 409
        # Others are not told what it is: the room is simply not theirs.
        stranger = await dermatologist.post(f"/api/v1/rooms/{sent['id']}/admit", headers=ORIGIN)
        assert stranger.status_code in (403, 404)
        assert stranger.json()["error"]["code"] != "no_video_room"


async def test_the_first_specialist_takes_it_asks_back_and_answers_with_a_report(
    app: Any, client_factory: Callable[[], httpx2.AsyncClient], demo: Demo
) -> None:
    heard: list[str] = []

    async def listener(event: ev.DomainEvent) -> None:
        if isinstance(event, ev.WrittenEvent | ev.ReportCompleted):
            heard.append(event.type)

    app.state.resources.events.subscribe("test.written", listener)
    async with (
        client_factory() as gp,
        client_factory() as cardiologist,
        client_factory() as colleague,
    ):
        await login(gp, demo.gp)
        await login(cardiologist, demo.specialist)
        await login(colleague, demo.other_specialist)
        sent = await send(gp, demo)
        claim = f"{WRITTEN}/{sent['id']}/claim"
        assert (await gp.post(claim, headers=ORIGIN)).status_code == 403
        # Not claimable as an on-call request, nor the other way round.
        wrong = await cardiologist.post(f"/api/v1/on-call/{sent['id']}/claim", headers=ORIGIN)
        assert wrong.status_code == 404

        answers = await asyncio.gather(
            cardiologist.post(claim, headers=ORIGIN), colleague.post(claim, headers=ORIGIN)
        )
        assert sorted(a.status_code for a in answers) == [200, 409]
        (lost,) = [a.json() for a in answers if a.status_code == 409]
        assert lost["error"]["code"] == "already_claimed"
        (won,) = [a.json() for a in answers if a.status_code == 200]
        owner = cardiologist if won["specialist_id"] == demo.specialist.id else colleague
        other = colleague if owner is cardiologist else cardiologist
        assert await written_queue(other) == []
        (mine,) = await written_queue(owner)
        assert (mine["mine"], mine["patient_name"]) == (True, NAME)

        one = f"/api/v1/appointments/{sent['id']}"
        asked = await owner.post(
            f"{one}/conversation", json={"body": "Bitte das Langzeit-EKG nachreichen."}
        )
        assert asked.status_code == 201, asked.text
        (mine,) = await written_queue(owner)
        assert mine["question_open_since"] is not None
        assert (await gp.get(one)).json()["question_open_since"] is not None
        answered = await gp.post(f"{one}/conversation", json={"body": "Ist hochgeladen."})
        assert answered.status_code == 201, answered.text

        report = await owner.put(
            f"{one}/report",
            json={"body": "Befund: paroxysmales Vorhofflimmern wenig wahrscheinlich."},
        )
        assert report.status_code == 200, report.text
        done = (await gp.get(one)).json()
        assert (done["status"], done["has_report"], done["room_state"]) == (
            "completed",
            True,
            "scheduled",
        )
        assert datetime.fromisoformat(done["ends_at"]) > datetime.fromisoformat(done["starts_at"])
        assert await written_queue(owner) == []
        letter = await gp.get(f"{one}/report.pdf")
        assert (letter.status_code, letter.headers["content-type"]) == (200, "application/pdf")
        text = flat("\n".join(pages(letter.content)))
        assert "Form: schriftliches Telekonsil, ohne Videokonsultation" in text
        assert "Videokonsultation am" not in text

        # The GP's rows: 01670; the specialist's: 01671 without the video surcharge or minutes.
        local = datetime.fromisoformat(report.json()["updated_at"]).astimezone(
            app.state.resources.settings.tz
        )
        quarter = f"{local.year}-Q{(local.month - 1) // 3 + 1}"
        for client, gops in ((gp, ["01670"]), (owner, ["01671"])):
            csv_text = await client.get(f"/api/v1/billing/ebm.csv?quarter={quarter}")
            assert csv_text.status_code == 200, csv_text.text
            rows = list(csv.reader(io.StringIO(csv_text.text.lstrip("\ufeff")), delimiter=";"))
            (columns,) = [r for r in rows if "GOP" in r]
            gop = columns.index("GOP")
            assert sorted(r[gop] for r in rows if str(sent["id"]) in r) == gops
    async with asyncio.timeout(10):
        while len(heard) < 3:  # noqa: ASYNC110 (the dispatcher's listener fills it)
            await asyncio.sleep(0.02)
    assert sorted(heard) == ["report.completed", "written.claimed", "written.requested"]


async def test_bad_written_requests_are_refused_and_change_nothing(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await login(client, demo.gp)
    refusals = {
        "consent_recorded": written_body(demo.cardiology, consent_recorded=False),
        "answer_by": written_body(demo.cardiology, answer_by=None),
        "diagnosis_code": written_body(demo.cardiology, diagnosis_code="XYZ"),
    }
    for field, body in refusals.items():
        answer = await client.post(WRITTEN, json=body, headers=ORIGIN)
        assert answer.status_code == 422, answer.text
        assert field in answer.text
    unknown = await client.post(
        WRITTEN, json=written_body(demo.cardiology, specialty_id=999_999), headers=ORIGIN
    )
    assert unknown.status_code == 404
    assert await stored(sessions) == 0

    # A specialist cannot send one.
    assert (await client.post("/api/v1/auth/logout", headers=ORIGIN)).status_code == 204
    await login(client, demo.specialist)
    forbidden = await client.post(WRITTEN, json=written_body(demo.cardiology), headers=ORIGIN)
    assert forbidden.status_code == 403
    assert await stored(sessions) == 0


async def test_a_gps_open_written_requests_are_capped_and_withdrawing_makes_room(
    client_factory: Callable[[], httpx2.AsyncClient],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with client_factory() as gp, client_factory() as cardiologist:
        await login(gp, demo.gp)
        await login(cardiologist, demo.specialist)
        sent = [await send(gp, demo) for _ in range(LIMIT)]
        refused = await gp.post(WRITTEN, json=written_body(demo.cardiology), headers=ORIGIN)
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "too_many_open_written"
        assert await stored(sessions) == LIMIT

        # The GP withdraws one (a cancellation): gone from the specialty's queue.
        withdrawn = await gp.post(f"/api/v1/appointments/{sent[0]['id']}/cancel", headers=ORIGIN)
        assert withdrawn.status_code == 200, withdrawn.text
        assert sent[0]["id"] not in [e["appointment_id"] for e in await written_queue(cardiologist)]
        # A taken one no longer counts either; its specialist declines it with a reason.
        claimed = await cardiologist.post(f"{WRITTEN}/{sent[1]['id']}/claim", headers=ORIGIN)
        assert claimed.status_code == 200, claimed.text
        again = [await send(gp, demo) for _ in range(2)]
        assert len(again) == 2
        declined = await cardiologist.post(
            f"/api/v1/appointments/{sent[1]['id']}/cancel",
            json={"reason": "Bitte an die Pneumologie richten."},
            headers=ORIGIN,
        )
        assert declined.status_code == 200, declined.text
        seen = (await gp.get(f"/api/v1/appointments/{sent[1]['id']}")).json()
        assert (seen["cancelled_by"], seen["cancel_reason"]) == (
            "specialist",
            "Bitte an die Pneumologie richten.",
        )
        withdrawn_claim = await cardiologist.post(
            f"{WRITTEN}/{sent[0]['id']}/claim", headers=ORIGIN
        )
        assert withdrawn_claim.status_code == 409


async def test_a_written_request_is_a_fhir_service_request_and_no_appointment(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.gp)
    sent = await send(client, demo)
    read = await client.get(f"/fhir/R4/ServiceRequest/{sent['id']}")
    assert read.status_code == 200, read.text
    request = ServiceRequest.model_validate(read.json())
    assert [c.text for c in request.category or []] == ["Schriftliches Telekonsil (ohne Video)"]
    assert request.status == "active"
    assert request.performer is None  # nobody has taken it yet
    (patient,) = request.contained or []
    assert patient.get_resource_type() == "Patient"
    assert_outcome(await client.get(f"/fhir/R4/Appointment/{sent['id']}"), 404)
    listed = await client.get("/fhir/R4/Appointment")
    assert listed.status_code == 200, listed.text
    assert listed.json().get("entry", []) == []
