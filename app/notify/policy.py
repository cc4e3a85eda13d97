"""What each domain event sends, and what a failed attempt means: pure, no I/O.

``plan`` decides the messages an event calls for from the event and its appointment;
``after_failure`` decides between another attempt (exponential back-off) and giving up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.events import types as ev
from app.notify.models import Channel, Kind, Recipient, Status
from app.scheduling.models import Appointment

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


def idempotency_key(event_id: str, planned: Planned) -> str:
    """One message per event, channel and recipient, however often the event is delivered."""
    return f"{event_id}:{planned.channel.value}:{planned.recipient.value}"


def patient_email(appointment: Appointment) -> str | None:
    """The patient's address, if the GP asked Konsil to write to the patient."""
    contact = appointment.patient_contact
    return contact if appointment.reached_by(Channel.EMAIL) and "@" in contact else None


def plan(event: ev.DomainEvent, appointment: Appointment) -> list[Planned]:
    """The messages ``event`` calls for (none for most events)."""
    to_patient = patient_email(appointment) is not None
    language = appointment.patient_language
    match event:
        case ev.LinkIssued() if to_patient:
            kind = LINK_KIND[event.reason]
            return [Planned(kind, Recipient.PATIENT, Channel.EMAIL, language, event.link_id)]
        case ev.AppointmentCancelled() if to_patient:
            return [Planned(Kind.CANCELLED, Recipient.PATIENT, Channel.EMAIL, language)]
        case ev.ReportReady():
            return [Planned(Kind.REPORT_READY, Recipient.GP, Channel.EMAIL, STAFF_LANGUAGE)]
        case _:
            return []


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
