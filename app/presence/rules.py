"""The pure presence rule: what a specialist's toggle, session and rooms mean right now."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from app.presence.models import Chosen


class Presence(StrEnum):
    """A specialist's presence as GPs see it counted."""

    ON_DUTY = "on_duty"  # set on duty by a session that is still live: available now
    IN_CALL = "in_call"  # a consultation of theirs is going on, whatever the toggle
    AWAY = "away"


def effective(*, chosen: Chosen | None, session_live: bool, in_consultation: bool) -> Presence:
    """In a consultation whatever the toggle; otherwise on duty only if set so by a session
    that is still live (not ended, not expired, not idle too long); otherwise away (never set,
    set away, or the session that set it is over)."""
    if in_consultation:
        return Presence.IN_CALL
    if chosen is Chosen.ON_DUTY and session_live:
        return Presence.ON_DUTY
    return Presence.AWAY


@dataclass(frozen=True)
class Counts:
    on_duty: int = 0
    in_call: int = 0


def count(presences: Iterable[Presence]) -> Counts:
    """How many are available now and how many are in a consultation (away: not counted)."""
    found = list(presences)
    return Counts(on_duty=found.count(Presence.ON_DUTY), in_call=found.count(Presence.IN_CALL))
