"""Late notices by e-mail and SMS: the listener on ``DelayChanged``, its ledger, and what the
message says at send time.

The listener writes one job per patient the notice concerns (``delay_policy``), keyed by the
event, the appointment, channel and recipient, so a redelivered event adds nothing; the ledger
(``delay_notice``) remembers per appointment what the patient was last told and how often. A
job still on its way is not joined by another: it reads the notice when it is sent. Like every
message it holds ids only; the specialist's free-text note is never sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import Field, SQLModel, col, select

from app.db import unit_of_work, utc_column, utcnow
from app.events import types as ev
from app.notify import delay_policy, policy, queue
from app.notify.listener import available_channels
from app.notify.models import Channel, Kind, OutgoingMessage, Recipient, Status
from app.notify.render import MailContext
from app.resources import Resources
from app.rooms import delay
from app.rooms.waiting import concerns, local_day
from app.scheduling.models import Appointment, AppointmentStatus, RoomState
from app.settings import Settings


class DelayNotice(SQLModel, table=True):
    """What the patient of an appointment was last told of a delay, by message."""

    __tablename__ = "delay_notice"

    appointment_id: int = Field(foreign_key="appointment.id", primary_key=True)
    minutes: int
    count: int
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


async def on_event(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    event: ev.DomainEvent,
    *,
    now: datetime | None = None,
) -> int:
    """Adds the late-notice messages ``event`` calls for; returns how many were new."""
    if not isinstance(event, ev.DelayChanged):
        return 0
    now, tz = now or utcnow(), settings.tz
    day = local_day(now, tz)
    added = 0
    async with unit_of_work(sessions) as session:
        notice = await delay.current(session, specialist_id=event.specialist_id, today=day)
        if notice is None or notice.minutes is None:
            return 0
        for appointment in await _candidates(session, event.specialist_id, now):
            if not delay_policy.expecting(appointment, day=day, now=now, tz=tz):
                continue
            channels = policy.patient_channels(appointment, available_channels(settings))
            if channels:
                added += await _tell(session, event, appointment, notice.minutes, channels, now)
    return added


async def _candidates(
    session: AsyncSession, specialist_id: int, now: datetime
) -> list[Appointment]:
    query = select(Appointment).where(
        col(Appointment.specialist_id) == specialist_id,
        col(Appointment.status) == AppointmentStatus.BOOKED,
        col(Appointment.room_state) == RoomState.SCHEDULED,
        col(Appointment.ends_at) > now,
        col(Appointment.starts_at) <= now + delay_policy.HORIZON,
    )
    return list((await session.execute(query)).scalars().all())


async def _tell(
    session: AsyncSession,
    event: ev.DelayChanged,
    appointment: Appointment,
    minutes: int,
    channels: list[Channel],
    now: datetime,
) -> int:
    """One message per channel the patient is reached by; the ledger counts one telling."""
    assert appointment.id is not None
    ledger = await session.get(DelayNotice, appointment.id, with_for_update=True)
    told = delay_policy.Told(ledger.minutes, ledger.count) if ledger is not None else None
    if not delay_policy.due(minutes, told) or await _on_its_way(session, appointment.id):
        return 0
    added = 0
    for channel in channels:
        planned = policy.Planned(
            Kind.DELAY, Recipient.PATIENT, channel, appointment.patient_language
        )
        key = f"{event.event_id}:{appointment.id}:{channel.value}:{planned.recipient.value}"
        added += await queue.enqueue(  # a bool: 1 when it was new
            session, key=key, appointment_id=appointment.id, planned=planned, now=now
        )
    if not added:
        return 0
    if ledger is None:
        session.add(DelayNotice(appointment_id=appointment.id, minutes=minutes, count=1))
    else:
        ledger.minutes, ledger.count, ledger.updated_at = minutes, ledger.count + 1, now
    return added


async def _on_its_way(session: AsyncSession, appointment_id: int) -> bool:
    """A late-notice message to this patient not sent yet (it will say the latest)."""
    query = select(col(OutgoingMessage.id)).where(
        col(OutgoingMessage.appointment_id) == appointment_id,
        col(OutgoingMessage.kind) == Kind.DELAY,
        col(OutgoingMessage.status).in_([Status.QUEUED, Status.SENDING]),
    )
    return (await session.execute(query.limit(1))).first() is not None


@dataclass(frozen=True)
class Stale:
    """The message has nothing to say any more (it is ``superseded``), and why."""

    error: str


async def context(
    session: AsyncSession,
    *,
    settings: Settings,
    appointment: Appointment,
    base: MailContext,
    now: datetime,
) -> MailContext | Stale:
    """The message's delay as it is when it is sent, or why it is not sent any more."""
    if appointment.status is not AppointmentStatus.BOOKED:
        return Stale("cancelled")
    if appointment.room_state is not RoomState.SCHEDULED:
        return Stale("patient_arrived")
    if appointment.specialist_id is None:
        return Stale("delay_withdrawn")  # an on-call request: no specialist's notice yet
    today = local_day(now, settings.tz)
    notice = await delay.current(session, specialist_id=appointment.specialist_id, today=today)
    if notice is None or notice.minutes is None:
        return Stale("delay_withdrawn")
    if not concerns(today, appointment.starts_at, settings.tz):
        return Stale("delay_withdrawn")  # the day is over
    expected = delay_policy.expected_start(appointment.starts_at, notice.minutes)
    return replace(base, delay_minutes=notice.minutes, expected_at=expected.astimezone(settings.tz))


@asynccontextmanager
async def lifespan(res: Resources) -> AsyncIterator[None]:
    """Registered in ``app.main.PACKAGE_LIFESPANS`` after the notify package's own: it listens
    only when that one started a sender (e-mail or SMS is configured), and rings that sender."""
    sender = res.notify
    if sender is None:
        yield
        return

    async def listener(event: ev.DomainEvent) -> None:
        if await on_event(res.sessions, res.settings, event):
            sender.doorbell.ring()

    res.events.subscribe("notify.delay", listener)
    yield
