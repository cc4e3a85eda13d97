"""Search parameters and ids as FHIR clients send them (pure).

Unknown parameters are ignored (FHIR's lenient handling) unless the request says
``Prefer: handling=strict``, then they are refused with 400. Ids that cannot name a row
(not a number, beyond the id columns' range) are "not found", never an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.fhir.outcome import FhirError
from app.schemas import MAX_ID

# Parameters every search accepts and ignores: result shaping Konsil does not offer.
GENERAL = frozenset({"_format", "_pretty", "_summary", "_elements", "_count", "_total"})
_PREFIXED = re.compile(r"^(eq|ne|gt|lt|ge|le|sa|eb|ap)?(\d{4}-\d{2}-\d{2}.*)$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SLOT_ID = re.compile(r"^(\d{1,10})-(\d{1,12})$")


def row_id(value: str) -> int | None:
    """A resource id that can name a row (1..MAX_ID, digits only), else None."""
    # ASCII only: str.isdigit() is also true for "²" or Arabic-Indic digits.
    if not (value.isascii() and value.isdigit()) or len(value) > 10:
        return None
    number = int(value)
    return number if 1 <= number <= MAX_ID else None


def reference_id(value: str, *types: str) -> int | None:
    """The row id of ``Type/N`` (or a bare ``N``, or an absolute URL ending so) when Type is
    one of ``types``; None when it cannot name a row of those types."""
    parts = value.rstrip("/").split("/")
    if len(parts) == 1:
        return row_id(parts[0])
    if parts[-2] not in types:
        return None
    return row_id(parts[-1])


def slot_id(specialist_id: int, starts_at: datetime) -> str:
    """A computed slot's id: the specialist and the start as Unix seconds, stable for as long
    as the slot is offered, so ``$book`` can name it."""
    return f"{specialist_id}-{int(starts_at.timestamp())}"


def parse_slot_id(value: str) -> tuple[int, datetime] | None:
    """(specialist id, start) of a slot id, or None for anything that is not one."""
    found = _SLOT_ID.match(value)
    if found is None:
        return None
    specialist = row_id(found.group(1))
    seconds = int(found.group(2))
    if specialist is None or seconds > 253402300799:  # 9999-12-31
        return None
    return specialist, datetime.fromtimestamp(seconds, UTC)


@dataclass(frozen=True)
class Params:
    """A search's parameters: name -> every value given (repeats kept)."""

    values: dict[str, list[str]]

    def first(self, name: str) -> str | None:
        found = self.values.get(name)
        return found[0] if found else None

    def all(self, name: str) -> list[str]:
        return self.values.get(name, [])


def parse_params(items: Iterable[tuple[str, str]], known: Iterable[str], *, strict: bool) -> Params:
    """The known parameters; an unknown one is ignored, or 400 when ``strict``. A modifier
    (``name:exact``) is not supported: treated like an unknown parameter."""
    allowed = set(known)
    values: dict[str, list[str]] = {}
    for name, value in items:
        if name in allowed:
            values.setdefault(name, []).append(value)
        elif strict and name not in GENERAL:
            raise FhirError(400, f"Unbekannter Suchparameter: {name}", code="not-supported")
    return Params(values)


def is_strict(prefer: str | None) -> bool:
    return prefer is not None and "handling=strict" in prefer.replace(" ", "").lower()


def is_async(prefer: str | None) -> bool:
    """``Prefer: respond-async`` among the header's preferences (``,`` or ``;`` between)."""
    if prefer is None:
        return False
    return "respond-async" in {p.strip().lower() for p in prefer.replace(";", ",").split(",")}


@dataclass(frozen=True)
class Bounds:
    """Instants a date search admits: ``lower <= t < upper`` (either may be open)."""

    lower: datetime | None = None
    upper: datetime | None = None

    def admits(self, instant: datetime) -> bool:
        return (self.lower is None or instant >= self.lower) and (
            self.upper is None or instant < self.upper
        )


def date_bounds(values: Sequence[str], tz: ZoneInfo, name: str) -> Bounds:
    """The instants that satisfy every ``values`` of a date parameter (``ge2026-12-07``,
    ``lt2026-12-08T12:00:00+01:00``, ``2026-12-07``); a day is a local day (``tz``)."""
    lower: datetime | None = None
    upper: datetime | None = None
    for value in values:
        prefix, begin, end = _date_range(value, tz, name)
        low, high = {
            "eq": (begin, end),
            "ge": (begin, None),
            "gt": (end, None),
            "sa": (end, None),
            "le": (None, end),
            "lt": (None, begin),
            "eb": (None, begin),
        }.get(prefix, (begin, end))
        if prefix in ("ne", "ap"):
            raise FhirError(400, f"{name}: Präfix {prefix} wird nicht unterstützt.")
        if low is not None and (lower is None or low > lower):
            lower = low
        if high is not None and (upper is None or high < upper):
            upper = high
    return Bounds(lower, upper)


def _date_range(value: str, tz: ZoneInfo, name: str) -> tuple[str, datetime, datetime]:
    found = _PREFIXED.match(value.strip())
    if found is None:
        raise FhirError(400, f"{name}: ungültiges Datum {value[:40]!r}")
    prefix, text = found.group(1) or "eq", found.group(2)
    if _DATE.match(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise FhirError(400, f"{name}: ungültiges Datum {value[:40]!r}") from None
        begin = datetime.combine(day, time(0), tzinfo=tz)
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
        return prefix, begin.astimezone(UTC), end.astimezone(UTC)
    try:
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FhirError(400, f"{name}: ungültiges Datum {value[:40]!r}") from None
    if instant.tzinfo is None:
        raise FhirError(400, f"{name}: eine Uhrzeit braucht eine Zeitzone.")
    instant = instant.astimezone(UTC)
    return prefix, instant, instant + timedelta(seconds=1)


def token_code(value: str) -> str:
    """The code of a token parameter (``system|code`` or ``code``)."""
    return value.rsplit("|", 1)[-1]
