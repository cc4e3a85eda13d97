"""Which EBM billing positions (Gebührenordnungspositionen, GOP) Konsil knows of a consultation,
for the GP who asked and for the specialist who answered, and which quarter they fall in.

Pure: no database, no clock. Callers pass what an appointment says (``Facts``) and the
deployment's time zone. The result is a helper for the practice's own billing system, never a
billing file: Konsil does not know the patient's insurance status, the treatment case
(Behandlungsfall, Arztgruppenfall) or what else the practice bills in it, so the limits per
case and the exclusions stay with the practice software (docs/api.md "EBM export").

The rules, per appointment that was held (the specialist let the patient in: ``admitted_at``)
or answered (a report was written: ``reported_at``), never for a cancelled one:

- GP: **01670** Einholung eines Telekonsiliums, once.
- Specialist: **01450** Zuschlag Videosprechstunde, once, if the patient was let into the
  video consultation; **01444** Authentifizierung eines unbekannten Patienten, once, if the
  specialist confirmed the identity check; **01671** telekonsiliarische Beurteilung, once, with
  the completed minutes of the video consultation (admitted to ended) where Konsil has them;
  **01672** Zuschlag zur 01671, once per further *completed 5 minutes* beyond the 10 minutes of
  the 01671, at most 3 (EBM: "je weitere vollendete 5 Minuten", at most three times in the
  Arztgruppenfall; KV Hessen, "Telekonsilien abrechnen").

Every row of an appointment carries the day it was held (or, answered in writing only, the day
of its first report), in local time; that instant decides the quarter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from app.errors import InvalidQuarter


class Gop(StrEnum):
    """The EBM positions the export lists (the code as the EBM writes it, leading zero)."""

    AUTHENTICATION = "01444"
    VIDEO = "01450"
    TELEKONSIL_ASKED = "01670"
    TELEKONSIL_ASSESSED = "01671"
    TELEKONSIL_LONGER = "01672"


TITLES = {
    Gop.AUTHENTICATION: "Authentifizierung eines unbekannten Patienten",
    Gop.VIDEO: "Zuschlag Videosprechstunde",
    Gop.TELEKONSIL_ASKED: "Einholung eines Telekonsiliums",
    Gop.TELEKONSIL_ASSESSED: "Telekonsiliarische Beurteilung",
    Gop.TELEKONSIL_LONGER: "Zuschlag zur 01671 je weitere vollendete 5 Minuten",
}


class Side(StrEnum):
    """Whose rows: the GP who asked for the Telekonsil, or the specialist who answered it."""

    ASKING = "asking"
    ANSWERING = "answering"


# 01671: at least 10 minutes; 01672: each further completed 5 minutes, at most three times.
ASSESSMENT_MINUTES = 10
SURCHARGE_STEP_MINUTES = 5
SURCHARGE_AT_MOST = 3


@dataclass(frozen=True)
class Facts:
    """What an appointment says about the billable events of its consultation."""

    appointment_id: int
    patient_name: str
    patient_birth_date: date
    insurance_number: str | None
    cancelled: bool
    admitted_at: datetime | None
    ended_at: datetime | None
    reported_at: datetime | None
    identity_checked_at: datetime | None

    @property
    def held_at(self) -> datetime | None:
        """When the Telekonsil took place: the specialist let the patient in or, for one
        answered in writing only, the first report. None: nothing billable (yet)."""
        if self.cancelled:
            return None
        return self.admitted_at or self.reported_at


@dataclass(frozen=True)
class Row:
    """One line of the export: a GOP for one appointment."""

    day: date
    appointment_id: int
    patient_name: str
    patient_birth_date: date
    insurance_number: str | None
    gop: Gop
    count: int
    # The completed minutes of the video consultation (01671, 01672), None where unknown.
    minutes: int | None = None
    note: str = ""


def completed_minutes(admitted_at: datetime | None, ended_at: datetime | None) -> int | None:
    """Whole minutes from letting the patient in to the end (9:59 is 9); None if the video
    consultation did not take place or has not ended."""
    if admitted_at is None or ended_at is None or ended_at < admitted_at:
        return None
    return int((ended_at - admitted_at).total_seconds()) // 60


def surcharges(minutes: int | None) -> int:
    """How many 01672 the minutes give: each completed 5 minutes beyond the first 10, at most 3."""
    if minutes is None or minutes < ASSESSMENT_MINUTES:
        return 0
    return min(SURCHARGE_AT_MOST, (minutes - ASSESSMENT_MINUTES) // SURCHARGE_STEP_MINUTES)


def rows_for(facts: Facts, side: Side, tz: ZoneInfo) -> list[Row]:
    """The rows of one appointment for the GP (``ASKING``) or the specialist (``ANSWERING``)."""
    held = facts.held_at
    if held is None:
        return []

    def row(gop: Gop, count: int = 1, minutes: int | None = None, note: str = "") -> Row:
        return Row(
            day=held.astimezone(tz).date(),
            appointment_id=facts.appointment_id,
            patient_name=facts.patient_name,
            patient_birth_date=facts.patient_birth_date,
            insurance_number=facts.insurance_number,
            gop=gop,
            count=count,
            minutes=minutes,
            note=note,
        )

    if side is Side.ASKING:
        return [row(Gop.TELEKONSIL_ASKED)]
    rows = []
    if facts.admitted_at is not None:
        rows.append(row(Gop.VIDEO))
    if facts.identity_checked_at is not None:
        rows.append(row(Gop.AUTHENTICATION))
    minutes = completed_minutes(facts.admitted_at, facts.ended_at)
    rows.append(row(Gop.TELEKONSIL_ASSESSED, minutes=minutes, note=assessment_note(facts, minutes)))
    extra = surcharges(minutes)
    if extra:
        rows.append(row(Gop.TELEKONSIL_LONGER, extra, minutes, surcharge_note(minutes)))
    return rows


def assessment_note(facts: Facts, minutes: int | None) -> str:
    """What the practice should check itself before billing the 01671."""
    notes = []
    if facts.admitted_at is None:
        notes.append("Schriftlich beantwortet: die Dauer kennt Konsil nicht.")
    elif minutes is None:
        notes.append("Konsultation nicht beendet: die Dauer kennt Konsil nicht.")
    elif minutes < ASSESSMENT_MINUTES:
        notes.append(
            "Videokontakt unter 10 Minuten: die Mindestdauer der Beurteilung selbst prüfen."
        )
    if facts.reported_at is None:
        notes.append("Noch kein Bericht in Konsil.")
    return " ".join(notes)


def surcharge_note(minutes: int | None) -> str:
    if minutes is None or surcharges(minutes) < SURCHARGE_AT_MOST:
        return ""
    return "Höchstens dreimal im Arztgruppenfall."


_QUARTER = re.compile(r"(2[0-9]{3})-[Qq]([1-4])")


@dataclass(frozen=True, order=True)
class Quarter:
    """A calendar quarter, ``2026-Q4``; its bounds are local midnights."""

    year: int
    number: int

    @classmethod
    def parse(cls, text: str | None) -> Quarter:
        """``YYYY-QN`` (years 2000 to 2999), or ``InvalidQuarter``."""
        found = _QUARTER.fullmatch((text or "").strip())
        if found is None:
            raise InvalidQuarter()
        return cls(int(found.group(1)), int(found.group(2)))

    @classmethod
    def of(cls, day: date) -> Quarter:
        return cls(day.year, (day.month - 1) // 3 + 1)

    def __str__(self) -> str:
        return f"{self.year}-Q{self.number}"

    @property
    def first_day(self) -> date:
        return date(self.year, 3 * self.number - 2, 1)

    @property
    def next(self) -> Quarter:
        if self.number == 4:
            return Quarter(self.year + 1, 1)
        return Quarter(self.year, self.number + 1)

    @property
    def previous(self) -> Quarter:
        if self.number == 1:
            return Quarter(self.year - 1, 4)
        return Quarter(self.year, self.number - 1)

    def bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """From the quarter's first local midnight (inclusive) to the next quarter's (exclusive),
        in UTC: 2026-Q4 is 2026-09-30 22:00 to 2026-12-31 23:00 UTC in Berlin."""
        start = datetime.combine(self.first_day, datetime.min.time(), tz)
        end = datetime.combine(self.next.first_day, datetime.min.time(), tz)
        return start.astimezone(UTC), end.astimezone(UTC)


def recent_quarters(today: date, count: int) -> list[Quarter]:
    """The quarter of ``today`` and the ``count - 1`` before it, newest first."""
    quarters = [Quarter.of(today)]
    while len(quarters) < count:
        quarters.append(quarters[-1].previous)
    return quarters


def rows_in(facts: Iterable[Facts], side: Side, quarter: Quarter, tz: ZoneInfo) -> list[Row]:
    """The rows of the appointments held in ``quarter``, by day, appointment and GOP."""
    start, end = quarter.bounds(tz)
    rows = [
        row
        for f in facts
        if (held := f.held_at) is not None and start <= held < end
        for row in rows_for(f, side, tz)
    ]
    return sorted(rows, key=lambda r: (r.day, r.appointment_id, r.gop.value))
