"""``/fhir/R4/Patient``: a GP's system creates the patient it then books by reference
(``Patient/<id>`` as the ``$book`` participant); read back tagged ``external``. The patient's
data is checked by the JSON API's booking rules when created (``app.fhir.patients``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app.accounts.models import Role
from app.api import validate
from app.audit import service as audit
from app.db import unit_of_work, utcnow
from app.fhir import patients
from app.fhir import resources as build
from app.fhir.auth import caller
from app.fhir.booking import patient_fields, patient_of
from app.fhir.outcome import FhirError, fhir_response
from app.fhir.routes import FHIR_JSON, Handler, base_url, read_json, required_id
from app.resources import db
from app.scheduling.schemas import ConsultIn

# The booking's schema checks the patient's fields; the question it needs too is $book's.
_NO_QUESTION = "(beim Anlegen des Patienten nicht gefragt)"


def checked(fields: dict[str, Any]) -> dict[str, Any]:
    """The patient's fields as a booking checks and normalises them (422 naming the field)."""
    consult = validate(ConsultIn, {**fields, "clinical_question": _NO_QUESTION})
    return {name: getattr(consult, name) for name in patients.FIELDS}


async def create_patient(request: Request) -> Response:
    """``POST Patient``: 201 with the Patient (tagged ``external``) and its ``Location``."""
    who = await caller(request, Role.GP)
    assert who.user_id is not None
    fields = checked(patient_fields(patient_of(await read_json(request, FHIR_JSON))))
    async with unit_of_work(db(request)) as session:
        created = await patients.create(
            session,
            owner_id=who.user_id,
            fields=fields,
            fhir_client=who.fhir_client,
            now=utcnow(),
        )
        audit.record_for(session, who, "fhir_patient.created", None, patient=created.id)
    location = f"{base_url(request)}/Patient/{created.id}"
    return fhir_response(build.created_patient(created), 201, {"Location": location})


async def read_patient(request: Request) -> Response:
    """A Patient the GP's systems created; anyone else's: 404."""
    who = await caller(request, Role.GP)
    assert who.user_id is not None
    patient_id = required_id(request)
    async with db(request)() as session:
        found = await patients.find(session, patient_id, owner_id=who.user_id)
    if found is None:
        raise FhirError(404, "Diesen Patient gibt es nicht.")
    return fhir_response(build.created_patient(found))


PATIENT: list[tuple[str, dict[str, Handler]]] = [
    ("/Patient", {"POST": create_patient}),
    ("/Patient/{id}", {"GET": read_patient}),
]
