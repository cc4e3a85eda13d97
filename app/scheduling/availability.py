"""Specialties, specialists, consultation hours and free slots (services)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Role, User
from app.accounts.service import Principal
from app.audit import service as audit
from app.db import utcnow
from app.errors import Conflict, InvalidInput, NotFound, SlotTaken, SlotUnavailable
from app.scheduling import repository as repo
from app.scheduling import slots
from app.scheduling.access import require_role
from app.scheduling.models import AvailabilityException, AvailabilityRule, Specialty
from app.scheduling.schemas import (
    ExceptionIn,
    ExceptionOut,
    RuleIn,
    RuleOut,
    SlotOut,
    SpecialistOut,
    SpecialtyIn,
    SpecialtyOut,
    SpecialtyPatch,
)
from app.settings import Settings

MAX_RANGE_DAYS = 62
MAX_ABSENCE = timedelta(days=366)
MAX_EXTRA_HOURS = timedelta(hours=16)


async def list_specialties(session: AsyncSession) -> list[SpecialtyOut]:
    return [SpecialtyOut.model_validate(s) for s in await repo.specialties(session)]


async def create_specialty(
    session: AsyncSession, *, who: Principal, data: SpecialtyIn
) -> SpecialtyOut:
    """Adds a specialty (admin). Slugs are unique."""
    if await repo.specialty_by_key(session, data.slug) is not None:
        raise Conflict("Dieses Fachgebiet gibt es schon.")
    specialty = Specialty(slug=data.slug, name_de=data.name_de, name_en=data.name_en)
    session.add(specialty)
    await session.flush()
    audit.record_for(session, who, "specialty.created", None, specialty_id=specialty.id)
    return SpecialtyOut.model_validate(specialty)


async def rename_specialty(
    session: AsyncSession, *, who: Principal, specialty_id: int, data: SpecialtyPatch
) -> SpecialtyOut:
    """Renames a specialty (admin). The slug stays: links and bookmarks use it."""
    specialty = await session.get(Specialty, specialty_id)
    if specialty is None:
        raise NotFound("Dieses Fachgebiet gibt es nicht.")
    if data.name_de is not None:
        specialty.name_de = data.name_de
    if data.name_en is not None:
        specialty.name_en = data.name_en
    await session.flush()
    audit.record_for(session, who, "specialty.renamed", None, specialty_id=specialty_id)
    return SpecialtyOut.model_validate(specialty)


async def list_specialists(
    session: AsyncSession, *, specialty: str | None = None
) -> list[SpecialistOut]:
    """Active specialists, optionally of one specialty (id or slug)."""
    specialty_id = None
    if specialty is not None:
        found = await repo.specialty_by_key(session, specialty)
        if found is None:
            raise NotFound("Dieses Fachgebiet gibt es nicht.")
        specialty_id = found.id
    rows = await repo.specialists(session, specialty_id=specialty_id)
    return [
        SpecialistOut(
            id=u.id or 0, display_name=u.display_name, specialty_id=s.id or 0, specialty=s.name_de
        )
        for u, s in rows
    ]


# --- weekly rules and exceptions ----------------------------------------------------------


async def get_rules(session: AsyncSession, *, who: Principal) -> list[RuleOut]:
    specialist_id = require_role(who, Role.SPECIALIST)
    rules = (await repo.rules_of(session, [specialist_id])).get(specialist_id, [])
    return [RuleOut.model_validate(r) for r in rules]


async def replace_rules(
    session: AsyncSession, *, who: Principal, rules: Sequence[RuleIn]
) -> list[RuleOut]:
    """Replaces the specialist's weekly hours. Existing bookings stay as they are."""
    specialist_id = require_role(who, Role.SPECIALIST)
    check_no_overlaps(rules)
    await session.execute(
        delete(AvailabilityRule).where(
            AvailabilityRule.specialist_id == specialist_id  # type: ignore[arg-type]
        )
    )
    rows = [AvailabilityRule(specialist_id=specialist_id, **r.model_dump()) for r in rules]
    session.add_all(rows)
    await session.flush()
    audit.record_for(session, who, "availability.rules_replaced", None, rules=len(rows))
    return [RuleOut.model_validate(r) for r in rows]


