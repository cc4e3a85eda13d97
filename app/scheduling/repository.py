"""Scheduling queries. Repositories never commit: the caller's unit of work does."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.accounts.models import AuthSession, Practice, Role, SessionKind, User
from app.scheduling.models import (
    Appointment,
    AppointmentStatus,
    AvailabilityException,
    AvailabilityRule,
    JoinToken,
    Specialty,
)

ACTIVE_SLOT_INDEX = "uq_appointment_active_slot"


async def dialect(session: AsyncSession) -> str:
    return (await session.connection()).dialect.name


async def lock_specialist(session: AsyncSession, specialist_id: int) -> User | None:
    """The active specialist, locked so that bookings of one specialist run one at a time.

    PostgreSQL: ``SELECT ... FOR NO KEY UPDATE`` on the specialist's row (a FOR UPDATE that
    does not block unrelated inserts referencing the row, such as a login session). SQLite has a
    single writer: a no-op write takes the database write lock before the overlap check, so the
    check sees every booking committed before ours.
    """
    query = select(User).where(
        col(User.id) == specialist_id,
        col(User.role) == Role.SPECIALIST,
        col(User.is_active).is_(True),
    )
    if await dialect(session) == "postgresql":
        query = query.with_for_update(key_share=True)
    else:
        await session.execute(
            update(User).where(col(User.id) == specialist_id).values(is_active=col(User.is_active))
        )
    return (await session.execute(query)).scalar_one_or_none()


async def lock_appointment(session: AsyncSession, appointment_id: int) -> Appointment | None:
    query = select(Appointment).where(col(Appointment.id) == appointment_id)
    if await dialect(session) == "postgresql":
        query = query.with_for_update(key_share=True)
    return (
        await session.execute(query.execution_options(populate_existing=True))
    ).scalar_one_or_none()


def is_slot_conflict(exc: IntegrityError) -> bool:
    """True when the partial unique index on active slots refused an insert or update."""
    message = str(exc.orig)
    return ACTIVE_SLOT_INDEX in message or (
        "UNIQUE constraint failed: appointment.specialist_id, appointment.starts_at" in message
    )


async def specialties(session: AsyncSession) -> Sequence[Specialty]:
    query = select(Specialty).order_by(col(Specialty.name_de))
    return (await session.execute(query)).scalars().all()


async def specialty_by_key(session: AsyncSession, key: str) -> Specialty | None:
    """A specialty by id (digits) or slug."""
    if key.isdigit():
        return await session.get(Specialty, int(key))
    query = select(Specialty).where(col(Specialty.slug) == key.lower())
    return (await session.execute(query)).scalar_one_or_none()


async def specialists(
    session: AsyncSession, *, specialty_id: int | None = None, ids: Sequence[int] | None = None
) -> Sequence[tuple[User, Specialty]]:
    query = (
        select(User, Specialty)
        .join(Specialty, col(Specialty.id) == col(User.specialty_id))
        .where(col(User.role) == Role.SPECIALIST, col(User.is_active).is_(True))
        .order_by(col(User.display_name))
    )
    if specialty_id is not None:
        query = query.where(col(User.specialty_id) == specialty_id)
    if ids is not None:
        query = query.where(col(User.id).in_(ids))
    return [(u, s) for u, s in (await session.execute(query)).all()]


async def rules_of(
    session: AsyncSession, specialist_ids: Sequence[int]
) -> dict[int, list[AvailabilityRule]]:
    query = (
        select(AvailabilityRule)
        .where(col(AvailabilityRule.specialist_id).in_(specialist_ids))
        .order_by(col(AvailabilityRule.weekday), col(AvailabilityRule.start_time))
    )
    result: dict[int, list[AvailabilityRule]] = defaultdict(list)
    for rule in (await session.execute(query)).scalars():
        result[rule.specialist_id].append(rule)
    return result


async def exceptions_between(
    session: AsyncSession, specialist_ids: Sequence[int], start: datetime, end: datetime
) -> dict[int, list[AvailabilityException]]:
    query = (
        select(AvailabilityException)
        .where(
            col(AvailabilityException.specialist_id).in_(specialist_ids),
            col(AvailabilityException.starts_at) < end,
            col(AvailabilityException.ends_at) > start,
        )
        .order_by(col(AvailabilityException.starts_at))
    )
    result: dict[int, list[AvailabilityException]] = defaultdict(list)
    for exc in (await session.execute(query)).scalars():
        result[exc.specialist_id].append(exc)
    return result


async def active_appointments_between(
    session: AsyncSession,
    specialist_ids: Sequence[int],
    start: datetime,
    end: datetime,
    *,
    exclude_id: int | None = None,
) -> dict[int, list[Appointment]]:
    """Appointments that occupy the specialist's time (everything except cancelled ones)."""
    query = select(Appointment).where(
        col(Appointment.specialist_id).in_(specialist_ids),
        col(Appointment.status) != AppointmentStatus.CANCELLED,
        col(Appointment.starts_at) < end,
        col(Appointment.ends_at) > start,
    )
    if exclude_id is not None:
        query = query.where(col(Appointment.id) != exclude_id)
    result: dict[int, list[Appointment]] = defaultdict(list)
    for appointment in (await session.execute(query)).scalars():
        if appointment.specialist_id is not None:
            result[appointment.specialist_id].append(appointment)
    return result


