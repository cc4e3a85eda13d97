"""Konsil's domain as FHIR resources (pure): each built as a dict, validated by the
``fhir.resources`` R4B model and dumped as FHIR JSON."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.healthcareservice import HealthcareService
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.practitionerrole import PractitionerRole
from fhir.resources.R4B.schedule import Schedule
from fhir.resources.R4B.slot import Slot

from app.accounts.models import User
from app.fhir import german
from app.fhir.outcome import dump
from app.fhir.patients import FhirPatient
from app.fhir.search import slot_id
from app.scheduling.models import AppointmentStatus, PatientSex, Specialty, Urgency
from app.scheduling.schemas import AppointmentOut

# Canonical URLs checked against gematik's sources (spec-ISiK-Terminplanung, sushi-config
# canonical https://gematik.de/fhir/isik/v3/Terminplanung, the profiles' Ids). Only profiles
# whose required elements Konsil fills are claimed in meta.profile (docs/fhir.md).
ISIK = "https://gematik.de/fhir/isik/v3/Terminplanung/StructureDefinition/"
PROFILE_APPOINTMENT = ISIK + "ISiKTermin"
PROFILE_SLOT = ISIK + "ISiKTerminblock"
PROFILE_SCHEDULE = ISIK + "ISiKKalender"
PROFILE_SERVICE = ISIK + "ISiKMedizinischeBehandlungseinheit"
BOOK_OPERATION = "https://gematik.de/fhir/isik/v3/Terminplanung/OperationDefinition/AppointmentBook"
# Konsil's own code system for its specialties (codes: the specialty's slug).
SPECIALTY_SYSTEM = "urn:konsil:fhir:specialty"
# Konsil's urgency in Appointment.priority (FHIR: 1 highest ... 9 lowest).
PRIORITY = {Urgency.URGENT: 1, Urgency.ROUTINE: 5}
STATUS = {
    AppointmentStatus.BOOKED: "booked",
    AppointmentStatus.COMPLETED: "fulfilled",
    AppointmentStatus.NO_SHOW: "noshow",
    AppointmentStatus.CANCELLED: "cancelled",
}
STATUS_FROM_FHIR = {v: k for k, v in STATUS.items()}
CONTAINED_PATIENT = "patient"
# The tag of a Patient a client created: external data, as the sending system gave it.
EXTERNAL_TAG = {
    "system": "urn:konsil:fhir:tag",
    "code": "external",
    "display": "Extern angelegt, von Konsil nicht geprüft",
}


def specialty_concept(specialty: Specialty) -> dict[str, Any]:
    coding = {"system": SPECIALTY_SYSTEM, "code": specialty.slug, "display": specialty.name_de}
    return {"coding": [coding], "text": specialty.name_de}


def healthcare_service(specialty: Specialty) -> dict[str, Any]:
    """One specialty: the unit GPs book with."""
    concept = specialty_concept(specialty)
    return dump(
        HealthcareService.model_validate(
            {
                "id": str(specialty.id),
                "active": True,
                "name": specialty.name_de,
                "type": [concept],
                "specialty": [concept],
                "comment": "Telekonsil per Video",
            }
        )
    )


def practitioner(user: User) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(user.id),
        "active": user.is_active,
        "name": [{"text": user.display_name}],
    }
    if user.lanr:
        data["identifier"] = [german.lanr_identifier(user.lanr)]
    return dump(Practitioner.model_validate(data))


def practitioner_role(user: User, specialty: Specialty) -> dict[str, Any]:
    """A specialist in their specialty (ids: the specialist's)."""
    return dump(
        PractitionerRole.model_validate(
            {
                "id": str(user.id),
                "active": user.is_active,
                "practitioner": {
                    "reference": f"Practitioner/{user.id}",
                    "display": user.display_name,
                },
                "specialty": [specialty_concept(specialty)],
                "healthcareService": [_service_ref(specialty)],
            }
        )
    )


def schedule(user: User, specialty: Specialty) -> dict[str, Any]:
    """A specialist's calendar (ids: the specialist's)."""
    concept = specialty_concept(specialty)
    return dump(
        Schedule.model_validate(
            {
                "id": str(user.id),
                "active": user.is_active,
                "serviceType": [concept],
                "specialty": [concept],
                "actor": [
                    {"reference": f"PractitionerRole/{user.id}", "display": user.display_name},
                    _service_ref(specialty),
                ],
                "comment": "Sprechstunde für Telekonsile",
            }
        )
    )


def slot(
    specialist_id: int, specialty: Specialty, starts_at: datetime, ends_at: datetime
) -> dict[str, Any]:
    """A free slot, computed from the specialist's hours at request time."""
    concept = specialty_concept(specialty)
    return dump(
        Slot.model_validate(
            {
                "id": slot_id(specialist_id, starts_at),
                "meta": {"profile": [PROFILE_SLOT]},
                "schedule": {"reference": f"Schedule/{specialist_id}"},
                "status": "free",
                "start": starts_at,
                "end": ends_at,
                "serviceType": [concept],
                "specialty": [concept],
            }
        )
    )


def appointment(found: AppointmentOut) -> dict[str, Any]:
    """A booking: the patient as a contained Patient, the question as ``comment``, the
    urgency as ``priority``. Never the patient's join link (a bearer secret)."""
    participants: list[dict[str, Any]] = [
        {
            "actor": {"reference": f"#{CONTAINED_PATIENT}", "display": found.patient_name},
            "status": "accepted",
        }
    ]
    if found.specialist_id is not None:
        participants.append(
            {
                "actor": {
                    "reference": f"Practitioner/{found.specialist_id}",
                    "display": found.specialist_name,
                },
                "status": "accepted",
            }
        )
    participants.append({"actor": {"display": found.gp_name}, "status": "accepted"})
    data: dict[str, Any] = {
        "id": str(found.id),
        "meta": {"profile": [PROFILE_APPOINTMENT]},
        "contained": [contained_patient(found)],
        "status": _status(found),
        "serviceType": [{"text": found.specialty or "Telekonsil"}],
        "priority": PRIORITY[found.urgency],
        "start": found.starts_at,
        "end": found.ends_at,
        "created": found.created_at,
        "comment": found.clinical_question,
        "participant": participants,
        "basedOn": [{"reference": f"ServiceRequest/{found.id}"}],
    }
    diagnosis = german.diagnosis_concept(
        found.diagnosis_code, found.diagnosis_certainty, found.diagnosis_text
    )
    if diagnosis:
        data["reasonCode"] = [diagnosis]
    if found.specialist_id is not None and found.kind == "booked":
        data["slot"] = [{"reference": f"Slot/{slot_id(found.specialist_id, found.starts_at)}"}]
    return dump(Appointment.model_validate(data))


def _status(found: AppointmentOut) -> str:
    if found.status is AppointmentStatus.BOOKED and found.specialist_id is None:
        return "pending"  # an on-call request nobody has taken yet
    return STATUS[found.status]


def contained_patient(found: AppointmentOut) -> dict[str, Any]:
    """The booking's patient, to be contained in a resource that names them (``#patient``)."""
    return _patient_data(found, CONTAINED_PATIENT)


def created_patient(found: FhirPatient) -> dict[str, Any]:
    """A Patient a client created (``POST Patient``), tagged ``external``: its data is the
    sending system's, nobody at Konsil checked it."""
    data = _patient_data(found, str(found.id))
    data["meta"] = {"tag": [EXTERNAL_TAG]}
    return dump(Patient.model_validate(data))


def _patient_data(found: AppointmentOut | FhirPatient, resource_id: str) -> dict[str, Any]:
    system = "email" if "@" in found.patient_contact else "phone"
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": resource_id,
        "name": [{"text": found.patient_name}],
        "birthDate": found.patient_birth_date.isoformat(),
    }
    if found.patient_contact:  # a written Telekonsil has none (the patient takes no part)
        patient["telecom"] = [{"system": system, "value": found.patient_contact}]
    if found.patient_insurance_number:
        patient["identifier"] = [german.kvnr_identifier(found.patient_insurance_number)]
    if found.patient_sex is not None:
        patient.update(german.gender_of(PatientSex(found.patient_sex)))
    return patient


def _service_ref(specialty: Specialty) -> dict[str, Any]:
    return {"reference": f"HealthcareService/{specialty.id}", "display": specialty.name_de}


def searchset(entries: Sequence[dict[str, Any]], *, base: str, self_url: str) -> dict[str, Any]:
    """A searchset Bundle of ``entries`` (all matches: Konsil does not page)."""
    return dump(
        Bundle.model_validate(
            {
                "type": "searchset",
                "total": len(entries),
                "link": [{"relation": "self", "url": self_url}],
                "entry": [
                    {
                        "fullUrl": f"{base}/{e['resourceType']}/{e['id']}",
                        "resource": e,
                        "search": {"mode": "match"},
                    }
                    for e in entries
                ],
            }
        )
    )


def batch_response(resource: dict[str, Any], *, location: str, status: str) -> dict[str, Any]:
    """The result of an asynchronous request: a ``batch-response`` Bundle with one entry, the
    answer the request would have had at once (its status, location and resource)."""
    return dump(
        Bundle.model_validate(
            {
                "type": "batch-response",
                "entry": [
                    {"resource": resource, "response": {"status": status, "location": location}}
                ],
            }
        )
    )
