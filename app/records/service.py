"""Documents the GP attaches to a booking, and the specialist's report (services)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer
from sqlmodel import col, select

from app.accounts.models import Practice, User
from app.accounts.service import Principal
from app.audit import service as audit
from app.db import unit_of_work, utcnow
from app.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RecordsDeleted,
    UnsupportedMediaType,
)
from app.logging import get_logger
from app.records.letter import Call, Letter, Particulars, consulted_at
from app.records.models import Document, Report
from app.records.schemas import DocumentOut, ReportOut
from app.resources import Resources
from app.rooms import service as rooms
from app.rooms.state import BEGUN
from app.scheduling.access import is_gp_of, is_specialist_of, visible_appointment
from app.scheduling.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    RoomState,
    Specialty,
)

log = get_logger("konsil.records")
MAX_DOCUMENTS = 20
# Declared type -> the file's first bytes. Both must agree: the name and the header are
# chosen by the client, the bytes are what a viewer will actually parse.
MAGIC = {
    "application/pdf": (b"%PDF-",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
}
EXTENSIONS = {"application/pdf": ".pdf", "image/jpeg": ".jpg", "image/png": ".png"}


@dataclass(frozen=True)
class Download:
    filename: str
    content_type: str
    data: bytes


def sniff(data: bytes) -> str | None:
    """The allowed content type the bytes really are, if any."""
    for content_type, prefixes in MAGIC.items():
        if data.startswith(prefixes):
            return content_type
    return None


def clean_filename(name: str | None, content_type: str) -> str:
    """A display name without paths, control characters or quotes, with a fitting extension."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(c for c in base if unicodedata.category(c)[0] != "C")
    base = re.sub(r'["<>:|?*;]', "_", base).strip(" .") or "dokument"
    stem, dot, ext = base.rpartition(".")
    allowed = {EXTENSIONS[content_type]} | ({".jpeg"} if content_type == "image/jpeg" else set())
    if dot and stem and "." + ext.lower() in allowed:
        stem, ext = stem, "." + ext.lower()
    else:
        stem, ext = base, EXTENSIONS[content_type]
    return stem[:140] + ext


async def add_document(
    session: AsyncSession,
    *,
    who: Principal,
    appointment_id: int,
    filename: str | None,
    declared_type: str | None,
    data: bytes,
    max_bytes: int,
) -> DocumentOut:
    """Stores a PDF, JPEG or PNG for the booking (the booking GP only)."""
    appointment = await visible_appointment(session, who=who, appointment_id=appointment_id)
    if not is_gp_of(who, appointment):
        raise Forbidden("Nur die buchende Praxis kann Dokumente hochladen.")
    if appointment.status == AppointmentStatus.CANCELLED:
        raise Conflict("Der Termin wurde abgesagt.")
    if len(data) > max_bytes:
        raise PayloadTooLarge(max_bytes=max_bytes)
    content_type = (declared_type or "").split(";", 1)[0].strip().lower()
    if content_type not in MAGIC or sniff(data) != content_type:
        raise UnsupportedMediaType()
    if await _document_count(session, appointment_id) >= MAX_DOCUMENTS:
        raise Conflict(f"Höchstens {MAX_DOCUMENTS} Dokumente je Termin.")
    assert who.user_id is not None
    document = Document(
        appointment_id=appointment_id,
        uploaded_by=who.user_id,
        filename=clean_filename(filename, content_type),
        content_type=content_type,
        size=len(data),
        data=data,
    )
    session.add(document)
    await session.flush()
    audit.record_for(session, who, "document.uploaded", appointment_id, document_id=document.id)
    return DocumentOut.model_validate(document)


async def _document_count(session: AsyncSession, appointment_id: int) -> int:
    query = select(func.count()).where(col(Document.appointment_id) == appointment_id)
    return int((await session.execute(query)).scalar_one())


async def list_documents(
    session: AsyncSession, *, who: Principal, appointment_id: int
) -> list[DocumentOut]:
    await visible_appointment(session, who=who, appointment_id=appointment_id)
    # The listing never loads the file contents.
    query = (
        select(Document)
        .options(defer(Document.data))  # type: ignore[arg-type]
        .where(col(Document.appointment_id) == appointment_id)
        .order_by(col(Document.id))
    )
    return [DocumentOut.model_validate(d) for d in (await session.execute(query)).scalars()]


