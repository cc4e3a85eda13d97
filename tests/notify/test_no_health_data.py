"""No health data leaves in any message: every template, e-mail and SMS, in every language,
rendered for a booking (the GP's on-call message: an on-call request nobody took) whose
clinical question, report, patient name and specialty carry a canary, and sent through a real
SMTP server and a real SMS gateway; the canary is in no header and no body."""

from __future__ import annotations

from datetime import datetime, time

from sqlalchemy import update
from sqlmodel import col

from app.db import unit_of_work
from app.notify.models import Channel, Kind, Recipient, Status
from app.notify.render import LANGUAGES, SMS_KINDS, TEMPLATES, sms_template_name, template_names
from app.records.models import ConsultMessage, Report
from app.rooms.models import SpecialistDelay
from app.scheduling.models import Appointment, Specialty
from tests.notify.conftest import (
    Clock,
    Db,
    booked,
    enqueue,
    sender_for,
    sms_sender_for,
    unclaimed_request,
)
from tests.notify.smsd import sms_gateway
from tests.notify.smtpd import smtp_server

CANARY = "KANARIENVOGEL-7f3a"


async def late_today(db: Db, clock: Clock, *, note: str) -> Appointment:
    """A booking with the canaries at local noon today, and its specialist 20 minutes late."""
    tz = db.settings.tz
    day = clock.now.astimezone(tz).date()
    noon = datetime.combine(day, time(12), tz)
    appointment, _ = await booked(
        db,
        channels="email,sms",
        starts_at=noon,
        patient_name=f"Erika {CANARY}",
        clinical_question=f"Verdacht auf {CANARY}: bitte Echo",
    )
    assert appointment.specialist_id is not None
    async with unit_of_work(db.sessions) as session:
        session.add(
            SpecialistDelay(specialist_id=appointment.specialist_id, day=day, minutes=20, note=note)
        )
    return appointment


async def canary_booking(db: Db) -> Appointment:
    """A booking to be reached by e-mail and SMS whose question, report, patient name and
    specialty carry the canary."""
    appointment, _ = await booked(
        db,
        channels="email,sms",
        patient_name=f"Erika {CANARY}",
        clinical_question=f"Verdacht auf {CANARY}: bitte Echo",
    )
    async with unit_of_work(db.sessions) as session:
        assert appointment.id is not None
        session.add(
            Report(
                appointment_id=appointment.id,
                author_id=db.demo.specialist.id or 0,
                body=f"Befund: {CANARY}",
            )
        )
        # The specialist's question back, still open (the GP's message about it must not
        # carry it either).
        session.add(
            ConsultMessage(
                appointment_id=appointment.id,
                author_id=db.demo.specialist.id or 0,
                body=f"Rückfrage: {CANARY}?",
            )
        )
        await session.execute(
            update(Appointment)
            .where(col(Appointment.id) == appointment.id)
            .values(question_open_since=appointment.created_at)
        )
        await session.execute(
            update(Specialty)
            .where(col(Specialty.id) == db.demo.cardiology.id)
            .values(name_de=CANARY, name_en=CANARY)
        )
    return appointment


async def test_no_template_carries_the_question_the_report_or_the_specialty(
    db: Db, clock: Clock
) -> None:
    appointment = await canary_booking(db)
    # A late notice concerns the day's appointments only: one at local noon today, whose
    # specialist gave a note that must not leave either.
    today = await late_today(db, clock, note=f"Notfall {CANARY}")
    # The GP's on-call message: a request of the (canary) cardiology nobody took.
    request = await unclaimed_request(
        db,
        clock,
        patient_name=f"Erika {CANARY}",
        clinical_question=f"Verdacht auf {CANARY}: bitte Echo",
    )
    bookings = {Kind.DELAY: today, Kind.ON_CALL_UNCLAIMED: request}
    to_gp = {Kind.REPORT_READY, Kind.ON_CALL_UNCLAIMED, Kind.QUESTION_ASKED, Kind.DECLINED}
    used: set[str] = set()
    for kind in Kind:
        for language in LANGUAGES:
            recipient = Recipient.GP if kind in to_gp else Recipient.PATIENT
            booking = bookings.get(kind, appointment)
            await enqueue(db, clock, booking, kind, recipient=recipient, language=language)
            used.update(template_names(kind, language))
    with smtp_server() as server:
        statuses = await sender_for(db, server.url(), clock).send_all()
        received = server.inbox.received
    assert statuses == [Status.SENT] * len(Kind) * len(LANGUAGES)
    assert len(received) == len(statuses)
    for mail in received:
        raw = mail.message.as_string()
        decoded = [part.get_content() for part in mail.message.iter_parts()]
        headers = " ".join(str(value) for value in mail.message.values())
        for text in (raw, *decoded, headers):
            assert CANARY not in text
        assert "Echo" not in " ".join(decoded)
    shipped = {p.name for p in TEMPLATES.glob("*.*") if not p.name.startswith("_")}
    assert used == shipped  # every e-mail template was rendered


async def test_no_sms_template_carries_the_question_the_report_or_the_specialty(
    db: Db, clock: Clock
) -> None:
    appointment = await canary_booking(db)
    today = await late_today(db, clock, note=f"Notfall {CANARY}")
    used: set[str] = set()
    for kind in sorted(SMS_KINDS):
        for language in LANGUAGES:
            minutes = 15 if kind is Kind.REMINDER else None
            await enqueue(
                db,
                clock,
                today if kind is Kind.DELAY else appointment,
                kind,
                language=language,
                channel=Channel.SMS,
                reminder_minutes=minutes,
            )
            used.add(sms_template_name(kind, language))
    with sms_gateway() as gateway:
        statuses = await sms_sender_for(db, gateway.url(), clock).send_all()
        received = gateway.gateway.accepted
    assert statuses == [Status.SENT] * len(SMS_KINDS) * len(LANGUAGES)
    assert len(received) == len(statuses)
    for sms in received:
        text = str(sms.json["text"])
        assert text  # something was rendered
        assert CANARY not in sms.body.decode()
        assert CANARY not in " ".join(sms.headers.values())
        assert "Echo" not in text
    shipped = {f"sms/{p.name}" for p in (TEMPLATES / "sms").iterdir() if p.name[0] != "_"}
    assert used == shipped  # every SMS template was rendered
