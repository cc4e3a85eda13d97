"""The complete Telekonsil through /fhir/R4: the request as ServiceRequest (with its
particulars), the recorded consent, the GP's documents as DocumentReferences (downloadable),
the report as DiagnosticReport and as a letter (a document Bundle led by a Composition); each
validated by the fhir.resources R4B models; others than the GP and the specialist get 404."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import httpx2
import pytest
from fhir.resources.R4B.binary import Binary
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.composition import Composition
from fhir.resources.R4B.consent import Consent
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.servicerequest import ServiceRequest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from app.accounts.models import User
from app.db import unit_of_work
from app.fhir.german import LANR_SYSTEM
from app.settings import Settings
from tests.factories import Demo, login
from tests.fhir.helpers import assert_outcome
from tests.records.test_records import PDF, start_appointment, upload
from tests.scheduling.helpers import book

ClientFactory = Callable[[], httpx2.AsyncClient]
REPORT = "Echo: EF 55 %, keine Wandbewegungsstörung.\nKontrolle in 12 Monaten <b>nicht fett</b>."
PARTICULARS: dict[str, Any] = {
    "patient_insurance_number": "X110411675",
    "patient_sex": "female",
    "diagnosis_code": "I48.0",
    "diagnosis_certainty": "V",
    "diagnosis_text": "Vorhofflimmern, paroxysmal",
    "medication": "Bisoprolol 2,5 mg 1-0-0",
    "consent_recorded": True,
}


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url)


async def test_the_telekonsil_request_its_documents_and_its_report_as_fhir(
    client: httpx2.AsyncClient,
    client_factory: ClientFactory,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await login(client, demo.gp)
    answer_by = (date.today() + timedelta(days=7)).isoformat()
    booking = await book(client, demo.specialist, answer_by=answer_by, **PARTICULARS)
    appointment_id = booking["appointment"]["id"]
    uploaded = await upload(client, appointment_id, "befund.pdf", PDF, "application/pdf")
    document_id = uploaded.json()["id"]

    appointment = (await client.get(f"/fhir/R4/Appointment/{appointment_id}")).json()
    assert appointment["basedOn"] == [{"reference": f"ServiceRequest/{appointment_id}"}]
    read = await client.get(f"/fhir/R4/ServiceRequest/{appointment_id}")
    assert read.status_code == 200, read.text
    request = ServiceRequest.model_validate(read.json())
    assert (request.status, request.intent, request.priority) == ("active", "order", "routine")
    assert request.reasonCode is not None
    assert request.reasonCode[0].coding is not None
    assert request.reasonCode[0].coding[0].code == "I48.0"
    assert [n.text for n in request.note or []] == [
        booking["appointment"]["clinical_question"],
        "Aktuelle Medikation:\nBisoprolol 2,5 mg 1-0-0",
    ]
    assert request.occurrencePeriod is not None
    assert str(request.occurrencePeriod.end) == answer_by
    assert [s.reference for s in request.supportingInfo or []] == [
        f"DocumentReference/{document_id}",
        f"Consent/{appointment_id}",
    ]
    assert read.json()["contained"][0]["identifier"][0]["value"] == "X110411675"

    consent = Consent.model_validate(
        (await client.get(f"/fhir/R4/Consent/{appointment_id}")).json()
    )
    assert consent.status == "active"
    listed = await client.get(
        "/fhir/R4/DocumentReference", params={"related": f"ServiceRequest/{appointment_id}"}
    )
    found = Bundle.model_validate(listed.json())
    assert found.total == 1
    reference = DocumentReference.model_validate(
        (await client.get(f"/fhir/R4/DocumentReference/{document_id}")).json()
    )
    url = reference.content[0].attachment.url
    assert url is not None
    assert str(url).endswith(f"/fhir/R4/Binary/{document_id}")
    downloaded = await client.get(httpx2.URL(str(url)).path)
    assert (downloaded.content, downloaded.headers["content-type"]) == (PDF, "application/pdf")
    as_resource = await client.get(
        f"/fhir/R4/Binary/{document_id}", headers={"Accept": "application/fhir+json"}
    )
    assert base64.b64decode(as_resource.json()["data"]) == PDF
    binary = Binary.model_validate(as_resource.json())  # the model decodes it
    assert (binary.contentType, binary.data) == ("application/pdf", PDF)

    # No report yet: 404, for the report and the letter.
    assert_outcome(await client.get(f"/fhir/R4/DiagnosticReport/{appointment_id}"), 404)
    assert_outcome(await client.get(f"/fhir/R4/Composition/{appointment_id}/$document"), 404)
    await start_appointment(sessions, appointment_id)
    async with client_factory() as specialist:
        await login(specialist, demo.specialist)
        written = await specialist.put(
            f"/api/v1/appointments/{appointment_id}/report", json={"body": REPORT}
        )
        assert written.status_code == 200, written.text
        as_specialist = await specialist.get(f"/fhir/R4/DiagnosticReport/{appointment_id}")
        assert as_specialist.status_code == 200

    report = DiagnosticReport.model_validate(
        (await client.get(f"/fhir/R4/DiagnosticReport/{appointment_id}")).json()
    )
    assert (report.status, report.conclusion) == ("final", REPORT)
    assert [b.reference for b in report.basedOn or []] == [f"ServiceRequest/{appointment_id}"]
    done = await client.get(f"/fhir/R4/ServiceRequest/{appointment_id}")
    assert done.json()["status"] == "completed"

    letter = await client.get(f"/fhir/R4/Composition/{appointment_id}/$document")
    assert letter.status_code == 200, letter.text
    document = Bundle.model_validate(letter.json())
    assert document.type == "document"
    entries = [e.resource for e in document.entry or []]
    assert isinstance(entries[0], Composition)
    assert [type(e).__name__ for e in entries] == [
        "Composition", "DiagnosticReport", "ServiceRequest",
    ]  # fmt: skip
    sections = {s.title: s for s in entries[0].section or []}
    assessment = sections["Beurteilung"].text
    assert assessment is not None
    div = str(assessment.div)
    assert "&lt;b&gt;nicht fett&lt;/b&gt;" in div  # escaped, never markup
    assert "<br/>" in div


async def test_others_get_nothing_of_the_telekonsil(
    client: httpx2.AsyncClient, client_factory: ClientFactory, demo: Demo
) -> None:
    await login(client, demo.gp)
    booking = await book(client, demo.specialist, **PARTICULARS)
    appointment_id = booking["appointment"]["id"]
    uploaded = await upload(client, appointment_id, "befund.pdf", PDF, "application/pdf")
    async with client_factory() as other:
        await login(other, demo.other_gp)
        for path in (
            f"/fhir/R4/ServiceRequest/{appointment_id}",
            f"/fhir/R4/Consent/{appointment_id}",
            f"/fhir/R4/DocumentReference/{uploaded.json()['id']}",
            f"/fhir/R4/DiagnosticReport/{appointment_id}",
        ):
            assert_outcome(await other.get(path), 404)
        search = await other.get(
            "/fhir/R4/DocumentReference", params={"related": f"ServiceRequest/{appointment_id}"}
        )
        assert_outcome(search, 404)
    plain = await book(client, demo.specialist, slot_index=1)
    assert_outcome(await client.get(f"/fhir/R4/Consent/{plain['appointment']['id']}"), 404)
    assert_outcome(await client.get("/fhir/R4/DocumentReference"), 400)


async def test_the_doctors_lanr_names_them(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Where the admin recorded a LANR, the Practitioner and the request's requester carry
    it (the KBV naming system); the JSON API's appointment answers it too."""
    async with unit_of_work(sessions) as session:
        for user_id, lanr in ((demo.gp.id, "123456601"), (demo.specialist.id, "987654402")):
            await session.execute(update(User).where(col(User.id) == user_id).values(lanr=lanr))
    await login(client, demo.gp)
    booking = await book(client, demo.specialist)
    appointment_id = booking["appointment"]["id"]
    assert (booking["appointment"]["gp_lanr"], booking["appointment"]["specialist_lanr"]) == (
        "123456601",
        "987654402",
    )
    request = (await client.get(f"/fhir/R4/ServiceRequest/{appointment_id}")).json()
    assert request["requester"]["identifier"]["system"] == LANR_SYSTEM
    assert request["requester"]["identifier"]["value"] == "123456601"
    practitioner = (await client.get(f"/fhir/R4/Practitioner/{demo.specialist.id}")).json()
    assert practitioner["identifier"][0]["value"] == "987654402"
