"""The pure parsing of FHIR search parameters and ids."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from app.fhir.outcome import FhirError
from app.fhir.search import date_bounds, parse_params, parse_slot_id, reference_id, slot_id

BERLIN = ZoneInfo("Europe/Berlin")


def test_slot_id_round_trips_across_a_dst_change() -> None:
    for start in (
        datetime(2026, 3, 29, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 1, 0, tzinfo=UTC),
    ):
        assert parse_slot_id(slot_id(7, start)) == (7, start)


@pytest.mark.parametrize(
    "value", ["", "7", "7-", "x-1", "0-100", "2147483648-100", "7-1e9", "7-9999999999999"]
)
def test_slot_id_garbage_names_nothing(value: str) -> None:
    assert parse_slot_id(value) is None


def test_reference_ids_of_other_types_or_beyond_range_name_nothing() -> None:
    assert reference_id("Schedule/4", "Schedule") == 4
    assert reference_id("https://x.example/fhir/R4/Schedule/4", "Schedule") == 4
    assert reference_id("Patient/4", "Schedule") is None
    assert reference_id("Schedule/2147483648", "Schedule") is None


def test_date_bounds_take_local_days_and_prefixes() -> None:
    bounds = date_bounds(["ge2026-12-07", "lt2026-12-08"], BERLIN, "start")
    assert bounds.lower == datetime(2026, 12, 6, 23, 0, tzinfo=UTC)
    assert bounds.upper == datetime(2026, 12, 7, 23, 0, tzinfo=UTC)
    summer = date_bounds(["2026-07-01"], BERLIN, "date")  # eq: the whole local day
    assert summer.lower == datetime(2026, 6, 30, 22, 0, tzinfo=UTC)
    assert summer.upper == datetime(2026, 7, 1, 22, 0, tzinfo=UTC)
    assert date_bounds(["gt2026-12-07T10:00:00Z"], BERLIN, "start").admits(
        datetime(2026, 12, 7, 10, 0, 1, tzinfo=UTC)
    )


@pytest.mark.parametrize("value", ["2026-13-01", "tomorrow", "ne2026-12-07", "ge2026-12-07T10:00"])
def test_date_bounds_refuse_what_they_cannot_read(value: str) -> None:
    with pytest.raises(FhirError) as raised:
        date_bounds([value], BERLIN, "start")
    assert raised.value.status == 400


def test_unknown_parameters_are_ignored_unless_strict() -> None:
    items = [("schedule", "Schedule/1"), ("foo", "1"), ("_count", "5")]
    assert parse_params(items, ["schedule"], strict=False).all("schedule") == ["Schedule/1"]
    with pytest.raises(FhirError):
        parse_params(items, ["schedule"], strict=True)
    assert parse_params(items[::2], ["schedule"], strict=True).first("schedule") == "Schedule/1"
