"""Late notices by e-mail and SMS, against the database, a real SMTP server (aiosmtpd) and a
real SMS gateway: who gets one, what it says (no note, no health data), how repeated notices
are limited, and what a message still on its way says when it goes. The clock is fixed at
local noon today."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from pydantic import SecretStr
from sqlmodel import col, select

from app.db import unit_of_work
from app.events import types as ev
from app.notify import delays, gsm
from app.notify.delay_policy import MAX_PER_APPOINTMENT
from app.notify.models import Channel, Kind, OutgoingMessage, Status
from app.rooms.models import SpecialistDelay
from app.scheduling.models import Appointment, RoomState
from tests.notify.conftest import Clock, Db, booked, sender_for, sms_sender_for
from tests.notify.smsd import SECRET, sms_gateway
from tests.notify.smtpd import smtp_server

NOTE = "Notfall bei Herrn Beispiel"


@pytest.fixture
def noon(db: Db, clock: Clock) -> datetime:
    """The clock at local noon today: the day's slots lie around it at any hour."""
    tz = db.settings.tz
    clock.now = datetime.combine(clock.now.astimezone(tz).date(), time(12), tz)
    return clock.now


async def late(db: Db, clock: Clock, minutes: int | None, note: str | None = NOTE) -> int:
    """The demo specialist gives (or replaces) today's notice; returns the messages the
    listener adds for it."""
    specialist = db.demo.specialist.id
    assert specialist is not None
    day = clock.now.astimezone(db.settings.tz).date()
    async with unit_of_work(db.sessions) as session:
        row = await session.get(SpecialistDelay, specialist)
        if row is None:
            row = SpecialistDelay(specialist_id=specialist, day=day)
            session.add(row)
        row.minutes, row.note, row.updated_at = minutes, note, clock.now
    event = ev.DelayChanged(specialist_id=specialist)
    return await delays.on_event(db.sessions, db.settings, event, now=clock.now)


async def jobs(db: Db, appointment: Appointment) -> list[OutgoingMessage]:
    async with db.sessions() as session:
        query = select(OutgoingMessage).where(
            col(OutgoingMessage.appointment_id) == appointment.id,
            col(OutgoingMessage.kind) == Kind.DELAY,
        )
        return list((await session.execute(query.order_by(col(OutgoingMessage.id)))).scalars())


async def test_delays_mail_goes_to_the_patients_not_yet_in_the_waiting_room(
    db: Db, clock: Clock, noon: datetime
) -> None:
    expected, _ = await booked(db, starts_at=noon + timedelta(minutes=30))
    waiting, _ = await booked(db, starts_at=noon + timedelta(minutes=60))
    far, _ = await booked(db, starts_at=noon + timedelta(hours=4))
    unreachable, _ = await booked(db, starts_at=noon + timedelta(minutes=90), contact="+49 30 1234")
    colleague, _ = await booked(
        db, starts_at=noon + timedelta(minutes=30), specialist_id=db.demo.other_specialist.id
    )
    async with unit_of_work(db.sessions) as session:
        row = await session.get(Appointment, waiting.id)
        assert row is not None
        row.room_state, row.waiting_since = RoomState.WAITING, noon
    assert await late(db, clock, 15) == 1
    assert [len(await jobs(db, a)) for a in (expected, waiting, far, unreachable, colleague)] == [
        1,
        0,
        0,
        0,
        0,
    ]
    with smtp_server() as server:
        assert await sender_for(db, server.url(), clock).send_all() == [Status.SENT]
        [received] = server.inbox.received
    mail = received.message
    assert received.recipients == ["erika@example.org"]
    assert mail["Subject"].startswith("Ihr Video-Termin am ")
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None
    assert html is not None
    body = text.get_content()
    local_expected = (noon + timedelta(minutes=45)).astimezone(db.settings.tz)
    assert "etwa 15 Minuten" in body
    assert f"gegen {local_expected:%H:%M} Uhr" in body
    assert f"{local_expected:%H:%M} Uhr" in html.get_content()
    for content in (body, html.get_content(), mail.as_string()):
        assert NOTE not in content
        assert db.demo.specialist.display_name not in content
        assert "Belastungsdyspnoe" not in content


async def test_delays_mail_in_english_for_an_english_patient(
    db: Db, clock: Clock, noon: datetime
) -> None:
    await booked(db, starts_at=noon + timedelta(minutes=30), language="en")
    assert await late(db, clock, 20) == 1
    with smtp_server() as server:
        await sender_for(db, server.url(), clock).send_all()
        [received] = server.inbox.received
    text = received.message.get_body(("plain",))
    assert text is not None
    assert "running about 20 minutes late" in text.get_content()


async def test_delays_mail_again_only_for_a_change_of_five_minutes_and_at_most_three(
    db: Db, clock: Clock, noon: datetime
) -> None:
    appointment, _ = await booked(db, starts_at=noon + timedelta(minutes=30))
    with smtp_server() as server:
        sender = sender_for(db, server.url(), clock)
        told = []
        for minutes in (5, 7, 12, 10, 20, 40, 60):
            clock.advance(60)
            told.append(await late(db, clock, minutes))
            await sender.send_all()
        assert len(server.inbox.received) == MAX_PER_APPOINTMENT
    assert told == [1, 0, 1, 0, 1, 0, 0]
    assert [m.status for m in await jobs(db, appointment)] == [Status.SENT] * 3