async def document_info(session: AsyncSession, *, who: Principal, document_id: int) -> DocumentOut:
    """One document's metadata, if ``who`` may see its appointment (else as if none)."""
    document = (
        await session.execute(
            select(Document)
            .options(defer(Document.data))  # type: ignore[arg-type]
            .where(col(Document.id) == document_id)
        )
    ).scalar_one_or_none()
    if document is None:
        raise NotFound("Dieses Dokument gibt es nicht.")
    await visible_appointment(session, who=who, appointment_id=document.appointment_id)
    return DocumentOut.model_validate(document)


async def get_document(
    session: AsyncSession, *, who: Principal, appointment_id: int, document_id: int
) -> Download:
    await visible_appointment(session, who=who, appointment_id=appointment_id)
    document = await session.get(Document, document_id)
    if document is None or document.appointment_id != appointment_id:
        raise NotFound("Dieses Dokument gibt es nicht.")
    audit.record_for(session, who, "document.downloaded", appointment_id, document_id=document_id)
    return Download(document.filename, document.content_type, document.data)


async def write_report(
    session: AsyncSession,
    *,
    who: Principal,
    appointment_id: int,
    body: str,
    now: datetime | None = None,
) -> ReportOut:
    """Writes or updates the report (the appointment's specialist only).

    Allowed once the appointment has started or its consultation has begun (admitted, in a
    call or ended), never for a cancelled one. A booked appointment counts as completed once
    its report is written.
    """
    now = now or utcnow()
    appointment = await visible_appointment(
        session, who=who, appointment_id=appointment_id, lock=True
    )
    if not is_specialist_of(who, appointment):
        raise Forbidden("Nur die Fachärztin bzw. der Facharzt des Termins schreibt den Bericht.")
    if appointment.status == AppointmentStatus.CANCELLED:
        raise Conflict("Der Termin wurde abgesagt.")
    if not has_begun(appointment, now):
        raise Conflict(
            "Der Bericht kann erst ab Beginn des Termins oder der Konsultation geschrieben werden."
        )
    report = await _report_of(session, appointment_id)
    assert who.user_id is not None
    if report is None:
        report = Report(
            appointment_id=appointment_id,
            author_id=who.user_id,
            body=body,
            created_at=now,
            updated_at=now,
        )
        session.add(report)
    else:
        report.body, report.author_id, report.updated_at = body, who.user_id, now
    rooms.complete_by_report(session, appointment, now)
    await session.flush()
    audit.record_for(session, who, "report.written", appointment_id, report_id=report.id)
    return await _report_out(session, report)


def has_begun(appointment: Appointment, now: datetime) -> bool:
    """Whether the consultation may have taken place, so that a report makes sense: its slot
    has started, or the specialist admitted the patient (even one sent back since)."""
    return (
        now >= appointment.starts_at
        or appointment.room_state in BEGUN
        or rooms.admitted_before(appointment)
    )


async def read_report(session: AsyncSession, *, who: Principal, appointment_id: int) -> ReportOut:
    _, report = await _readable_report(session, who=who, appointment_id=appointment_id)
    return await _report_out(session, report)


async def _readable_report(
    session: AsyncSession, *, who: Principal, appointment_id: int
) -> tuple[Appointment, Report]:
    """The appointment and its report, for whoever may read it: its booking GP and its
    specialist (the report as text and as a letter)."""
    appointment = await visible_appointment(session, who=who, appointment_id=appointment_id)
    report = await _report_of(session, appointment_id)
    if report is None and appointment.reported_at is not None:
        # Written once, deleted by retention (app.retention) after KONSIL_RETENTION_RECORDS_DAYS.
        raise RecordsDeleted()
    if report is None:
        raise NotFound("Es gibt noch keinen Bericht.")
    return appointment, report


