"""Bookings: book, cancel, reschedule, list, read, and their join links (services).

Every function works inside the caller's unit of work, so a booking, its join link and its audit
row commit together or not at all.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Role, User
from app.accounts.service import Principal
from app.audit import service as audit
from app.db import utcnow
from app.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    InvalidTransition,
    NotFound,
    SlotTaken,
)
from app.events import outbox
from app.events.types import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentRescheduled,
    LinkReason,
)
from app.rooms import service as rooms
from app.rooms.state import CANCELLABLE, Action, Actor, is_closed, next_state
from app.scheduling import calendar, guests, links
from app.scheduling import repository as repo
from app.scheduling.access import is_gp_of, require_role, require_video, visible_appointment
from app.scheduling.availability import bookable_slot
from app.scheduling.models import Appointment, AppointmentStatus, RoomState
from app.scheduling.schemas import (
    AppointmentOut,
    AppointmentsQuery,
    BookingIn,
    BookingOut,
    ConsultIn,
    LinkOut,
    TelekonsilIn,
)
from app.scheduling.views import appointment_views
from app.settings import Settings


async def book(
    session: AsyncSession,
    *,
    settings: Settings,
    who: Principal,
    details: BookingIn,
    now: datetime | None = None,
) -> BookingOut:
    """Books a free slot for a GP's patient and issues the patient's join link.

    Bookings of one specialist are serialised by locking the specialist's row before the
    overlap check; the partial unique index on active slots settles anything that slips past.
    """
    now = now or utcnow()
    gp_id = require_role(who, Role.GP)
    require_sending(settings, details)
    gp = await session.get(User, gp_id)
    assert gp is not None
    specialist = await repo.lock_specialist(session, details.specialist_id)
    if specialist is None:
        raise NotFound("Diese Fachärztin bzw. diesen Facharzt gibt es nicht.")
    slot = await bookable_slot(
        session,
        settings=settings,
        specialist_id=details.specialist_id,
        starts_at=details.starts_at,
        now=now,
    )
    appointment = Appointment(
        specialist_id=details.specialist_id,
        gp_id=gp_id,
        practice_id=gp.practice_id,
        starts_at=slot.starts_at,
        ends_at=slot.ends_at,
        **consult_fields(details, now=now),
        created_at=now,
    )
    session.add(appointment)
    await _flush_or_slot_taken(session)
    assert appointment.id is not None
    outbox.record(
        session,
        AppointmentBooked(
            appointment_id=appointment.id, specialist_id=details.specialist_id, gp_id=gp_id
        ),
    )
    audit.record_for(
        session,
        who,
        "appointment.booked",
        appointment.id,
        specialist_id=specialist.id,
        urgency=appointment.urgency.value,
        mode=appointment.mode.value,
    )
    return await with_new_link(
        session, settings=settings, appointment=appointment, who=who, now=now
    )


def telekonsil_fields(details: TelekonsilIn, *, now: datetime) -> dict[str, Any]:
    """The appointment's columns from what every request to a specialist shares: who the
    patient is, the question and the request's particulars (the patient's consent counts as
    recorded ``now``)."""
    return {
        "patient_insurance_number": details.patient_insurance_number,
        "patient_sex": details.patient_sex,
        "diagnosis_code": details.diagnosis_code,
        "diagnosis_certainty": details.diagnosis_certainty,
        "diagnosis_text": details.diagnosis_text,
        "medication": details.medication,
        "answer_by": details.answer_by,
        "consent_recorded_at": now if details.consent_recorded else None,
        "patient_name": details.patient_name,
        "patient_birth_date": details.patient_birth_date,
        "clinical_question": details.clinical_question,
        "urgency": details.urgency,
    }


def consult_fields(details: ConsultIn, *, now: datetime) -> dict[str, Any]:
    """The appointment's columns of a request with video (a booking, an on-call request): the
    Telekonsil's, and how the patient is reached and where they are."""
    return telekonsil_fields(details, now=now) | {
        "patient_contact": details.patient_contact,
        "patient_phone": details.patient_phone,
        "mode": details.mode,
        "patient_channels": ",".join(details.invite_by),
        "patient_language": details.patient_language,
    }


async def with_new_link(
    session: AsyncSession,
    *,
    settings: Settings,
    appointment: Appointment,
    who: Principal,
    now: datetime,
    action: str = "link.issued",
    reason: LinkReason = "booked",
) -> BookingOut:
    """Issues the appointment's patient link (earlier ones stop working) and answers both, the
    link with its token this once (booking, on-call request, reschedule)."""
    issued = await links.issue(
        session,
        settings=settings,
        appointment=appointment,
        who=who,
        now=now,
        action=action,
        reason=reason,
    )
    return BookingOut(
        appointment=(await appointment_views(session, [appointment]))[0],
        link=await link_out(
            session, settings=settings, appointment=appointment, issued=issued, now=now
        ),
    )


