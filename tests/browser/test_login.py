"""Logging in and switching the language in the browser."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Browsing

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


async def test_wrong_password_gets_one_generic_message(browsing: Browsing) -> None:
    page = await browsing.new_page()
    await page.goto("/login")
    await page.get_by_label("E-Mail-Adresse").fill(browsing.server.demo.gp.email)
    await page.get_by_label("Passwort").fill("falsch-falsch")
    await page.get_by_role("button", name="Anmelden").click()
    await expect(page.get_by_role("alert")).to_have_text("E-Mail-Adresse oder Passwort ist falsch.")
    await expect(page.get_by_label("Passwort")).to_be_focused()
    await expect(page.get_by_label("Passwort")).to_have_value("")


async def test_english_switch_translates_pages_and_scripts(browsing: Browsing) -> None:
    page = await browsing.new_page()
    await page.goto("/login")
    await page.get_by_role("link", name="EN – English").click()
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("alert")).to_have_text(
        "Please enter your email address and password."
    )
    await page.goto("/join")
    await expect(
        page.get_by_role("heading", name="Please open your invitation link")
    ).to_be_visible()
