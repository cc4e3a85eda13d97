"""Reminders: planned with the link (24 h and 15 min before by default) through the channels
the invitation used, sent at their time and once, none after a cancellation, planned anew on a
reschedule, none whose time had passed at booking, and kept in the database across a restart.
The listener and the sender run on a moved clock against a real SMTP server and a real SMS
gateway."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import update
from sqlmodel import col

from app.db import create_engine, session_factory, unit_of_work
from app.events import types as ev
from app.notify import queue
from app.notify.listener import on_event
from app.notify.models import Channel, Kind, OutgoingMessage, Status
from app.notify.sender import Sender
from app.scheduling.models import Appointment, AppointmentStatus, JoinToken, RoomState
from app.settings import Settings
from tests.notify.conftest import (
    Clock,
    Db,
    booked,
    link_id,
    sealed_link,
    sms_sender_for,
)
from tests.notify.smsd import SECRET, Running, sms_gateway
from tests.notify.smtpd import Server, smtp_server

DAY, QUARTER = timedelta(hours=24), timedelta(minutes=15)
BOTH = "email,sms"


@pytest.fixture
def gateway() -> Iterator[Running]:
    with sms_gateway() as running:
        yield running


@pytest.fixture
def mail() -> Iterator[Server]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def settings(db: Db, gateway: Running) -> Settings:
    """The listener's settings: e-mail and SMS set up, the default reminders."""
    return db.settings.model_copy(
        update={"sms_url": SecretStr(gateway.url()), "sms_secret": SecretStr(SECRET)}
    )


@pytest.fixture
def sender(db: Db, clock: Clock, gateway: Running, mail: Server) -> Sender:
    return sms_sender_for(db, gateway.url(), clock, mail_url=mail.url())


async def link_issued(
    db: Db,
    settings: Settings,
    clock: Clock,
    appointment: Appointment,
    reason: ev.LinkReason,
    event: ev.LinkIssued | None = None,
) -> int:
    """What the listener does with the event of the appointment's latest link (or ``event``
    delivered again), at the clock's time."""
    assert appointment.id is not None
    event = event or ev.LinkIssued(
        appointment_id=appointment.id, link_id=await link_id(db, appointment), reason=reason
    )
    return await on_event(db.sessions, event, settings=settings, now=clock.now)


async def rows(db: Db, appointment: Appointment) -> list[OutgoingMessage]:
    assert appointment.id is not None
    async with db.sessions() as session:
        return list(await queue.for_appointment(session, appointment.id))


def reminders(found: list[OutgoingMessage]) -> list[tuple[int | None, Channel, Status]]:
    return sorted(
        (m.reminder_minutes, m.channel, m.status) for m in found if m.kind is Kind.REMINDER
    )


def texts(gateway: Running) -> list[str]:
    return [str(received.json["text"]) for received in gateway.gateway.accepted]


async def test_reminders_go_at_24h_and_15min_through_both_channels_and_only_once(
    db: Db, settings: Settings, clock: Clock, sender: Sender, gateway: Running, mail: Server
) -> None:
    start = clock.now + 2 * DAY
    appointment, token = await booked(db, channels=BOTH, starts_at=start)
    event = ev.LinkIssued(
        appointment_id=appointment.id or 0, link_id=await link_id(db, appointment)
    )
    assert await link_issued(db, settings, clock, appointment, "booked", event) == 6
    due = {m.reminder_minutes: m.available_at for m in await rows(db, appointment)}
    assert due == {None: clock.now, 1440: start - DAY, 15: start - QUARTER}
    assert await sender.send_all() == [Status.SENT] * 2  # the invitations
    clock.now = start - DAY - timedelta(seconds=1)
    assert await sender.send_all() == []
    clock.now = start - DAY
    assert await sender.send_all() == [Status.SENT] * 2
    # The link's event again (the outbox delivers at least once): nothing new.
    assert await link_issued(db, settings, clock, appointment, "booked", event) == 0
    clock.now = start - QUARTER
    assert await sender.send_all() == [Status.SENT] * 2
    clock.now = start + timedelta(hours=1)
    assert await sender.send_all() == []
    sms = texts(gateway)
    assert len(sms) == 3
    assert [t.split(":")[0] for t in sms[1:]] == ["Erinnerung", "Erinnerung"]
    assert all(token in text for text in sms)
    subjects = [m.message["Subject"] for m in mail.inbox.received]
    assert [s.startswith("Erinnerung: ") for s in subjects] == [False, True, True]
    assert reminders(await rows(db, appointment)) == [
        (15, Channel.EMAIL, Status.SENT),
        (15, Channel.SMS, Status.SENT),
        (1440, Channel.EMAIL, Status.SENT),
        (1440, Channel.SMS, Status.SENT),
    ]