async def test_delays_event_delivered_twice_adds_nothing(
    db: Db, clock: Clock, noon: datetime
) -> None:
    appointment, _ = await booked(db, starts_at=noon + timedelta(minutes=30))
    assert await late(db, clock, 10) == 1
    # The same event again (the outbox delivers at least once).
    [first] = await jobs(db, appointment)
    event_id = first.idempotency_key.split(":")[0]
    again = ev.DelayChanged(event_id=event_id, specialist_id=appointment.specialist_id)
    assert await delays.on_event(db.sessions, db.settings, again, now=clock.now) == 0
    assert len(await jobs(db, appointment)) == 1


async def test_delays_message_on_its_way_says_the_latest_notice(
    db: Db, clock: Clock, noon: datetime
) -> None:
    appointment, _ = await booked(db, starts_at=noon + timedelta(minutes=30))
    assert await late(db, clock, 10) == 1
    assert await late(db, clock, 25) == 0  # the first is not sent yet: it will say 25
    with smtp_server() as server:
        assert await sender_for(db, server.url(), clock).send_all() == [Status.SENT]
        [received] = server.inbox.received
    text = received.message.get_body(("plain",))
    assert text is not None
    assert "etwa 25 Minuten" in text.get_content()
    assert len(await jobs(db, appointment)) == 1


async def test_delays_message_not_sent_once_the_patient_came(
    db: Db, clock: Clock, noon: datetime
) -> None:
    appointment, _ = await booked(db, starts_at=noon + timedelta(minutes=30))
    assert await late(db, clock, 15) == 1
    async with unit_of_work(db.sessions) as session:
        row = await session.get(Appointment, appointment.id)
        assert row is not None
        row.room_state, row.waiting_since = RoomState.WAITING, noon
    with smtp_server() as server:
        assert await sender_for(db, server.url(), clock).send_all() == [Status.SUPERSEDED]
        assert server.inbox.received == []
    [job] = await jobs(db, appointment)
    assert job.error == "patient_arrived"


async def test_delays_message_not_sent_once_the_notice_was_withdrawn(
    db: Db, clock: Clock, noon: datetime
) -> None:
    appointment, _ = await booked(db, starts_at=noon + timedelta(minutes=30))
    assert await late(db, clock, 15) == 1
    async with unit_of_work(db.sessions) as session:
        row = await session.get(SpecialistDelay, appointment.specialist_id)
        assert row is not None
        await session.delete(row)
    with smtp_server() as server:
        assert await sender_for(db, server.url(), clock).send_all() == [Status.SUPERSEDED]
        assert server.inbox.received == []
    [job] = await jobs(db, appointment)
    assert job.error == "delay_withdrawn"


async def test_delays_note_alone_sends_nothing(db: Db, clock: Clock, noon: datetime) -> None:
    appointment, _ = await booked(db, starts_at=noon + timedelta(minutes=30))
    assert await late(db, clock, None, note="Heute etwas später") == 0
    assert await jobs(db, appointment) == []


async def test_delays_go_by_sms_too_and_count_as_one_telling(
    db: Db, clock: Clock, noon: datetime
) -> None:
    with sms_gateway() as gateway:
        url = gateway.url()
        with_sms = db.settings.model_copy(
            update={"sms_url": SecretStr(url), "sms_secret": SecretStr(SECRET)}
        )
        both, _ = await booked(db, channels="email,sms", starts_at=noon + timedelta(minutes=30))
        only_sms, _ = await booked(
            db, channels="sms", contact="+49 30 1234", starts_at=noon + timedelta(minutes=45)
        )
        specialist = db.demo.specialist.id
        assert specialist is not None
        async with unit_of_work(db.sessions) as session:
            day = clock.now.astimezone(db.settings.tz).date()
            session.add(SpecialistDelay(specialist_id=specialist, day=day, minutes=20, note=NOTE))
        event = ev.DelayChanged(specialist_id=specialist)
        assert await delays.on_event(db.sessions, with_sms, event, now=clock.now) == 3
        assert sorted(j.channel for j in await jobs(db, both)) == [Channel.EMAIL, Channel.SMS]
        assert [j.channel for j in await jobs(db, only_sms)] == [Channel.SMS]
        async with db.sessions() as session:
            ledger = await session.get(delays.DelayNotice, both.id)
            assert ledger is not None
            assert (ledger.minutes, ledger.count) == (20, 1)

        with smtp_server() as mail:
            sender = sms_sender_for(db, url, clock, mail_url=mail.url())
            assert await sender.send_all() == [Status.SENT] * 3
            assert [m.recipients for m in mail.inbox.received] == [["erika@example.org"]]
        texts = [str(sms.json["text"]) for sms in gateway.gateway.accepted]
    assert all("20 Min. später" in text for text in texts), texts
    expected = [(noon + timedelta(minutes=m)).astimezone(db.settings.tz) for m in (50, 65)]
    assert sorted(text.split("(gegen ")[1][:5] for text in texts) == [
        f"{at:%H:%M}" for at in expected
    ]
    for text in texts:
        assert NOTE not in text
        assert db.demo.specialist.display_name not in text
        assert gsm.measure(text).units <= 160
