"""On-call requests: a consult now with whichever specialist of a specialty takes it first.

A GP's request is an appointment of kind ``on_call`` with the specialty and no specialist yet,
starting now, with its patient link issued at once (``request``), so the patient can already
wait in the room. Every specialist of the specialty sees the open requests in their queue
(``open_requests``); the first to take one owns it (``claim``): one conditional UPDATE
(``specialist_id IS NULL``) decides, so exactly one of any number of simultaneous claims on
any number of processes wins, and the others are told it is gone. From then on it is an
appointment like a booked one (report, documents, three-way call, transfer).

If nobody takes it by ``claim_until``, the sweep marks it ``unclaimed_at`` and records
``OnCallUnclaimed`` so that the GP is told (``sweep_unclaimed``); the GP may ask the specialty
again (``escalate``: urgent, a new time limit), book a slot instead, or withdraw the request
(an ordinary cancellation). Callers own the unit of work.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import CursorResult, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.accounts.models import Role, User
from app.accounts.service import Principal
from app.audit import service as audit
from app.db import utcnow
from app.errors import Conflict, InvalidTransition, NotFound
from app.events import outbox
from app.events.types import (
    OnCallClaimed,
    OnCallEscalated,
    OnCallRequested,
    OnCallUnclaimed,
    WrittenClaimed,
)
from app.rooms.state import is_closed
from app.scheduling import repository as repo
from app.scheduling import service
from app.scheduling.access import is_gp_of, require_role, visible_appointment
from app.scheduling.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    Specialty,
    Urgency,
)
from app.scheduling.on_call_queue import OPEN_STATES, open_count
from app.scheduling.schemas import AppointmentOut, BookingOut, OnCallIn
from app.scheduling.views import appointment_views
from app.settings import Settings


class AlreadyClaimed(Conflict):
    code = "already_claimed"
    default_message = "Eine Kollegin oder ein Kollege hat diese Anfrage schon übernommen."


class NoSpecialist(Conflict):
    code = "no_specialist"
    default_message = (
        "In diesem Fachgebiet ist niemand eingetragen, der die Anfrage übernehmen könnte."
    )


class TooManyOpen(Conflict):
    code = "too_many_open_requests"
    default_message = (
        "Sie haben schon mehrere offene Sofort-Anfragen. Bitte warten Sie, bis eine übernommen "
        "wurde, oder ziehen Sie eine zurück."
    )


async def request(
    session: AsyncSession,
    *,
    settings: Settings,
    who: Principal,
    details: OnCallIn,
    now: datetime | None = None,
) -> BookingOut:
    """A GP's request for a consult now: the appointment (no specialist yet) and the patient's
    link, valid from now."""
    now = now or utcnow()
    gp_id = require_role(who, Role.GP)
    service.require_sending(settings, details)
    gp = await asking_gp(session, gp_id=gp_id, specialty_id=details.specialty_id)
    if await open_count(session, gp_id=gp_id, now=now) >= settings.on_call_open_per_gp:
        raise TooManyOpen()
    appointment = Appointment(
        kind=AppointmentKind.ON_CALL,
        specialist_id=None,
        specialty_id=details.specialty_id,
        gp_id=gp_id,
        practice_id=gp.practice_id,
        starts_at=now,
        ends_at=now + timedelta(minutes=settings.on_call_minutes),
        claim_until=now + timedelta(minutes=settings.on_call_claim_minutes),
        **service.consult_fields(details, now=now),
        created_at=now,
    )
    session.add(appointment)
    await session.flush()
    assert appointment.id is not None
    outbox.record(
        session,
        OnCallRequested(
            appointment_id=appointment.id, specialty_id=details.specialty_id, gp_id=gp_id
        ),
    )
    audit.record_for(
        session,
        who,
        "on_call.requested",
        appointment.id,
        specialty_id=details.specialty_id,
        urgency=appointment.urgency.value,
        mode=appointment.mode.value,
    )
    return await service.with_new_link(
        session, settings=settings, appointment=appointment, who=who, now=now
    )


async def asking_gp(session: AsyncSession, *, gp_id: int, specialty_id: int) -> User:
    """The GP asking a specialty (a consult now, or in writing), once the specialty is known
    to exist and to have a specialist; the GP's row held until the transaction ends (on
    SQLite, the database's write lock), so that two requests of one GP at once are counted
    against the GP's cap one after the other."""
    specialty = await session.get(Specialty, specialty_id)
    if specialty is None:
        raise NotFound("Dieses Fachgebiet gibt es nicht.")
    if not await repo.specialist_ids(session, specialty_id):
        raise NoSpecialist()
    await session.execute(
        update(User).where(col(User.id) == gp_id).values(is_active=col(User.is_active))
    )
    gp = await session.get(User, gp_id)
    assert gp is not None
    return gp


