"""Pure rules of the waiting room: the order in which waiting patients are seen, how many are
ahead of one of them, about how long they will still wait, and whether a late notice concerns
an appointment. No I/O, no clock: callers pass ``now`` and the deployment's time zone."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from app.scheduling.models import Urgency

URGENT_FIRST = {Urgency.URGENT: 0, Urgency.ROUTINE: 1}
MAX_DELAY_MINUTES = 180
# The waiting-time estimate: from the specialist's own last consultations (admitted to ended)
# within HISTORY_DAYS, at most HISTORY_KEPT of them, and only with at least HISTORY_NEEDED. A
# consultation shorter than a minute (a test call, a wrong admit) or longer than two hours (a
# room nobody ended) says nothing about the next one.
HISTORY_DAYS = 60
HISTORY_KEPT = 30
HISTORY_NEEDED = 5
SHORTEST = timedelta(minutes=1)
LONGEST = timedelta(hours=2)
ESTIMATE_STEP_MINUTES = 5


@dataclass(frozen=True)
class Waiter:
    """A patient in the waiting room, as far as the order is concerned. ``sent_back``: the
    patient was admitted before and sent back from the call (``admitted_at`` is set)."""

    appointment_id: int
    urgency: Urgency
    starts_at: datetime
    waiting_since: datetime | None
    sent_back: bool = False


def order_key(waiter: Waiter, now: datetime) -> tuple[int, int, datetime, datetime, int]:
    """A patient sent back from the call first (their consultation has begun: the specialist
    admits them again when done with the GP, before anyone else), then urgent first, then by
    slot time, then by arrival (the specialist's queue shows this order, and admits from its
    top). ``waiting_since`` restarts at the send-back, so it counts only among patients who
    were sent back too."""
    return (
        0 if waiter.sent_back else 1,
        URGENT_FIRST[waiter.urgency],
        waiter.starts_at,
        waiter.waiting_since or now,
        waiter.appointment_id,
    )


def ahead(appointment_id: int, waiting: Iterable[Waiter], now: datetime) -> int | None:
    """How many waiting patients come before ``appointment_id`` (0: it is next); None if it is
    not in the waiting room."""
    return places(waiting, now).get(appointment_id)


def places(waiting: Iterable[Waiter], now: datetime) -> dict[int, int]:
    """``ahead`` for every waiting patient at once (the line sorted once)."""
    ordered = sorted(waiting, key=lambda waiter: order_key(waiter, now))
    return {waiter.appointment_id: position for position, waiter in enumerate(ordered)}


def typical_minutes(durations: Sequence[timedelta]) -> float | None:
    """How long one of the specialist's consultations usually takes (the median, which one
    long case does not move), or None with fewer than ``HISTORY_NEEDED`` real ones."""
    real = [d.total_seconds() / 60 for d in durations if SHORTEST <= d <= LONGEST]
    if len(real) < HISTORY_NEEDED:
        return None
    return statistics.median(real)


def estimate_minutes(ahead: int | None, typical: float | None, busy: bool) -> int | None:
    """About how many minutes until the specialist sees a waiting patient: the consultations
    of everybody ahead and half of the one going on now (``busy``; how far it is, nobody
    knows), each as long as the typical one, rounded up to steps of five minutes so it
    reads as the estimate it is. None without a place in the line or without enough history.
    """
    if ahead is None or typical is None:
        return None
    minutes = typical * (ahead + (0.5 if busy else 0.0))
    steps = max(1, math.ceil(minutes / ESTIMATE_STEP_MINUTES))
    return steps * ESTIMATE_STEP_MINUTES


def local_day(moment: datetime, tz: ZoneInfo) -> date:
    return moment.astimezone(tz).date()


def concerns(delay_day: date, starts_at: datetime, tz: ZoneInfo) -> bool:
    """Whether a late notice given for ``delay_day`` concerns an appointment at ``starts_at``:
    only the appointments of that local day (a notice is never carried over to the next)."""
    return local_day(starts_at, tz) == delay_day
