"""What a FHIR client sends to book and to cancel, as Konsil's own inputs (pure).

``$book`` takes an ISiK-style ``Parameters`` with the Appointment in ``appt-resource`` or the
bare Appointment. The Appointment (status ``proposed``) names exactly one ``Slot/<id>``, the
patient as a contained Patient referenced by a participant (name, birthDate, one telecom:
e-mail or phone; optionally the insurance number as a ``kvid-10`` identifier and ``gender``)
or a participant ``Patient/<id>`` the client created before (``patient_fields`` reads both),
the clinical question in ``comment`` (or the text of a ``reasonCode`` without a code), the
(suspected) diagnosis as a ``reasonCode`` with an ICD-10-GM coding (its certainty in the
Basisprofile's extension, the words in ``text``) and the urgency in ``priority`` (1 = urgent,
anything else routine).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.patient import Patient
from pydantic import ValidationError

from app.fhir import german
from app.fhir.outcome import FhirError
from app.fhir.search import parse_slot_id, reference_id
from app.scheduling.models import Urgency

BOOK_PARAMETER = "appt-resource"
CANCEL_PATHS = frozenset({"/status", "/cancelationReason"})


@dataclass(frozen=True)
class BookRequest:
    specialist_id: int
    starts_at: datetime
    fields: dict[str, Any]  # the ConsultIn fields: patient, question, urgency
    # A created Patient the participant references (``Patient/<id>``): the patient's fields
    # are then that Patient's, not in ``fields``.
    patient_id: int | None = None


def appointment_of(body: Any) -> dict[str, Any]:
    """The Appointment of a ``$book`` body (a Parameters or the Appointment itself)."""
    if not isinstance(body, dict):
        raise FhirError(400, "Erwartet wird eine Parameters- oder Appointment-Ressource.")
    kind = body.get("resourceType")
    if kind == "Appointment":
        return body
    if kind != "Parameters":
        raise FhirError(400, "Erwartet wird eine Parameters- oder Appointment-Ressource.")
    found = [
        p.get("resource")
        for p in body.get("parameter") or []
        if isinstance(p, dict) and p.get("name") == BOOK_PARAMETER
    ]
    if len(found) != 1 or not isinstance(found[0], dict):
        raise FhirError(400, f"Parameters braucht genau einen Parameter {BOOK_PARAMETER}.")
    if found[0].get("resourceType") != "Appointment":
        raise FhirError(400, f"{BOOK_PARAMETER} muss eine Appointment-Ressource sein.")
    return found[0]


def book_request(data: dict[str, Any]) -> BookRequest:
    """The booking an Appointment asks for; 400 for what is not a valid resource or lacks
    what Konsil needs to book (the checks of the patient's data are the JSON API's: 422)."""
    try:
        appt = Appointment.model_validate(data)
    except ValidationError as exc:
        raise FhirError(400, f"Ungültige Appointment-Ressource: {first_error(exc)}") from None
    except (KeyError, TypeError, ValueError):
        # fhir.resources looks contained resources up by their type before pydantic checks
        # them: an unknown or non-string resourceType fails there.
        raise FhirError(400, "Ungültige Appointment-Ressource: unbekannter resourceType.") from None
    if appt.status != "proposed":
        raise FhirError(400, "Ein zu buchender Termin hat den Status proposed.")
    slots = [s.reference for s in appt.slot or []]
    if len(slots) != 1 or not slots[0]:
        raise FhirError(400, "Der Termin muss genau einen Slot referenzieren (Slot/<id>).")
    parts = str(slots[0]).rstrip("/").split("/")
    decoded = parse_slot_id(parts[-1]) if len(parts) >= 2 and parts[-2] == "Slot" else None
    if decoded is None:
        raise FhirError(422, "Diesen Slot gibt es nicht.", code="not-found")
    specialist_id, starts_at = decoded
    if appt.start is not None and appt.start != starts_at:
        raise FhirError(400, "start passt nicht zum referenzierten Slot.")
    patient, patient_id = _patient(appt)
    reasons = [r.model_dump(mode="json", exclude_none=True) for r in appt.reasonCode or []]
    diagnoses = [r for r in reasons if german.is_icd10gm(r)]
    if len(diagnoses) > 1:
        raise FhirError(400, "Höchstens ein reasonCode mit ICD-10-GM-Code (die Diagnose).")
    others = [str(r["text"]) for r in reasons if not german.is_icd10gm(r) and r.get("text")]
    question = appt.comment or next(iter(others), None)
    fields = {
        **patient,
        **(german.diagnosis_from(diagnoses[0]) if diagnoses else {}),
        "clinical_question": question or "",
        "urgency": Urgency.URGENT if appt.priority == 1 else Urgency.ROUTINE,
    }
    return BookRequest(specialist_id, starts_at, fields, patient_id)


def _patient(appt: Appointment) -> tuple[dict[str, Any], int | None]:
    """The contained patient's fields, or the id of the created Patient referenced."""
    refs = {str(p.actor.reference) for p in appt.participant if p.actor and p.actor.reference}
    contained = [
        c for c in appt.contained or [] if c.get_resource_type() == "Patient" and f"#{c.id}" in refs
    ]
    created = [r for r in refs if r.rstrip("/").split("/")[-2:-1] == ["Patient"]]
    if len(contained) + len(created) != 1:
        raise FhirError(
            400,
            "Der Patient nimmt genau einmal teil: als enthaltene Patient-Ressource (#id) oder"
            " als Patient/<id>, angelegt mit POST Patient.",
        )
    if created:
        found = reference_id(created[0], "Patient")
        if found is None:
            raise FhirError(422, "Diesen Patient gibt es nicht.", code="not-found")
        return {}, found
    if not isinstance(contained[0], Patient):
        raise FhirError(400, "Der Patient muss als enthaltene Patient-Ressource teilnehmen (#id).")
    return patient_fields(contained[0]), None


