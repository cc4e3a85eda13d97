"""Free consultation slots, computed from availability. Pure: no database, no clock.

Weekly rules are local wall-clock times (Europe/Berlin in production), so "09:00 every Monday"
stays 09:00 local across the daylight-saving changes. Slot lengths are real elapsed minutes.
Around a change:

* a local start that does not exist (spring forward, 02:00-02:59 on the last Sunday of March)
  yields no slot;
* a local start that exists twice (fall back, 02:00-02:59 on the last Sunday of October) is
  taken at its first occurrence (``fold=0``, still summer time), so the result is deterministic
  and the later duplicate never produces a second, overlapping slot.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Protocol


class RuleLike(Protocol):
    """A weekly rule (``AvailabilityRule`` satisfies it)."""

    @property
    def weekday(self) -> int: ...
    @property
    def start_time(self) -> time: ...
    @property
    def end_time(self) -> time: ...
    @property
    def slot_minutes(self) -> int: ...
    @property
    def valid_from(self) -> date | None: ...
    @property
    def valid_until(self) -> date | None: ...


class ExceptionLike(Protocol):
    """A one-off change (``AvailabilityException`` satisfies it). Times are aware UTC."""

    @property
    def starts_at(self) -> datetime: ...
    @property
    def ends_at(self) -> datetime: ...
    @property
    def available(self) -> bool: ...
    @property
    def slot_minutes(self) -> int: ...


class IntervalLike(Protocol):
    """Something that occupies time, such as a booked appointment."""

    @property
    def starts_at(self) -> datetime: ...
    @property
    def ends_at(self) -> datetime: ...


@dataclass(frozen=True, order=True)
class Slot:
    """A bookable interval, aware UTC."""

    starts_at: datetime
    ends_at: datetime

    def overlaps(self, other: IntervalLike) -> bool:
        return self.starts_at < other.ends_at and other.starts_at < self.ends_at


@dataclass(frozen=True)
class Window:
    """What may be booked right now: from ``now + min_lead`` up to ``now + horizon``."""

    now: datetime
    min_lead: timedelta = timedelta(0)
    horizon: timedelta = timedelta(days=90)

    def admits(self, slot: Slot) -> bool:
        return self.now + self.min_lead <= slot.starts_at <= self.now + self.horizon


def local_to_utc(day: date, at: time, tz: tzinfo) -> datetime | None:
    """The UTC instant of a local wall-clock time; None if it does not exist that day."""
    naive = datetime.combine(day, at)
    aware = naive.replace(tzinfo=tz, fold=0)
    instant = aware.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) != naive:
        return None  # skipped by a spring-forward change
    return instant


def offered_slots(
    *,
    rules: Iterable[RuleLike],
    exceptions: Iterable[ExceptionLike],
    first_day: date,
    last_day: date,
    tz: tzinfo,
) -> list[Slot]:
    """Every slot the specialist offers on the local days ``first_day..last_day``.

    Weekly rules and extra hours are combined, overlapping slots are resolved in favour of the
    earlier one, and absences (``available=False``) remove every slot they touch.
    """
    exceptions = list(exceptions)
    candidates = list(_rule_slots(rules, first_day, last_day, tz))
    candidates += _extra_slots(exceptions)
    absences = [e for e in exceptions if not e.available]
    in_range = (
        s
        for s in _without_overlaps(candidates)
        if first_day <= s.starts_at.astimezone(tz).date() <= last_day
    )
    return [s for s in in_range if not any(s.overlaps(a) for a in absences)]


def free_slots(
    *,
    rules: Iterable[RuleLike],
    exceptions: Iterable[ExceptionLike],
    booked: Iterable[IntervalLike],
    first_day: date,
    last_day: date,
    tz: tzinfo,
    window: Window,
) -> list[Slot]:
    """Offered slots that no active appointment overlaps and that the window admits."""
    busy = list(booked)
    offered = offered_slots(
        rules=rules, exceptions=exceptions, first_day=first_day, last_day=last_day, tz=tz
    )
    return [s for s in offered if window.admits(s) and not any(s.overlaps(b) for b in busy)]


def days(first_day: date, last_day: date) -> Iterator[date]:
    day = first_day
    while day <= last_day:
        yield day
        day += timedelta(days=1)


def rule_applies(rule: RuleLike, day: date) -> bool:
    if rule.weekday != day.weekday():
        return False
    if rule.valid_from is not None and day < rule.valid_from:
        return False
    return rule.valid_until is None or day <= rule.valid_until


def _rule_slots(rules: Iterable[RuleLike], first: date, last: date, tz: tzinfo) -> Iterator[Slot]:
    rules = list(rules)
    for day in days(first, last):
        for rule in rules:
            if rule_applies(rule, day):
                yield from _slots_of_rule_on(rule, day, tz)


def _slots_of_rule_on(rule: RuleLike, day: date, tz: tzinfo) -> Iterator[Slot]:
    length = timedelta(minutes=rule.slot_minutes)
    start = _minutes(rule.start_time)
    end = _minutes(rule.end_time)
    for minute in range(start, end - rule.slot_minutes + 1, rule.slot_minutes):
        instant = local_to_utc(day, time(minute // 60, minute % 60), tz)
        if instant is not None:
            yield Slot(instant, instant + length)


def _extra_slots(exceptions: Sequence[ExceptionLike]) -> Iterator[Slot]:
    for extra in exceptions:
        if not extra.available:
            continue
        length = timedelta(minutes=extra.slot_minutes)
        start = extra.starts_at.astimezone(UTC)
        while start + length <= extra.ends_at:
            yield Slot(start, start + length)
            start += length


def _without_overlaps(slots: Iterable[Slot]) -> list[Slot]:
    """Sorted, and a slot overlapping an earlier kept one is dropped (deterministic)."""
    kept: list[Slot] = []
    for slot in sorted(set(slots)):
        if not kept or slot.starts_at >= kept[-1].ends_at:
            kept.append(slot)
    return kept


def _minutes(at: time) -> int:
    return at.hour * 60 + at.minute
