"""A written Telekonsil sent as a FHIR ServiceRequest (``POST /fhir/R4/ServiceRequest``): by a
GP's session and by a system client with ``system/ServiceRequest.write``; the answer validated by
fhir.resources; what lacks the patient, the specialty, the deadline or the consent is refused
with an OperationOutcome and stores nothing."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx2
import pytest
from fhir.resources.R4B.servicerequest import ServiceRequest
from joserfc.jwk import RSAKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, func, select

from app.db import utcnow
from app.fhir.german import CERTAINTY_EXTENSION, CERTAINTY_SYSTEM, ICD10GM_SYSTEM, KVID_SYSTEM
from app.fhir.resources import SPECIALTY_SYSTEM
from app.scheduling.models import Appointment, AppointmentKind
from app.settings import Settings
from tests.factories import Demo, login
from tests.fhir.helpers import FHIR_JSON, assert_outcome
from tests.fhir.smart_client import TOKEN_URL, ask_token, assertion, register
from tests.records.test_records import PDF, upload

ClientFactory = Callable[[], httpx2.AsyncClient]
QUESTION = "Belastungsdyspnoe seit 3 Monaten, EKG anbei: weitere Abklärung?"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url)


@pytest.fixture(scope="module")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "praxis-written", "alg": "RS384"})


def service_request(**changes: Any) -> dict[str, Any]:
    answer_by = (utcnow() + timedelta(days=7)).date().isoformat()
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "priority": "routine",
        "contained": [
            {
                "resourceType": "Patient",
                "id": "patient",
                "name": [{"family": "Mustermann", "given": ["Erika"]}],
                "birthDate": "1956-04-12",
                "gender": "female",
                "identifier": [{"system": KVID_SYSTEM, "value": "A123456780"}],
            },
            {
                "resourceType": "Consent",
                "id": "consent",
                "status": "active",
                "scope": {"coding": [{"code": "patient-privacy"}]},
                "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            },
        ],
        "subject": {"reference": "#patient"},
        "performerType": {"coding": [{"system": SPECIALTY_SYSTEM, "code": "kardiologie"}]},
        "reasonCode": [
            {
                "coding": [
                    {
                        "system": ICD10GM_SYSTEM,
                        "code": "R06.0",
                        "extension": [
                            {
                                "url": CERTAINTY_EXTENSION,
                                "valueCoding": {"system": CERTAINTY_SYSTEM, "code": "V"},
                            }
                        ],
                    }
                ],
                "text": "Dyspnoe",
            }
        ],
        "note": [{"text": QUESTION}, {"text": "Aktuelle Medikation:\nRamipril 5 mg 1-0-0"}],
        "occurrencePeriod": {"end": answer_by},
        "supportingInfo": [{"reference": "#consent"}],
    }
    resource.update(changes)
    return resource


async def written_count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        query = select(func.count()).select_from(Appointment)
        kind = col(Appointment.kind) == AppointmentKind.WRITTEN
        return await session.scalar(query.where(kind)) or 0


async def test_a_gp_sends_a_written_telekonsil_as_a_service_request(
    client: httpx2.AsyncClient, client_factory: ClientFactory, demo: Demo
) -> None:
    await login(client, demo.gp)
    sent = await client.post(
        "/fhir/R4/ServiceRequest", json=service_request(), headers={"Content-Type": FHIR_JSON}
    )
    assert sent.status_code == 201, sent.text
    created = ServiceRequest.model_validate(sent.json())
    assert sent.headers["location"].endswith(f"/fhir/R4/ServiceRequest/{created.id}")
    assert [c.text for c in created.category or []] == ["Schriftliches Telekonsil (ohne Video)"]
    assert (created.status, created.priority) == ("active", "routine")

    mine = (await client.get(f"/api/v1/appointments/{created.id}")).json()
    assert (mine["kind"], mine["specialty"], mine["patient_name"]) == (
        "written",
        "Kardiologie",
        "Erika Mustermann",
    )
    assert (mine["patient_insurance_number"], mine["patient_sex"]) == ("A123456780", "female")
    assert (mine["diagnosis_code"], mine["diagnosis_certainty"]) == ("R06.0", "V")
    assert mine["medication"] == "Ramipril 5 mg 1-0-0"
    assert mine["clinical_question"] == QUESTION
    assert mine["consent_recorded_at"] is not None
    async with client_factory() as cardiologist:
        await login(cardiologist, demo.specialist)
        queue = (await cardiologist.get("/api/v1/queue")).json()
    assert [e["appointment_id"] for e in queue["written"]] == [int(str(created.id))]

    # By the HealthcareService's reference too.
    by_reference = service_request(
        performerType=None,
        performer=[{"reference": f"HealthcareService/{demo.cardiology.id}"}],
    )
    by_reference = {k: v for k, v in by_reference.items() if v is not None}
    again = await client.post(
        "/fhir/R4/ServiceRequest", json=by_reference, headers={"Content-Type": FHIR_JSON}
    )
    assert again.status_code == 201, again.text


async def test_incomplete_service_requests_are_refused_and_store_nothing(
    client: httpx2.AsyncClient,
    client_factory: ClientFactory,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await login(client, demo.gp)
    no_consent = service_request(supportingInfo=None)
    del no_consent["supportingInfo"]
    no_deadline = service_request()
    del no_deadline["occurrencePeriod"]
    withdrawn_consent = service_request()
    withdrawn_consent["contained"] = copy.deepcopy(withdrawn_consent["contained"])
    withdrawn_consent["contained"][1]["status"] = "inactive"
    no_patient = service_request(subject={"reference": "Patient/7"})
    refusals = {
        400: [
            no_consent,
            no_deadline,
            withdrawn_consent,
            no_patient,
            service_request(status="draft"),
            service_request(performerType={"text": "Kardiologie"}),
            service_request(occurrencePeriod={"end": "2026-12"}),
            {"resourceType": "Appointment"},
            service_request(priority="sehr"),
            service_request(contained=[{"resourceType": "Foo", "id": "x"}]),
            service_request(contained=[{"resourceType": 5, "id": "x"}]),
        ],
        422: [
            service_request(
                performerType={"coding": [{"system": SPECIALTY_SYSTEM, "code": "unbekannt"}]}
            ),
            service_request(occurrencePeriod={"end": "2020-01-01"}),
            # Not ASCII digits: no row can have it (never int("²")).
            service_request(performerType=None, performer=[{"reference": "HealthcareService/²"}]),
        ],
    }
    for status, bodies in refusals.items():
        for body in bodies:
            answer = await client.post(
                "/fhir/R4/ServiceRequest", json=body, headers={"Content-Type": FHIR_JSON}
            )
            assert_outcome(answer, status)
    async with client_factory() as specialist:
        await login(specialist, demo.specialist)
        forbidden = await specialist.post(
            "/fhir/R4/ServiceRequest",
            json=service_request(),
            headers={"Content-Type": FHIR_JSON},
        )
        assert forbidden.status_code == 403
    assert await written_count(sessions) == 0


async def test_a_system_client_needs_service_request_write(
    client_factory: ClientFactory, demo: Demo, settings: Settings, rsa_key: RSAKey
) -> None:
    audience = settings.base_url.rstrip("/") + TOKEN_URL
    async with client_factory() as doctor, client_factory() as system:
        await login(doctor, demo.gp)
        scopes = ["system/ServiceRequest.read", "system/ServiceRequest.write"]
        readers = ["system/DocumentReference.read", "system/Binary.read"]
        registered = await register(
            doctor, [rsa_key.as_dict(private=False)], scopes=scopes + readers
        )
        reading = await ask_token(
            system,
            assertion(rsa_key, registered["client_id"], audience),
            scope="system/ServiceRequest.read",
        )
        system.headers["Authorization"] = f"Bearer {reading.json()['access_token']}"
        refused = await system.post(
            "/fhir/R4/ServiceRequest", json=service_request(), headers={"Content-Type": FHIR_JSON}
        )
        assert "system/ServiceRequest.write" in (
            assert_outcome(refused, 403).issue[0].diagnostics or ""
        )
        writing = await ask_token(
            system,
            assertion(rsa_key, registered["client_id"], audience),
            scope=" ".join(scopes),
        )
        system.headers["Authorization"] = f"Bearer {writing.json()['access_token']}"
        sent = await system.post(
            "/fhir/R4/ServiceRequest", json=service_request(), headers={"Content-Type": FHIR_JSON}
        )
        assert sent.status_code == 201, sent.text
        read = await system.get("/fhir/R4" + sent.headers["location"].split("/fhir/R4", 1)[1])
        assert read.status_code == 200, read.text

        # The GP attaches a finding; the system reads it with its token (no session).
        request_id = sent.json()["id"]
        attached = await upload(doctor, int(request_id), "ekg.pdf", PDF, "application/pdf")
        assert attached.status_code == 201, attached.text
        reading = await ask_token(
            system,
            assertion(rsa_key, registered["client_id"], audience),
            scope=" ".join(readers),
        )
        system.headers["Authorization"] = f"Bearer {reading.json()['access_token']}"
        listed = await system.get(
            "/fhir/R4/DocumentReference", params={"related": f"ServiceRequest/{request_id}"}
        )
        assert listed.status_code == 200, listed.text
        url = listed.json()["entry"][0]["resource"]["content"][0]["attachment"]["url"]
        downloaded = await system.get(httpx2.URL(url).path)
        assert (downloaded.status_code, downloaded.content) == (200, PDF)
        without = await ask_token(
            system,
            assertion(rsa_key, registered["client_id"], audience),
            scope="system/DocumentReference.read",
        )
        system.headers["Authorization"] = f"Bearer {without.json()['access_token']}"
        assert_outcome(await system.get(httpx2.URL(url).path), 403)
