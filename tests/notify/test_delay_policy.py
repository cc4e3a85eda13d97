"""Who hears of a late notice by e-mail, and how often: the pure rules, on a fixed clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.notify.delay_policy import (
    HORIZON,
    MAX_PER_APPOINTMENT,
    Told,
    due,
    expected_start,
    expecting,
)
from app.scheduling.models import Appointment, AppointmentStatus, RoomState

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 3, 12, 9, 0, tzinfo=UTC)  # 10:00 in Berlin
TODAY = date(2026, 3, 12)


def appointment(
    starts_in: timedelta = timedelta(minutes=30),
    *,
    state: RoomState = RoomState.SCHEDULED,
    status: AppointmentStatus = AppointmentStatus.BOOKED,
) -> Appointment:
    starts_at = NOW + starts_in
    return Appointment(
        id=7,
        specialist_id=2,
        gp_id=3,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=30),
        patient_name="Erika Mustermann",
        patient_birth_date=date(1950, 1, 1),
        patient_contact="erika@example.org",
        clinical_question="x",
        patient_channels="email",
        status=status,
        room_state=state,
    )


def test_delay_policy_expects_a_close_appointment_not_yet_in_the_room() -> None:
    assert expecting(appointment(), day=TODAY, now=NOW, tz=BERLIN)
    assert expecting(appointment(HORIZON), day=TODAY, now=NOW, tz=BERLIN)
    # Begun but not over: the patient may still come.
    assert expecting(appointment(-timedelta(minutes=20)), day=TODAY, now=NOW, tz=BERLIN)


@pytest.mark.parametrize(
    "booking",
    [
        appointment(state=RoomState.WAITING),  # sees it live in the waiting room
        appointment(state=RoomState.IN_CALL),
        appointment(status=AppointmentStatus.CANCELLED, state=RoomState.CANCELLED),
        appointment(HORIZON + timedelta(minutes=1)),  # later today: not concerned yet
        appointment(-timedelta(minutes=30)),  # over
    ],
)
def test_delay_policy_expects_nobody_else(booking: Appointment) -> None:
    assert not expecting(booking, day=TODAY, now=NOW, tz=BERLIN)


def test_delay_policy_never_carries_a_notice_to_the_next_day() -> None:
    late_evening = datetime(2026, 3, 12, 22, 30, tzinfo=UTC)  # 23:30 in Berlin
    after_midnight = appointment(timedelta(hours=14))  # 00:00 the next day in Berlin
    assert not expecting(after_midnight, day=TODAY, now=late_evening, tz=BERLIN)


def test_delay_policy_first_message_needs_five_minutes() -> None:
    assert not due(4, None)
    assert due(5, None)
    assert due(15, None)


def test_delay_policy_sends_again_only_for_a_change_of_five_minutes() -> None:
    told = Told(minutes=10, count=1)
    assert not due(12, told)
    assert not due(8, told)
    assert due(15, told)
    assert due(5, told)  # earlier than the patient was told: worth saying too


def test_delay_policy_stops_after_the_most_messages_per_appointment() -> None:
    assert due(60, Told(minutes=10, count=MAX_PER_APPOINTMENT - 1))
    assert not due(60, Told(minutes=10, count=MAX_PER_APPOINTMENT))


def test_delay_policy_sends_nothing_for_a_note_alone() -> None:
    assert not due(None, None)
    assert not due(None, Told(minutes=20, count=1))


def test_delay_policy_expected_start_adds_the_minutes() -> None:
    assert expected_start(NOW, 15) == NOW + timedelta(minutes=15)
