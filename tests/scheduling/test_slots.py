"""Slot computation without a database: weekly rules, exceptions, bookings, DST changes."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.scheduling.slots import Slot, Window, free_slots, local_to_utc, offered_slots

BERLIN = ZoneInfo("Europe/Berlin")
SPRING_FORWARD = date(2026, 3, 29)  # Sunday: 02:00 CET -> 03:00 CEST
FALL_BACK = date(2026, 10, 25)  # Sunday: 03:00 CEST -> 02:00 CET


@dataclass(frozen=True)
class Rule:
    weekday: int
    start_time: time
    end_time: time
    slot_minutes: int = 30
    valid_from: date | None = None
    valid_until: date | None = None


@dataclass(frozen=True)
class Exc:
    starts_at: datetime
    ends_at: datetime
    available: bool = False
    slot_minutes: int = 30


@dataclass(frozen=True)
class Busy:
    starts_at: datetime
    ends_at: datetime


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=BERLIN).astimezone(UTC)


def local_times(slots: list[Slot]) -> list[str]:
    return [s.starts_at.astimezone(BERLIN).strftime("%m-%d %H:%M") for s in slots]


EARLY = Window(now=utc(2026, 1, 1), horizon=timedelta(days=400))


def offered(rules: list[Rule], first: date, last: date | None = None) -> list[Slot]:
    return offered_slots(
        rules=rules, exceptions=[], first_day=first, last_day=last or first, tz=BERLIN
    )


def test_slots_weekly_rule_yields_local_slots_of_given_length() -> None:
    monday = date(2026, 6, 1)
    slots = offered([Rule(0, time(9), time(11), 30)], monday, monday + timedelta(days=7))
    assert local_times(slots) == [
        "06-01 09:00", "06-01 09:30", "06-01 10:00", "06-01 10:30",
        "06-08 09:00", "06-08 09:30", "06-08 10:00", "06-08 10:30",
    ]  # fmt: skip
    assert all(s.ends_at - s.starts_at == timedelta(minutes=30) for s in slots)
    assert slots[0].starts_at == utc(2026, 6, 1, 7, 0)


def test_slots_leftover_shorter_than_a_slot_is_not_offered() -> None:
    slots = offered([Rule(0, time(9), time(10, 10), 30)], date(2026, 6, 1))
    assert local_times(slots) == ["06-01 09:00", "06-01 09:30"]


def test_slots_stay_at_local_wall_clock_across_spring_forward() -> None:
    saturday, sunday, monday = (SPRING_FORWARD + timedelta(days=d) for d in (-1, 0, 1))
    rules = [Rule(d.weekday(), time(9), time(10), 60) for d in (saturday, sunday, monday)]
    slots = offered(rules, saturday, monday)
    assert local_times(slots) == ["03-28 09:00", "03-29 09:00", "03-30 09:00"]
    assert [s.starts_at.hour for s in slots] == [8, 7, 7]  # UTC offset changes, local does not


def test_slots_skip_local_times_that_do_not_exist() -> None:
    slots = offered([Rule(6, time(1), time(4), 30)], SPRING_FORWARD)
    assert local_times(slots) == [
        "03-29 01:00", "03-29 01:30", "03-29 03:00", "03-29 03:30",
    ]  # fmt: skip
    assert slots[1].ends_at == slots[2].starts_at == utc(2026, 3, 29, 1, 0)


def test_slots_stay_at_local_wall_clock_across_fall_back() -> None:
    rules = [Rule(d, time(9), time(10), 60) for d in (5, 6, 0)]
    slots = offered(rules, FALL_BACK - timedelta(days=1), FALL_BACK + timedelta(days=1))
    assert local_times(slots) == ["10-24 09:00", "10-25 09:00", "10-26 09:00"]
    assert [s.starts_at.hour for s in slots] == [7, 8, 8]


def test_slots_ambiguous_local_time_taken_once_at_first_occurrence() -> None:
    slots = offered([Rule(6, time(1), time(4), 30)], FALL_BACK)
    assert local_times(slots) == [
        "10-25 01:00", "10-25 01:30", "10-25 02:00", "10-25 02:30",
        "10-25 03:00", "10-25 03:30",
    ]  # fmt: skip
    assert slots[2].starts_at == utc(2026, 10, 25, 0, 0)  # 02:00 CEST, the first 02:00
    assert slots[3].ends_at == utc(2026, 10, 25, 1, 0)
    assert slots[4].starts_at == utc(2026, 10, 25, 2, 0)  # 03:00 CET
    assert all(a.ends_at <= b.starts_at for a, b in itertools.pairwise(slots))


def test_local_to_utc_nonexistent_is_none_and_ambiguous_is_first() -> None:
    assert local_to_utc(SPRING_FORWARD, time(2, 30), BERLIN) is None
    assert local_to_utc(FALL_BACK, time(2, 30), BERLIN) == utc(2026, 10, 25, 0, 30)


def test_slots_rule_validity_bounds_are_inclusive() -> None:
    rule = Rule(
        0, time(9), time(10), 60, valid_from=date(2026, 6, 8), valid_until=date(2026, 6, 15)
    )
    slots = offered([rule], date(2026, 6, 1), date(2026, 6, 30))
    assert local_times(slots) == ["06-08 09:00", "06-15 09:00"]


def test_slots_absence_removes_every_touched_slot() -> None:
    day = date(2026, 6, 1)
    absence = Exc(local(day, 9, 45), local(day, 10, 15), available=False)
    slots = offered_slots(
        rules=[Rule(0, time(9), time(11), 30)],
        exceptions=[absence],
        first_day=day,
        last_day=day,
        tz=BERLIN,
    )
    assert local_times(slots) == ["06-01 09:00", "06-01 10:30"]


def test_slots_extra_hours_add_slots_with_their_own_length() -> None:
    day = date(2026, 6, 2)  # a Tuesday without weekly rules
    extra = Exc(local(day, 14), local(day, 15, 10), available=True, slot_minutes=20)
    slots = offered_slots(
        rules=[Rule(0, time(9), time(10))],
        exceptions=[extra],
        first_day=day,
        last_day=day,
        tz=BERLIN,
    )
    assert local_times(slots) == ["06-02 14:00", "06-02 14:20", "06-02 14:40"]
    assert slots[0].ends_at - slots[0].starts_at == timedelta(minutes=20)


def test_slots_extra_hours_overlapping_a_rule_do_not_double_book_time() -> None:
    day = date(2026, 6, 1)
    extra = Exc(local(day, 9, 15), local(day, 10, 15), available=True, slot_minutes=30)
    slots = offered_slots(
        rules=[Rule(0, time(9), time(10))],
        exceptions=[extra],
        first_day=day,
        last_day=day,
        tz=BERLIN,
    )
    assert local_times(slots) == ["06-01 09:00", "06-01 09:30"]
    assert all(a.ends_at <= b.starts_at for a, b in itertools.pairwise(slots))


def test_free_slots_exclude_booked_and_overlapping_appointments() -> None:
    day = date(2026, 6, 1)
    booked = [Busy(local(day, 9), local(day, 9, 30)), Busy(local(day, 10, 15), local(day, 10, 45))]
    slots = free_slots(
        rules=[Rule(0, time(9), time(11))], exceptions=[], booked=booked,
        first_day=day, last_day=day, tz=BERLIN, window=EARLY,
    )  # fmt: skip
    assert local_times(slots) == ["06-01 09:30"]


def test_free_slots_respect_lead_time_and_horizon() -> None:
    day = date(2026, 6, 1)
    window = Window(
        now=local(day, 9, 10), min_lead=timedelta(minutes=20), horizon=timedelta(days=7)
    )
    slots = free_slots(
        rules=[Rule(0, time(9), time(11))], exceptions=[], booked=[],
        first_day=day, last_day=day + timedelta(days=14), tz=BERLIN, window=window,
    )  # fmt: skip
    # 09:00 is too soon; a week later 09:00 is inside the horizon and 09:30 is beyond it.
    assert local_times(slots) == ["06-01 09:30", "06-01 10:00", "06-01 10:30", "06-08 09:00"]


def test_free_slots_in_the_past_are_not_offered() -> None:
    day = date(2026, 6, 1)
    slots = free_slots(
        rules=[Rule(0, time(9), time(11))], exceptions=[], booked=[],
        first_day=day, last_day=day, tz=BERLIN, window=Window(now=local(day, 12)),
    )  # fmt: skip
    assert slots == []
