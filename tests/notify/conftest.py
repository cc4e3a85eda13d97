"""Fixtures for the e-mail and SMS tests: a database without the app (so no sender of the app's
lifespan competes with the test's own), a movable clock, and appointments with a link kept
for sending."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from app.db import create_engine, session_factory, unit_of_work, utcnow
from app.notify import gateways, queue, sms, smtp
from app.notify.models import LINK_KINDS, Channel, Kind, OutgoingMessage, Recipient
from app.notify.policy import Planned
from app.notify.sender import Sender
from app.scheduling import links
from app.scheduling.models import Appointment, AppointmentKind, JoinToken
from app.settings import Settings
from app.tokens import new_token, token_hash
from tests.conftest import create_schema
from tests.factories import Demo, make_appointment, seed
from tests.notify.smsd import SECRET

_SLOTS = itertools.count()
MAIL_FROM = "Telekonsil Klinikum <telekonsil@klinikum.example>"
MOBILE = "+4915123456789"


class Clock:
    """The sender's clock: starts at the real time, moves only when told."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Db:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    demo: Demo


@pytest.fixture
def mail_settings(
    make_settings: Callable[..., Settings], database_url: str
) -> Callable[..., Settings]:
    """Settings with e-mail (each sender test gets its server's URL), on SQLite and on
    PostgreSQL."""

    def make(url: str = "smtp://127.0.0.1:25?starttls=false", **overrides: object) -> Settings:
        return make_settings(
            smtp_url=url, mail_from=MAIL_FROM, database_url=database_url, **overrides
        )

    return make


@pytest.fixture
async def db(mail_settings: Callable[..., Settings]) -> AsyncIterator[Db]:
    settings = mail_settings()
    await create_schema(settings.database_url)
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    yield Db(settings, sessions, await seed(sessions))
    await engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def sender_for(db: Db, url: str, clock: Clock, **overrides: object) -> Sender:
    """A sender (not started) that sends to ``url`` on ``clock``."""
    settings = db.settings.model_copy(update={"smtp_url": None, **overrides})
    config = smtp.parse_url(url, timeout=10, ca_file=settings.smtp_ca_file)
    return Sender(db.sessions, settings, smtp.SmtpTransport(config), clock=clock)


def sms_sender_for(
    db: Db,
    url: str,
    clock: Clock,
    *,
    secret: str = "",
    mail_url: str | None = None,
    **overrides: object,
) -> Sender:
    """A sender (not started) that sends SMS to the gateway at ``url`` (and e-mail to
    ``mail_url``, if given) on ``clock``."""
    secret = secret or SECRET
    settings = db.settings.model_copy(
        update={"sms_url": SecretStr(url), "sms_secret": SecretStr(secret), **overrides}
    )
    transport = sms.HttpTransport(
        gateways.parse(url, secret),
        timeout=settings.sms_timeout_seconds,
        ca_file=settings.sms_ca_file,
    )
    mail = None
    if mail_url is not None:
        mail = smtp.SmtpTransport(smtp.parse_url(mail_url, timeout=10))
    return Sender(db.sessions, settings, mail, clock=clock, sms=transport)


async def booked(
    db: Db,
    *,
    contact: str = "erika@example.org",
    language: str = "de",
    channels: str = "email",
    phone: str | None = MOBILE,
    starts_at: datetime | None = None,
    **details: Any,
) -> tuple[Appointment, str]:
    """An appointment tomorrow (unless ``starts_at``) whose patient gets e-mail (or what
    ``channels`` says), and its live link's token (sealed)."""
    start = starts_at or utcnow().replace(microsecond=0) + timedelta(days=1, minutes=next(_SLOTS))
    appointment = await make_appointment(
        db.sessions,
        db.demo,
        starts_at=start,
        patient_contact=contact,
        patient_phone=phone,
        patient_channels=channels,
        patient_language=language,
        **details,
    )
    token = await sealed_link(db, appointment)
    return appointment, token


async def unclaimed_request(db: Db, clock: Clock, **details: Any) -> Appointment:
    """An on-call request of cardiology that nobody took in time (the sweep marked it at
    ``clock.now``); ``details`` as for ``booked``."""
    request, _ = await booked(db, **details)
    async with unit_of_work(db.sessions) as session:
        await session.execute(
            update(Appointment)
            .where(col(Appointment.id) == request.id)
            .values(
                kind=AppointmentKind.ON_CALL,
                specialist_id=None,
                specialty_id=db.demo.cardiology.id,
                claim_until=clock.now,
                unclaimed_at=clock.now,
            )
        )
    return request


async def sealed_link(db: Db, appointment: Appointment) -> str:
    assert appointment.id is not None
    token = new_token()
    async with unit_of_work(db.sessions) as session:
        session.add(
            JoinToken(
                appointment_id=appointment.id,
                token_hash=token_hash(token),
                valid_from=appointment.starts_at - timedelta(minutes=30),
                valid_until=appointment.ends_at + timedelta(minutes=30),
                sealed=links.seal(db.settings, token),
            )
        )
    return token


async def link_id(db: Db, appointment: Appointment) -> int:
    async with db.sessions() as session:
        query = select(JoinToken).where(col(JoinToken.appointment_id) == appointment.id)
        rows = (await session.execute(query.order_by(col(JoinToken.id)))).scalars().all()
    assert rows[-1].id is not None
    return rows[-1].id


async def enqueue(
    db: Db,
    clock: Clock,
    appointment: Appointment,
    kind: Kind = Kind.INVITATION,
    *,
    recipient: Recipient = Recipient.PATIENT,
    language: str = "de",
    key: str | None = None,
    channel: Channel = Channel.EMAIL,
    reminder_minutes: int | None = None,
) -> OutgoingMessage:
    """A message job as the listener adds it (a link message carries the live link)."""
    assert appointment.id is not None
    link = await link_id(db, appointment) if kind in LINK_KINDS else None
    planned = Planned(kind, recipient, channel, language, link, reminder_minutes=reminder_minutes)
    key = key or f"{new_token()[:32]}:{channel.value}:{recipient.value}"
    async with unit_of_work(db.sessions) as session:
        assert await queue.enqueue(
            session, key=key, appointment_id=appointment.id, planned=planned, now=clock.now
        )
    return await message_by_key(db, key)


async def message_by_key(db: Db, key: str) -> OutgoingMessage:
    async with db.sessions() as session:
        query = select(OutgoingMessage).where(col(OutgoingMessage.idempotency_key) == key)
        return (await session.execute(query)).scalar_one()


async def message(db: Db, message_id: int | None) -> OutgoingMessage:
    async with db.sessions() as session:
        found = await session.get(OutgoingMessage, message_id)
    assert found is not None
    return found