async def appointments_for(
    session: AsyncSession,
    *,
    gp_id: int | None = None,
    specialist_id: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    status: AppointmentStatus | None = None,
    limit: int = 100,
) -> Sequence[Appointment]:
    query = select(Appointment).order_by(col(Appointment.starts_at), col(Appointment.id))
    if gp_id is not None:
        query = query.where(col(Appointment.gp_id) == gp_id)
    if specialist_id is not None:
        query = query.where(col(Appointment.specialist_id) == specialist_id)
    if start is not None:
        query = query.where(col(Appointment.starts_at) >= start)
    if end is not None:
        query = query.where(col(Appointment.starts_at) < end)
    if status is not None:
        query = query.where(col(Appointment.status) == status)
    return (await session.execute(query.limit(limit))).scalars().all()


async def users_by_id(session: AsyncSession, ids: set[int]) -> dict[int, User]:
    if not ids:
        return {}
    query = select(User).where(col(User.id).in_(ids))
    return {u.id: u for u in (await session.execute(query)).scalars() if u.id is not None}


async def specialist_and_specialty(
    session: AsyncSession, appointment: Appointment
) -> tuple[User | None, Specialty | None]:
    """Who will see the patient and in which specialty: the appointment's specialist and theirs,
    or, while an on-call request waits for somebody, no one and the request's specialty."""
    specialist = (
        await session.get(User, appointment.specialist_id)
        if appointment.specialist_id is not None
        else None
    )
    specialty_id = specialist.specialty_id if specialist else appointment.specialty_id
    specialty = await session.get(Specialty, specialty_id) if specialty_id else None
    return specialist, specialty


async def specialist_ids(session: AsyncSession, specialty_id: int) -> list[int]:
    """The active specialists of a specialty."""
    query = select(User.id).where(
        col(User.role) == Role.SPECIALIST,
        col(User.is_active).is_(True),
        col(User.specialty_id) == specialty_id,
    )
    return [i for i in (await session.execute(query)).scalars() if i is not None]


async def practices_by_id(session: AsyncSession, ids: set[int]) -> dict[int, Practice]:
    if not ids:
        return {}
    rows = await session.execute(select(Practice).where(col(Practice.id).in_(ids)))
    return {p.id: p for p in rows.scalars() if p.id is not None}


async def specialties_by_id(session: AsyncSession, ids: set[int]) -> dict[int, Specialty]:
    if not ids:
        return {}
    query = select(Specialty).where(col(Specialty.id).in_(ids))
    return {s.id: s for s in (await session.execute(query)).scalars() if s.id is not None}


async def active_links(
    session: AsyncSession, appointment_ids: Sequence[int]
) -> dict[int, JoinToken]:
    """The newest unrevoked join link of each appointment."""
    if not appointment_ids:
        return {}
    query = (
        select(JoinToken)
        .where(
            col(JoinToken.appointment_id).in_(appointment_ids), col(JoinToken.revoked_at).is_(None)
        )
        .order_by(col(JoinToken.id))
    )
    return {t.appointment_id: t for t in (await session.execute(query)).scalars()}


async def link_by_hash(session: AsyncSession, digest: str) -> JoinToken | None:
    query = select(JoinToken).where(col(JoinToken.token_hash) == digest)
    return (await session.execute(query)).scalar_one_or_none()


async def revoke_links(session: AsyncSession, appointment_id: int, now: datetime) -> int:
    result = await session.execute(
        update(JoinToken)
        .where(col(JoinToken.appointment_id) == appointment_id, col(JoinToken.revoked_at).is_(None))
        .values(revoked_at=now, sealed=None)
        .execution_options(synchronize_session="fetch")
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def end_patient_sessions(session: AsyncSession, appointment_id: int, now: datetime) -> int:
    """A revoked link must not leave a patient session behind that outlives it. Returns how
    many sessions ended."""
    result = await session.execute(
        update(AuthSession)
        .where(
            col(AuthSession.appointment_id) == appointment_id,
            col(AuthSession.kind) == SessionKind.PATIENT,
            col(AuthSession.ended_at).is_(None),
        )
        .values(ended_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)