async def test_reminders_only_through_the_channels_the_invitation_used(
    db: Db, settings: Settings, clock: Clock
) -> None:
    appointment, _ = await booked(db, channels="sms", starts_at=clock.now + 2 * DAY)
    await link_issued(db, settings, clock, appointment, "booked")
    assert {(m.kind, m.channel) for m in await rows(db, appointment)} == {
        (Kind.INVITATION, Channel.SMS),
        (Kind.REMINDER, Channel.SMS),
    }
    mail_only = settings.model_copy(update={"sms_url": None, "sms_secret": None})
    other, _ = await booked(db, channels=BOTH, starts_at=clock.now + 3 * DAY)
    await link_issued(db, mail_only, clock, other, "booked")
    assert {m.channel for m in await rows(db, other)} == {Channel.EMAIL}


async def test_no_reminder_after_a_cancellation(
    db: Db, settings: Settings, clock: Clock, sender: Sender, gateway: Running
) -> None:
    start = clock.now + 2 * DAY
    appointment, _ = await booked(db, channels="sms", starts_at=start)
    await link_issued(db, settings, clock, appointment, "booked")
    assert await sender.send_all() == [Status.SENT]
    await cancel(db, settings, clock, appointment)
    assert reminders(await rows(db, appointment)) == [
        (15, Channel.SMS, Status.SUPERSEDED),
        (1440, Channel.SMS, Status.SUPERSEDED),
    ]
    assert {m.error for m in await rows(db, appointment) if m.kind is Kind.REMINDER} == {
        "cancelled"
    }
    assert await sender.send_all() == [Status.SENT]  # the cancellation
    clock.now = start - QUARTER
    assert await sender.send_all() == []
    assert [t.split(" ")[0:2] for t in texts(gateway)] == [["Ihr", "Video-Termin"]] * 2
    assert "abgesagt" in texts(gateway)[1]


async def cancel(db: Db, settings: Settings, clock: Clock, appointment: Appointment) -> None:
    assert appointment.id is not None
    async with unit_of_work(db.sessions) as session:
        await session.execute(
            update(Appointment)
            .where(col(Appointment.id) == appointment.id)
            .values(status=AppointmentStatus.CANCELLED, room_state=RoomState.CANCELLED)
        )
        await session.execute(
            update(JoinToken)
            .where(col(JoinToken.appointment_id) == appointment.id)
            .values(revoked_at=clock.now, sealed=None)
        )
    event = ev.AppointmentCancelled(
        appointment_id=appointment.id,
        specialist_id=appointment.specialist_id,
        gp_id=appointment.gp_id,
    )
    assert await on_event(db.sessions, event, settings=settings, now=clock.now) == 1


async def test_a_reschedule_plans_the_reminders_anew_with_the_new_link(
    db: Db, settings: Settings, clock: Clock, sender: Sender, gateway: Running
) -> None:
    first = clock.now + 2 * DAY
    appointment, old_token = await booked(db, channels="sms", starts_at=first)
    await link_issued(db, settings, clock, appointment, "booked")
    assert await sender.send_all() == [Status.SENT]
    clock.advance(3600)
    later = first + DAY
    new_token = await reschedule(db, appointment, later, clock)
    await link_issued(db, settings, clock, appointment, "rescheduled")
    found = await rows(db, appointment)
    assert reminders(found) == [
        (15, Channel.SMS, Status.QUEUED),
        (15, Channel.SMS, Status.SUPERSEDED),
        (1440, Channel.SMS, Status.QUEUED),
        (1440, Channel.SMS, Status.SUPERSEDED),
    ]
    assert {m.available_at for m in found if m.status is Status.QUEUED and m.reminder_minutes} == {
        later - DAY,
        later - QUARTER,
    }
    assert await sender.send_all() == [Status.SENT]  # "moved to", with the new link
    clock.now = first - QUARTER  # the old times pass: nothing
    assert await sender.send_all() == []
    clock.now = later - DAY
    assert await sender.send_all() == [Status.SENT]
    invitation, moved, reminder = texts(gateway)
    assert old_token in invitation
    assert moved.startswith("Verlegt auf ")
    assert new_token in moved
    assert new_token in reminder
    assert old_token not in reminder


