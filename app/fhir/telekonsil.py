"""The complete Telekonsil request and its answer as FHIR resources (pure): the request as a
``ServiceRequest`` (question, diagnosis, medication, deadline, requester and performer), the
recorded consent as a ``Consent``, the GP's documents as ``DocumentReference``s, the report as
a ``DiagnosticReport`` and, as a letter, a ``document`` Bundle led by a ``Composition``.

Ids: a request's ServiceRequest, Consent, DiagnosticReport and Composition carry its
appointment's id; a DocumentReference the document's. The patient is contained in each
resource that names it (Konsil keeps no Patient resources)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from fhir.resources.R4B.binary import Binary
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.composition import Composition
from fhir.resources.R4B.consent import Consent
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.servicerequest import ServiceRequest

from app.fhir import german
from app.fhir.outcome import dump
from app.fhir.resources import CONTAINED_PATIENT, contained_patient
from app.records.letter import consulted_at
from app.records.schemas import DocumentOut, ReportOut
from app.scheduling.models import AppointmentKind, AppointmentStatus, Urgency
from app.scheduling.schemas import AppointmentOut

PATIENT_REF = {"reference": f"#{CONTAINED_PATIENT}"}
LOINC = "http://loinc.org"
# LOINC 11488-4 "Consult note"; 59284-0 "Patient Consent".
CONSULT_NOTE = {"system": LOINC, "code": "11488-4", "display": "Consult note"}
TELEKONSIL = {"text": "Telekonsil"}


def _status(found: AppointmentOut) -> str:
    if found.status is AppointmentStatus.CANCELLED:
        return "revoked"
    if found.has_report or found.status is AppointmentStatus.COMPLETED:
        return "completed"
    return "active"


def _patient(found: AppointmentOut) -> dict[str, Any]:
    return {"display": found.patient_name, **PATIENT_REF}


def _doctor(name: str, lanr: str | None) -> dict[str, Any]:
    """A doctor named by display and, where recorded, LANR."""
    return {"display": name, **({"identifier": german.lanr_identifier(lanr)} if lanr else {})}


def service_request(found: AppointmentOut, documents: Sequence[DocumentOut]) -> dict[str, Any]:
    """The GP's Telekonsil request (Telekonsilien-Vereinbarung § 3)."""
    data: dict[str, Any] = {
        "id": str(found.id),
        "contained": [contained_patient(found)],
        "status": _status(found),
        "intent": "order",
        "priority": "urgent" if found.urgency is Urgency.URGENT else "routine",
        "code": TELEKONSIL,
        "subject": _patient(found),
        "authoredOn": found.created_at,
        "requester": _doctor(found.gp_name, found.gp_lanr),
        "note": [{"text": found.clinical_question}],
    }
    if found.specialty:
        data["performerType"] = {"text": found.specialty}
    if found.kind is AppointmentKind.WRITTEN:
        # Answered in writing, without video (no Appointment belongs to it).
        data["category"] = [{"text": "Schriftliches Telekonsil (ohne Video)"}]
    if found.specialist_id is not None:
        data["performer"] = [
            {"reference": f"Practitioner/{found.specialist_id}", "display": found.specialist_name}
        ]
    diagnosis = german.diagnosis_concept(
        found.diagnosis_code, found.diagnosis_certainty, found.diagnosis_text
    )
    if diagnosis:
        data["reasonCode"] = [diagnosis]
    if found.medication:
        data["note"].append({"text": f"Aktuelle Medikation:\n{found.medication}"})
    if found.answer_by is not None:
        # The day the answer is needed by: the end of the period the service is to happen in.
        data["occurrencePeriod"] = {"end": found.answer_by.isoformat()}
    supporting = [
        {"reference": f"DocumentReference/{d.id}", "display": d.filename} for d in documents
    ]
    if found.consent_recorded_at is not None:
        supporting.append({"reference": f"Consent/{found.id}"})
    if supporting:
        data["supportingInfo"] = supporting
    return dump(ServiceRequest.model_validate(data))


