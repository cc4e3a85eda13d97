"""Documents and the report of an appointment (JSON API plus file download)."""

from __future__ import annotations

from urllib.parse import quote

import anyio
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.accounts.models import Role
from app.accounts.web import require_staff
from app.api import (
    api_route,
    limited_chunks,
    parse_json,
    path_id,
    refuse_declared_oversize,
    respond,
)
from app.db import unit_of_work
from app.errors import InvalidInput, PayloadTooLarge
from app.records import conversation
from app.records import service as records
from app.records.letter import download_name, letter_pdf
from app.records.schemas import DocumentOut, MessageIn, MessageOut, ReportIn, ReportOut
from app.resources import db, settings

STAFF = (Role.GP, Role.SPECIALIST)
# Room for the multipart boundaries, part headers and the file name around the file itself.
MULTIPART_OVERHEAD = 16 * 1024


async def upload_document(request: Request) -> Response:
    who = await require_staff(request, Role.GP)
    appointment_id = path_id(request)
    limit = settings(request).max_upload_bytes
    form = await _read_upload_form(request, limit)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput(fields=[{"field": "file", "message": "Datei fehlt."}])
        data = await upload.read(limit + 1)
    finally:
        await form.close()
    async with unit_of_work(db(request)) as session:
        document = await records.add_document(
            session,
            who=who,
            appointment_id=appointment_id,
            filename=upload.filename,
            declared_type=upload.content_type,
            data=data,
            max_bytes=limit,
        )
    return respond(document, status=201)


async def _read_upload_form(request: Request, limit: int) -> FormData:
    """The single file of a multipart body, refusing bodies beyond the limit while reading."""

    def too_large() -> Exception:
        return PayloadTooLarge(max_bytes=limit)

    refuse_declared_oversize(request, limit + MULTIPART_OVERHEAD, too_large)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidInput("Bitte die Datei als multipart/form-data im Feld 'file' senden.")
    chunks = limited_chunks(request, limit + MULTIPART_OVERHEAD, too_large)
    parser = MultiPartParser(request.headers, chunks, max_files=1, max_fields=2)
    try:
        return await parser.parse()
    except MultiPartException as exc:
        raise InvalidInput(f"Ungültiger Upload: {exc.message}") from None


async def list_documents(request: Request) -> Response:
    who = await require_staff(request, *STAFF)
    appointment_id = path_id(request)
    async with db(request)() as session:
        found = await records.list_documents(session, who=who, appointment_id=appointment_id)
    return respond(found)


async def download_document(request: Request) -> Response:
    who = await require_staff(request, *STAFF)
    appointment_id, document_id = path_id(request), path_id(request, "doc_id")
    async with unit_of_work(db(request)) as session:
        document = await records.get_document(
            session, who=who, appointment_id=appointment_id, document_id=document_id
        )
    ascii_name = document.filename.encode("ascii", "replace").decode().replace("?", "_")
    disposition = (
        f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(document.filename)}"
    )
    return Response(
        document.data,
        media_type=document.content_type,
        headers={
            "Content-Disposition": disposition,
            # Stricter than the pages' policy: an uploaded file never runs as a page.
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


async def put_report(request: Request) -> Response:
    who = await require_staff(request, Role.SPECIALIST)
    appointment_id = path_id(request)
    body = await parse_json(request, ReportIn)
    async with unit_of_work(db(request)) as session:
        report = await records.write_report(
            session, who=who, appointment_id=appointment_id, body=body.body
        )
    return respond(report)


async def post_message(request: Request) -> Response:
    who = await require_staff(request, *STAFF)
    appointment_id = path_id(request)
    body = await parse_json(request, MessageIn)
    async with unit_of_work(db(request)) as session:
        message = await conversation.post(
            session, who=who, appointment_id=appointment_id, body=body.body
        )
    return respond(message, status=201)


async def list_messages(request: Request) -> Response:
    who = await require_staff(request, *STAFF)
    appointment_id = path_id(request)
    async with db(request)() as session:
        found = await conversation.thread(session, who=who, appointment_id=appointment_id)
    return respond(found)


async def get_report(request: Request) -> Response:
    who = await require_staff(request, *STAFF)
    appointment_id = path_id(request)
    async with db(request)() as session:
        report = await records.read_report(session, who=who, appointment_id=appointment_id)
    return respond(report)


async def report_pdf(request: Request) -> Response:
    who = await require_staff(request, *STAFF)
    appointment_id = path_id(request)
    config = settings(request)
    async with unit_of_work(db(request)) as session:
        found = await records.report_letter(
            session,
            who=who,
            appointment_id=appointment_id,
            tz=config.tz,
            hospital=config.operator_name,
            hospital_address=config.operator_address,
        )
    # 0.1 s for a short report, 0.4 s for the longest: not on the event loop.
    pdf = await anyio.to_thread.run_sync(letter_pdf, found)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{download_name(found)}"',
            "Cache-Control": "no-store",
        },
    )


TAGS = ["records"]
ONE = "/api/v1/appointments/{id:int}"
routes: list[Route] = [
    api_route(
        ONE + "/conversation",
        list_messages,
        summary="Questions back and answers between the booking GP and the specialist",
        tags=TAGS,
        response=MessageOut,
        many=True,
        errors=[401, 403, 404],
    ),
    api_route(
        ONE + "/conversation",
        post_message,
        method="POST",
        summary="Write to the other side: the specialist asks back, the GP answers",
        tags=TAGS,
        body=MessageIn,
        response=MessageOut,
        status=201,
        errors=[401, 403, 404, 409, 422],
    ),
    api_route(
        ONE + "/documents",
        list_documents,
        summary="Documents of an appointment (metadata only)",
        tags=TAGS,
        response=DocumentOut,
        many=True,
        errors=[401, 403, 404],
    ),
    api_route(
        ONE + "/documents",
        upload_document,
        method="POST",
        summary="Upload a PDF, JPEG or PNG (booking GP; multipart/form-data, field 'file')",
        tags=TAGS,
        response=DocumentOut,
        status=201,
        errors=[401, 403, 404, 409, 413, 415, 422],
        upload=("file", list(records.MAGIC)),
    ),
    api_route(
        ONE + "/documents/{doc_id:int}",
        download_document,
        summary="Download a document (as an attachment)",
        tags=TAGS,
        content_type=list(records.MAGIC),
        errors=[401, 403, 404],
    ),
    api_route(
        ONE + "/report",
        get_report,
        summary="The specialist's report (booking GP and specialist)",
        tags=TAGS,
        response=ReportOut,
        errors=[401, 403, 404],
    ),
    api_route(
        ONE + "/report.pdf",
        report_pdf,
        summary="The report as a German doctor's letter (Arztbrief, A4 PDF, as an attachment; "
        "booking GP and specialist)",
        tags=TAGS,
        content_type="application/pdf",
        errors=[401, 403, 404],
    ),
    api_route(
        ONE + "/report",
        put_report,
        method="PUT",
        summary="Write or update the report (the appointment's specialist)",
        tags=TAGS,
        body=ReportIn,
        response=ReportOut,
        errors=[401, 403, 404, 409],
    ),
]