def patient_fields(patient: Patient) -> dict[str, Any]:
    """A Patient's booking fields (``patients.FIELDS``); 400 for what Konsil needs and misses."""
    name = name_of(patient)
    telecom = [t for t in patient.telecom or [] if t.system in ("email", "phone") and t.value]
    if not name or patient.birthDate is None or not telecom:
        raise FhirError(400, "Der Patient braucht name, birthDate und telecom (email/phone).")
    kvnr = [i.value for i in patient.identifier or [] if i.system == german.KVID_SYSTEM]
    if len(kvnr) > 1:
        raise FhirError(400, "Höchstens eine Versichertennummer (kvid-10) je Patient.")
    return {
        "patient_name": name,
        "patient_birth_date": patient.birthDate,
        "patient_contact": str(telecom[0].value),
        "patient_insurance_number": kvnr[0] if kvnr else None,
        "patient_sex": sex_of(patient),
    }


def sex_of(patient: Patient) -> str | None:
    """Konsil's sex for the Patient's ``gender`` and its ``gender-amtlich-de`` code; 400 for
    a code Konsil does not know."""
    try:
        return german.sex_from(patient.gender, _amtlich(patient))
    except german.UnknownGender as exc:
        raise FhirError(400, str(exc)) from None


def _amtlich(patient: Patient) -> str | None:
    """The code of the ``gender-amtlich-de`` extension on ``gender``, if there is one."""
    extensions = patient.gender__ext.extension if patient.gender__ext else None
    codes = [
        str(e.valueCoding.code or "")
        for e in extensions or []
        if e.url == german.GENDER_EXTENSION and e.valueCoding is not None
    ]
    if len(codes) > 1:
        raise FhirError(400, "Höchstens eine gender-amtlich-de-Erweiterung je Patient.")
    return codes[0] if codes else None


def patient_of(data: Any) -> Patient:
    """A Patient resource (``POST Patient``); 400 for anything else."""
    if not isinstance(data, dict) or data.get("resourceType") != "Patient":
        raise FhirError(400, "Erwartet wird eine Patient-Ressource.")
    try:
        return Patient.model_validate(data)
    except ValidationError as exc:
        raise FhirError(400, f"Ungültige Patient-Ressource: {first_error(exc)}") from None
    except (KeyError, TypeError, ValueError):
        # fhir.resources looks contained resources up by their type before pydantic checks
        # them: an unknown or non-string resourceType fails there.
        raise FhirError(400, "Ungültige Patient-Ressource: unbekannter resourceType.") from None


def name_of(patient: Patient) -> str:
    """The patient's name as one line (``text``, else given names and family)."""
    for name in patient.name or []:
        if name.text:
            return str(name.text)
        joined = " ".join([*(str(g) for g in name.given or []), str(name.family or "")]).strip()
        if joined:
            return joined
    return ""


def first_error(exc: ValidationError) -> str:
    """Where and what, of a resource's first validation error (short)."""
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}"[:200]


def cancel_patch(body: Any) -> None:
    """A JSON Patch that only cancels: ``replace`` (or ``add``) of ``/status`` with
    ``cancelled``, optionally ``/cancelationReason``. Anything else is 400, nothing done."""
    if not isinstance(body, list) or not body:
        raise FhirError(400, "Erwartet wird ein JSON Patch (eine Liste von Operationen).")
    cancels = False
    for op in body:
        if not isinstance(op, dict) or op.get("op") not in ("replace", "add"):
            raise FhirError(400, "Nur replace von /status (und /cancelationReason) ist erlaubt.")
        path = op.get("path")
        if path not in CANCEL_PATHS:
            raise FhirError(400, f"{str(path)[:60]} kann nicht geändert werden.")
        if path == "/status":
            if op.get("value") != "cancelled":
                raise FhirError(400, "Der Status kann nur auf cancelled gesetzt werden.")
            cancels = True
    if not cancels:
        raise FhirError(400, "Der Patch muss /status auf cancelled setzen.")
