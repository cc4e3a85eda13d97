"""The booking GP's view of a booking's messages, and sending one again."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.accounts.service import Principal
from app.audit import service as audit
from app.errors import Conflict, Forbidden, NotFound
from app.notify import policy, queue
from app.notify.models import LINK_KINDS, Channel, OutgoingMessage, Recipient, Status
from app.notify.schemas import MessageOut, MessagesOut
from app.scheduling.access import is_gp_of, visible_appointment
from app.scheduling.models import Appointment, AppointmentStatus, JoinToken
from app.settings import Settings


async def _own_booking(session: AsyncSession, who: Principal, appointment_id: int) -> Appointment:
    appointment = await visible_appointment(session, who=who, appointment_id=appointment_id)
    if not is_gp_of(who, appointment):
        raise Forbidden("Die Nachrichten sieht nur die buchende Praxis.")
    return appointment


async def messages(
    session: AsyncSession, *, settings: Settings, who: Principal, appointment_id: int
) -> MessagesOut:
    appointment = await _own_booking(session, who, appointment_id)
    rows = await queue.for_appointment(session, appointment_id)
    return MessagesOut(
        email_configured=settings.mail_configured,
        sms_configured=settings.sms_configured,
        patient_email=policy.patient_email(appointment),
        patient_phone=policy.patient_phone(appointment),
        messages=[_out(row) for row in rows],
    )


def _out(row: OutgoingMessage) -> MessageOut:
    return MessageOut.model_validate(
        {
            **row.model_dump(),
            "next_attempt_at": row.available_at if row.status is Status.QUEUED else None,
        }
    )


async def resend(
    session: AsyncSession,
    *,
    settings: Settings,
    who: Principal,
    appointment_id: int,
    message_id: int,
    now: datetime,
) -> MessageOut:
    """A new message like ``message_id`` (a link message carries the current link)."""
    appointment = await _own_booking(session, who, appointment_id)
    original = await session.get(OutgoingMessage, message_id)
    if original is None or original.appointment_id != appointment_id:
        raise NotFound("Diese Nachricht gibt es nicht.")
    _require_channel(settings, original.channel)
    if await queue.pending_like(session, original):
        raise Conflict("Diese Nachricht ist bereits unterwegs.")
    if (
        original.recipient is Recipient.PATIENT
        and policy.patient_address(appointment, original.channel) is None
    ):
        raise Conflict(_NO_ADDRESS[original.channel])
    link_id = await _current_link(session, appointment) if original.kind in LINK_KINDS else None
    planned = policy.Planned(
        original.kind,
        original.recipient,
        original.channel,
        original.language,
        link_id,
        reminder_minutes=original.reminder_minutes,
    )
    key = f"resend:{uuid.uuid4().hex}"
    await queue.enqueue(session, key=key, appointment_id=appointment_id, planned=planned, now=now)
    found = await session.execute(
        select(OutgoingMessage).where(col(OutgoingMessage.idempotency_key) == key)
    )
    message = found.scalar_one()
    message.resend_of = original.id
    await session.flush()
    audit.record_for(
        session, who, "message.resent", appointment_id, message_id=message.id, of=original.id
    )
    return _out(message)


_NOT_SET_UP = {
    Channel.EMAIL: "Der E-Mail-Versand ist auf diesem Server nicht eingerichtet.",
    Channel.SMS: "Der SMS-Versand ist auf diesem Server nicht eingerichtet.",
}
_NO_ADDRESS = {
    Channel.EMAIL: "Für diese Patientin bzw. diesen Patienten ist keine E-Mail-Adresse da.",
    Channel.SMS: "Für diese Patientin bzw. diesen Patienten ist keine Mobilnummer da.",
}


def _require_channel(settings: Settings, channel: Channel) -> None:
    configured = settings.mail_configured if channel is Channel.EMAIL else settings.sms_configured
    if not configured:
        raise Conflict(_NOT_SET_UP[channel])


async def _current_link(session: AsyncSession, appointment: Appointment) -> int:
    """The link a resent link message carries: the appointment's live one, if it was kept for
    sending."""
    if appointment.status is not AppointmentStatus.BOOKED:
        raise Conflict("Für diesen Termin gibt es keinen Link mehr.")
    query = (
        select(JoinToken)
        .where(col(JoinToken.appointment_id) == appointment.id, col(JoinToken.revoked_at).is_(None))
        .order_by(col(JoinToken.id).desc())
        .limit(1)
    )
    link = (await session.execute(query)).scalars().first()
    if link is None or link.sealed is None or link.id is None:
        raise Conflict("Es gibt keinen Link zum Versenden. Bitte einen neuen Link erzeugen.")
    return link.id
