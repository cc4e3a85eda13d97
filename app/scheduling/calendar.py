"""iCalendar files for appointments. Staff files carry no health data; the patient's file
carries the join link (it is produced only when the token is known: at booking or reissue)."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from icalendar import Calendar, Event

from app.scheduling.models import Appointment, AppointmentStatus

PRODID = "-//Konsil//Telekonsil//DE"


def uid(appointment: Appointment, base_url: str, *, audience: str) -> str:
    """Stable per appointment and audience, so calendar apps update instead of duplicating."""
    host = urlsplit(base_url).hostname or "konsil"
    return f"konsil-{audience}-appointment-{appointment.id}@{host}"


def staff_ics(appointment: Appointment, *, specialty: str, base_url: str, now: datetime) -> bytes:
    """The event for the GP's and the specialist's calendars: ids and times only."""
    event = _event(appointment, base_url=base_url, audience="staff", now=now)
    event.add("summary", f"Telekonsil #{appointment.id} – {specialty}")
    event.add("url", base_url)
    return _calendar(event)


def patient_ics(
    appointment: Appointment,
    *,
    specialty: str,
    specialist_name: str,
    join_url: str,
    base_url: str,
    now: datetime,
) -> str:
    """The event a GP hands to the patient, with the personal join link in the description."""
    event = _event(appointment, base_url=base_url, audience="patient", now=now)
    # (An on-call request nobody has taken yet has no specialist's name.)
    whom = specialist_name or "der Fachärztin bzw. dem Facharzt im Dienst"
    event.add("summary", f"Video-Sprechstunde – {specialty}")
    event.add(
        "description",
        f"Ihre Video-Sprechstunde bei {whom} ({specialty}).\n"
        f"Bitte öffnen Sie kurz vor dem Termin diesen persönlichen Link:\n{join_url}\n"
        "Geben Sie den Link nicht weiter.",
    )
    event.add("url", join_url)
    return _calendar(event).decode()


def _event(appointment: Appointment, *, base_url: str, audience: str, now: datetime) -> Event:
    event = Event()
    event.add("uid", uid(appointment, base_url, audience=audience))
    event.add("dtstamp", now)
    event.add("dtstart", appointment.starts_at)
    event.add("dtend", appointment.ends_at)
    event.add("sequence", appointment.sequence)
    cancelled = appointment.status == AppointmentStatus.CANCELLED
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    return event


def _calendar(event: Event) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    calendar.add_component(event)
    result: bytes = calendar.to_ical()
    return result
