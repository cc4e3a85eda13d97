"""The pure parts: which messages an event calls for (with reminders), when a reminder is too
late, back-off, SMTP errors, the SMTP URL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import aiosmtplib
import pytest

from app.events import types as ev
from app.notify import policy, smtp
from app.notify.models import Channel, Kind, Recipient, Status
from app.scheduling.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    RoomState,
)

NOW = datetime(2026, 3, 12, 11, 0, tzinfo=UTC)
EMAIL = frozenset({Channel.EMAIL})
DAY, QUARTER = timedelta(hours=24), timedelta(minutes=15)


def appointment(channels: str = "email", contact: str = "erika@example.org") -> Appointment:
    return Appointment(
        id=7,
        specialist_id=2,
        gp_id=3,
        starts_at=NOW,
        ends_at=NOW + timedelta(minutes=30),
        patient_name="Erika Mustermann",
        patient_birth_date=date(1950, 1, 1),
        patient_contact=contact,
        clinical_question="x",
        patient_channels=channels,
        patient_language="en",
    )


@pytest.mark.parametrize(
    ("reason", "kind"),
    [("booked", Kind.INVITATION), ("rescheduled", Kind.RESCHEDULED), ("reissued", Kind.NEW_LINK)],
)
def test_plan_a_link_goes_to_the_patient_in_their_language(
    reason: ev.LinkReason, kind: Kind
) -> None:
    event = ev.LinkIssued(appointment_id=7, link_id=11, reason=reason)
    assert policy.plan(event, appointment(), channels=EMAIL, now=NOW) == [
        policy.Planned(kind, Recipient.PATIENT, Channel.EMAIL, "en", 11)
    ]


def test_plan_nothing_to_the_patient_without_the_email_choice_or_address() -> None:
    link = ev.LinkIssued(appointment_id=7, link_id=11)
    cancelled = ev.AppointmentCancelled(appointment_id=7, specialist_id=2, gp_id=3)
    for unreachable in (appointment(channels=""), appointment(contact="+49 30 123456")):
        assert policy.plan(link, unreachable, channels=EMAIL, now=NOW) == []
        assert policy.plan(cancelled, unreachable, channels=EMAIL, now=NOW) == []


def test_plan_the_gp_hears_of_a_report_and_nothing_else_plans_mail() -> None:
    ready = ev.ReportReady(appointment_id=7, specialist_id=2, gp_id=3)
    assert policy.plan(ready, appointment(channels=""), channels=EMAIL, now=NOW) == [
        policy.Planned(Kind.REPORT_READY, Recipient.GP, Channel.EMAIL, "de")
    ]
    booked = ev.AppointmentBooked(appointment_id=7, specialist_id=2, gp_id=3)
    completed = ev.ReportCompleted(appointment_id=7, specialist_id=2, gp_id=3)
    assert policy.plan(booked, appointment(), channels=EMAIL, now=NOW) == []
    assert policy.plan(completed, appointment(), channels=EMAIL, now=NOW) == []


def unclaimed_request(**changes: object) -> Appointment:
    """An on-call request of specialty 5 that the sweep marked: nobody took it in time."""
    request = appointment(channels="")
    request.kind = AppointmentKind.ON_CALL
    request.specialist_id = None
    request.specialty_id = 5
    request.claim_until = NOW + QUARTER
    request.unclaimed_at = NOW + QUARTER
    for name, value in changes.items():
        setattr(request, name, value)
    return request


UNCLAIMED = ev.OnCallUnclaimed(appointment_id=7, specialty_id=5, gp_id=3)


def test_plan_the_gp_hears_by_email_that_nobody_took_the_request() -> None:
    assert policy.plan(UNCLAIMED, unclaimed_request(), channels=EMAIL, now=NOW) == [
        policy.Planned(Kind.ON_CALL_UNCLAIMED, Recipient.GP, Channel.EMAIL, "de")
    ]
    both = frozenset({Channel.EMAIL, Channel.SMS})
    sms_too = unclaimed_request(patient_channels="email,sms", patient_phone="+4915123456789")
    assert policy.plan(UNCLAIMED, sms_too, channels=both, now=NOW) == [
        policy.Planned(Kind.ON_CALL_UNCLAIMED, Recipient.GP, Channel.EMAIL, "de")
    ]


def test_plan_nothing_unclaimed_without_email_on_the_server() -> None:
    sms_only = frozenset({Channel.SMS})
    assert policy.plan(UNCLAIMED, unclaimed_request(), channels=sms_only, now=NOW) == []
    assert policy.plan(UNCLAIMED, unclaimed_request(), channels=frozenset(), now=NOW) == []


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"specialist_id": 2, "claimed_at": NOW + DAY, "unclaimed_at": None}, "claimed"),
        ({"specialist_id": 2}, "claimed"),
        (
            {"status": AppointmentStatus.CANCELLED, "room_state": RoomState.CANCELLED},
            "request_closed",
        ),
        ({"room_state": RoomState.ENDED}, "request_closed"),
        ({"unclaimed_at": None}, "asked_again"),
    ],
)
def test_plan_nothing_unclaimed_once_taken_withdrawn_or_asked_again(
    changes: dict[str, object], why: str
) -> None:
    settled = unclaimed_request(**changes)
    assert policy.on_call_settled(settled) == why
    assert policy.plan(UNCLAIMED, settled, channels=EMAIL, now=NOW) == []


def test_on_call_settled_not_while_open_and_marked() -> None:
    assert policy.on_call_settled(unclaimed_request()) is None
    waiting = unclaimed_request(room_state=RoomState.WAITING)
    assert policy.on_call_settled(waiting) is None
    # A booked slot is never an open on-call request.
    assert policy.on_call_settled(appointment()) == "claimed"
    no_specialist = appointment()
    no_specialist.specialist_id = None
    assert policy.on_call_settled(no_specialist) == "request_closed"


def test_idempotency_key_is_event_channel_and_recipient() -> None:
    planned = policy.Planned(Kind.CANCELLED, Recipient.PATIENT, Channel.EMAIL, "de")
    assert policy.idempotency_key("ab" * 16, planned) == f"{'ab' * 16}:email:patient"


def test_backoff_doubles_up_to_an_hour() -> None:
    waits = [policy.backoff(n, 60).total_seconds() for n in range(1, 9)]
    assert waits == [60, 120, 240, 480, 960, 1920, 3600, 3600]


def test_after_failure_retries_temporary_until_the_last_attempt() -> None:
    temporary = policy.Failure(permanent=False, error="connection")
    retry = policy.after_failure(temporary, attempts=2, max_attempts=3, first_seconds=60, now=NOW)
    assert retry == policy.Next(Status.QUEUED, NOW + timedelta(minutes=2))
    last = policy.after_failure(temporary, attempts=3, max_attempts=3, first_seconds=60, now=NOW)
    assert last.status is Status.FAILED
    permanent = policy.Failure(permanent=True, error="recipient_refused", smtp_code=550)
    assert policy.after_failure(
        permanent, attempts=1, max_attempts=8, first_seconds=60, now=NOW
    ) == policy.Next(Status.FAILED, NOW)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            aiosmtplib.SMTPRecipientsRefused(
                [aiosmtplib.SMTPRecipientRefused(550, "no such user", "a@b.example")]
            ),
            policy.Failure(True, "recipient_refused", 550),
        ),
        (
            aiosmtplib.SMTPRecipientsRefused(
                [aiosmtplib.SMTPRecipientRefused(452, "mailbox full", "a@b.example")]
            ),
            policy.Failure(False, "recipient_refused", 452),
        ),
        (aiosmtplib.SMTPDataError(554, "spam"), policy.Failure(True, "refused", 554)),
        (aiosmtplib.SMTPDataError(421, "later"), policy.Failure(False, "refused", 421)),
        (aiosmtplib.SMTPSenderRefused(553, "no", "x"), policy.Failure(True, "sender_refused", 553)),
        (aiosmtplib.SMTPAuthenticationError(535, "bad"), policy.Failure(False, "auth_failed", 535)),
        (aiosmtplib.SMTPServerDisconnected("gone"), policy.Failure(False, "connection")),
        (aiosmtplib.SMTPConnectError("refused"), policy.Failure(False, "connection")),
        (aiosmtplib.SMTPReadTimeoutError("slow"), policy.Failure(False, "timeout")),
        (ConnectionResetError(), policy.Failure(False, "connection")),
        (ValueError("odd"), policy.Failure(False, "error")),
    ],
)
def test_classify_smtp_errors(exc: Exception, expected: policy.Failure) -> None:
    assert smtp.classify(exc) == expected


def test_parse_url_starttls_implicit_tls_and_encoded_login() -> None:
    submission = smtp.parse_url("smtp://mailer%40klinik:p%3Ass%2Fw@mail.klinik.example")
    assert (submission.host, submission.port) == ("mail.klinik.example", 587)
    assert (submission.username, submission.password) == ("mailer@klinik", "p:ss/w")
    assert (submission.starttls, submission.implicit_tls) == (True, False)
    implicit = smtp.parse_url("smtps://u:p@mail.klinik.example", ca_file=Path("/ca.pem"))
    assert (implicit.port, implicit.implicit_tls, implicit.starttls) == (465, True, False)
    assert implicit.ca_file == Path("/ca.pem")
    relay = smtp.parse_url("smtp://localhost:25?starttls=false")
    assert (relay.port, relay.starttls, relay.username) == (25, False, None)
    with pytest.raises(ValueError, match="smtp://"):
        smtp.parse_url("http://mail.klinik.example")


def appointment_at(start: datetime, channels: str = "email,sms") -> Appointment:
    return Appointment(
        id=7,
        specialist_id=2,
        gp_id=3,
        starts_at=start,
        ends_at=start + timedelta(minutes=30),
        patient_name="Erika Mustermann",
        patient_birth_date=date(1950, 1, 1),
        patient_contact="erika@example.org",
        patient_phone="+4915123456789",
        clinical_question="x",
        patient_channels=channels,
        patient_language="de",
    )


def test_plan_a_link_with_its_reminders_and_their_keys() -> None:
    event = ev.LinkIssued(appointment_id=7, link_id=11, reason="booked")
    start = NOW + 2 * DAY
    planned = policy.plan(
        event,
        appointment_at(start),
        channels={Channel.EMAIL, Channel.SMS},
        reminders=[1440, 15],
        now=NOW,
    )
    patient = Recipient.PATIENT
    assert planned == [
        policy.Planned(Kind.INVITATION, patient, Channel.EMAIL, "de", 11),
        policy.Planned(Kind.INVITATION, patient, Channel.SMS, "de", 11),
        *(
            policy.Planned(
                Kind.REMINDER,
                patient,
                channel,
                "de",
                11,
                available_at=start - timedelta(minutes=minutes),
                reminder_minutes=minutes,
            )
            for minutes in (1440, 15)
            for channel in (Channel.EMAIL, Channel.SMS)
        ),
    ]
    keys = [policy.idempotency_key(event.event_id, p) for p in planned]
    assert keys[2:] == [
        "reminder:11:1440:email",
        "reminder:11:1440:sms",
        "reminder:11:15:email",
        "reminder:11:15:sms",
    ]
    assert keys[1] == f"{event.event_id}:sms:patient"


def test_plan_no_sms_without_a_number_and_none_to_a_server_without_sms() -> None:
    event = ev.LinkIssued(appointment_id=7, link_id=11)
    no_number = appointment_at(NOW + 2 * DAY)
    no_number.patient_phone = None

    def plan(appointment: Appointment, channels: set[Channel]) -> list[policy.Planned]:
        return policy.plan(event, appointment, channels=channels, reminders=[15], now=NOW)

    assert {p.channel for p in plan(no_number, {Channel.EMAIL, Channel.SMS})} == {Channel.EMAIL}
    assert {p.channel for p in plan(appointment_at(NOW + 2 * DAY), {Channel.EMAIL})} == {
        Channel.EMAIL
    }
    assert plan(appointment_at(NOW + 2 * DAY, channels=""), {Channel.EMAIL, Channel.SMS}) == []


def test_reminder_too_late_once_begun_or_when_a_shorter_one_is_due() -> None:
    start = NOW + DAY

    def late(minutes: int, now: datetime, reminders: list[int]) -> bool:
        return policy.reminder_too_late(
            starts_at=start, minutes=minutes, reminders=reminders, now=now
        )

    assert not late(1440, start - DAY, [1440, 15])
    assert not late(1440, start - timedelta(minutes=16), [1440, 15])
    assert late(1440, start - QUARTER, [1440, 15])
    assert not late(15, start - timedelta(minutes=1), [1440, 15])
    assert late(15, start, [1440, 15])
    assert not late(1440, start - QUARTER, [])  # a resent one: only the start counts