def check_no_overlaps(rules: Sequence[RuleIn]) -> None:
    """Two rules on the same weekday with overlapping validity must not overlap in time."""
    fields = []
    for j, b in enumerate(rules):
        for i, a in enumerate(rules[:j]):
            if a.weekday == b.weekday and _periods_overlap(a, b) and _times_overlap(a, b):
                fields.append({"field": f"rules.{j}", "message": f"überschneidet rules.{i}"})
    if fields:
        raise InvalidInput("Sprechzeiten dürfen sich nicht überschneiden.", fields=fields)


def _periods_overlap(a: RuleIn, b: RuleIn) -> bool:
    a_from, b_from = a.valid_from or date.min, b.valid_from or date.min
    a_until, b_until = a.valid_until or date.max, b.valid_until or date.max
    return a_from <= b_until and b_from <= a_until


def _times_overlap(a: RuleIn, b: RuleIn) -> bool:
    return a.start_time < b.end_time and b.start_time < a.end_time


async def list_exceptions(
    session: AsyncSession, *, who: Principal, now: datetime | None = None
) -> list[ExceptionOut]:
    """The specialist's exceptions that have not ended yet."""
    specialist_id = require_role(who, Role.SPECIALIST)
    now = now or utcnow()
    found = await repo.exceptions_between(session, [specialist_id], now, now + timedelta(days=3650))
    return [await _exception_out(session, e) for e in found.get(specialist_id, [])]


async def add_exception(
    session: AsyncSession, *, who: Principal, settings: Settings, data: ExceptionIn
) -> ExceptionOut:
    """Adds an absence or extra hours. Bookings an absence overlaps are reported, not cancelled."""
    specialist_id = require_role(who, Role.SPECIALIST)
    starts_at = _aware(data.starts_at, settings)
    ends_at = _aware(data.ends_at, settings)
    _check_exception(starts_at, ends_at, data)
    row = AvailabilityException(
        specialist_id=specialist_id,
        starts_at=starts_at,
        ends_at=ends_at,
        available=data.available,
        slot_minutes=data.slot_minutes,
    )
    session.add(row)
    await session.flush()
    audit.record_for(session, who, "availability.exception_added", None, exception_id=row.id)
    return await _exception_out(session, row)


async def delete_exception(session: AsyncSession, *, who: Principal, exception_id: int) -> None:
    specialist_id = require_role(who, Role.SPECIALIST)
    row = await session.get(AvailabilityException, exception_id)
    if row is None or row.specialist_id != specialist_id:
        raise NotFound()
    await session.delete(row)
    audit.record_for(
        session, who, "availability.exception_deleted", None, exception_id=exception_id
    )