async def claim(
    session: AsyncSession,
    *,
    who: Principal,
    appointment_id: int,
    kind: AppointmentKind = AppointmentKind.ON_CALL,
    now: datetime | None = None,
) -> AppointmentOut:
    """The specialist takes the request (an on-call request, or with ``kind`` a written
    Telekonsil, ``app.scheduling.written``): exactly one of simultaneous claims wins; the
    others get ``already_claimed`` (409)."""
    now = now or utcnow()
    specialist_id = require_role(who, Role.SPECIALIST)
    me = await session.get(User, specialist_id)
    if me is None or me.specialty_id is None:
        raise NotFound("Diese Anfrage gibt es nicht.")
    try:
        result = await session.execute(
            update(Appointment)
            .where(
                col(Appointment.id) == appointment_id,
                col(Appointment.kind) == kind,
                col(Appointment.specialty_id) == me.specialty_id,
                col(Appointment.specialist_id).is_(None),
                col(Appointment.status) == AppointmentStatus.BOOKED,
                col(Appointment.room_state).in_(OPEN_STATES),
                # A consult now goes stale at its planned end; a written one waits until it
                # is taken or withdrawn.
                or_(
                    col(Appointment.kind) == AppointmentKind.WRITTEN,
                    col(Appointment.ends_at) > now,
                ),
            )
            .values(specialist_id=specialist_id, claimed_at=now, unclaimed_at=None)
            .execution_options(synchronize_session=False)
        )
    except IntegrityError as exc:
        # The specialist has another appointment at this very second (the active-slot index).
        if repo.is_slot_conflict(exc):
            raise Conflict("Zu dieser Zeit haben Sie bereits einen Termin.") from None
        raise
    assert isinstance(result, CursorResult)
    appointment = await repo.lock_appointment(session, appointment_id)
    if result.rowcount != 1:
        if (
            appointment is None
            or appointment.kind is not kind
            or appointment.specialty_id != me.specialty_id
        ):
            raise NotFound("Diese Anfrage gibt es nicht.")
        if appointment.specialist_id == specialist_id:
            # Their own retry (a lost answer, a second tab): it is theirs, nothing happens twice.
            return (await appointment_views(session, [appointment]))[0]
        if appointment.specialist_id is not None:
            raise AlreadyClaimed()
        if appointment.ends_at <= now and not is_closed(appointment.room_state):
            raise InvalidTransition("Diese Anfrage ist abgelaufen.")
        raise InvalidTransition("Diese Anfrage wurde zurückgezogen.")
    assert appointment is not None
    assert appointment.specialty_id is not None
    claimed = WrittenClaimed if kind is AppointmentKind.WRITTEN else OnCallClaimed
    outbox.record(
        session,
        claimed(
            appointment_id=appointment_id,
            specialty_id=appointment.specialty_id,
            gp_id=appointment.gp_id,
            specialist_id=specialist_id,
        ),
    )
    audit.record_for(session, who, f"{kind.value}.claimed", appointment_id)
    return (await appointment_views(session, [appointment]))[0]


async def escalate(
    session: AsyncSession,
    *,
    settings: Settings,
    who: Principal,
    appointment_id: int,
    now: datetime | None = None,
) -> AppointmentOut:
    """The requesting GP asks the specialty again: urgent now, and a new time limit."""
    now = now or utcnow()
    appointment = await _hold_open(session, who=who, appointment_id=appointment_id, now=now)
    assert appointment.specialty_id is not None
    appointment.urgency = Urgency.URGENT
    appointment.claim_until = now + timedelta(minutes=settings.on_call_claim_minutes)
    appointment.unclaimed_at = None
    await session.flush()
    outbox.record(
        session,
        OnCallEscalated(
            appointment_id=appointment_id,
            specialty_id=appointment.specialty_id,
            gp_id=appointment.gp_id,
        ),
    )
    audit.record_for(session, who, "on_call.escalated", appointment_id)
    return (await appointment_views(session, [appointment]))[0]


