"""Consultations with everything that hangs off them, written at chosen times, and a look at
every table for what should be gone."""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts.models import AuthSession, SessionKind
from app.audit.models import AuditEvent
from app.db import unit_of_work
from app.events.outbox import OutboxEvent
from app.models import metadata
from app.records.models import Document, Report
from app.scheduling.models import (
    Appointment,
    AppointmentStatus,
    GuestInvitation,
    GuestKind,
    JoinToken,
    RoomState,
)
from tests.factories import Demo

# One active booking per specialist and start: each consultation ends a few seconds earlier.
_SECONDS = itertools.count()
PDF = b"%PDF-1.7\n" + b"0" * 100 + b"\n%%EOF\n"


@dataclass(frozen=True)
class Consultation:
    appointment_id: int
    # Strings that name the patient or carry the consultation's content.
    traces: tuple[str, ...]


async def consultation(
    sessions: async_sessionmaker[AsyncSession],
    demo: Demo,
    *,
    ended: datetime,
    reported: datetime | None = None,
    cancelled: datetime | None = None,
    tag: str | None = None,
) -> Consultation:
    """An appointment whose 30-minute slot ended at ``ended``, with a join link, a patient
    session, a document, an undelivered event, audit rows from its day and, if ``reported``,
    a report written then. (``ended`` is moved a few seconds earlier, to keep slots apart.)"""
    tag = tag or secrets.token_hex(4)
    assert demo.specialist.id is not None
    assert demo.gp.id is not None
    name, contact, question = f"Patientin {tag}", f"p-{tag}@example.org", f"Frage {tag}"
    ended -= timedelta(seconds=next(_SECONDS))
    starts = ended - timedelta(minutes=30)
    async with unit_of_work(sessions) as session:
        appointment = Appointment(
            specialist_id=demo.specialist.id,
            gp_id=demo.gp.id,
            practice_id=demo.practice.id,
            starts_at=starts,
            ends_at=ended,
            patient_name=name,
            patient_birth_date=date(1950, 1, 1),
            patient_contact=contact,
            clinical_question=question,
            created_at=starts - timedelta(days=7),
            status=AppointmentStatus.CANCELLED if cancelled else AppointmentStatus.COMPLETED,
            room_state=RoomState.CANCELLED if cancelled else RoomState.ENDED,
            cancelled_at=cancelled,
            reported_at=reported,
        )
        session.add(appointment)
        await session.flush()
        assert appointment.id is not None
        await _children(session, demo, appointment, reported=reported, tag=tag)
    return Consultation(appointment.id, (name, contact, question, f"Bericht {tag}", f"Gast {tag}"))


async def _children(
    session: AsyncSession,
    demo: Demo,
    appointment: Appointment,
    *,
    reported: datetime | None,
    tag: str,
) -> None:
    assert appointment.id is not None
    assert demo.gp.id is not None
    starts = appointment.starts_at
    session.add_all(
        [
            JoinToken(
                appointment_id=appointment.id,
                token_hash=secrets.token_hex(32),
                valid_from=starts - timedelta(minutes=30),
                valid_until=appointment.ends_at + timedelta(minutes=30),
                created_at=starts - timedelta(days=7),
            ),
            AuthSession(
                id=secrets.token_hex(32),
                kind=SessionKind.PATIENT,
                appointment_id=appointment.id,
                csrf_token=secrets.token_hex(16),
                created_at=starts,
                expires_at=appointment.ends_at + timedelta(minutes=30),
            ),
            GuestInvitation(
                appointment_id=appointment.id,
                token_hash=secrets.token_hex(32),
                name=f"Gast {tag}",
                kind=GuestKind.INTERPRETER,
                valid_from=starts - timedelta(minutes=30),
                valid_until=appointment.ends_at + timedelta(minutes=30),
                created_at=starts - timedelta(days=7),
                created_by=demo.gp.id,
            ),
            Document(
                appointment_id=appointment.id,
                uploaded_by=demo.gp.id,
                filename=f"befund-{tag}.pdf",
                content_type="application/pdf",
                size=len(PDF),
                data=PDF,
                created_at=starts - timedelta(days=7),
            ),
            OutboxEvent(
                event_id=secrets.token_hex(16),
                aggregate=f"appointment:{appointment.id}",
                type="link.issued",
                payload="{}",
                created_at=starts,
                available_at=starts,
                failed_at=starts,
            ),
            *audit_rows(appointment.id, at=starts, gp_id=demo.gp.id),
        ]
    )
    if reported is not None:
        assert demo.specialist.id is not None
        session.add(
            Report(
                appointment_id=appointment.id,
                author_id=demo.specialist.id,
                body=f"Bericht {tag}",
                created_at=reported,
                updated_at=reported,
            )
        )


def audit_rows(appointment_id: int | None, *, at: datetime, gp_id: int) -> list[AuditEvent]:
    """What the app writes around a consultation: a booking with string details, a link
    redeemed from an address, a failed login with a login-name hash."""
    return [
        AuditEvent(
            at=at - timedelta(days=7),
            action="appointment.booked",
            actor_kind="staff",
            actor_id=gp_id,
            appointment_id=appointment_id,
            detail={"specialist_id": 3, "urgency": "urgent", "mode": "home", "is_new": True},
        ),
        AuditEvent(
            at=at,
            action="link.redeemed",
            actor_kind="patient",
            appointment_id=appointment_id,
            ip="203.0.113.9",
        ),
        AuditEvent(
            at=at,
            action="login.failure",
            actor_kind="anonymous",
            subject="ab" * 32,
            ip="198.51.100.23",
        ),
    ]


async def rows_of(sessions: async_sessionmaker[AsyncSession], model: Any, *where: Any) -> list[Any]:
    from sqlmodel import select

    async with sessions() as session:
        return list((await session.execute(select(model).where(*where))).scalars())


async def everything(sessions: async_sessionmaker[AsyncSession]) -> str:
    """Every row of every table as text (binary columns included), to look for traces."""
    parts: list[str] = []
    async with sessions() as session:
        for table in metadata.sorted_tables:
            rows = await session.execute(text(f"SELECT * FROM {table.name}"))  # noqa: S608
            parts.extend(repr(tuple(row)) for row in rows)
    return "\n".join(parts)
