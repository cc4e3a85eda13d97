"""What each domain event sends, and what a failed attempt means: pure, no I/O.

``plan`` decides the messages an event calls for from the event and its appointment, through
the channels the GP chose that this server can send; a new link brings its reminders, each due
at its time before the start; ``after_failure`` decides between another attempt (exponential
back-off) and giving up.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.events import types as ev
from app.notify.models import Channel, Kind, Recipient, Status
from app.scheduling.models import Appointment, AppointmentKind, AppointmentStatus
from app.scheduling.on_call_queue import OPEN_STATES

BACKOFF_CAP = timedelta(hours=1)
STAFF_LANGUAGE = "de"  # staff accounts have no language of their own yet

LINK_KIND: dict[ev.LinkReason, Kind] = {
    "booked": Kind.INVITATION,
    "rescheduled": Kind.RESCHEDULED,
    "reissued": Kind.NEW_LINK,
}


@dataclass(frozen=True)
class Planned:
    """One message an event calls for."""

    kind: Kind
    recipient: Recipient
    channel: Channel
    language: str
    join_token_id: int | None = None
    # When it is due, if not at once (a reminder), and a reminder's minutes before the start.
    available_at: datetime | None = None
    reminder_minutes: int | None = None


def idempotency_key(event_id: str, planned: Planned) -> str:
    """One message per event, channel and recipient, however often the event is delivered; one
    reminder per link, time before the start and channel, however often it is planned."""
    if planned.reminder_minutes is not None:
        link, minutes = planned.join_token_id, planned.reminder_minutes
        return f"reminder:{link}:{minutes}:{planned.channel.value}"
    return f"{event_id}:{planned.channel.value}:{planned.recipient.value}"


def patient_email(appointment: Appointment) -> str | None:
    """The patient's address, if the GP asked Konsil to write to the patient."""
    contact = appointment.patient_contact
    return contact if appointment.reached_by(Channel.EMAIL) and "@" in contact else None


def patient_phone(appointment: Appointment) -> str | None:
    """The patient's mobile number (E.164), if the GP asked Konsil to send SMS."""
    return appointment.patient_phone if appointment.reached_by(Channel.SMS) else None


def patient_address(appointment: Appointment, channel: Channel) -> str | None:
    return patient_email(appointment) if channel is Channel.EMAIL else patient_phone(appointment)


def patient_channels(appointment: Appointment, available: Collection[Channel]) -> list[Channel]:
    """The channels the GP chose for this patient that the server can send through."""
    return [c for c in Channel if c in available and patient_address(appointment, c)]


def on_call_settled(appointment: Appointment) -> str | None:
    """Why telling the GP that nobody took their on-call request is no longer news (the
    listener and the sender run after the sweep marked it): ``claimed`` by a specialist,
    ``request_closed`` (withdrawn, or otherwise no longer open), ``asked_again`` (the GP
    already did); None while it is still open and marked unclaimed."""
    if appointment.specialist_id is not None:
        return "claimed"
    if (
        appointment.kind is not AppointmentKind.ON_CALL
        or appointment.status is not AppointmentStatus.BOOKED
        or appointment.room_state not in OPEN_STATES
    ):
        return "request_closed"
    if appointment.unclaimed_at is None:
        return "asked_again"
    return None


# A reminder due this soon after the link was sent is left out: the patient has just read
# the invitation.
FRESH_INVITATION = timedelta(minutes=20)


def plan(
    event: ev.DomainEvent,
    appointment: Appointment,
    *,
    channels: Collection[Channel],
    now: datetime,
    reminders: Sequence[int] = (),
) -> list[Planned]:
    """The messages ``event`` calls for (none for most events), through ``channels`` (those
    this server can send); a link brings the ``reminders`` (minutes before the start) whose
    time is still ahead at ``now``."""
    to_patient = patient_channels(appointment, channels)
    language = appointment.patient_language
    match event:
        case ev.LinkIssued():
            kind = LINK_KIND[event.reason]
            link = event.link_id
            messages = [Planned(kind, Recipient.PATIENT, c, language, link) for c in to_patient]
            return messages + _reminders(appointment, link, to_patient, reminders, now)
        case ev.AppointmentCancelled():
            to_gp = (
                [Planned(Kind.DECLINED, Recipient.GP, Channel.EMAIL, STAFF_LANGUAGE)]
                if appointment.cancelled_by == "specialist" and Channel.EMAIL in channels
                else []
            )
            return to_gp + [
                Planned(Kind.CANCELLED, Recipient.PATIENT, c, language) for c in to_patient
            ]
        case ev.ReportReady() if Channel.EMAIL in channels:
            return [Planned(Kind.REPORT_READY, Recipient.GP, Channel.EMAIL, STAFF_LANGUAGE)]
        case ev.QuestionAsked() if Channel.EMAIL in channels:
            return [Planned(Kind.QUESTION_ASKED, Recipient.GP, Channel.EMAIL, STAFF_LANGUAGE)]
        case ev.OnCallUnclaimed() if Channel.EMAIL in channels:
            if on_call_settled(appointment) is not None:
                return []
            return [Planned(Kind.ON_CALL_UNCLAIMED, Recipient.GP, Channel.EMAIL, STAFF_LANGUAGE)]
        case _:
            return []


def _reminders(
    appointment: Appointment,
    link_id: int | None,
    channels: list[Channel],
    reminders: Sequence[int],
    now: datetime,
) -> list[Planned]:
    planned = []
    for minutes in reminders:
        due = appointment.starts_at - timedelta(minutes=minutes)
        if link_id is None or due <= now + FRESH_INVITATION:
            # Booked (or re-planned) too late for this one, or it would follow the invitation
            # within minutes: it is not sent at all.
            continue
        planned += [
            Planned(
                Kind.REMINDER,
                Recipient.PATIENT,
                channel,
                appointment.patient_language,
                link_id,
                available_at=due,
                reminder_minutes=minutes,
            )
            for channel in channels
        ]
    return planned


def reminder_too_late(
    *, starts_at: datetime, minutes: int, reminders: Sequence[int], now: datetime
) -> bool:
    """Whether a reminder sent only now (the server was down, attempts failed) would come too
    late: the appointment has begun, or a shorter reminder is due too (the patient gets that
    one instead of two at once)."""
    if now >= starts_at:
        return True
    return any(m < minutes and now >= starts_at - timedelta(minutes=m) for m in reminders)


def backoff(attempts: int, first_seconds: float) -> timedelta:
    """The wait after the ``attempts``-th failed attempt: first, twice that, … at most an hour."""
    seconds = first_seconds * 2 ** max(attempts - 1, 0)
    return min(timedelta(seconds=seconds), BACKOFF_CAP)


@dataclass(frozen=True)
class Failure:
    """Why an attempt failed: ``error`` is a code for the GP's page, never the server's text."""

    permanent: bool
    error: str
    smtp_code: int | None = None
    http_status: int | None = None


@dataclass(frozen=True)
class Next:
    """What becomes of a message after a failed attempt."""

    status: Status
    available_at: datetime


def after_failure(
    failure: Failure, *, attempts: int, max_attempts: int, first_seconds: float, now: datetime
) -> Next:
    if failure.permanent or attempts >= max_attempts:
        return Next(Status.FAILED, now)
    return Next(Status.QUEUED, now + backoff(attempts, first_seconds))
