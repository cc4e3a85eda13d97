"""The legal pages in Chromium: without JavaScript, on a phone, and from the patient's pages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from playwright.async_api import Page, expect

from app.db import utcnow
from tests.browser.conftest import PHONE, Browsing
from tests.browser.helpers import appointment_with_link

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

SMALL_PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 768}
NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth"


async def page_without_javascript(browsing: Browsing, viewport: dict[str, int]) -> Page:
    context = await browsing.browser.new_context(
        base_url=browsing.server.url,
        viewport=viewport,  # type: ignore[arg-type]
        java_script_enabled=False,
        locale="de-DE",
    )
    context.set_default_timeout(20_000)
    return await context.new_page()


async def test_terms_read_in_german_on_a_phone_without_javascript(
    browsing: Browsing, screenshot: Callable[[Page, str], Any]
) -> None:
    page = await page_without_javascript(browsing, SMALL_PHONE)
    response = await page.goto("/terms")
    assert response is not None
    assert response.status == 200
    await expect(page.get_by_role("heading", name="Nutzungsbedingungen", level=1)).to_be_visible()
    await expect(page.get_by_role("heading", name="1. Was Konsil ist")).to_be_visible()
    assert await page.evaluate(NO_SIDEWAYS_SCROLL)
    body_px = await page.locator(".legal-text p").first.evaluate(
        "(p) => parseFloat(getComputedStyle(p).fontSize)"
    )
    assert body_px >= 18
    await screenshot(page, "legal-terms-phone-de")
    assert [c["name"] for c in await page.context.cookies()] == []


async def test_privacy_notice_in_english_on_a_laptop_by_the_language_switch(
    browsing: Browsing, screenshot: Callable[[Page, str], Any]
) -> None:
    page = await page_without_javascript(browsing, LAPTOP)
    await page.goto("/privacy")
    await page.get_by_role("link", name="EN – English").click()
    await expect(page.get_by_role("heading", name="Privacy notice", level=1)).to_be_visible()
    await expect(page.get_by_text("end-to-end encrypted").first).to_be_visible()
    await page.get_by_role("contentinfo").get_by_role("link", name="Imprint").click()
    await expect(page.get_by_role("heading", name="Imprint", level=1)).to_be_visible()
    await page.goto("/privacy")
    await screenshot(page, "legal-privacy-desktop-en")


async def test_early_link_page_opens_the_privacy_notice_in_a_new_tab_and_keeps_the_link(
    browsing: Browsing,
) -> None:
    server = browsing.server
    starts = utcnow() + timedelta(days=3)
    _, token = await appointment_with_link(
        server.sessions, gp=server.demo.gp, specialist=server.demo.specialist, starts_at=starts
    )
    page = await browsing.new_page(viewport=PHONE)
    await page.goto(f"/join#{token}")
    await expect(page.get_by_role("heading", name="noch nicht freigeschaltet")).to_be_visible()
    footer = page.get_by_role("contentinfo")
    await expect(footer.get_by_role("link", name="Nutzungsbedingungen")).to_be_visible()
    await expect(footer.get_by_role("link", name="Impressum")).to_be_visible()
    async with page.context.expect_page() as opened:
        await footer.get_by_role("link", name="Datenschutz").click()
    privacy = await opened.value
    await expect(privacy.get_by_role("heading", name="Datenschutzhinweise")).to_be_visible()
    # The patient's tab still holds the link and can try again when it opens.
    await expect(page.get_by_role("button", name="Erneut versuchen")).to_be_visible()


async def test_consent_step_links_the_privacy_notice(browsing: Browsing) -> None:
    server = browsing.server
    _, token = await appointment_with_link(
        server.sessions,
        gp=server.demo.gp,
        specialist=server.demo.specialist,
        starts_at=utcnow() + timedelta(minutes=10),
    )
    page = await browsing.new_page(viewport=PHONE)
    await page.goto(f"/join#{token}")
    link = page.get_by_role("link", name="Die vollständigen Datenschutzhinweise lesen")
    await expect(link).to_be_visible()
    async with page.context.expect_page() as opened:
        await link.click()
    privacy = await opened.value
    await expect(privacy.get_by_text("konsil_patient").first).to_be_visible()
    assert browsing.csp_violations() == []
