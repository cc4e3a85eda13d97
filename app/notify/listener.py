"""The notify package's lifespan and its listener on the domain events.

The listener runs inside the dispatcher's round, so it only writes job rows (in a transaction
of its own, after which the sender is rung); sending happens in the sender's task. A job's key
is the event id with channel and recipient (a reminder's: its link, minutes and channel), so an
event delivered twice adds nothing. A new link brings its reminders, due at their time before
the start, and supersedes the reminders of the link it replaced; a cancellation supersedes
them all. Reminders are rows like any message: a restart loses none.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import unit_of_work, utcnow
from app.events import types as ev
from app.logging import get_logger
from app.notify import policy, queue, sms, smtp
from app.notify.models import Channel
from app.notify.sender import Sender
from app.resources import Resources
from app.scheduling.models import Appointment
from app.settings import Settings

log = get_logger("konsil.notify")


def available_channels(settings: Settings) -> frozenset[Channel]:
    """The channels this server can send through."""
    return frozenset(
        channel
        for channel, on in (
            (Channel.EMAIL, settings.mail_configured),
            (Channel.SMS, settings.sms_configured),
        )
        if on
    )


async def on_event(
    sessions: async_sessionmaker[AsyncSession],
    event: ev.DomainEvent,
    *,
    settings: Settings,
    now: datetime | None = None,
) -> int:
    """Adds the messages ``event`` calls for; returns how many were new."""
    if not isinstance(event, ev.AppointmentEvent):
        return 0
    added = 0
    now = now or utcnow()
    async with unit_of_work(sessions) as session:
        appointment = await session.get(Appointment, event.appointment_id)
        if appointment is None:
            return 0  # deleted by retention before its events were delivered
        await _retire_reminders(session, event)
        planned_all = policy.plan(
            event,
            appointment,
            channels=available_channels(settings),
            reminders=settings.reminders,
            now=now,
        )
        for planned in planned_all:
            key = policy.idempotency_key(event.event_id, planned)
            added += await queue.enqueue(
                session, key=key, appointment_id=event.appointment_id, planned=planned, now=now
            )
    return added


async def _retire_reminders(session: AsyncSession, event: ev.AppointmentEvent) -> None:
    """The reminders of a replaced link, or of a cancelled appointment, are not sent."""
    match event:
        case ev.LinkIssued():
            keep, error = event.link_id, "link_replaced"
        case ev.LinkRevoked():
            keep, error = None, "link_replaced"
        case ev.AppointmentCancelled():
            keep, error = None, "cancelled"
        case _:
            return
    await queue.supersede_reminders(
        session, appointment_id=event.appointment_id, keep_link=keep, error=error
    )


@asynccontextmanager
async def lifespan(res: Resources) -> AsyncIterator[None]:
    """Registered in ``app.main.PACKAGE_LIFESPANS``. Without ``KONSIL_SMTP_URL`` and
    ``KONSIL_SMS_URL`` there is no listener and no sender: no message is planned, and the pages
    say that e-mail and SMS are not set up. With one of them, only its messages are planned."""
    config = smtp.config_from(res.settings)
    mail = smtp.SmtpTransport(config) if config is not None else None
    text = sms.transport_from(res.settings)
    if mail is None and text is None:
        yield
        return
    sender = Sender(res.sessions, res.settings, mail, sms=text)

    async def listener(event: ev.DomainEvent) -> None:
        if await on_event(res.sessions, event, settings=res.settings):
            sender.doorbell.ring()

    res.events.subscribe("notify", listener)
    res.notify = sender
    task = res.tasks.spawn("notify.sender", sender.run)
    try:
        yield
    finally:
        sender.stop()
        await task.stop()
        res.notify = None
