"""``POST /fhir/R4/Patient``: a GP's system creates the patient (checked by the booking's
rules), reads it back tagged ``external`` and books it by reference (``Patient/<id>``); it is
that GP's only, a reference needs ``system/Patient.r``, and it goes after a week."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx2
import pytest
from fhir.resources.R4B.patient import Patient
from joserfc.jwk import RSAKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import select

from app.db import unit_of_work, utcnow
from app.fhir import patients
from app.retention import service as retention
from app.settings import Settings
from tests.factories import Demo, login
from tests.fhir.helpers import FHIR_JSON, assert_outcome, free_slots, parameters
from tests.fhir.smart_client import authorized

ClientFactory = Callable[[], httpx2.AsyncClient]
HEADERS = {"Content-Type": FHIR_JSON}
PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "name": [{"family": "Mustermann", "given": ["Erika"]}],
    "birthDate": "1956-04-12",
    "telecom": [{"system": "email", "value": "erika@example.org"}],
    "identifier": [{"system": "http://fhir.de/sid/gkv/kvid-10", "value": "X110411675"}],
    "gender": "female",
}


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url)


@pytest.fixture(scope="module")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "praxis-2026", "alg": "RS384"})


def by_reference(slot: dict[str, Any], reference: str) -> dict[str, Any]:
    """A $book naming the patient by reference, nothing contained."""
    return parameters(
        f"Slot/{slot['id']}",
        contained=[],
        participant=[{"actor": {"reference": reference}, "status": "accepted"}],
    )


async def test_a_created_patient_is_tagged_external_and_booked_by_reference(
    client_factory: ClientFactory, demo: Demo, settings: Settings
) -> None:
    async with client_factory() as gp, client_factory() as other, client_factory() as specialist:
        await login(gp, demo.gp)
        await login(other, demo.other_gp)
        await login(specialist, demo.specialist)
        created = await gp.post("/fhir/R4/Patient", json=PATIENT, headers=HEADERS)
        assert created.status_code == 201, created.text
        patient = Patient.model_validate(created.json())
        assert created.headers["location"].endswith(f"/fhir/R4/Patient/{patient.id}")
        assert created.json()["meta"]["tag"][0]["code"] == "external"
        assert created.json()["meta"]["tag"][0]["system"] == "urn:konsil:fhir:tag"
        assert patient.gender == "female"
        assert created.json()["identifier"][0]["value"] == "X110411675"
        path = f"/fhir/R4/Patient/{patient.id}"
        assert (await gp.get(path)).json() == created.json()

        slots = await free_slots(gp, settings, demo.specialist)
        booked = await gp.post(
            "/fhir/R4/Appointment/$book",
            json=by_reference(slots[0], f"Patient/{patient.id}"),
            headers=HEADERS,
        )
        assert booked.status_code == 201, booked.text
        shown = (await gp.get(f"/api/v1/appointments/{booked.json()['id']}")).json()
        assert (shown["patient_name"], shown["patient_insurance_number"]) == (
            "Erika Mustermann",
            "X110411675",
        )
        (contained,) = booked.json()["contained"]
        assert contained["birthDate"] == "1956-04-12"

        # Another GP's: as if it did not exist; a specialist creates none.
        assert_outcome(await other.get(path), 404)
        refused = await other.post(
            "/fhir/R4/Appointment/$book",
            json=by_reference(slots[1], f"Patient/{patient.id}"),
            headers=HEADERS,
        )
        assert assert_outcome(refused, 422).issue[0].code == "not-found"
        assert_outcome(
            await specialist.post("/fhir/R4/Patient", json=PATIENT, headers=HEADERS), 403
        )
        assert_outcome(await gp.get("/fhir/R4/Patient/999999"), 404)


async def test_a_patient_konsil_cannot_book_is_refused_when_created(
    client: httpx2.AsyncClient, demo: Demo, settings: Settings
) -> None:
    await login(client, demo.gp)
    wrong_kvnr = {**PATIENT, "identifier": [{**PATIENT["identifier"][0], "value": "X110411676"}]}
    cases: list[tuple[dict[str, Any], int]] = [
        (wrong_kvnr, 422),
        ({**PATIENT, "birthDate": "2999-01-01"}, 422),
        ({**PATIENT, "telecom": []}, 400),
        ({**PATIENT, "resourceType": "Appointment"}, 400),
        ({**PATIENT, "gender": "no-such-gender"}, 400),
    ]
    for body, status in cases:
        answer = await client.post("/fhir/R4/Patient", json=body, headers=HEADERS)
        assert_outcome(answer, status)
    slots = await free_slots(client, settings, demo.specialist)
    created = await client.post("/fhir/R4/Patient", json=PATIENT, headers=HEADERS)
    both = parameters(f"Slot/{slots[0]['id']}")
    both["parameter"][0]["resource"]["participant"].append(
        {"actor": {"reference": f"Patient/{created.json()['id']}"}, "status": "accepted"}
    )
    assert_outcome(await client.post("/fhir/R4/Appointment/$book", json=both, headers=HEADERS), 400)
    unknown = by_reference(slots[0], "Patient/not-a-number")
    assert_outcome(
        await client.post("/fhir/R4/Appointment/$book", json=unknown, headers=HEADERS), 422
    )


async def test_a_system_client_needs_patient_read_to_book_by_reference(
    client_factory: ClientFactory, demo: Demo, settings: Settings, rsa_key: RSAKey
) -> None:
    async with (
        client_factory() as doctor,
        client_factory() as creator,
        client_factory() as reader,
    ):
        await login(doctor, demo.gp)
        slots = await free_slots(doctor, settings, demo.specialist)
        await authorized(
            creator, doctor, rsa_key, settings, ["system/Patient.c", "system/Appointment.c"]
        )
        await authorized(
            reader, doctor, rsa_key, settings, ["system/Patient.cr", "system/Appointment.c"]
        )
        created = await creator.post("/fhir/R4/Patient", json=PATIENT, headers=HEADERS)
        assert created.status_code == 201, created.text
        reference = f"Patient/{created.json()['id']}"
        refused = await creator.post(
            "/fhir/R4/Appointment/$book", json=by_reference(slots[0], reference), headers=HEADERS
        )
        assert "system/Patient.r" in (assert_outcome(refused, 403).issue[0].diagnostics or "")
        assert_outcome(await creator.get(f"/fhir/R4/{reference}"), 403)
        booked = await reader.post(
            "/fhir/R4/Appointment/$book", json=by_reference(slots[0], reference), headers=HEADERS
        )
        assert booked.status_code == 201, booked.text


async def test_created_patients_go_after_a_week(
    demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    now = utcnow()
    fields = {
        "patient_name": "Erika Mustermann",
        "patient_birth_date": now.date() - timedelta(days=365 * 70),
        "patient_contact": "erika@example.org",
    }
    async with unit_of_work(sessions) as session:
        for age in (patients.KEEP, timedelta(days=6)):
            await patients.create(
                session, owner_id=demo.gp.id or 0, fields=fields, fhir_client=None, now=now - age
            )
    counts = await retention.run(sessions, settings, now=now)
    assert counts.get("fhir_patients") == 1
    async with sessions() as session:
        left = (await session.execute(select(patients.FhirPatient))).scalars().all()
    assert [p.created_at for p in left] == [now - timedelta(days=6)]