async def withdraw(
    session: AsyncSession, *, who: Principal, appointment_id: int, now: datetime | None = None
) -> AppointmentOut:
    """The requesting GP withdraws the request, but only while nobody has taken it: a claim at
    the same moment either wins (then this answers ``already_claimed``) or finds it withdrawn.
    (Once taken, it is an appointment like a booked one: cancelled as such.)"""
    now = now or utcnow()
    await _hold_open(session, who=who, appointment_id=appointment_id, now=now, stale_ok=True)
    return await service.cancel(session, who=who, appointment_id=appointment_id, now=now)


async def _hold_open(
    session: AsyncSession,
    *,
    who: Principal,
    appointment_id: int,
    now: datetime,
    stale_ok: bool = False,
) -> Appointment:
    """The GP's own open request that nobody has taken, held for the rest of the unit of work
    by a conditional UPDATE (the row's lock on PostgreSQL, the write lock on SQLite), so that a
    claim at the same moment waits and then finds it changed. ``stale_ok``: also one past its
    planned end (to withdraw it)."""
    appointment = await visible_appointment(session, who=who, appointment_id=appointment_id)
    if not is_gp_of(who, appointment) or appointment.kind is not AppointmentKind.ON_CALL:
        raise NotFound("Diese Anfrage gibt es nicht.")
    conditions = [
        col(Appointment.id) == appointment_id,
        col(Appointment.specialist_id).is_(None),
        col(Appointment.status) == AppointmentStatus.BOOKED,
        col(Appointment.room_state).in_(OPEN_STATES),
    ]
    if not stale_ok:
        conditions.append(col(Appointment.ends_at) > now)
    result = await session.execute(
        update(Appointment)
        .where(*conditions)
        .values(claim_until=col(Appointment.claim_until))
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    held = await repo.lock_appointment(session, appointment_id)
    assert held is not None
    if result.rowcount != 1:
        if held.specialist_id is not None:
            raise AlreadyClaimed("Die Anfrage wurde schon übernommen.")
        if held.status != AppointmentStatus.BOOKED or is_closed(held.room_state):
            raise InvalidTransition("Diese Anfrage ist nicht mehr offen.")
        raise InvalidTransition(
            "Diese Anfrage ist abgelaufen: bitte neu anfragen oder einen Termin buchen."
        )
    return held


async def sweep_unclaimed(session: AsyncSession, *, now: datetime) -> int:
    """Marks the open requests whose time ran out with nobody taking them, and records
    ``OnCallUnclaimed`` for each (once: the mark is a conditional UPDATE, safe on two
    processes at once). How many it marked."""
    due = (
        await session.execute(
            select(Appointment.id, Appointment.specialty_id, Appointment.gp_id).where(
                col(Appointment.kind) == AppointmentKind.ON_CALL,
                col(Appointment.specialist_id).is_(None),
                col(Appointment.status) == AppointmentStatus.BOOKED,
                col(Appointment.room_state).in_(OPEN_STATES),
                col(Appointment.unclaimed_at).is_(None),
                col(Appointment.claim_until) <= now,
            )
        )
    ).all()
    marked = 0
    for appointment_id, specialty_id, gp_id in due:
        result = await session.execute(
            update(Appointment)
            .where(
                # Again, as it may have changed since the reading (asked again, taken,
                # withdrawn): only what is still due is marked.
                col(Appointment.id) == appointment_id,
                col(Appointment.specialist_id).is_(None),
                col(Appointment.unclaimed_at).is_(None),
                col(Appointment.claim_until) <= now,
                col(Appointment.status) == AppointmentStatus.BOOKED,
                col(Appointment.room_state).in_(OPEN_STATES),
            )
            .values(unclaimed_at=now)
            .execution_options(synchronize_session=False)
        )
        assert isinstance(result, CursorResult)
        if result.rowcount == 1 and specialty_id is not None:
            marked += 1
            outbox.record(
                session,
                OnCallUnclaimed(
                    appointment_id=appointment_id, specialty_id=specialty_id, gp_id=gp_id
                ),
            )
    return marked
