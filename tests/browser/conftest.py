"""Browser fixtures: a real uvicorn server (temp SQLite + demo data) and Debian's Chromium.

Chromium is driven by Python Playwright with fake camera and microphone; the browser binary
comes from apt (/usr/bin/chromium), never from ``playwright install``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    async_playwright,
    expect,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.settings import Settings
from tests.conftest import create_schema
from tests.factories import Demo, seed
from tests.live import free_port, live_server
from tests.services import CHROMIUM, require_chromium

CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    # Screen sharing: the picker chooses the (headless) screen by itself.
    "--auto-select-desktop-capture-source=Entire screen",
    "--allow-loopback-in-peer-connection",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 860}
# The README's screenshots; the test run refreshes them only with KONSIL_UPDATE_SCREENSHOTS=1
# (`make screenshots`), so that a plain `make test` leaves the work tree clean.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# An assertion waits until it holds; on CI's two loaded cores a page that is right can take
# longer than Playwright's default 5 s (video frames, websocket pushes), so wait up to 10 s.
expect.set_options(timeout=10_000)


@dataclass
class LiveServer:
    url: str
    sessions: async_sessionmaker[AsyncSession]
    demo: Demo
    settings: Settings


@dataclass
class Browsing:
    """One Chromium; every participant gets its own context (cookies, storage, devices)."""

    browser: Browser
    server: LiveServer
    console_errors: list[str] = field(default_factory=list)

    async def new_page(self, viewport: dict[str, int] | None = None) -> Page:
        context: BrowserContext = await self.browser.new_context(
            base_url=self.server.url,
            viewport=viewport or DESKTOP,  # type: ignore[arg-type]
            permissions=["camera", "microphone", "clipboard-read", "clipboard-write"],
            locale="de-DE",
            timezone_id="Europe/Berlin",
        )
        context.set_default_timeout(20_000)
        page = await context.new_page()
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.console_errors.append(f"pageerror: {error}"))
        return page

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def csp_violations(self) -> list[str]:
        return [e for e in self.console_errors if "Content Security Policy" in e]


@asynccontextmanager
async def seeded_live_server(
    tmp_path: Path, *, host: str = "127.0.0.1", **overrides: Any
) -> AsyncIterator[LiveServer]:
    """A uvicorn server on a free port with the demo data; ``overrides`` change its settings
    (e-mail and SMS set up, a shorter resume window, …); ``host``: the address it listens on
    (the root end of a test's veth pair, tests/browser/test_call_quality.py)."""
    port = free_port()
    url = f"http://{host}:{port}"
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'konsil.db'}",
        "base_url": url,
        "log_json": False,
        "log_level": "WARNING",
        # Two-factor sign-in in the browser: tests/browser/test_second_factor.py.
        "second_factor_roles": [],
        **overrides,
    }
    settings = Settings(**values)
    await create_schema(settings.database_url)
    async with live_server(settings, port=port, host=host) as server:
        demo = await seed(server.sessions)
        yield LiveServer(url=url, sessions=server.sessions, demo=demo, settings=settings)


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with seeded_live_server(tmp_path) as server:
        yield server


@pytest.fixture
async def browsing(live: LiveServer) -> AsyncIterator[Browsing]:
    require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield Browsing(browser=browser, server=live)
        finally:
            await browser.close()


@pytest.fixture
def screenshot(tmp_path: Path) -> Callable[[Page, str], object]:
    """Takes a screenshot of the page as it is now: into docs/screenshots/<name>.png when
    KONSIL_UPDATE_SCREENSHOTS=1, otherwise into the test's temporary directory."""
    target = SCREENSHOTS if os.environ.get("KONSIL_UPDATE_SCREENSHOTS") == "1" else tmp_path

    async def take(page: Page, name: str) -> None:
        target.mkdir(parents=True, exist_ok=True)
        path = target / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 0

    return take
