"""Which patients hear of a late notice by e-mail or SMS, and how often: pure, no I/O, no
clock.

A patient in the waiting room sees the notice there, live; a message goes only to those not
there yet, and only when it matters to them: the appointment is booked, on the notice's day,
not over, and starts within ``HORIZON``. Each patient hears of a delay once per change of at
least ``STEP_MINUTES`` against what they were last told (nothing: 0), at most
``MAX_PER_APPOINTMENT`` times; a note without minutes, and withdrawing the notice, send
nothing (the message asks the patient to come at the booked time anyway).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from app.rooms.waiting import concerns
from app.scheduling.models import Appointment, AppointmentStatus, RoomState

HORIZON = timedelta(hours=2)
STEP_MINUTES = 5
MAX_PER_APPOINTMENT = 3


@dataclass(frozen=True)
class Told:
    """What a patient was last told by message: the minutes, and how many messages so far."""

    minutes: int
    count: int


def expecting(appointment: Appointment, *, day: date, now: datetime, tz: ZoneInfo) -> bool:
    """Whether the patient of ``appointment`` should hear of the notice of ``day`` by message
    (they are not in the waiting room, and the appointment is close and still to come)."""
    return (
        appointment.status is AppointmentStatus.BOOKED
        and appointment.room_state is RoomState.SCHEDULED
        and concerns(day, appointment.starts_at, tz)
        and appointment.ends_at > now
        and appointment.starts_at <= now + HORIZON
    )


def due(minutes: int | None, told: Told | None) -> bool:
    """Whether a delay of ``minutes`` is worth another message after ``told``."""
    if minutes is None:
        return False
    last, count = (told.minutes, told.count) if told is not None else (0, 0)
    return count < MAX_PER_APPOINTMENT and abs(minutes - last) >= STEP_MINUTES


def expected_start(starts_at: datetime, minutes: int) -> datetime:
    """When the consultation is now likely to begin."""
    return starts_at + timedelta(minutes=minutes)
