"""``/fhir/R4`` reads of the complete Telekonsil: the request (``ServiceRequest``), the consent,
the documents (``DocumentReference``), the report (``DiagnosticReport``) and the letter
(``Composition/<id>/$document``); thin calls into the services the JSON API uses, with the
same access (the booking GP and the specialist; anyone else 404)."""

from __future__ import annotations

import json

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from app.accounts.models import Role
from app.api import validate
from app.db import unit_of_work, utcnow
from app.fhir import directory, telekonsil
from app.fhir.auth import caller
from app.fhir.outcome import FhirError, fhir_response
from app.fhir.routes import FHIR_JSON, Handler, base_url, bundle, params, read_json, required_id
from app.fhir.search import reference_id
from app.fhir.written import written_request
from app.records import service as records
from app.resources import db, settings
from app.scheduling import service, written
from app.scheduling.routes import REPLAYED_HEADER, created_once
from app.scheduling.schemas import AppointmentOut, WrittenIn

STAFF = (Role.GP, Role.SPECIALIST)


def _download_url(request: Request, document_id: int) -> str:
    """The document's bytes on this endpoint (``Binary``), for sessions and tokens alike."""
    return f"{base_url(request)}/Binary/{document_id}"


async def read_service_request(request: Request) -> Response:
    who = await caller(request, *STAFF)
    appointment_id = required_id(request)
    async with db(request)() as session:
        found = await service.booking_detail(session, who=who, appointment_id=appointment_id)
        documents = await records.list_documents(session, who=who, appointment_id=appointment_id)
    return fhir_response(telekonsil.service_request(found, documents))


async def create_service_request(request: Request) -> Response:
    """A written Telekonsil sent as a ServiceRequest (``app.fhir.written``): the JSON API's
    request with its checks and its cap, retry-safe with an ``Idempotency-Key``."""
    who = await caller(request, Role.GP)
    key, fields = written_request(await read_json(request, FHIR_JSON))
    async with db(request)() as session:
        specialty = await directory.specialty(session, str(key))
    if specialty is None:
        raise FhirError(422, "Dieses Fachgebiet gibt es nicht.", code="not-found")
    body = validate(WrittenIn, {"specialty_id": specialty.id, **fields})
    cfg = settings(request)

    async def create(session: AsyncSession) -> AppointmentOut:
        return await written.request(session, settings=cfg, who=who, details=body)

    answer = await created_once(request, f"fhir-written:gp:{who.user_id}", body, create)
    found = AppointmentOut.model_validate(json.loads(bytes(answer.body)))
    headers = {"Location": f"{base_url(request)}/ServiceRequest/{found.id}"}
    if REPLAYED_HEADER in answer.headers:
        headers[REPLAYED_HEADER] = "true"
    return fhir_response(telekonsil.service_request(found, []), 201, headers)


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
    url = _download_url(request, document.id)
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
            telekonsil.document_reference(found, d, url=_download_url(request, d.id))
            for d in documents
        ],
    )


async def read_binary(request: Request) -> Response:
    """A document the GP attached: its bytes as they were uploaded (with ``Accept:
    application/fhir+json``, a Binary resource carrying them base64-encoded); the download is
    audited as on the JSON API."""
    who = await caller(request, *STAFF)
    document_id = required_id(request)
    async with unit_of_work(db(request)) as session:
        info = await records.document_info(session, who=who, document_id=document_id)
        document = await records.get_document(
            session, who=who, appointment_id=info.appointment_id, document_id=document_id
        )
    if "fhir+json" in request.headers.get("accept", ""):
        return fhir_response(telekonsil.binary(document_id, document.content_type, document.data))
    return Response(
        document.data,
        media_type=document.content_type,
        headers={
            "Content-Disposition": "attachment",
            # An uploaded file never runs as a page.
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
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
    letter = telekonsil.letter(
        found, report, base=base_url(request), now=utcnow(), tz=settings(request).tz
    )
    return fhir_response(letter)


TELEKONSIL: list[tuple[str, dict[str, Handler]]] = [
    ("/ServiceRequest", {"POST": create_service_request}),
    ("/ServiceRequest/{id}", {"GET": read_service_request}),
    ("/Consent/{id}", {"GET": read_consent}),
    ("/DocumentReference", {"GET": search_document_references}),
    ("/DocumentReference/{id}", {"GET": read_document_reference}),
    ("/Binary/{id}", {"GET": read_binary}),
    ("/DiagnosticReport/{id}", {"GET": read_diagnostic_report}),
    ("/Composition/{id}/$document", {"GET": composition_document}),
]
