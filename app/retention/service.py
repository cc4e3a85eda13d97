"""Applies the retention rule (``policy``) to the database: one transaction per batch.

Each step claims at most ``batch`` rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two
processes running at once take disjoint rows and never wait on each other's locks; SQLite has
one writer at a time), deletes what hangs off them, deletes or reduces them, and commits. A
long backlog is worked off in many short transactions instead of one long lock. Every step is
idempotent: what is gone is not found again, so a second run, or a run that died halfway,
just carries on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, or_, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from app.accounts.models import AuthSession
from app.audit.models import AuditEvent, AuditPermit
from app.db import unit_of_work, utcnow
from app.events.outbox import OutboxEvent
from app.fhir.jobs import FhirJob
from app.fhir.patients import FhirPatient
from app.idempotency import IdempotentResponse
from app.metrics import RETENTION_AUDIT_REDUCED, RETENTION_DELETED
from app.notify.delays import DelayNotice
from app.notify.models import OutgoingMessage
from app.records.models import ConsultMessage, Document, Report
from app.retention import policy
from app.rooms.models import SpecialistDelay
from app.scheduling.models import Appointment, GuestInvitation, JoinToken
from app.settings import Settings

BATCH = 200

# The tables that reference an appointment, each under the name its deletions are counted by.
# A new table with a foreign key to ``appointment`` must be added here (a test checks).
CHILDREN: tuple[tuple[str, Any], ...] = (
    ("messages", OutgoingMessage),
    ("delay_notices", DelayNotice),
    ("documents", Document),
    ("reports", Report),
    ("conversation", ConsultMessage),
    ("links", JoinToken),
    ("guests", GuestInvitation),
    ("sessions", AuthSession),
)
KINDS = (
    "appointments",
    "documents",
    "reports",
    "links",
    "guests",
    "sessions",
    "messages",
    "delay_notices",
    "conversation",
    "events",
    "idempotent_responses",
    "fhir_jobs",
    "fhir_patients",
    "late_notices",
    "audit_events",
)

Counts = dict[str, int]
Step = Callable[[AsyncSession, policy.Cutoffs, datetime, int], Awaitable[tuple[Counts, bool]]]


async def run(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    now: datetime | None = None,
    batch: int = BATCH,
) -> Counts:
    """Deletes (or reduces) everything due at ``now``; returns how many rows of each kind
    (``KINDS``, and ``audit_reduced``) this run changed."""
    now = now or utcnow()
    cut = policy.cutoffs(settings, now)
    counts: Counts = dict.fromkeys((*KINDS, "audit_reduced"), 0)
    for step in STEPS:
        more = True
        while more:
            async with unit_of_work(sessions) as session:
                await _secure_delete(session)
                done, more = await step(session, cut, now, batch)
            for kind, number in done.items():
                counts[kind] += number
                if kind == "audit_reduced":
                    RETENTION_AUDIT_REDUCED.inc(number)
                else:
                    RETENTION_DELETED.labels(kind=kind).inc(number)
    return counts


async def _secure_delete(session: AsyncSession) -> None:
    # SQLite keeps deleted content in free pages of the file until they are reused: have it
    # overwritten (the setting stays on this pooled connection, which costs a little I/O on
    # later deletes and nothing else). PostgreSQL: docs/deploy.md "Retention" on VACUUM.
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(text("PRAGMA secure_delete = ON"))


async def _claim(
    session: AsyncSession, key: Any, *where: ColumnElement[bool], batch: int
) -> list[Any]:
    """Up to ``batch`` keys of due rows, locked for this transaction; rows another process
    holds are skipped (it is deleting them)."""
    query = select(key).where(*where).order_by(key).limit(batch).with_for_update(skip_locked=True)
    return list((await session.execute(query)).scalars())


async def _delete(session: AsyncSession, model: Any, where: ColumnElement[bool]) -> int:
    result = await session.execute(delete(model).where(where))
    return int(getattr(result, "rowcount", 0) or 0)


async def _records(
    session: AsyncSession, cut: policy.Cutoffs, now: datetime, batch: int
) -> tuple[Counts, bool]:
    """Documents and reports, ``retention_records_days`` after the report or cancellation."""
    has_records = or_(
        exists().where(col(Document.appointment_id) == col(Appointment.id)),
        exists().where(col(Report.appointment_id) == col(Appointment.id)),
        exists().where(col(ConsultMessage.appointment_id) == col(Appointment.id)),
    )
    closed = or_(
        col(Appointment.reported_at) < cut.records, col(Appointment.cancelled_at) < cut.records
    )
    ids = await _claim(session, col(Appointment.id), closed, has_records, batch=batch)
    if not ids:
        return {}, False
    documents = await _delete(session, Document, col(Document.appointment_id).in_(ids))
    reports = await _delete(session, Report, col(Report.appointment_id).in_(ids))
    notes = await _delete(session, ConsultMessage, col(ConsultMessage.appointment_id).in_(ids))
    counts = {"documents": documents, "reports": reports, "conversation": notes}
    return counts, len(ids) == batch


async def _appointments(
    session: AsyncSession, cut: policy.Cutoffs, now: datetime, batch: int
) -> tuple[Counts, bool]:
    """Appointments whose consultation ended ``retention_metadata_days`` ago, with every row
    that refers to them."""
    over = and_(
        col(Appointment.ends_at) < cut.consultation,
        or_(col(Appointment.ended_at).is_(None), col(Appointment.ended_at) < cut.consultation),
    )
    ids = await _claim(session, col(Appointment.id), over, batch=batch)
    if not ids:
        return {}, False
    counts: Counts = {}
    for kind, model in CHILDREN:
        counts[kind] = await _delete(session, model, col(model.appointment_id).in_(ids))
    aggregates = [f"appointment:{i}" for i in ids]
    counts["events"] = await _delete(
        session, OutboxEvent, col(OutboxEvent.aggregate).in_(aggregates)
    )
    counts["appointments"] = await _delete(session, Appointment, col(Appointment.id).in_(ids))
    return counts, len(ids) == batch


async def _sessions(
    session: AsyncSession, cut: policy.Cutoffs, now: datetime, batch: int
) -> tuple[Counts, bool]:
    """Sessions (staff and patient) that ended or expired before the metadata cutoff."""
    over = or_(col(AuthSession.expires_at) < cut.sessions, col(AuthSession.ended_at) < cut.sessions)
    ids = await _claim(session, col(AuthSession.id), over, batch=batch)
    if not ids:
        return {}, False
    return {"sessions": await _delete(session, AuthSession, col(AuthSession.id).in_(ids))}, (
        len(ids) == batch
    )


async def _events(
    session: AsyncSession, cut: policy.Cutoffs, now: datetime, batch: int
) -> tuple[Counts, bool]:
    """Domain events still in the outbox after the metadata period (set aside as failed, or of
    a type no running release knows)."""
    ids = await _claim(
        session, col(OutboxEvent.id), col(OutboxEvent.created_at) < cut.events, batch=batch
    )
    if not ids:
        return {}, False
    return {"events": await _delete(session, OutboxEvent, col(OutboxEvent.id).in_(ids))}, (
        len(ids) == batch
    )


async def _idempotent_responses(
    session: AsyncSession, cut: policy.Cutoffs, now: datetime, batch: int
) -> tuple[Counts, bool]:
    """Stored answers older than their 24 hours (a booking purges them too, but only when
    there is a booking)."""
    due = col(IdempotentResponse.created_at) <= cut.idempotency
    ids = await _claim(session, col(IdempotentResponse.id), due, batch=batch)
    if not ids:
        return {}, False
    deleted = await _delete(session, IdempotentResponse, col(IdempotentResponse.id).in_(ids))
    return {"idempotent_responses": deleted}, len(ids) == batch


async def _fhir_jobs(
    session: AsyncSession, cut: policy.Cutoffs, now: datetime, batch: int
) -> tuple[Counts, bool]:
    """Asynchronous FHIR requests older than their 24 hours (status URLs that answer 404)."""
    due = col(FhirJob.created_at) <= cut.fhir_jobs
    ids = await _claim(session, col(FhirJob.id), due, batch=batch)
    if not ids:
        return {}, False
    return {"fhir_jobs": await _delete(session, FhirJob, col(FhirJob.id).in_(ids))}, (
        len(ids) == batch
    )


async def _fhir_patients(
    session: AsyncSession, cut: policy.Cutoffs, now: datetime, batch: int
) -> tuple[Counts, bool]:
    """Patients FHIR clients created, a week after (each booking of them has its copy)."""
    due = col(FhirPatient.created_at) <= cut.fhir_patients
    ids = await _claim(session, col(FhirPatient.id), due, batch=batch)
    if not ids:
        return {}, False
    return {"fhir_patients": await _delete(session, FhirPatient, col(FhirPatient.id).in_(ids))}, (
        len(ids) == batch
    )


async def _late_notices(
    session: AsyncSession, cut: policy.Cutoffs, now: datetime, batch: int
) -> tuple[Counts, bool]:
    """Specialists' late notices of earlier days (the free-text note is the specialist's own
    words: it goes once the day is over, not after the metadata period)."""
    key = col(SpecialistDelay.specialist_id)
    due = col(SpecialistDelay.updated_at) < cut.late_notices
    ids = await _claim(session, key, due, batch=batch)
    if not ids:
        return {}, False
    deleted = await _delete(session, SpecialistDelay, key.in_(ids))
    return {"late_notices": deleted}, len(ids) == batch


async def _audit_deleted(
    session: AsyncSession, cut: policy.Cutoffs, now: datetime, batch: int
) -> tuple[Counts, bool]:
    """Audit rows older than ``retention_audit_days``."""
    due = col(AuditEvent.at) < cut.audit_delete
    ids = await _claim(session, col(AuditEvent.id), due, batch=batch)
    if not ids:
        return {}, False
    async with _permit(session):
        deleted = await _delete(session, AuditEvent, col(AuditEvent.id).in_(ids))
    return {"audit_events": deleted}, len(ids) == batch


async def _audit_reduced(
    session: AsyncSession, cut: policy.Cutoffs, now: datetime, batch: int
) -> tuple[Counts, bool]:
    """Audit rows older than the metadata period, reduced to ids."""
    query = (
        select(AuditEvent)
        .where(col(AuditEvent.reduced_at).is_(None), col(AuditEvent.at) < cut.audit_reduce)
        .order_by(col(AuditEvent.at))
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    rows = (await session.execute(query)).scalars().all()
    if not rows:
        return {}, False
    values = [
        {
            "id": row.id,
            "ip": None,
            "subject": None,
            "detail": policy.reduced_detail(row.detail),
            "reduced_at": now,
        }
        for row in rows
    ]
    async with _permit(session):
        await session.execute(update(AuditEvent), values)
    return {"audit_reduced": len(rows)}, len(rows) == batch


@asynccontextmanager
async def _permit(session: AsyncSession) -> AsyncIterator[None]:
    """Holds an ``audit_permit`` row for the statements inside. It is deleted again before
    the commit (or rolled back with the rest), so no other transaction ever sees it, and the
    audit triggers go on refusing everyone else."""
    permit = AuditPermit()
    session.add(permit)
    await session.flush()
    yield
    await session.execute(delete(AuditPermit).where(col(AuditPermit.id) == permit.id))


STEPS: tuple[Step, ...] = (
    _records,
    _appointments,
    _sessions,
    _events,
    _idempotent_responses,
    _fhir_jobs,
    _fhir_patients,
    _late_notices,
    _audit_deleted,
    _audit_reduced,
)
