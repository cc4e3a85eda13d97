"""GP in the browser: book, hand over the link and calendar files, reschedule, cancel."""

from __future__ import annotations

import pytest
from playwright.async_api import Dialog, Page, expect

from tests.browser.conftest import Browsing
from tests.browser.helpers import log_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


async def choose_next_week_slot(page: Page, index: int = 0) -> None:
    await page.get_by_role("button", name="Nächste Woche").click()
    slots = page.locator("[data-slots] button.slot")
    await expect(slots.nth(index)).to_be_visible()
    await slots.nth(index).click()


async def test_gp_books_reschedules_and_cancels(browsing: Browsing) -> None:
    page = await browsing.new_page()
    page.on("dialog", accept_confirm)
    await log_in(page, browsing.server.demo.gp)
    await page.get_by_label("Fachgebiet").select_option(label="Kardiologie")
    await page.get_by_label("Fachärztin/Facharzt").select_option(label="Dr. Minh Nguyen")
    await choose_next_week_slot(page)
    await page.get_by_label("Vollständiger Name").fill("Hans Schmidt")
    await page.get_by_label("Geburtsdatum").fill("1948-02-29")
    await page.get_by_label("E-Mail oder Handynummer").fill("+49 3562 98765")
    await page.get_by_role("textbox", name="Fragestellung").fill(
        "Palpitationen, bitte Einschätzung."
    )
    await page.get_by_role("button", name="Konsil verbindlich buchen").click()
    await expect(page.get_by_role("heading", name="Konsil gebucht")).to_be_visible()
    first_link = await page.locator("[data-join-url]").input_value()

    await page.get_by_role("button", name="Kopieren").click()
    await expect(page.locator("[data-copy-status]")).to_have_text("Link kopiert.")
    assert await page.evaluate("navigator.clipboard.readText()") == first_link
    async with page.expect_download() as download_info:
        await page.locator("[data-patient-ics]").click()
    download = await download_info.value
    path = await download.path()
    ics = path.read_bytes().decode()
    assert "BEGIN:VCALENDAR" in ics
    assert first_link in ics.replace("\r\n ", "")
    staff_ics = await page.locator("[data-staff-ics]").get_attribute("href")
    assert staff_ics is not None
    assert staff_ics.endswith("/calendar.ics")

    await page.get_by_role("link", name="Buchung öffnen").click()
    await expect(page.locator("[data-details]")).to_contain_text("Hans Schmidt")
    await page.get_by_role("button", name="Verschieben").click()
    await page.locator("[data-reschedule-box]").get_by_role("button", name="Nächste Woche").click()
    await page.locator("[data-reschedule-box] button.slot").nth(1).click()
    await expect(page.locator("[data-notice]")).to_contain_text("verschoben")
    new_link = await page.locator("[data-join-url]").input_value()
    assert new_link != first_link

    await page.get_by_role("link", name="Meine Buchungen").click()
    entry = page.locator("[data-list] li", has_text="Hans Schmidt")
    await expect(entry).to_contain_text("Gebucht")
    await entry.get_by_role("link").click()
    await page.get_by_role("button", name="Buchung absagen").click()
    await expect(page.locator("[data-notice]")).to_contain_text("abgesagt")
    await expect(page.locator("[data-details]")).to_contain_text("Abgesagt")
    await expect(page.get_by_role("button", name="Buchung absagen")).to_be_hidden()
    assert browsing.csp_violations() == []


async def accept_confirm(dialog: Dialog) -> None:
    """Answers "OK" to the confirm() before rescheduling and cancelling."""
    await dialog.accept()
