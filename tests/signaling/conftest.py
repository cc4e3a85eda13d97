"""A live uvicorn server over the test's database, seeded with the demo data."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.settings import Settings
from tests.factories import Demo
from tests.live import Live, live_server


@pytest.fixture
async def live(settings: Settings, demo: Demo) -> AsyncIterator[Live]:
    async with live_server(settings) as server:
        yield server
