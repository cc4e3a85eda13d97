"""The waiting room's pure rules: the order of the line, the place in it, which day a late
notice concerns, and what a late notice may say. Fixed clock, no database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from app.rooms.schemas import DelayIn, PatientDelay, WaitingView
from app.rooms.waiting import (
    MAX_DELAY_MINUTES,
    Waiter,
    ahead,
    concerns,
    estimate_minutes,
    local_day,
    typical_minutes,
)
from app.scheduling.models import RoomState, Urgency
from app.signaling import messages as m
from app.signaling.connection import Connection
from app.signaling.waiting import Watcher, news

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 3, 12, 9, 0, tzinfo=UTC)


def waiter(
    appointment_id: int,
    *,
    slot: int = 0,
    since: int = 0,
    urgency: Urgency = Urgency.ROUTINE,
) -> Waiter:
    """A waiting patient whose slot starts ``slot`` minutes after NOW and who came ``since``
    minutes before NOW."""
    return Waiter(
        appointment_id,
        urgency,
        NOW + timedelta(minutes=slot),
        NOW - timedelta(minutes=since),
    )


def test_waiting_line_puts_urgent_first_then_slot_then_arrival() -> None:
    line = [
        waiter(1, slot=30, since=20),
        waiter(2, slot=60, urgency=Urgency.URGENT),
        waiter(3, slot=0, since=1),
        waiter(4, slot=0, since=5),
    ]
    assert [ahead(i, line, NOW) for i in (2, 4, 3, 1)] == [0, 1, 2, 3]


def test_waiting_line_puts_a_patient_sent_back_from_the_call_first() -> None:
    back = Waiter(5, Urgency.ROUTINE, NOW + timedelta(minutes=90), NOW, sent_back=True)
    line = [waiter(1, slot=-30, since=40), waiter(2, urgency=Urgency.URGENT, since=10), back]
    assert [ahead(i, line, NOW) for i in (5, 2, 1)] == [0, 1, 2]


def test_waiting_place_of_someone_not_in_the_line_is_none() -> None:
    assert ahead(9, [waiter(1)], NOW) is None
    assert ahead(1, [], NOW) is None


def test_waiting_place_is_next_when_alone() -> None:
    assert ahead(5, [waiter(5, slot=-45)], NOW) == 0


def test_waiting_place_moves_back_when_an_earlier_slot_arrives() -> None:
    line = [waiter(1, slot=30)]
    assert ahead(1, line, NOW) == 0
    assert ahead(1, [*line, waiter(2, slot=0)], NOW) == 1


def test_waiting_ties_are_broken_by_appointment_id() -> None:
    # Same slot, both arrived at once: the order is still the same on every process.
    line = [waiter(8), waiter(7)]
    assert (ahead(7, line, NOW), ahead(8, line, NOW)) == (0, 1)


@pytest.mark.parametrize(
    ("starts_at", "day", "expected"),
    [
        # 23:30 in Berlin on 31 Dec is still the old year's notice, 00:30 the new year's.
        (datetime(2026, 12, 31, 22, 30, tzinfo=UTC), date(2026, 12, 31), True),
        (datetime(2026, 12, 31, 23, 30, tzinfo=UTC), date(2026, 12, 31), False),
        (datetime(2026, 12, 31, 23, 30, tzinfo=UTC), date(2027, 1, 1), True),
        # The night the clocks go forward (29 March 2026, 02:00 -> 03:00 in Berlin).
        (datetime(2026, 3, 29, 1, 30, tzinfo=UTC), date(2026, 3, 29), True),
        (datetime(2026, 3, 28, 22, 59, tzinfo=UTC), date(2026, 3, 29), False),
    ],
)
def test_waiting_notice_concerns_the_appointments_of_its_local_day(
    starts_at: datetime, day: date, expected: bool
) -> None:
    assert concerns(day, starts_at, BERLIN) is expected


def minutes(*values: float) -> list[timedelta]:
    return [timedelta(minutes=v) for v in values]


def test_waiting_estimate_needs_five_real_consultations_and_takes_the_median() -> None:
    assert typical_minutes(minutes(10, 12, 15, 20)) is None
    # A test call of 20 seconds and a room left open for a day are no consultations.
    assert typical_minutes(minutes(10, 12, 15, 20, 0.3, 24 * 60)) is None
    # One long case does not move the median.
    assert typical_minutes(minutes(10, 12, 15, 20, 11, 115)) == 13.5


def test_waiting_estimate_counts_the_people_ahead_and_half_the_consultation_going_on() -> None:
    assert estimate_minutes(0, 12.0, busy=False) == 5  # next, the specialist free: soon
    assert estimate_minutes(0, 12.0, busy=True) == 10  # 6 minutes, in steps of five
    assert estimate_minutes(1, 12.0, busy=True) == 20  # 18
    assert estimate_minutes(3, 12.0, busy=False) == 40  # 36
    assert estimate_minutes(2, None, busy=True) is None  # not enough history
    assert estimate_minutes(None, 12.0, busy=True) is None  # not in the line


def test_waiting_local_day_is_the_deployments_day() -> None:
    assert local_day(datetime(2026, 10, 24, 22, 30, tzinfo=UTC), BERLIN) == date(2026, 10, 25)


@pytest.mark.parametrize(
    "body",
    [
        {"minutes": 10},
        {"note": "Notfall dazwischen, bitte etwas Geduld."},
        {"minutes": MAX_DELAY_MINUTES, "note": "x" * 140},
    ],
)
def test_delay_in_takes_minutes_a_note_or_both(body: dict[str, object]) -> None:
    parsed = DelayIn.model_validate(body)
    assert (parsed.minutes, parsed.note) == (body.get("minutes"), body.get("note"))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "Bitte eine Verspätung in Minuten oder einen kurzen Hinweis angeben."),
        ({"note": "   "}, "Bitte eine Verspätung in Minuten oder einen kurzen Hinweis angeben."),
        ({"minutes": 0}, "Bitte eine Verspätung zwischen 1 und 180 Minuten angeben."),
        ({"minutes": 181}, "Bitte eine Verspätung zwischen 1 und 180 Minuten angeben."),
        ({"minutes": "viel"}, "Bitte eine Verspätung zwischen 1 und 180 Minuten angeben."),
        ({"minutes": 5.5}, "Bitte eine Verspätung zwischen 1 und 180 Minuten angeben."),
        ({"note": "x" * 141}, "Der Hinweis muss ein Text mit höchstens 140 Zeichen sein."),
        ({"note": "zwei\nZeilen"}, "Der Hinweis muss eine einzelne Zeile sein."),
        ({"note": 42}, "Der Hinweis muss ein Text mit höchstens 140 Zeichen sein."),
    ],
)
def test_delay_in_refuses_with_a_german_message(body: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        DelayIn.model_validate(body)
    assert [e["msg"] for e in caught.value.errors()] == [message]


def test_delay_in_refuses_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        DelayIn.model_validate({"minutes": 5, "specialist_id": 3})


# ---------------------------------------------------------------- what a patient is told


def view(
    *, ahead: int | None = 0, minutes: int | None = None, state: RoomState = RoomState.WAITING
) -> WaitingView:
    notice = (
        PatientDelay(minutes=minutes, note=None, specialist_name="Dr. X", updated_at=NOW)
        if minutes is not None
        else None
    )
    return WaitingView(
        appointment_id=1, specialist_id=2, room_state=state, ahead=ahead, delay=notice
    )


def watcher() -> Watcher:
    return Watcher(Connection(limit=8, role="patient"), appointment_id=1, specialist_id=2)


def test_waiting_news_tells_the_place_and_the_notice_once() -> None:
    w = watcher()
    assert [type(x) for x in news(w, view(ahead=2, minutes=10))] == [m.Position, m.Delay]
    assert news(w, view(ahead=2, minutes=10)) == []
    assert news(w, view(ahead=1, minutes=10)) == [m.Position(ahead=1)]


def test_waiting_news_tells_a_withdrawn_notice_once() -> None:
    w = watcher()
    news(w, view(minutes=15))
    assert news(w, view()) == [m.Delay()]
    assert news(w, view()) == []


def test_waiting_news_says_nothing_once_the_patient_is_let_in() -> None:
    w = watcher()
    assert news(w, view(ahead=None, minutes=5, state=RoomState.ADMITTED)) == []
    assert news(w, view(ahead=None, minutes=5, state=RoomState.IN_CALL)) == []


def test_waiting_news_tells_a_patient_sent_back_the_place_and_notice_afresh() -> None:
    w = watcher()
    news(w, view(ahead=0, minutes=10))
    news(w, view(ahead=None, minutes=10, state=RoomState.IN_CALL))
    again = news(w, view(ahead=0, minutes=10))
    assert [type(x) for x in again] == [m.Position, m.Delay]
    assert again[0] == m.Position(ahead=0)


def test_waiting_news_tells_a_patient_sent_back_that_the_notice_is_gone() -> None:
    w = watcher()
    news(w, view(ahead=0, minutes=10))
    news(w, view(ahead=None, state=RoomState.IN_CALL))
    assert news(w, view(ahead=0)) == [m.Position(ahead=0), m.Delay()]
    fresh = watcher()  # never had a notice: nothing to withdraw
    news(fresh, view(ahead=0))
    news(fresh, view(ahead=None, state=RoomState.ADMITTED))
    assert news(fresh, view(ahead=0)) == [m.Position(ahead=0)]
