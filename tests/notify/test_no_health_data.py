"""No health data leaves in any message: every template, e-mail and SMS, in every language,
rendered for a booking whose clinical question, report, patient name and specialty carry a
canary, and sent through a real SMTP server and a real SMS gateway; the canary is in no header
and no body."""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import col

from app.db import unit_of_work
from app.notify.models import Channel, Kind, Recipient, Status
from app.notify.render import LANGUAGES, SMS_KINDS, TEMPLATES, sms_template_name, template_names
from app.records.models import Report
from app.scheduling.models import Appointment, Specialty
from tests.notify.conftest import Clock, Db, booked, enqueue, sender_for, sms_sender_for
from tests.notify.smsd import sms_gateway
from tests.notify.smtpd import smtp_server

CANARY = "KANARIENVOGEL-7f3a"


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
    used: set[str] = set()
    for kind in Kind:
        for language in LANGUAGES:
            recipient = Recipient.GP if kind is Kind.REPORT_READY else Recipient.PATIENT
            await enqueue(db, clock, appointment, kind, recipient=recipient, language=language)
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
    used: set[str] = set()
    for kind in sorted(SMS_KINDS):
        for language in LANGUAGES:
            minutes = 15 if kind is Kind.REMINDER else None
            await enqueue(
                db,
                clock,
                appointment,
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
