"""Written Telekonsil: a GP's question to a specialty, answered in writing, without video.

The Telekonsil as the Telekonsilien-Vereinbarung knows it: the GP sends the question with the
request's particulars and findings (documents) to a specialty; the first specialist of it to
take the request (``claim``, the same conditional UPDATE as an on-call request's, so exactly
one of simultaneous claims wins) answers with a report, may ask back first
(``app.records.conversation``) or decline (a cancellation with a reason). The patient takes no
part: there is no join link, no video room, no message to the patient, and the request has no
time in anyone's calendar (``starts_at`` is when it was sent, ``ends_at`` the same until the
report, then when it was answered). The day the answer is needed by (``answer_by``) and the
patient's consent are required.

Callers own the unit of work.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.accounts.models import Role, User
from app.accounts.service import Principal
from app.audit import service as audit
from app.db import utcnow
from app.events import outbox
from app.events.types import WrittenRequested
from app.scheduling import on_call, service
from app.scheduling import repository as repo
from app.scheduling.access import require_role
from app.scheduling.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    RoomState,
    Urgency,
)
from app.scheduling.on_call_queue import age
from app.scheduling.schemas import AppointmentOut, WrittenEntry, WrittenIn
from app.scheduling.views import appointment_views
from app.settings import Settings


async def request(
    session: AsyncSession,
    *,
    settings: Settings,
    who: Principal,
    details: WrittenIn,
    now: datetime | None = None,
) -> AppointmentOut:
    """The GP's written Telekonsil to a specialty: open until a specialist of it takes it or
    the GP withdraws it."""
    now = now or utcnow()
    gp_id = require_role(who, Role.GP)
    gp = await on_call.asking_gp(session, gp_id=gp_id, specialty_id=details.specialty_id)
    if await open_count(session, gp_id=gp_id) >= settings.written_open_per_gp:
        raise TooManyOpenWritten()
    appointment = Appointment(
        kind=AppointmentKind.WRITTEN,
        specialist_id=None,
        specialty_id=details.specialty_id,
        gp_id=gp_id,
        practice_id=gp.practice_id,
        starts_at=now,
        ends_at=now,
        **service.telekonsil_fields(details, now=now),
        patient_contact="",
        created_at=now,
    )
    session.add(appointment)
    await session.flush()
    assert appointment.id is not None
    outbox.record(
        session,
        WrittenRequested(
            appointment_id=appointment.id, specialty_id=details.specialty_id, gp_id=gp_id
        ),
    )
    audit.record_for(
        session,
        who,
        "written.requested",
        appointment.id,
        specialty_id=details.specialty_id,
        urgency=appointment.urgency.value,
    )
    return (await appointment_views(session, [appointment]))[0]


class TooManyOpenWritten(on_call.TooManyOpen):
    code = "too_many_open_written"
    default_message = (
        "Sie haben schon sehr viele offene schriftliche Telekonsile, die noch niemand übernommen "
        "hat. Bitte ziehen Sie nicht mehr benötigte zurück."
    )


async def claim(
    session: AsyncSession, *, who: Principal, appointment_id: int, now: datetime | None = None
) -> AppointmentOut:
    """The specialist takes the written request: theirs to answer from now on."""
    return await on_call.claim(
        session, who=who, appointment_id=appointment_id, kind=AppointmentKind.WRITTEN, now=now
    )


def _open() -> tuple[ColumnElement[bool], ...]:
    """A written request nobody has taken, not withdrawn."""
    return (
        col(Appointment.kind) == AppointmentKind.WRITTEN,
        col(Appointment.specialist_id).is_(None),
        col(Appointment.status) == AppointmentStatus.BOOKED,
        col(Appointment.room_state) == RoomState.SCHEDULED,
    )


async def open_count(session: AsyncSession, *, gp_id: int) -> int:
    """How many of the GP's written requests nobody has taken yet."""
    query = select(func.count()).select_from(Appointment)
    return await session.scalar(query.where(col(Appointment.gp_id) == gp_id, *_open())) or 0


async def queue_entries(
    session: AsyncSession, *, specialist: User, now: datetime, tz: ZoneInfo
) -> list[WrittenEntry]:
    """The written requests of the specialist's specialty nobody has taken (without the
    patient's name, as for on-call requests), and those the specialist took and has not
    answered yet: the ones due first on top."""
    assert specialist.id is not None
    waiting_for_anyone = (
        select(Appointment, User.display_name)
        .join(User, col(User.id) == col(Appointment.gp_id))
        .where(col(Appointment.specialty_id) == specialist.specialty_id, *_open())
    )
    mine = (
        select(Appointment, User.display_name)
        .join(User, col(User.id) == col(Appointment.gp_id))
        .where(
            col(Appointment.kind) == AppointmentKind.WRITTEN,
            col(Appointment.specialist_id) == specialist.id,
            col(Appointment.status) == AppointmentStatus.BOOKED,
        )
    )
    rows = [
        *(await session.execute(waiting_for_anyone)).all(),
        *(await session.execute(mine)).all(),
    ]
    if specialist.specialty_id is None:
        rows = [r for r in rows if r[0].specialist_id == specialist.id]
    practices = await repo.practices_by_id(
        session, {a.practice_id for a, _ in rows if a.practice_id is not None}
    )
    today = now.astimezone(tz).date()
    entries = []
    for a, gp_name in rows:
        assert a.id is not None
        assert a.answer_by is not None
        practice = practices.get(a.practice_id or 0)
        taken = a.specialist_id is not None
        entries.append(
            WrittenEntry(
                appointment_id=a.id,
                requested_at=a.created_at,
                urgency=a.urgency,
                gp_name=gp_name,
                practice=practice.name if practice else "",
                clinical_question=a.clinical_question,
                patient_age=age(a.patient_birth_date, today),
                answer_by=a.answer_by,
                overdue=a.answer_by < today,
                mine=taken,
                patient_name=a.patient_name if taken else None,
                claimed_at=a.claimed_at,
                question_open_since=a.question_open_since,
            )
        )
    return sorted(
        entries,
        key=lambda e: (e.answer_by, e.urgency is not Urgency.URGENT, e.requested_at),
    )
