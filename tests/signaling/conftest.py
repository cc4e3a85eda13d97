"""A live uvicorn server over the test's database, seeded with the demo data."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.settings import Settings
from app.signaling import liveness
from tests.factories import Demo
from tests.live import Live, live_server
from tests.services import require_redis


@pytest.fixture
async def live(settings: Settings, demo: Demo) -> AsyncIterator[Live]:
    async with live_server(settings) as server:
        yield server


@pytest.fixture
def quick_liveness(monkeypatch: pytest.MonkeyPatch) -> None:
    """Processes on real Redis that beat every 0.1 s and count as dead after 0.5 s missing."""
    require_redis()
    monkeypatch.setattr(liveness, "BEAT_SECONDS", 0.1)
    monkeypatch.setattr(liveness, "DEAD_AFTER_SECONDS", 0.5)