def require_sending(settings: Settings, details: ConsultIn) -> None:
    """The channels the GP chose must be set up on this server."""
    for channel, configured, name in (
        ("email", settings.mail_configured, "E-Mail"),
        ("sms", settings.sms_configured, "SMS"),
    ):
        if channel in details.invite_by and not configured:
            message = f"Der {name}-Versand ist auf diesem Server nicht eingerichtet."
            raise InvalidInput(fields=[{"field": "invite_by", "message": message}])


async def _flush_or_slot_taken(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        if repo.is_slot_conflict(exc):
            raise SlotTaken() from None
        raise


async def cancel(
    session: AsyncSession,
    *,
    who: Principal,
    appointment_id: int,
    reason: str | None = None,
    now: datetime | None = None,
) -> AppointmentOut:
    """Cancels a booking (its GP or its specialist, who thereby declines the request): links
    revoked, room closed; ``reason`` is kept for the other side."""
    now = now or utcnow()
    appointment = await visible_appointment(
        session, who=who, appointment_id=appointment_id, lock=True
    )
    if appointment.status != AppointmentStatus.BOOKED or appointment.room_state not in CANCELLABLE:
        raise InvalidTransition("Dieser Termin kann nicht mehr abgesagt werden.")
    actor = Actor.GP if is_gp_of(who, appointment) else Actor.SPECIALIST
    begun = rooms.admitted_before(appointment)  # e.g. sent back to the waiting room
    after = next_state(appointment.room_state, Action.CANCEL, actor, admitted_before=begun)
    rooms.move(session, appointment, after, now)
    appointment.cancelled_by = actor.value
    appointment.cancel_reason = (reason or "").strip() or None
    appointment.question_open_since = None
    outbox.record(
        session,
        AppointmentCancelled(
            appointment_id=appointment_id,
            specialist_id=appointment.specialist_id,
            gp_id=appointment.gp_id,
        ),
    )
    revoked = await links.revoke(session, appointment=appointment, who=None, now=now)
    audit.record_for(
        session,
        who,
        "appointment.cancelled",
        appointment_id,
        by=who.role.value if who.role else None,
        links_revoked=revoked,
    )
    await session.flush()
    return (await appointment_views(session, [appointment]))[0]


async def reschedule(
    session: AsyncSession,
    *,
    settings: Settings,
    who: Principal,
    appointment_id: int,
    starts_at: datetime,
    now: datetime | None = None,
) -> BookingOut:
    """Moves a booking to another free slot of the same specialist (the booking GP only).

    The old join link stops working at once; a new one is issued and returned. The guest's
    invitation is revoked (and its session ended): the guest is invited again for the new time.
    """
    now = now or utcnow()
    appointment = await visible_appointment(
        session, who=who, appointment_id=appointment_id, lock=True
    )
    if not is_gp_of(who, appointment):
        raise Forbidden("Nur die buchende Praxis kann den Termin verschieben.")
    require_video(appointment)
    if (
        appointment.status != AppointmentStatus.BOOKED
        or appointment.room_state != RoomState.SCHEDULED
        or rooms.admitted_before(appointment)
    ):
        raise InvalidTransition("Dieser Termin kann nicht mehr verschoben werden.")
    if appointment.specialist_id is None:
        # An on-call request has no slot to move: the GP withdraws it and books one instead.
        raise InvalidTransition("Eine Sofort-Anfrage kann nicht verschoben werden.")
    if starts_at.astimezone(UTC) == appointment.starts_at:
        raise Conflict("Der Termin liegt bereits zu dieser Zeit.")
    await repo.lock_specialist(session, appointment.specialist_id)
    slot = await bookable_slot(
        session,
        settings=settings,
        specialist_id=appointment.specialist_id,
        starts_at=starts_at,
        now=now,
        exclude_id=appointment.id,
    )
    old_start = appointment.starts_at
    appointment.starts_at, appointment.ends_at = slot.starts_at, slot.ends_at
    appointment.sequence += 1
    await _flush_or_slot_taken(session)
    outbox.record(
        session,
        AppointmentRescheduled(
            appointment_id=appointment_id,
            specialist_id=appointment.specialist_id,
            gp_id=appointment.gp_id,
        ),
    )
    # The guest's link was for the old time, like the patient's: the guest is invited again.
    guests_revoked = await guests.revoke_all(session, appointment_id, now)
    audit.record_for(
        session,
        who,
        "appointment.rescheduled",
        appointment_id,
        old_starts_at=old_start.isoformat(),
        new_starts_at=slot.starts_at.isoformat(),
        guests_revoked=guests_revoked,
    )
    return await with_new_link(
        session,
        settings=settings,
        appointment=appointment,
        who=who,
        now=now,
        action="link.reissued",
        reason="rescheduled",
    )


async def reissue_link(
    session: AsyncSession,
    *,
    settings: Settings,
    who: Principal,
    appointment_id: int,
    now: datetime | None = None,
) -> LinkOut:
    """A new join link for the patient (booking GP only); every earlier link stops working."""
    now = now or utcnow()
    appointment = await visible_appointment(
        session, who=who, appointment_id=appointment_id, lock=True
    )
    if not is_gp_of(who, appointment):
        raise Forbidden("Nur die buchende Praxis kann einen neuen Link erzeugen.")
    _require_open(appointment)
    issued = await links.issue(
        session,
        settings=settings,
        appointment=appointment,
        who=who,
        now=now,
        action="link.reissued",
        reason="reissued",
    )
    return await link_out(
        session, settings=settings, appointment=appointment, issued=issued, now=now
    )


async def revoke_link(
    session: AsyncSession, *, who: Principal, appointment_id: int, now: datetime | None = None
) -> None:
    """Revokes the patient's link and ends the patient's sessions (GP or specialist)."""
    now = now or utcnow()
    appointment = await visible_appointment(
        session, who=who, appointment_id=appointment_id, lock=True
    )
    require_video(appointment)
    await links.revoke(session, appointment=appointment, who=who, now=now)


def _require_open(appointment: Appointment) -> None:
    if appointment.status != AppointmentStatus.BOOKED or is_closed(appointment.room_state):
        raise InvalidTransition("Für diesen Termin gibt es keinen Link mehr.")


async def link_out(
    session: AsyncSession,
    *,
    settings: Settings,
    appointment: Appointment,
    issued: links.IssuedLink,
    now: datetime,
) -> LinkOut:
    # An on-call request that nobody has taken yet names its specialty only.
    specialist, specialty = await repo.specialist_and_specialty(session, appointment)
    ics = calendar.patient_ics(
        appointment,
        specialty=specialty.name_de if specialty else "",
        specialist_name=specialist.display_name if specialist else "",
        join_url=issued.join_url,
        base_url=settings.base_url,
        now=now,
    )
    return LinkOut(
        join_url=issued.join_url,
        valid_from=issued.valid_from,
        valid_until=issued.valid_until,
        patient_ics=ics,
    )


async def list_bookings(
    session: AsyncSession, *, settings: Settings, who: Principal, query: AppointmentsQuery
) -> list[AppointmentOut]:
    """A GP's own bookings or a specialist's own appointments, by start time."""
    if who.role not in (Role.GP, Role.SPECIALIST) or who.user_id is None:
        raise Forbidden()
    start = _local_midnight(query.first_day, settings) if query.first_day else None
    end = _local_midnight(query.last_day + timedelta(days=1), settings) if query.last_day else None
    rows = await repo.appointments_for(
        session,
        gp_id=who.user_id if who.role is Role.GP else None,
        specialist_id=who.user_id if who.role is Role.SPECIALIST else None,
        start=start,
        end=end,
        status=query.status,
        limit=query.limit,
    )
    return await appointment_views(session, rows)


def _local_midnight(day: date, settings: Settings) -> datetime:
    return datetime.combine(day, time(0), tzinfo=settings.tz).astimezone(UTC)


async def booking_detail(
    session: AsyncSession, *, who: Principal, appointment_id: int
) -> AppointmentOut:
    appointment = await visible_appointment(session, who=who, appointment_id=appointment_id)
    return (await appointment_views(session, [appointment]))[0]


async def staff_calendar(
    session: AsyncSession,
    *,
    settings: Settings,
    who: Principal,
    appointment_id: int,
    now: datetime | None = None,
) -> bytes:
    """The .ics for the GP's or specialist's calendar: no health data."""
    appointment = await visible_appointment(session, who=who, appointment_id=appointment_id)
    require_video(appointment)  # a written Telekonsil has no time in a calendar
    _, specialty = await repo.specialist_and_specialty(session, appointment)
    return calendar.staff_ics(
        appointment,
        specialty=specialty.name_de if specialty else "Telekonsil",
        base_url=settings.base_url,
        now=now or utcnow(),
    )
