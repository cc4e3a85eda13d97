"""``/fhir/R4`` reads of the complete Telekonsil: the request (``ServiceRequest``), the consent,
the documents (``DocumentReference``), the report (``DiagnosticReport``) and the letter
(``Composition/<id>/$document``); thin calls into the services the JSON API uses, with the
same access (the booking GP and the specialist; anyone else 404)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.accounts.models import Role
from app.db import utcnow
from app.fhir import telekonsil
from app.fhir.auth import caller
from app.fhir.outcome import FhirError, fhir_response
from app.fhir.routes import Handler, base_url, bundle, params, required_id
from app.fhir.search import reference_id
from app.records import service as records
from app.resources import db, settings
from app.scheduling import service

STAFF = (Role.GP, Role.SPECIALIST)


def _download_url(request: Request, appointment_id: int, document_id: int) -> str:
    base = settings(request).base_url.rstrip("/")
    return f"{base}/api/v1/appointments/{appointment_id}/documents/{document_id}"


async def read_service_request(request: Request) -> Response:
    who = await caller(request, *STAFF)
    appointment_id = required_id(request)
    async with db(request)() as session:
        found = await service.booking_detail(session, who=who, appointment_id=appointment_id)
        documents = await records.list_documents(session, who=who, appointment_id=appointment_id)
    return fhir_response(telekonsil.service_request(found, documents))


async def read_consent(request: Request) -> Response:
    who = await caller(request, *STAFF)
    appointment_id = required_id(request)
    async with db(request)() as session:
        found = await service.booking_detail(session, who=who, appointment_id=appointment_id)
    if found.consent_recorded_at is None:
        raise FhirError(404, "Für diese Anfrage ist keine Einwilligung erfasst.")
    return fhir_response(telekonsil.consent(found))


async def read_document_reference(request: Request) -> Response:
    who = await caller(request, *STAFF)
    document_id = required_id(request)
    async with db(request)() as session:
        document = await records.document_info(session, who=who, document_id=document_id)
        found = await service.booking_detail(
            session, who=who, appointment_id=document.appointment_id
        )
    url = _download_url(request, found.id, document.id)
    return fhir_response(telekonsil.document_reference(found, document, url=url))


async def search_document_references(request: Request) -> Response:
    """The documents of one request: ``related=ServiceRequest/<id>`` (required)."""
    who = await caller(request, *STAFF)
    related = params(request, ["related"]).first("related")
    if related is None:
        raise FhirError(400, "DocumentReference-Suche braucht related=ServiceRequest/<id>.")
    appointment_id = reference_id(related, "ServiceRequest")
    if appointment_id is None:
        return bundle(request, [])
    async with db(request)() as session:
        found = await service.booking_detail(session, who=who, appointment_id=appointment_id)
        documents = await records.list_documents(session, who=who, appointment_id=appointment_id)
    return bundle(
        request,
        [
            telekonsil.document_reference(found, d, url=_download_url(request, found.id, d.id))
            for d in documents
        ],
    )


async def read_diagnostic_report(request: Request) -> Response:
    who = await caller(request, *STAFF)
    appointment_id = required_id(request)
    async with db(request)() as session:
        found = await service.booking_detail(session, who=who, appointment_id=appointment_id)
        report = await records.read_report(session, who=who, appointment_id=appointment_id)
    return fhir_response(telekonsil.diagnostic_report(found, report))


async def composition_document(request: Request) -> Response:
    """``Composition/<id>/$document``: the report as a letter, a ``document`` Bundle (it
    carries the DiagnosticReport and the ServiceRequest: a token needs their scopes too)."""
    who = await caller(request, *STAFF, also=("DiagnosticReport", "ServiceRequest"))
    appointment_id = required_id(request)
    async with db(request)() as session:
        found = await service.booking_detail(session, who=who, appointment_id=appointment_id)
        report = await records.read_report(session, who=who, appointment_id=appointment_id)
    return fhir_response(telekonsil.letter(found, report, base=base_url(request), now=utcnow()))


TELEKONSIL: list[tuple[str, dict[str, Handler]]] = [
    ("/ServiceRequest/{id}", {"GET": read_service_request}),
    ("/Consent/{id}", {"GET": read_consent}),
    ("/DocumentReference", {"GET": search_document_references}),
    ("/DocumentReference/{id}", {"GET": read_document_reference}),
    ("/DiagnosticReport/{id}", {"GET": read_diagnostic_report}),
    ("/Composition/{id}/$document", {"GET": composition_document}),
]
