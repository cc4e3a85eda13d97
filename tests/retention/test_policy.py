"""The retention rule itself: cutoffs from the settings, the audit details kept, the limit
KBV Anlage 31b puts on the metadata period."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from app.retention import policy
from app.settings import Settings

NOW = datetime(2026, 1, 1, 11, 0, tzinfo=UTC)  # local noon on New Year's Day


def test_cutoffs_follow_the_settings(make_settings: Callable[..., Settings]) -> None:
    cut = policy.cutoffs(make_settings(retention_audit_days=400), NOW)

    assert cut.consultation == NOW - timedelta(days=90)
    assert cut.records == NOW - timedelta(days=30)
    assert cut.audit_reduce == NOW - timedelta(days=90)
    assert cut.audit_delete == NOW - timedelta(days=400)
    assert cut.sessions == cut.events == NOW - timedelta(days=90)
    assert cut.idempotency == NOW - timedelta(hours=24)


def test_records_are_kept_no_longer_than_the_metadata(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(retention_metadata_days=20, retention_records_days=60)

    assert policy.cutoffs(settings, NOW).records == NOW - timedelta(days=20)


def test_more_than_three_months_of_metadata_is_refused(
    make_settings: Callable[..., Settings],
) -> None:
    assert make_settings(retention_metadata_days=92).retention_metadata_days == 92
    with pytest.raises(ValidationError, match="Anlage 31b"):
        make_settings(retention_metadata_days=93)


@pytest.mark.parametrize(
    "name", ["retention_metadata_days", "retention_records_days", "retention_audit_days",
             "retention_interval_minutes"],
)  # fmt: skip
def test_periods_must_be_positive(make_settings: Callable[..., Settings], name: str) -> None:
    with pytest.raises(ValidationError):
        make_settings(**{name: 0})


def test_the_audit_keeps_integers_only() -> None:
    detail = {
        "document_id": 4,
        "revoked": 2,
        "urgency": "urgent",
        "old_starts_at": "2026-01-01T10:00:00+00:00",
        "email": "someone@example.org",
        "is_new": True,
        "nested": {"name": "X"},
    }

    assert policy.reduced_detail(detail) == {"document_id": 4, "revoked": 2}