async def reschedule(db: Db, appointment: Appointment, start: datetime, clock: Clock) -> str:
    """The appointment at ``start`` with a new link (the old one revoked); the new token."""
    assert appointment.id is not None
    async with unit_of_work(db.sessions) as session:
        await session.execute(
            update(JoinToken)
            .where(col(JoinToken.appointment_id) == appointment.id)
            .values(revoked_at=clock.now, sealed=None)
        )
        await session.execute(
            update(Appointment)
            .where(col(Appointment.id) == appointment.id)
            .values(starts_at=start, ends_at=start + timedelta(minutes=30))
        )
    appointment.starts_at, appointment.ends_at = start, start + timedelta(minutes=30)
    return await sealed_link(db, appointment)


@pytest.mark.parametrize(
    ("ahead", "planned"),
    [
        (timedelta(minutes=10), []),
        (timedelta(minutes=15), []),  # due exactly now: its time has passed
        # Due within 20 minutes of the invitation: the patient has just read it.
        (timedelta(minutes=35), []),
        (timedelta(minutes=36), [15]),
        (timedelta(hours=20), [15]),
        (timedelta(hours=24, minutes=20), [15]),
        (timedelta(hours=24, minutes=21), [1440, 15]),
    ],
)
async def test_a_reminder_whose_time_passed_at_booking_is_not_planned(
    db: Db, settings: Settings, clock: Clock, ahead: timedelta, planned: list[int]
) -> None:
    appointment, _ = await booked(db, channels="sms", starts_at=clock.now + ahead)
    await link_issued(db, settings, clock, appointment, "booked")
    found = await rows(db, appointment)
    assert [m.kind for m in found if m.kind is not Kind.REMINDER] == [Kind.INVITATION]
    assert sorted((m.reminder_minutes for m in found if m.reminder_minutes), reverse=True) == (
        planned
    )


async def test_after_downtime_only_the_latest_due_reminder_goes(
    db: Db, settings: Settings, clock: Clock, sender: Sender, gateway: Running
) -> None:
    start = clock.now + 2 * DAY
    appointment, _ = await booked(db, channels="sms", starts_at=start)
    await link_issued(db, settings, clock, appointment, "booked")
    clock.now = start - timedelta(minutes=10)  # the server was down for both
    assert await sender.send_all() == [Status.SENT, Status.SUPERSEDED, Status.SENT]
    found = {m.reminder_minutes: m for m in await rows(db, appointment)}
    assert (found[1440].status, found[1440].error) == (Status.SUPERSEDED, "too_late")
    assert found[15].status is Status.SENT
    clock.now = start + timedelta(minutes=1)
    assert await sender.send_all() == []


async def test_no_reminder_to_a_patient_already_in_the_waiting_room(
    db: Db, settings: Settings, clock: Clock, sender: Sender
) -> None:
    start = clock.now + 2 * DAY
    appointment, _ = await booked(db, channels="sms", starts_at=start)
    await link_issued(db, settings, clock, appointment, "booked")
    clock.now = start - DAY
    assert await sender.send_all() == [Status.SENT, Status.SENT]
    async with unit_of_work(db.sessions) as session:
        await session.execute(
            update(Appointment)
            .where(col(Appointment.id) == appointment.id)
            .values(room_state=RoomState.WAITING, waiting_since=start - 2 * QUARTER)
        )
    clock.now = start - QUARTER
    assert await sender.send_all() == [Status.SUPERSEDED]
    found = {m.reminder_minutes: m for m in await rows(db, appointment)}
    assert found[15].error == "already_joined"


async def test_reminders_wait_in_the_database_for_another_process(
    db: Db, settings: Settings, clock: Clock, gateway: Running, mail: Server
) -> None:
    start = clock.now + 2 * DAY
    appointment, token = await booked(db, channels="sms", starts_at=start)
    await link_issued(db, settings, clock, appointment, "booked")
    # Another process (its own engine and sender) after a restart, at the reminder's time.
    engine = create_engine(db.settings.database_url)
    try:
        fresh = Db(db.settings, session_factory(engine), db.demo)
        clock.now = start - DAY
        restarted = sms_sender_for(fresh, gateway.url(), clock, mail_url=mail.url())
        assert await restarted.send_all() == [Status.SENT, Status.SENT]
    finally:
        await engine.dispose()
    _invitation, reminder = texts(gateway)
    assert reminder.startswith("Erinnerung: ")
    assert token in reminder
