"""The EBM export's pure rules: the GOP per side, the minutes of the video consultation and the
01672 they give, the quarters in Berlin time (DST, New Year), the CSV file."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.billing import export
from app.billing.ebm import (
    Facts,
    Gop,
    Quarter,
    Row,
    Side,
    completed_minutes,
    recent_quarters,
    rows_for,
    rows_in,
)
from app.errors import InvalidQuarter

BERLIN = ZoneInfo("Europe/Berlin")
ADMITTED = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)  # 10:00 in Berlin


def facts(
    *,
    admitted: datetime | None = ADMITTED,
    minutes: float | None = 12,
    reported: datetime | None = ADMITTED + timedelta(hours=1),
    identity: datetime | None = None,
    cancelled: bool = False,
    appointment_id: int = 7,
) -> Facts:
    ended = admitted + timedelta(minutes=minutes) if admitted and minutes is not None else None
    return Facts(
        appointment_id=appointment_id,
        patient_name="Erika Mustermann",
        patient_birth_date=date(1956, 4, 12),
        insurance_number="A123456780",
        cancelled=cancelled,
        admitted_at=admitted,
        ended_at=ended,
        reported_at=reported,
        identity_checked_at=identity,
    )


def codes(rows: list[Row]) -> list[tuple[str, int]]:
    return [(r.gop.value, r.count) for r in rows]


def test_ebm_gp_gets_01670_for_a_held_telekonsil() -> None:
    (row,) = rows_for(facts(), Side.ASKING, BERLIN)
    assert (row.gop, row.count, row.minutes) == (Gop.TELEKONSIL_ASKED, 1, None)
    assert (row.day, row.appointment_id, row.insurance_number) == (
        date(2026, 11, 3),
        7,
        "A123456780",
    )


def test_ebm_gp_gets_01670_for_a_telekonsil_answered_in_writing_only() -> None:
    answered = facts(admitted=None, reported=datetime(2026, 11, 4, 23, 30, tzinfo=UTC))
    (row,) = rows_for(answered, Side.ASKING, BERLIN)
    # The day of the report in Berlin: 00:30 on 5 November.
    assert (row.gop, row.day) == (Gop.TELEKONSIL_ASKED, date(2026, 11, 5))


@pytest.mark.parametrize("side", list(Side))
def test_ebm_nothing_for_a_telekonsil_neither_held_nor_answered(side: Side) -> None:
    assert rows_for(facts(admitted=None, reported=None), side, BERLIN) == []


@pytest.mark.parametrize("side", list(Side))
def test_ebm_nothing_for_a_cancelled_appointment(side: Side) -> None:
    cancelled = facts(admitted=None, reported=ADMITTED, cancelled=True)
    assert rows_for(cancelled, side, BERLIN) == []


def test_ebm_specialist_gets_01450_and_01671_with_the_minutes_of_the_video_contact() -> None:
    rows = rows_for(facts(minutes=12.5), Side.ANSWERING, BERLIN)
    assert codes(rows) == [("01450", 1), ("01671", 1)]
    assert [r.minutes for r in rows] == [None, 12]
    assert all(r.note == "" for r in rows)


def test_ebm_01444_only_where_the_identity_was_checked() -> None:
    checked = facts(identity=ADMITTED + timedelta(minutes=2))
    assert codes(rows_for(checked, Side.ANSWERING, BERLIN)) == [
        ("01450", 1), ("01444", 1), ("01671", 1),
    ]  # fmt: skip
    assert Gop.AUTHENTICATION not in {r.gop for r in rows_for(facts(), Side.ANSWERING, BERLIN)}
    # Never for the GP: the specialist checked it.
    assert codes(rows_for(checked, Side.ASKING, BERLIN)) == [("01670", 1)]


@pytest.mark.parametrize(
    ("duration", "minutes", "surcharges"),
    [
        (timedelta(minutes=9, seconds=59), 9, 0),
        (timedelta(minutes=10), 10, 0),
        (timedelta(minutes=14, seconds=59), 14, 0),
        (timedelta(minutes=15), 15, 1),
        (timedelta(minutes=19, seconds=59), 19, 1),
        (timedelta(minutes=20), 20, 2),
        (timedelta(minutes=24, seconds=59), 24, 2),
        (timedelta(minutes=25), 25, 3),
        (timedelta(minutes=29, seconds=59), 29, 3),
        (timedelta(hours=1), 60, 3),
    ],
    ids=lambda v: str(v) if isinstance(v, timedelta) else None,
)
def test_ebm_01672_per_further_completed_five_minutes_at_most_three(
    duration: timedelta, minutes: int, surcharges: int
) -> None:
    held = facts(minutes=duration.total_seconds() / 60)
    rows = rows_for(held, Side.ANSWERING, BERLIN)
    assessed = next(r for r in rows if r.gop is Gop.TELEKONSIL_ASSESSED)
    longer = [r for r in rows if r.gop is Gop.TELEKONSIL_LONGER]
    assert assessed.minutes == minutes
    assert [(r.count, r.minutes) for r in longer] == ([(surcharges, minutes)] if surcharges else [])
    assert ("unter 10 Minuten" in assessed.note) == (minutes < 10)


def test_ebm_completed_minutes_count_whole_minutes_only() -> None:
    assert completed_minutes(ADMITTED, ADMITTED + timedelta(minutes=9, seconds=59)) == 9
    assert completed_minutes(ADMITTED, ADMITTED + timedelta(minutes=10)) == 10
    assert completed_minutes(ADMITTED, None) is None
    assert completed_minutes(None, ADMITTED) is None
    assert completed_minutes(ADMITTED, ADMITTED - timedelta(seconds=1)) is None


def test_ebm_answered_in_writing_only_is_01671_without_minutes_or_01450() -> None:
    rows = rows_for(facts(admitted=None), Side.ANSWERING, BERLIN)
    assert codes(rows) == [("01671", 1)]
    assert rows[0].minutes is None
    assert "Schriftlich beantwortet" in rows[0].note


def test_ebm_consultation_not_ended_has_no_minutes_and_says_so() -> None:
    rows = rows_for(facts(minutes=None, reported=None), Side.ANSWERING, BERLIN)
    assert codes(rows) == [("01450", 1), ("01671", 1)]
    assert rows[1].minutes is None
    assert rows[1].note == (
        "Konsultation nicht beendet: die Dauer kennt Konsil nicht. Noch kein Bericht in Konsil."
    )


@pytest.mark.parametrize(
    ("text", "quarter"),
    [("2026-Q4", Quarter(2026, 4)), ("2027-q1", Quarter(2027, 1)), (" 2026-Q2 ", Quarter(2026, 2))],
)
def test_quarter_parses_year_and_number(text: str, quarter: Quarter) -> None:
    assert Quarter.parse(text) == quarter
    assert str(quarter) == text.strip().upper()


@pytest.mark.parametrize(
    "text",
    [None, "", "2026", "2026-Q5", "2026-Q0", "2026Q4", "26-Q4", "2026-Q4x", "1999-Q4", "9999-Q4",
     "2026-4", "Q4-2026", "２０２６-Q4"],
)  # fmt: skip
def test_quarter_refuses_anything_else_with_a_clear_message(text: str | None) -> None:
    with pytest.raises(InvalidQuarter, match="JJJJ-QN") as refused:
        Quarter.parse(text)
    assert refused.value.status == 400


def utc(year: int, month: int, day: int, hour: int) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


@pytest.mark.parametrize(
    ("quarter", "start", "end"),
    [
        # New Year in winter time: 2026-Q4 ends at 24:00 on 31 December in Berlin (UTC+1).
        (Quarter(2026, 4), utc(2026, 9, 30, 22), utc(2026, 12, 31, 23)),
        # Summer time began on 29 March: 2026-Q1 starts at UTC+1 and ends at UTC+2.
        (Quarter(2026, 1), utc(2025, 12, 31, 23), utc(2026, 3, 31, 22)),
        (Quarter(2026, 3), utc(2026, 6, 30, 22), utc(2026, 9, 30, 22)),
    ],
    ids=str,
)
def test_quarter_bounds_are_local_midnights(
    quarter: Quarter, start: datetime, end: datetime
) -> None:
    assert quarter.bounds(BERLIN) == (start, end)


@pytest.mark.parametrize(
    ("admitted", "quarter", "day"),
    [
        (datetime(2026, 12, 31, 22, 59, 59, tzinfo=UTC), Quarter(2026, 4), date(2026, 12, 31)),
        (datetime(2026, 12, 31, 23, 0, 0, tzinfo=UTC), Quarter(2027, 1), date(2027, 1, 1)),
        (datetime(2026, 3, 31, 21, 59, 59, tzinfo=UTC), Quarter(2026, 1), date(2026, 3, 31)),
        (datetime(2026, 3, 31, 22, 0, 0, tzinfo=UTC), Quarter(2026, 2), date(2026, 4, 1)),
        (datetime(2026, 9, 30, 21, 59, 59, tzinfo=UTC), Quarter(2026, 3), date(2026, 9, 30)),
        (datetime(2026, 9, 30, 22, 0, 0, tzinfo=UTC), Quarter(2026, 4), date(2026, 10, 1)),
    ],
    ids=lambda v: v.isoformat() if isinstance(v, datetime) else None,
)
def test_ebm_rows_fall_in_the_quarter_of_their_local_day(
    admitted: datetime, quarter: Quarter, day: date
) -> None:
    held = facts(admitted=admitted)
    (row,) = rows_in([held], Side.ASKING, quarter, BERLIN)
    assert row.day == day
    assert rows_in([held], Side.ASKING, quarter.previous, BERLIN) == []
    assert rows_in([held], Side.ASKING, quarter.next, BERLIN) == []


def test_ebm_rows_in_a_quarter_are_ordered_by_day_then_appointment() -> None:
    later = facts(admitted=ADMITTED + timedelta(days=1), appointment_id=1)
    same_day = facts(appointment_id=9)
    first = facts(appointment_id=2)
    rows = rows_in([later, same_day, first], Side.ANSWERING, Quarter(2026, 4), BERLIN)
    assert [(r.appointment_id, r.gop.value) for r in rows] == [
        (2, "01450"), (2, "01671"), (9, "01450"), (9, "01671"), (1, "01450"), (1, "01671"),
    ]  # fmt: skip


def test_recent_quarters_go_back_over_new_year() -> None:
    assert [str(q) for q in recent_quarters(date(2027, 1, 5), 3)] == [
        "2027-Q1",
        "2026-Q4",
        "2026-Q3",
    ]


def read(text: str) -> list[list[str]]:
    assert text.startswith(export.BOM)
    return list(csv.reader(io.StringIO(text[1:], newline=""), delimiter=";"))


def test_ebm_csv_says_it_is_no_billing_file_and_is_made_for_german_spreadsheets() -> None:
    rows = rows_for(facts(minutes=16, identity=ADMITTED), Side.ANSWERING, BERLIN)
    text = export.document(
        rows,
        quarter=Quarter(2026, 4),
        side=Side.ANSWERING,
        staff_name="Dr. Schulz",
        created=datetime(2027, 1, 4, 9, 30, tzinfo=BERLIN),
    )
    assert "\r\n" in text
    lines = read(text)
    assert lines[0] == [
        "Abrechnungshilfe – keine Abrechnungsdatei",
        "Quartal 2026-Q4",
        "Konsiliarärztin/-arzt: Dr. Schulz",
        "Erstellt 04.01.2027 09:30",
    ]
    assert lines[1] == list(export.COLUMNS)
    assert lines[2:] == [
        ["03.11.2026", "Erika Mustermann", "12.04.1956", "A123456780", gop, title, count,
         minutes, "7", ""]
        for gop, title, count, minutes in [
            ("01450", "Zuschlag Videosprechstunde", "1", ""),
            ("01444", "Authentifizierung eines unbekannten Patienten", "1", ""),
            ("01671", "Telekonsiliarische Beurteilung", "1", "16"),
            ("01672", "Zuschlag zur 01671 je weitere vollendete 5 Minuten", "1", "16"),
        ]
    ]  # fmt: skip


def test_ebm_csv_makes_a_name_that_looks_like_a_formula_inert() -> None:
    (row,) = rows_for(facts(), Side.ASKING, BERLIN)
    text = export.document(
        [replace(row, patient_name='=HYPERLINK("x")')],
        quarter=Quarter(2026, 4),
        side=Side.ASKING,
        staff_name="Dr. Lehmann",
        created=datetime(2027, 1, 4, 9, 30, tzinfo=BERLIN),
    )
    assert read(text)[2][1] == '\'=HYPERLINK("x")'