async def report_letter(
    session: AsyncSession,
    *,
    who: Principal,
    appointment_id: int,
    tz: ZoneInfo,
    hospital: str | None = None,
    hospital_address: str | None = None,
) -> Letter:
    """What the report's letter says (``app.records.letter``), for whoever may read the
    report; the download is audited. ``hospital``: the operator, as the sender."""
    appointment, report = await _readable_report(session, who=who, appointment_id=appointment_id)
    author = await session.get(User, report.author_id)
    gp = await session.get(User, appointment.gp_id)
    specialty_id = (author.specialty_id if author else None) or appointment.specialty_id
    specialty = await session.get(Specialty, specialty_id) if specialty_id else None
    practice_id = appointment.practice_id or (gp.practice_id if gp else None)
    practice = await session.get(Practice, practice_id) if practice_id else None
    audit.record_for(session, who, "report.downloaded", appointment_id, report_id=report.id)
    return Letter(
        appointment_id=appointment_id,
        written_at=report.updated_at.astimezone(tz),
        requested_at=appointment.created_at.astimezone(tz),
        consulted_on=consulted_at(
            appointment.kind, appointment.admitted_at, appointment.starts_at, report.created_at
        )
        .astimezone(tz)
        .date(),
        specialist_name=author.display_name if author else "",
        gp_name=gp.display_name if gp else "",
        patient_name=appointment.patient_name,
        patient_birth_date=appointment.patient_birth_date,
        question=appointment.clinical_question,
        report=report.body,
        specialty=specialty.name_de if specialty else None,
        hospital=hospital or None,
        hospital_address=hospital_address or None,
        practice_name=practice.name if practice else None,
        practice_town=practice.town if practice else None,
        specialist_lanr=author.lanr if author else None,
        gp_lanr=gp.lanr if gp else None,
        practice_bsnr=practice.bsnr if practice else None,
        particulars=_particulars(appointment, tz),
        call=_call(appointment, tz),
        written=appointment.kind is AppointmentKind.WRITTEN,
    )


def _particulars(appointment: Appointment, tz: ZoneInfo) -> Particulars:
    consent = appointment.consent_recorded_at
    return Particulars(
        patient_sex=appointment.patient_sex,
        insurance_number=appointment.patient_insurance_number,
        diagnosis_code=appointment.diagnosis_code,
        diagnosis_certainty=appointment.diagnosis_certainty,
        diagnosis_text=appointment.diagnosis_text,
        medication=appointment.medication,
        answer_by=appointment.answer_by,
        consent_recorded_at=consent.astimezone(tz) if consent else None,
    )


def _call(appointment: Appointment, tz: ZoneInfo) -> Call | None:
    """The video consultation: from the (last) admission to the room's end, if it ended."""
    if appointment.admitted_at is None:
        return None
    ended = appointment.ended_at if appointment.room_state is RoomState.ENDED else None
    return Call(
        started=appointment.admitted_at.astimezone(tz),
        ended=ended.astimezone(tz) if ended else None,
    )


async def _report_of(session: AsyncSession, appointment_id: int) -> Report | None:
    query = select(Report).where(col(Report.appointment_id) == appointment_id)
    return (await session.execute(query)).scalar_one_or_none()


async def _report_out(session: AsyncSession, report: Report) -> ReportOut:
    author = await session.get(User, report.author_id)
    return ReportOut(
        appointment_id=report.appointment_id,
        author_id=report.author_id,
        author_name=author.display_name if author else "",
        body=report.body,
        created_at=report.created_at,
        updated_at=report.updated_at,
    )


async def mark_reported(session: AsyncSession) -> int:
    """Sets ``reported_at`` where a report exists but the appointment does not say so: reports
    written by a process of the release before 0004 during a rolling upgrade. Run at start-up;
    it looks up only the appointments that have a report (by primary key)."""
    result = await session.execute(
        update(Appointment)
        .where(col(Appointment.id).in_(select(Report.appointment_id)))
        .where(col(Appointment.reported_at).is_(None))
        .values(
            reported_at=select(Report.created_at)
            .where(Report.appointment_id == Appointment.id)
            .scalar_subquery()
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


@asynccontextmanager
async def lifespan(res: Resources) -> AsyncIterator[None]:
    """Registered in ``app.main.PACKAGE_LIFESPANS``."""
    try:
        async with unit_of_work(res.sessions) as session:
            marked = await mark_reported(session)
    except SQLAlchemyError as exc:
        # The database is down or not migrated yet: start anyway; the next start marks them.
        log.warning("records.mark_reported_failed", error=type(exc).__name__)
    else:
        if marked:
            log.info("records.marked_reported", appointments=marked)
    yield
