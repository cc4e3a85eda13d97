"""The open on-call requests of a specialty as its specialists' queue shows them (read only;
``app.scheduling.on_call`` changes them)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.accounts.models import User
from app.scheduling import repository as repo
from app.scheduling.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    RoomState,
    Urgency,
)
from app.scheduling.schemas import OnCallEntry

# Room states of a request that is still open (the patient may be waiting in the room).
OPEN_STATES = (RoomState.SCHEDULED, RoomState.WAITING)


def still_open(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """An on-call request nobody has taken, not withdrawn, not past its planned end."""
    return (
        col(Appointment.kind) == AppointmentKind.ON_CALL,
        col(Appointment.specialist_id).is_(None),
        col(Appointment.status) == AppointmentStatus.BOOKED,
        col(Appointment.room_state).in_(OPEN_STATES),
        # Past its planned end (and its link's), a request nobody took is stale.
        col(Appointment.ends_at) > now,
    )


async def open_count(session: AsyncSession, *, gp_id: int, now: datetime) -> int:
    """How many of the GP's requests are open now."""
    query = select(func.count()).select_from(Appointment)
    return await session.scalar(query.where(col(Appointment.gp_id) == gp_id, *still_open(now))) or 0


async def open_requests(
    session: AsyncSession, *, specialty_id: int, now: datetime, tz: ZoneInfo
) -> list[OnCallEntry]:
    """The specialty's requests nobody has taken yet, as its specialists' queue shows them:
    urgent first, then the longest asked; no patient name before someone takes it (the
    patient's age as of the local day in ``tz``)."""
    rows = (
        await session.execute(
            select(Appointment, User.display_name)
            .join(User, col(User.id) == col(Appointment.gp_id))
            .where(col(Appointment.specialty_id) == specialty_id, *still_open(now))
        )
    ).all()
    practices = await repo.practices_by_id(
        session, {a.practice_id for a, _ in rows if a.practice_id is not None}
    )
    entries = []
    for a, gp_name in rows:
        assert a.id is not None
        practice = practices.get(a.practice_id or 0)
        entries.append(
            OnCallEntry(
                appointment_id=a.id,
                requested_at=a.created_at,
                urgency=a.urgency,
                mode=a.mode,
                gp_name=gp_name,
                practice=practice.name if practice else "",
                clinical_question=a.clinical_question,
                patient_age=age(a.patient_birth_date, now.astimezone(tz).date()),
                patient_waiting=a.room_state is RoomState.WAITING,
                claim_until=a.claim_until,
                unclaimed=a.unclaimed_at is not None,
            )
        )
    return sorted(entries, key=lambda e: (e.urgency is not Urgency.URGENT, e.requested_at))


def age(birth: date, today: date) -> int:
    """Whole years on ``today``."""
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
