"""Pure rules of the waiting room: the order in which waiting patients are seen, how many are
ahead of one of them, and whether a late notice concerns an appointment. No I/O, no clock:
callers pass ``now`` and the deployment's time zone."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from app.scheduling.models import Urgency

URGENT_FIRST = {Urgency.URGENT: 0, Urgency.ROUTINE: 1}
MAX_DELAY_MINUTES = 180


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
    ordered = sorted(waiting, key=lambda waiter: order_key(waiter, now))
    for position, waiter in enumerate(ordered):
        if waiter.appointment_id == appointment_id:
            return position
    return None


def local_day(moment: datetime, tz: ZoneInfo) -> date:
    return moment.astimezone(tz).date()


def concerns(delay_day: date, starts_at: datetime, tz: ZoneInfo) -> bool:
    """Whether a late notice given for ``delay_day`` concerns an appointment at ``starts_at``:
    only the appointments of that local day (a notice is never carried over to the next)."""
    return local_day(starts_at, tz) == delay_day
