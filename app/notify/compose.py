"""Turns a claimed job into a message to send, reading the appointment as it is now: the
address or number, the current link, the practice. A link message whose link was replaced, or
whose appointment was cancelled, is not sent (``Skip``), nor a reminder that would come too
late or after the patient is already in the waiting room, nor the GP's "nobody took your
on-call request" once a specialist took it, the GP withdrew it or asked again."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from email.message import EmailMessage

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Practice, User
from app.notify import delays, policy, sms, smtp
from app.notify.gateways import Sms
from app.notify.models import LINK_KINDS, Channel, Kind, OutgoingMessage, Recipient, Status
from app.notify.render import MailContext, render, render_sms
from app.scheduling import links
from app.scheduling.models import Appointment, AppointmentStatus, JoinToken, RoomState
from app.settings import Settings

_IN_THE_ROOM = frozenset({RoomState.WAITING, RoomState.ADMITTED, RoomState.IN_CALL})
# The GP's messages: they link to the GP's page of the booking or on-call request.
_GP_PAGE_KINDS = frozenset(
    {Kind.REPORT_READY, Kind.ON_CALL_UNCLAIMED, Kind.QUESTION_ASKED, Kind.DECLINED}
)


@dataclass(frozen=True)
class ReadyMail:
    email: EmailMessage


@dataclass(frozen=True)
class ReadySms:
    sms: Sms


@dataclass(frozen=True)
class Skip:
    """Not sent: ``superseded`` (nothing to tell any more) or ``failed`` (cannot be sent)."""

    status: Status
    error: str


async def compose(
    session: AsyncSession, *, settings: Settings, message: OutgoingMessage, now: datetime
) -> ReadyMail | ReadySms | Skip:
    appointment = await session.get(Appointment, message.appointment_id)
    if appointment is None:
        return Skip(Status.SUPERSEDED, "appointment_deleted")
    address = await _address(session, message, appointment)
    if address is None:
        return Skip(Status.FAILED, "no_address")
    practice = await _practice(session, appointment)
    context = MailContext(
        kind=message.kind,
        starts_at=appointment.starts_at.astimezone(settings.tz),
        practice_name=practice.name if practice else None,
        practice_phone=practice.phone if practice else None,
        reminder_minutes=message.reminder_minutes,
    )
    if message.kind in LINK_KINDS:
        linked = await _with_link(session, settings, message, appointment, context, now)
        if isinstance(linked, Skip):
            return linked
        context = linked
    if message.kind is Kind.DELAY:
        late = await delays.context(
            session, settings=settings, appointment=appointment, base=context, now=now
        )
        if isinstance(late, delays.Stale):
            return Skip(Status.SUPERSEDED, late.error)
        context = late
    if message.kind is Kind.REMINDER and (skipped := _late(settings, message, appointment, now)):
        return skipped
    if message.kind is Kind.ON_CALL_UNCLAIMED and (why := policy.on_call_settled(appointment)):
        return Skip(Status.SUPERSEDED, why)
    if message.kind is Kind.QUESTION_ASKED and appointment.question_open_since is None:
        # Answered (or the request closed) before the message went: nothing to tell.
        return Skip(Status.SUPERSEDED, "answered")
    if message.kind in _GP_PAGE_KINDS:
        context = replace(
            context,
            booking_id=appointment.id,
            booking_url=f"{settings.base_url.rstrip('/')}/gp/appointments/{appointment.id}",
        )
    assert message.id is not None
    if message.channel is Channel.SMS:
        text = render_sms(context, message.language)
        return ReadySms(
            Sms(to=address, text=text, id=sms.message_id(message.id, message.created_at))
        )
    assert settings.mail_from is not None
    email = smtp.build(
        render(context, message.language),
        sender=settings.mail_from,
        to=address,
        message_id=smtp.message_id(message.id, message.created_at, settings.mail_from),
        date=now,
    )
    return ReadyMail(email)


async def _address(
    session: AsyncSession, message: OutgoingMessage, appointment: Appointment
) -> str | None:
    if message.recipient is Recipient.PATIENT:
        return policy.patient_address(appointment, message.channel)
    gp = await session.get(User, appointment.gp_id)
    return gp.email if gp is not None and gp.is_active else None


def _late(
    settings: Settings, message: OutgoingMessage, appointment: Appointment, now: datetime
) -> Skip | None:
    """A reminder is left out once the patient is in the room, once the consultation is over,
    and when it would come too late (a resent one only after the start)."""
    if appointment.room_state in _IN_THE_ROOM:
        return Skip(Status.SUPERSEDED, "already_joined")
    if appointment.room_state is not RoomState.SCHEDULED:
        return Skip(Status.SUPERSEDED, "too_late")
    later = settings.reminders if message.resend_of is None else []
    if policy.reminder_too_late(
        starts_at=appointment.starts_at,
        minutes=message.reminder_minutes or 0,
        reminders=later,
        now=now,
    ):
        return Skip(Status.SUPERSEDED, "too_late")
    return None


async def _practice(session: AsyncSession, appointment: Appointment) -> Practice | None:
    if appointment.practice_id is None:
        return None
    return await session.get(Practice, appointment.practice_id)


async def _with_link(
    session: AsyncSession,
    settings: Settings,
    message: OutgoingMessage,
    appointment: Appointment,
    context: MailContext,
    now: datetime,
) -> MailContext | Skip:
    if appointment.status is AppointmentStatus.CANCELLED:
        return Skip(Status.SUPERSEDED, "cancelled")
    link = await session.get(JoinToken, message.join_token_id) if message.join_token_id else None
    if link is None or link.revoked_at is not None:
        return Skip(Status.SUPERSEDED, "link_replaced")
    if link.valid_until <= now:
        return Skip(Status.SUPERSEDED, "link_expired")
    token = links.unseal(settings, link.sealed) if link.sealed else None
    if token is None:
        return Skip(Status.FAILED, "link_unavailable")
    return replace(
        context,
        join_url=links.join_url(settings, token),
        opens_at=link.valid_from.astimezone(settings.tz),
    )
