"""The ISiK flow through /fhir/R4: HealthcareService -> Schedule -> Slot -> $book -> read ->
PATCH cancel, every resource validated by the fhir.resources R4B models; on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx2
import pytest
from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.healthcareservice import HealthcareService
from fhir.resources.R4B.practitionerrole import PractitionerRole
from fhir.resources.R4B.schedule import Schedule
from fhir.resources.R4B.slot import Slot

from app.settings import Settings
from tests.factories import Demo, login
from tests.fhir.helpers import FHIR_JSON, assert_outcome, free_slots, parameters

ClientFactory = Callable[[], httpx2.AsyncClient]


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url)


async def test_fhir_metadata_is_public_and_lists_the_interactions(
    client: httpx2.AsyncClient,
) -> None:
    response = await client.get("/fhir/R4/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/fhir+json; charset=utf-8"
    statement = CapabilityStatement.model_validate(response.json())
    assert statement.fhirVersion == "4.0.1"
    assert statement.rest is not None
    served = {r.type: r for r in statement.rest[0].resource or []}
    assert set(served) == {
        "HealthcareService", "Practitioner", "PractitionerRole", "Schedule", "Slot", "Appointment",
        "Patient", "ServiceRequest", "Consent", "DocumentReference", "Binary", "DiagnosticReport",
        "Composition",
    }  # fmt: skip
    assert [o.name for o in served["Appointment"].operation or []] == ["book"]
    assert [i.code for i in served["ServiceRequest"].interaction or []] == ["read", "create"]


async def test_fhir_isik_flow_books_reads_and_cancels(
    client: httpx2.AsyncClient, demo: Demo, settings: Settings
) -> None:
    await login(client, demo.gp)
    services = Bundle.model_validate((await client.get("/fhir/R4/HealthcareService")).json())
    names = [
        e.resource.name for e in services.entry or [] if isinstance(e.resource, HealthcareService)
    ]
    assert demo.cardiology.name_de in names
    response = await client.get("/fhir/R4/Schedule", params={"service-type": demo.cardiology.slug})
    schedules = Bundle.model_validate(response.json())
    ids = {e.resource.id for e in schedules.entry or [] if isinstance(e.resource, Schedule)}
    assert ids == {str(demo.specialist.id), str(demo.other_specialist.id)}
    role = await client.get(f"/fhir/R4/PractitionerRole/{demo.specialist.id}")
    assert PractitionerRole.model_validate(role.json()).practitioner is not None

    slots = await free_slots(client, settings, demo.specialist)
    slot = Slot.model_validate(slots[0])
    booked = await client.post(
        "/fhir/R4/Appointment/$book",
        json=parameters(f"Slot/{slot.id}"),
        headers={"Content-Type": FHIR_JSON},
    )
    assert booked.status_code == 201, booked.text
    appointment = Appointment.model_validate(booked.json())
    assert appointment.status == "booked"
    assert appointment.start == slot.start
    assert booked.headers["location"].endswith(f"/fhir/R4/Appointment/{appointment.id}")
    assert "join" not in booked.text  # the bearer join link never travels in a resource
    assert slots[0]["id"] not in [
        s["id"] for s in await free_slots(client, settings, demo.specialist)
    ]

    read = await client.get(f"/fhir/R4/Appointment/{appointment.id}")
    assert read.headers["cache-control"] == "no-store"  # it carries health data
    assert (
        Appointment.model_validate(read.json()).comment
        == parameters("x")["parameter"][0]["resource"]["comment"]
    )
    found = await client.get("/fhir/R4/Appointment", params={"status": "booked"})
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [appointment.id]

    cancelled = await client.patch(
        f"/fhir/R4/Appointment/{appointment.id}",
        content=b'[{"op": "replace", "path": "/status", "value": "cancelled"}]',
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert cancelled.status_code == 200, cancelled.text
    assert Appointment.model_validate(cancelled.json()).status == "cancelled"
    again = await client.get(f"/fhir/R4/Appointment/{appointment.id}")
    assert again.json()["status"] == "cancelled"


async def test_fhir_two_concurrent_books_of_one_slot_one_wins(
    client_factory: ClientFactory, demo: Demo, settings: Settings
) -> None:
    async with client_factory() as first, client_factory() as second:
        await login(first, demo.gp)
        await login(second, demo.other_gp)
        slot = (await free_slots(first, settings, demo.specialist))[0]

        async def book(client: httpx2.AsyncClient) -> httpx2.Response:
            return await client.post(
                "/fhir/R4/Appointment/$book",
                json=parameters(f"Slot/{slot['id']}"),
                headers={"Content-Type": FHIR_JSON},
            )

        answers = await asyncio.gather(book(first), book(second))
    assert sorted(a.status_code for a in answers) == [201, 409]
    loser = next(a for a in answers if a.status_code == 409)
    assert assert_outcome(loser, 409).issue[0].code == "conflict"


async def test_fhir_book_takes_a_bare_appointment_and_is_retry_safe(
    client: httpx2.AsyncClient, demo: Demo, settings: Settings
) -> None:
    await login(client, demo.gp)
    slot = (await free_slots(client, settings, demo.specialist))[1]
    bare = parameters(f"Slot/{slot['id']}")["parameter"][0]["resource"]
    headers = {"Content-Type": FHIR_JSON, "Idempotency-Key": "fhir-retry-0001"}
    first = await client.post("/fhir/R4/Appointment/$book", json=bare, headers=headers)
    again = await client.post("/fhir/R4/Appointment/$book", json=bare, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    # The specialist finds it by actor; the other specialist's filter finds nothing.
    client.cookies.clear()
    await login(client, demo.specialist)
    mine = await client.get(
        "/fhir/R4/Appointment", params={"actor": f"Practitioner/{demo.specialist.id}"}
    )
    assert [e["resource"]["id"] for e in mine.json()["entry"]] == [first.json()["id"]]
    other = await client.get(
        "/fhir/R4/Appointment", params={"actor": f"PractitionerRole/{demo.other_specialist.id}"}
    )
    assert other.json()["total"] == 0


async def test_fhir_book_carries_the_telekonsil_particulars_both_ways(
    client: httpx2.AsyncClient, demo: Demo, settings: Settings
) -> None:
    """The insurance number (kvid-10), the sex (``other`` = divers) and the ICD-10-GM
    diagnosis with its certainty go in with $book, land in the JSON API's fields and come
    back out in the Appointment; a wrong check digit is the JSON API's 422."""
    await login(client, demo.gp)
    slots = await free_slots(client, settings, demo.specialist)
    patient = parameters("x")["parameter"][0]["resource"]["contained"][0]
    german_patient = {
        **patient,
        "identifier": [{"system": "http://fhir.de/sid/gkv/kvid-10", "value": "X110411675"}],
        "gender": "other",
    }
    diagnosis = {
        "coding": [
            {
                "system": "http://fhir.de/CodeSystem/bfarm/icd-10-gm",
                "code": "I48.0",
                "extension": [
                    {
                        "url": "http://fhir.de/StructureDefinition/icd-10-gm-diagnosesicherheit",
                        "valueCoding": {
                            "system": "https://fhir.kbv.de/CodeSystem/KBV_CS_SFHIR_ICD_DIAGNOSESICHERHEIT",
                            "code": "V",
                        },
                    }
                ],
            }
        ],
        "text": "Vorhofflimmern, paroxysmal",
    }
    body = parameters(f"Slot/{slots[0]['id']}", contained=[german_patient], reasonCode=[diagnosis])
    booked = await client.post(
        "/fhir/R4/Appointment/$book", json=body, headers={"Content-Type": FHIR_JSON}
    )
    assert booked.status_code == 201, booked.text
    appointment = Appointment.model_validate(booked.json())
    shown = (await client.get(f"/api/v1/appointments/{appointment.id}")).json()
    assert shown["patient_insurance_number"] == "X110411675"
    assert shown["patient_sex"] == "diverse"
    assert (shown["diagnosis_code"], shown["diagnosis_certainty"]) == ("I48.0", "V")
    assert shown["diagnosis_text"] == "Vorhofflimmern, paroxysmal"
    out = booked.json()
    assert out["reasonCode"] == [diagnosis]
    (contained,) = out["contained"]
    assert contained["identifier"][0]["value"] == "X110411675"
    assert contained["gender"] == "other"
    assert contained["_gender"]["extension"][0]["valueCoding"]["code"] == "D"

    wrong = {
        **german_patient,
        "identifier": [{**german_patient["identifier"][0], "value": "X110411676"}],
    }
    refused = await client.post(
        "/fhir/R4/Appointment/$book",
        json=parameters(f"Slot/{slots[1]['id']}", contained=[wrong]),
        headers={"Content-Type": FHIR_JSON},
    )
    outcome = assert_outcome(refused, 422)
    assert "patient_insurance_number" in (outcome.issue[0].diagnostics or "")
