"""A written Telekonsil sent as a FHIR ``ServiceRequest`` (``POST /fhir/R4/ServiceRequest``),
as Konsil's own input (pure): close to what a read answers (which names the specialty in text
and the consent as ``Consent/<id>``; a new request codes the one and contains the other).

Konsil needs: ``status`` ``active``, ``intent`` ``order``; the patient as a contained Patient
the ``subject`` references (name, birthDate; optionally the insurance number as a ``kvid-10``
identifier and ``gender``); the specialty asked as ``performerType`` coded in
``urn:konsil:fhir:specialty`` (a HealthcareService's code) or a ``performer`` reference
``HealthcareService/<id>``; the clinical question as the first ``note`` (a further note
starting "Aktuelle Medikation:" carries the medication); the (suspected) diagnosis as a
``reasonCode`` with an ICD-10-GM coding; the day the answer is needed by in
``occurrencePeriod.end``; and the patient's consent as a contained ``Consent`` (status
``active``) that ``supportingInfo`` references. ``priority`` ``urgent`` (or ``asap``, ``stat``)
is urgent, anything else routine. What is not a valid resource, or lacks any of it, is 400; the
checks of the values themselves are the JSON API's (422).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fhir.resources.R4B.consent import Consent
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.servicerequest import ServiceRequest
from pydantic import ValidationError

from app.fhir import german
from app.fhir.booking import first_error, name_of, sex_of
from app.fhir.outcome import FhirError
from app.fhir.resources import SPECIALTY_SYSTEM
from app.fhir.search import row_id
from app.scheduling.models import Urgency

MEDICATION = "Aktuelle Medikation:"
URGENT = frozenset({"urgent", "asap", "stat"})


def written_request(data: Any) -> tuple[int | str, dict[str, Any]]:
    """The specialty asked (a HealthcareService id, or its code) and the ``WrittenIn`` fields
    a ServiceRequest asks for."""
    if not isinstance(data, dict) or data.get("resourceType") != "ServiceRequest":
        raise FhirError(400, "Erwartet wird eine ServiceRequest-Ressource.")
    try:
        request = ServiceRequest.model_validate(data)
    except ValidationError as exc:
        raise FhirError(400, f"Ungültige ServiceRequest-Ressource: {first_error(exc)}") from None
    except (KeyError, TypeError, ValueError):
        # fhir.resources looks contained resources up by their type before pydantic checks
        # them: an unknown or non-string resourceType fails there.
        raise FhirError(
            400, "Ungültige ServiceRequest-Ressource: unbekannter resourceType."
        ) from None
    if request.status != "active" or request.intent != "order":
        raise FhirError(400, "Ein neues Telekonsil hat status active und intent order.")
    if request.priority not in (None, "routine", *URGENT):
        raise FhirError(400, "priority ist routine, urgent, asap oder stat.")
    contained = {f"#{c.id}": c for c in request.contained or [] if c.id}
    patient = contained.get(str(request.subject.reference or ""))
    if not isinstance(patient, Patient):
        raise FhirError(400, "subject muss eine enthaltene Patient-Ressource sein (#id).")
    name = name_of(patient)
    if not name or patient.birthDate is None:
        raise FhirError(400, "Der Patient braucht name und birthDate.")
    kvnr = [i.value for i in patient.identifier or [] if i.system == german.KVID_SYSTEM]
    if len(kvnr) > 1:
        raise FhirError(400, "Höchstens eine Versichertennummer (kvid-10) je Patient.")
    notes = [str(n.text) for n in request.note or [] if n.text]
    question = next((n for n in notes if not n.startswith(MEDICATION)), "")
    medication = next((n for n in notes if n.startswith(MEDICATION)), None)
    reasons = [r.model_dump(mode="json", exclude_none=True) for r in request.reasonCode or []]
    diagnoses = [r for r in reasons if german.is_icd10gm(r)]
    if len(diagnoses) > 1:
        raise FhirError(400, "Höchstens ein reasonCode mit ICD-10-GM-Code (die Diagnose).")
    period = request.occurrencePeriod
    if period is None or period.end is None:
        raise FhirError(400, "occurrencePeriod.end: der Tag, bis zu dem die Antwort nötig ist.")
    consents = [
        contained.get(str(s.reference or ""))
        for s in request.supportingInfo or []
        if str(s.reference or "").startswith("#")
    ]
    consented = any(isinstance(c, Consent) and c.status == "active" for c in consents)
    if not consented:
        raise FhirError(
            400,
            "Die Einwilligung der Patientin oder des Patienten: eine enthaltene Consent-Ressource "
            "(status active), auf die supportingInfo verweist.",
        )
    fields = {
        "patient_name": name,
        "patient_birth_date": patient.birthDate,
        "patient_insurance_number": kvnr[0] if kvnr else None,
        "patient_sex": sex_of(patient),
        **(german.diagnosis_from(diagnoses[0]) if diagnoses else {}),
        "clinical_question": question,
        "medication": medication[len(MEDICATION) :].strip() if medication else None,
        "answer_by": _day(period.end),
        "consent_recorded": True,
        "urgency": Urgency.URGENT if request.priority in URGENT else Urgency.ROUTINE,
    }
    return _specialty(request), fields


def _day(value: object) -> date:
    """The day of a FHIR dateTime (a day, or a moment: its day as written)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    raise FhirError(400, "occurrencePeriod.end braucht einen ganzen Tag (JJJJ-MM-TT).")


def _specialty(request: ServiceRequest) -> int | str:
    """The HealthcareService's id (``performer``) or its code (``performerType``)."""
    for performer in request.performer or []:
        parts = str(performer.reference or "").rstrip("/").split("/")
        if len(parts) >= 2 and parts[-2] == "HealthcareService":
            number = row_id(parts[-1])
            if number is None:
                raise FhirError(422, "Diesen HealthcareService gibt es nicht.", code="not-found")
            return number
    codes = [
        str(c.code)
        for c in (request.performerType.coding or [] if request.performerType else [])
        if c.system == SPECIALTY_SYSTEM and c.code
    ]
    if len(codes) != 1:
        raise FhirError(
            400,
            f"Das Fachgebiet: performerType mit einem Code aus {SPECIALTY_SYSTEM} oder performer "
            "HealthcareService/<id>.",
        )
    return codes[0]
