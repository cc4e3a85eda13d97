"""The EBM download form on the GP's bookings and the specialist's availability page: a plain
GET form to the CSV with this quarter and the four before it (in Berlin time)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx2
import pytest

from app.accounts.models import User
from tests.factories import Demo, login

# 23:30 UTC on 31 December is already New Year's Day in Berlin.
NEW_YEAR = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
OPTION = re.compile(r'<option value="([^"]+)">')


@pytest.mark.parametrize(
    ("who", "path"),
    [("gp", "/gp/appointments"), ("specialist", "/specialist/availability")],
)
async def test_billing_form_offers_this_quarter_and_four_before_in_local_time(
    client: httpx2.AsyncClient, demo: Demo, monkeypatch: pytest.MonkeyPatch, who: str, path: str
) -> None:
    monkeypatch.setattr("app.pages.routes.utcnow", lambda: NEW_YEAR)
    user: User = getattr(demo, who)
    await login(client, user)
    page = (await client.get(path)).text
    assert '<form class="row" method="get" action="/api/v1/billing/ebm.csv"' in page
    assert OPTION.findall(page) == ["2027-Q1", "2026-Q4", "2026-Q3", "2026-Q2", "2026-Q1"]
    assert "Abrechnungshilfe (EBM)" in page
    assert "90 Tage nach der Konsultation" in page
