"""The notify package's lifespan and its listener on the domain events.

The listener runs inside the dispatcher's round, so it only writes job rows (in a transaction
of its own, after which the sender is rung); sending happens in the sender's task. A job's key
is the event id with channel and recipient, so an event delivered twice adds nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import unit_of_work, utcnow
from app.events import types as ev
from app.logging import get_logger
from app.notify import policy, queue, smtp
from app.notify.sender import Sender
from app.resources import Resources
from app.scheduling.models import Appointment

log = get_logger("konsil.notify")


async def on_event(sessions: async_sessionmaker[AsyncSession], event: ev.DomainEvent) -> int:
    """Adds the messages ``event`` calls for; returns how many were new."""
    if not isinstance(event, ev.AppointmentEvent):
        return 0
    added = 0
    async with unit_of_work(sessions) as session:
        appointment = await session.get(Appointment, event.appointment_id)
        if appointment is None:
            return 0  # deleted by retention before its events were delivered
        now = utcnow()
        for planned in policy.plan(event, appointment):
            key = policy.idempotency_key(event.event_id, planned)
            added += await queue.enqueue(
                session, key=key, appointment_id=event.appointment_id, planned=planned, now=now
            )
    return added


@asynccontextmanager
async def lifespan(res: Resources) -> AsyncIterator[None]:
    """Registered in ``app.main.PACKAGE_LIFESPANS``. Without ``KONSIL_SMTP_URL`` there is no
    listener and no sender: no message is planned, and the pages say e-mail is not set up."""
    config = smtp.config_from(res.settings)
    if config is None:
        yield
        return
    sender = Sender(res.sessions, res.settings, smtp.SmtpTransport(config))

    async def listener(event: ev.DomainEvent) -> None:
        if await on_event(res.sessions, event):
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
