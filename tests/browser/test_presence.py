"""Specialist presence in real Chromium: the specialist's toggle on the queue page (1366 px)
and the GP's count on the booking page (390 px), which changes live without a reload."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import Browsing
from tests.browser.helpers import log_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PHONE_390 = {"width": 390, "height": 844}
DESKTOP_1366 = {"width": 1366, "height": 900}


async def test_presence_toggle_reaches_the_gps_booking_page_live(
    browsing: Browsing, screenshot: Callable[[Page, str], Any]
) -> None:
    demo = browsing.server.demo
    gp = await browsing.new_page(PHONE_390)
    await log_in(gp, demo.gp)
    await gp.goto("/gp?specialty=kardiologie")
    line = gp.locator("[data-presence-line]")
    await expect(line).to_have_text("Zurzeit niemand im Dienst")

    specialist = await browsing.new_page(DESKTOP_1366)
    await log_in(specialist, demo.specialist)
    await specialist.goto("/specialist")
    on_duty = specialist.get_by_role("radio", name="Im Dienst")
    await expect(specialist.get_by_role("radio", name="Abwesend")).to_be_checked()
    await on_duty.check()
    await expect(specialist.locator("[data-presence-now]")).to_contain_text("Im Dienst:")
    await expect(line).to_have_text("1 Fachärztin/Facharzt im Dienst")  # no reload
    await screenshot(specialist, "presence-queue-1366")
    await screenshot(gp, "presence-gp-390")

    await specialist.reload()  # the server keeps it
    await expect(on_duty).to_be_checked()
    await specialist.get_by_role("radio", name="Abwesend").check()
    await expect(line).to_have_text("Zurzeit niemand im Dienst")
    assert browsing.console_errors == []
