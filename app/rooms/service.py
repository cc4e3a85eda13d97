"""Consultation rooms in the database: who may enter, state changes with audit rows, the queue.

The one writer of an appointment's lifecycle (``room_state`` and ``status``): every change goes
through ``app.rooms.state.next_state`` and is written by ``move``, which records
``RoomStateChanged``; a report completes the appointment through ``complete_by_report``.
Callers own the unit of work.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, func, select

from app.accounts.models import Practice, Role, User
from app.accounts.service import Principal
from app.audit import service as audit
from app.db import UTCDateTime
from app.errors import (
    Conflict,
    InvalidInput,
    InvalidTransition,
    NotFound,
    NotYourRoom,
    NoVideoRoom,
    SlotTaken,
)
from app.events import outbox
from app.events.types import (
    AppointmentTransferred,
    GuestChanged,
    ReportCompleted,
    ReportReady,
    RoomStateChanged,
)
from app.metrics import WAIT_SECONDS
from app.rooms import delay, history, waiting
from app.rooms.schemas import QueueEntry, QueueOut
from app.rooms.state import STATUS_AFTER, UNCLAIMED_ACTIONS, Action, Actor, next_state
from app.scheduling import on_call_queue, written
from app.scheduling.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    GuestInvitation,
    RoomState,
    Specialty,
)


async def load(session: AsyncSession, appointment_id: int, *, lock: bool = False) -> Appointment:
    """The appointment behind a room, or ``NotFound``."""
    query = select(Appointment).where(col(Appointment.id) == appointment_id)
    if lock:
        query = query.with_for_update()
    found = (await session.execute(query)).scalar_one_or_none()
    if found is None:
        raise NotFound("Diesen Termin gibt es nicht.")
    return found


def actor_for(appointment: Appointment, who: Principal) -> Actor:
    """The role ``who`` plays in this room; ``NotYourRoom`` for everybody else (admins too),
    ``NoVideoRoom`` for its own people when it is a written Telekonsil (it has none)."""
    actor = _member(appointment, who)
    if appointment.kind is AppointmentKind.WRITTEN:
        raise NoVideoRoom()
    return actor


def _member(appointment: Appointment, who: Principal) -> Actor:
    if who.is_patient and who.appointment_id == appointment.id:
        return Actor.PATIENT
    if who.is_guest and who.appointment_id == appointment.id:
        return Actor.GUEST
    if who.is_staff and who.user_id is not None:
        if who.role is Role.SPECIALIST and who.user_id == appointment.specialist_id:
            return Actor.SPECIALIST
        if who.role is Role.GP and who.user_id == appointment.gp_id:
            return Actor.GP
    raise NotYourRoom()


def admitted_before(appointment: Appointment) -> bool:
    """Whether the patient was admitted to this consultation (it has begun), even if sent back
    to the waiting room since: only admitting sets ``admitted_at``, and nothing clears it."""
    return appointment.admitted_at is not None


async def staff_detail(session: AsyncSession, user_id: int) -> tuple[str, str]:
    """What a call shows under a staff member's name: the specialty (German, English) of a
    specialist, the practice of a GP (one name for both languages); empty if none."""
    user = await session.get(User, user_id)
    if user is None:
        return "", ""
    if user.specialty_id is not None:
        specialty = await session.get(Specialty, user.specialty_id)
        if specialty is not None:
            return specialty.name_de, specialty.name_en
    if user.practice_id is not None:
        practice = await session.get(Practice, user.practice_id)
        if practice is not None:
            return practice.name, ""
    return "", ""


async def enter(session: AsyncSession, *, appointment_id: int, who: Principal) -> Actor:
    """Checks that ``who`` may enter the room (any state); returns its role there."""
    return actor_for(await load(session, appointment_id), who)


async def act(
    session: AsyncSession,
    *,
    appointment_id: int,
    action: Action,
    who: Principal | None,
    now: datetime,
) -> Appointment:
    """Applies ``action`` for ``who`` (None: the server itself) and records it in the audit log."""
    appointment = await load(session, appointment_id, lock=True)
    actor = actor_for(appointment, who) if who is not None else Actor.SYSTEM
    if appointment.specialist_id is None and action not in UNCLAIMED_ACTIONS:
        raise InvalidTransition(
            "Noch hat niemand aus dem Fachgebiet die Anfrage übernommen: "
            "die Fachärztin oder der Facharzt holt die Patientin oder den Patienten herein."
        )
    before = appointment.room_state
    after = next_state(before, action, actor, admitted_before=admitted_before(appointment))
    if after is before:
        return appointment
    move(session, appointment, after, now)
    audit.record(
        session,
        action=f"room.{action.value}",
        actor_kind=actor.value if actor is not Actor.SYSTEM else "system",
        actor_id=who.user_id if who is not None else None,
        appointment_id=appointment.id,
        before=before.value,
        after=after.value,
    )
    return appointment


def move(session: AsyncSession, appointment: Appointment, after: RoomState, now: datetime) -> None:
    """Writes a transition ``next_state`` allowed: the room state, the appointment status that
    follows from it, their timestamps, and the ``RoomStateChanged`` event."""
    assert appointment.id is not None
    before = appointment.room_state
    _apply(appointment, after, now)
    outbox.record(
        session,
        RoomStateChanged(
            appointment_id=appointment.id,
            specialist_id=appointment.specialist_id,
            specialty_id=appointment.specialty_id if appointment.specialist_id is None else None,
            previous=before,
            state=after,
            waiting_since=appointment.waiting_since if after is RoomState.WAITING else None,
        ),
    )


def _apply(appointment: Appointment, after: RoomState, now: datetime) -> None:
    appointment.room_state = after
    if after is RoomState.WAITING:
        appointment.waiting_since = now
    if after is RoomState.ADMITTED:
        appointment.admitted_at = now
        if appointment.waiting_since is not None:
            WAIT_SECONDS.observe((now - appointment.waiting_since).total_seconds())
    if after is RoomState.SCHEDULED:
        appointment.waiting_since = None
    status = STATUS_AFTER.get(after)
    if status is not None:
        appointment.status = status
        appointment.sequence += 1
        if after is RoomState.CANCELLED:
            appointment.cancelled_at = now
        else:
            appointment.ended_at = now


def complete_by_report(session: AsyncSession, appointment: Appointment, now: datetime) -> None:
    """The specialist's report: the appointment is reported from its first one on, and a booked
    appointment is completed by it, whatever its room did (a consultation may have gone on by
    phone)."""
    assert appointment.id is not None
    if appointment.reported_at is None:
        appointment.reported_at = now
        outbox.record(
            session,
            ReportReady(
                appointment_id=appointment.id,
                specialist_id=appointment.specialist_id,
                gp_id=appointment.gp_id,
            ),
        )
    if appointment.status != AppointmentStatus.BOOKED:
        return
    appointment.status = AppointmentStatus.COMPLETED
    if appointment.kind is AppointmentKind.WRITTEN:
        # A written Telekonsil ends when it is answered (it has no room to end).
        appointment.ends_at = now
    outbox.record(
        session,
        ReportCompleted(
            appointment_id=appointment.id,
            specialist_id=appointment.specialist_id,
            gp_id=appointment.gp_id,
        ),
    )


async def no_show(
    session: AsyncSession, *, appointment_id: int, who: Principal, now: datetime
) -> Appointment:
    """Marks a patient who never came. Only once the slot has begun."""
    appointment = await load(session, appointment_id)
    actor_for(appointment, who)
    if now < appointment.starts_at:
        raise InvalidInput("Vor Beginn des Termins kann niemand als nicht erschienen gelten.")
    return await act(
        session, appointment_id=appointment_id, action=Action.NO_SHOW, who=who, now=now
    )


async def transfer(
    session: AsyncSession, *, appointment_id: int, who: Principal, to_specialist_id: int
) -> Appointment:
    """Hands a consultation that has not started to a colleague of the same specialty
    (``AppointmentTransferred`` tells the previous one's connections and dashboard). A guest
    the previous specialist let in waits until the new one lets it in.

    ``SlotTaken`` when the colleague already has a consultation at that time.
    """
    appointment = await load(session, appointment_id, lock=True)
    actor = actor_for(appointment, who)
    next_state(
        appointment.room_state,
        Action.TRANSFER,
        actor,
        admitted_before=admitted_before(appointment),
    )
    if appointment.status != AppointmentStatus.BOOKED:
        # A report already written makes the consultation this specialist's for good.
        raise Conflict("Ein abgeschlossener Termin kann nicht mehr übergeben werden.")
    source = await session.get(User, appointment.specialist_id)
    target = await session.get(User, to_specialist_id)
    if (
        target is None
        or source is None
        or target.id == source.id
        or target.role is not Role.SPECIALIST
        or not target.is_active
        or target.specialty_id != source.specialty_id
    ):
        raise InvalidInput(
            "Übergabe nur an eine andere Fachärztin bzw. einen anderen Facharzt "
            "desselben Fachgebiets."
        )
    previous = appointment.specialist_id
    appointment.specialist_id = to_specialist_id
    appointment.sequence += 1
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise SlotTaken(
            "Die Kollegin bzw. der Kollege hat zu dieser Zeit schon einen Termin."
        ) from None
    outbox.record(
        session,
        AppointmentTransferred(
            appointment_id=appointment_id,
            from_specialist_id=previous,
            to_specialist_id=to_specialist_id,
        ),
    )
    audit.record(
        session,
        action="room.transfer",
        actor_kind=actor.value,
        actor_id=who.user_id,
        appointment_id=appointment.id,
        from_specialist=previous,
        to_specialist=to_specialist_id,
    )
    await _guest_not_admitted(session, appointment_id)
    return appointment


async def _guest_not_admitted(session: AsyncSession, appointment_id: int) -> None:
    """The guest let in by the previous specialist waits until the new one lets it in (its
    invitation and session stay): every replica takes it out of the call."""
    cleared = await session.execute(
        update(GuestInvitation)
        .where(
            col(GuestInvitation.appointment_id) == appointment_id,
            col(GuestInvitation.revoked_at).is_(None),
            col(GuestInvitation.admitted_at).is_not(None),
        )
        .values(admitted_at=None)
        .execution_options(synchronize_session=False)
    )
    if getattr(cleared, "rowcount", 0):
        outbox.record(session, GuestChanged(appointment_id=appointment_id, admitted=False))


async def waiting_count(session: AsyncSession) -> int:
    """Patients in a waiting room right now, across all specialists and server instances."""
    count = await session.scalar(
        select(func.count()).where(col(Appointment.room_state) == RoomState.WAITING)
    )
    return int(count or 0)


async def queue(
    session: AsyncSession, *, specialist_id: int, tz: ZoneInfo, now: datetime
) -> QueueOut:
    """The specialist's local day, the patients waiting right now (any day) and the late
    notice for the day. An on-call consult belongs to the day it was taken on (``held_at``):
    one asked before midnight and taken after it is held today."""
    day = now.astimezone(tz).date()
    start = datetime.combine(day, time(0), tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tz)
    held = func.coalesce(
        col(Appointment.claimed_at), col(Appointment.starts_at), type_=UTCDateTime()
    )
    rows = (
        await session.execute(
            select(Appointment, User.display_name)
            .join(User, col(User.id) == col(Appointment.gp_id))
            .where(
                col(Appointment.specialist_id) == specialist_id,
                col(Appointment.status) != AppointmentStatus.CANCELLED,
                # Written Telekonsile have no time in the day: ``written`` lists them.
                col(Appointment.kind) != AppointmentKind.WRITTEN,
                (
                    (held >= start) & (held < end)
                    | (col(Appointment.room_state) == RoomState.WAITING)
                ),
            )
        )
    ).all()
    entries = [(a, _entry(a, gp_name, now)) for a, gp_name in rows]
    in_line = sorted(
        (pair for pair in entries if pair[0].room_state is RoomState.WAITING),
        key=lambda p: waiting.order_key(_waiter(p[0]), now),
    )
    today = sorted(
        (pair for pair in entries if start <= _held_at(pair[0]) < end),
        key=lambda p: (_held_at(p[0]), waiting.URGENT_FIRST[p[0].urgency], p[0].id or 0),
    )
    notice = await delay.current(session, specialist_id=specialist_id, today=day)
    me = await session.get(User, specialist_id)
    on_call = (
        await on_call_queue.open_requests(session, specialty_id=me.specialty_id, now=now, tz=tz)
        if me is not None and me.specialty_id is not None
        else []
    )
    answers = (
        await written.queue_entries(session, specialist=me, now=now, tz=tz)
        if me is not None
        else []
    )
    return QueueOut(
        day=day,
        generated_at=now,
        waiting=[e for _, e in in_line],
        today=[e for _, e in today],
        delay=delay.out(notice),
        in_consultation=await history.in_consultation(
            session, specialist_id=specialist_id, now=now
        ),
        on_call=on_call,
        written=answers,
    )


def _held_at(appointment: Appointment) -> datetime:
    """When the consult is held as far as the specialist's day goes: an on-call consult when
    it was taken (its ``starts_at`` is when it was asked, and may be the day before), any other
    at its ``starts_at``."""
    return appointment.claimed_at or appointment.starts_at


def _waiter(appointment: Appointment) -> waiting.Waiter:
    assert appointment.id is not None
    return waiting.Waiter(
        appointment.id,
        appointment.urgency,
        appointment.starts_at,
        appointment.waiting_since,
        sent_back=admitted_before(appointment),
    )


def _entry(appointment: Appointment, gp_name: str, now: datetime) -> QueueEntry:
    waiting = appointment.room_state is RoomState.WAITING and appointment.waiting_since
    assert appointment.id is not None
    return QueueEntry(
        appointment_id=appointment.id,
        starts_at=appointment.starts_at,
        ends_at=appointment.ends_at,
        urgency=appointment.urgency,
        mode=appointment.mode,
        room_state=appointment.room_state,
        patient_name=appointment.patient_name,
        gp_name=gp_name,
        waiting_since=appointment.waiting_since if waiting else None,
        waiting_seconds=max(0, int((now - appointment.waiting_since).total_seconds()))
        if waiting and appointment.waiting_since
        else None,
    )