def _aware(value: datetime, settings: Settings) -> datetime:
    """Naive times come from local date-time inputs: they are Europe/Berlin wall-clock."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=settings.tz, fold=0)
    return value.astimezone(UTC)


def _check_exception(starts_at: datetime, ends_at: datetime, data: ExceptionIn) -> None:
    problem = None
    if starts_at >= ends_at:
        problem = ("ends_at", "Das Ende muss nach dem Beginn liegen.")
    elif not data.available and ends_at - starts_at > MAX_ABSENCE:
        problem = ("ends_at", "Eine Abwesenheit darf höchstens ein Jahr dauern.")
    elif data.available and ends_at - starts_at > MAX_EXTRA_HOURS:
        problem = ("ends_at", "Zusätzliche Sprechzeiten höchstens 16 Stunden am Stück.")
    elif data.available and ends_at - starts_at < timedelta(minutes=data.slot_minutes):
        problem = ("slot_minutes", "In diesen Zeitraum passt kein Termin dieser Länge.")
    if problem:
        raise InvalidInput(fields=[{"field": problem[0], "message": problem[1]}])


async def _exception_out(session: AsyncSession, row: AvailabilityException) -> ExceptionOut:
    conflicts: list[int] = []
    if not row.available:
        booked = await repo.active_appointments_between(
            session, [row.specialist_id], row.starts_at, row.ends_at
        )
        conflicts = sorted(a.id for a in booked.get(row.specialist_id, []) if a.id is not None)
    out = ExceptionOut.model_validate(row)
    out.conflicting_appointment_ids = conflicts
    return out


# --- free slots ---------------------------------------------------------------------------


def booking_window(settings: Settings, now: datetime) -> slots.Window:
    return slots.Window(
        now=now,
        min_lead=timedelta(minutes=settings.booking_min_lead_minutes),
        horizon=timedelta(days=settings.booking_horizon_days),
    )


async def free_slots(
    session: AsyncSession,
    *,
    settings: Settings,
    specialist: int | None = None,
    specialty: str | None = None,
    first_day: date | None = None,
    last_day: date | None = None,
    now: datetime | None = None,
) -> list[SlotOut]:
    """Free slots of one specialist, or of every specialist of a specialty (merged by time)."""
    now = now or utcnow()
    first_day = first_day or now.astimezone(settings.tz).date()
    last_day = last_day or first_day + timedelta(days=13)
    if last_day < first_day or (last_day - first_day).days >= MAX_RANGE_DAYS:
        raise InvalidInput(
            f"Der Zeitraum muss 1 bis {MAX_RANGE_DAYS} Tage umfassen.",
            fields=[{"field": "to", "message": "ungültiger Zeitraum"}],
        )
    people = await _specialists_for(session, specialist=specialist, specialty=specialty)
    ids = [u.id for u, _ in people if u.id is not None]
    start, end = _utc_bounds(first_day, last_day, settings)
    rules = await repo.rules_of(session, ids)
    exceptions = await repo.exceptions_between(session, ids, start, end)
    booked = await repo.active_appointments_between(session, ids, start, end)
    window = booking_window(settings, now)
    result = []
    for user, _ in people:
        assert user.id is not None
        found = slots.free_slots(
            rules=rules.get(user.id, []),
            exceptions=exceptions.get(user.id, []),
            booked=booked.get(user.id, []),
            first_day=first_day,
            last_day=last_day,
            tz=settings.tz,
            window=window,
        )
        result += [
            SlotOut(
                specialist_id=user.id,
                specialist_name=user.display_name,
                starts_at=s.starts_at,
                ends_at=s.ends_at,
            )
            for s in found
        ]
    return sorted(result, key=lambda s: (s.starts_at, s.specialist_name, s.specialist_id))


async def _specialists_for(
    session: AsyncSession, *, specialist: int | None, specialty: str | None
) -> Sequence[tuple[User, Specialty]]:
    if specialist is not None:
        people = await repo.specialists(session, ids=[specialist])
        if not people:
            raise NotFound("Diese Fachärztin bzw. diesen Facharzt gibt es nicht.")
        return people
    assert specialty is not None
    found = await repo.specialty_by_key(session, specialty)
    if found is None:
        raise NotFound("Dieses Fachgebiet gibt es nicht.")
    return await repo.specialists(session, specialty_id=found.id)


def _utc_bounds(first_day: date, last_day: date, settings: Settings) -> tuple[datetime, datetime]:
    """A UTC range covering the local days, with a day of margin for any offset."""
    start = datetime.combine(first_day - timedelta(days=1), time(0), tzinfo=settings.tz)
    end = datetime.combine(last_day + timedelta(days=2), time(0), tzinfo=settings.tz)
    return start.astimezone(UTC), end.astimezone(UTC)


async def bookable_slot(
    session: AsyncSession,
    *,
    settings: Settings,
    specialist_id: int,
    starts_at: datetime,
    now: datetime,
    exclude_id: int | None = None,
) -> slots.Slot:
    """The free slot starting at ``starts_at``, or SlotUnavailable / SlotTaken (both 409)."""
    starts_at = starts_at.astimezone(UTC)
    day = starts_at.astimezone(settings.tz).date()
    start, end = _utc_bounds(day, day, settings)
    rules = (await repo.rules_of(session, [specialist_id])).get(specialist_id, [])
    exceptions = (await repo.exceptions_between(session, [specialist_id], start, end)).get(
        specialist_id, []
    )
    offered = slots.offered_slots(
        rules=rules, exceptions=exceptions, first_day=day, last_day=day, tz=settings.tz
    )
    slot = next((s for s in offered if s.starts_at == starts_at), None)
    if slot is None:
        raise SlotUnavailable(reason="not_offered")
    _check_window(slot, booking_window(settings, now))
    booked = await repo.active_appointments_between(
        session, [specialist_id], slot.starts_at, slot.ends_at, exclude_id=exclude_id
    )
    if booked.get(specialist_id):
        raise SlotTaken()
    return slot


def _check_window(slot: slots.Slot, window: slots.Window) -> None:
    if slot.starts_at < window.now:
        raise SlotUnavailable("Dieser Termin liegt in der Vergangenheit.", reason="past")
    if slot.starts_at < window.now + window.min_lead:
        raise SlotUnavailable("Dieser Termin ist zu kurzfristig.", reason="too_soon")
    if not window.admits(slot):
        raise SlotUnavailable("Dieser Termin liegt zu weit in der Zukunft.", reason="too_far")