def consent(found: AppointmentOut) -> dict[str, Any]:
    """The patient's consent to the Telekonsil, as the GP recorded it."""
    assert found.consent_recorded_at is not None
    return dump(
        Consent.model_validate(
            {
                "id": str(found.id),
                "contained": [contained_patient(found)],
                "status": "active",
                "scope": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                            "code": "patient-privacy",
                        }
                    ]
                },
                "category": [{"coding": [{"system": LOINC, "code": "59284-0"}]}],
                "patient": _patient(found),
                "dateTime": found.consent_recorded_at,
                "performer": [{"display": found.gp_name}],
                "policyRule": {
                    "text": "Telekonsilien-Vereinbarung § 3: Einwilligung der Patientin bzw. "
                    "des Patienten"
                },
                "provision": {
                    "data": [
                        {
                            "meaning": "related",
                            "reference": {"reference": f"ServiceRequest/{found.id}"},
                        }
                    ]
                },
            }
        )
    )


def document_reference(found: AppointmentOut, document: DocumentOut, *, url: str) -> dict[str, Any]:
    """A document the GP attached; ``url`` downloads it (``Binary/<id>``, same access)."""
    return dump(
        DocumentReference.model_validate(
            {
                "id": str(document.id),
                "contained": [contained_patient(found)],
                "status": "current",
                "subject": _patient(found),
                "date": document.created_at,
                "description": document.filename,
                "content": [
                    {
                        "attachment": {
                            "contentType": document.content_type,
                            "url": url,
                            "size": document.size,
                            "title": document.filename,
                            "creation": document.created_at,
                        }
                    }
                ],
                "context": {"related": [{"reference": f"ServiceRequest/{found.id}"}]},
            }
        )
    )


def binary(document_id: int, content_type: str, data: bytes) -> dict[str, Any]:
    """A document's bytes as a Binary resource."""
    encoded = base64.b64encode(data).decode("ascii")
    resource = {"id": str(document_id), "contentType": content_type, "data": encoded}
    return dump(Binary.model_validate(resource))


def diagnostic_report(found: AppointmentOut, report: ReportOut) -> dict[str, Any]:
    """The specialist's answer to the request."""
    return dump(
        DiagnosticReport.model_validate(
            {
                "id": str(found.id),
                "contained": [contained_patient(found)],
                "basedOn": [{"reference": f"ServiceRequest/{found.id}"}],
                "status": "final",
                "code": {"coding": [CONSULT_NOTE], "text": "Telekonsiliarische Beurteilung"},
                "subject": _patient(found),
                "issued": report.updated_at,
                "performer": [
                    {"reference": f"Practitioner/{report.author_id}", "display": report.author_name}
                ],
                "conclusion": report.body,
            }
        )
    )


def letter(
    found: AppointmentOut, report: ReportOut, *, base: str, now: datetime, tz: ZoneInfo
) -> dict[str, Any]:
    """The report as a letter: a ``document`` Bundle of a Composition (the Arztbrief's
    sections), the DiagnosticReport and the ServiceRequest it answers; titled with the
    Telekonsil's local day as the PDF letter is (the call's, a written one's first answer's,
    else the slot's)."""
    held = consulted_at(found.kind, found.admitted_at, found.starts_at, report.created_at)
    consulted_on = held.astimezone(tz)
    request = service_request(found, [])
    answer = diagnostic_report(found, report)
    sections = [
        {"title": "Fragestellung", "text": _narrative(found.clinical_question)},
        {
            "title": "Beurteilung",
            "text": _narrative(report.body),
            "entry": [{"reference": f"DiagnosticReport/{found.id}"}],
        },
    ]
    composition = dump(
        Composition.model_validate(
            {
                "id": str(found.id),
                "contained": [contained_patient(found)],
                "status": "final",
                "type": {"coding": [CONSULT_NOTE], "text": "Arztbrief (Telekonsil)"},
                "subject": _patient(found),
                "date": report.updated_at,
                "author": [
                    {"reference": f"Practitioner/{report.author_id}", "display": report.author_name}
                ],
                "title": f"Arztbrief zum Telekonsil vom {consulted_on:%d.%m.%Y}",
                "section": sections,
            }
        )
    )
    entries = [composition, answer, request]
    return dump(
        Bundle.model_validate(
            {
                "type": "document",
                "identifier": {
                    "system": "urn:ietf:rfc:3986",
                    "value": f"{base}/Composition/{found.id}",
                },
                "timestamp": now,
                "entry": [
                    {"fullUrl": f"{base}/{e['resourceType']}/{e['id']}", "resource": e}
                    for e in entries
                ],
            }
        )
    )


def _narrative(text: str) -> dict[str, Any]:
    """Plain text as XHTML narrative (escaped, line breaks kept)."""
    lines = "<br/>".join(escape(line) for line in text.splitlines())
    return {
        "status": "generated",
        "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{lines}</div>',
    }
