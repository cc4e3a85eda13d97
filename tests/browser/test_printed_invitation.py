"""Right after booking, in the browser: the GP uploads a document and prints the invitation;
the tab that opens holds the PDF whose QR code is the link shown."""

from __future__ import annotations

import os
from pathlib import Path

import pypdfium2
import pytest
import zxingcpp
from playwright.async_api import Page, Route, expect

from app.notify.printed import invitation_pdf
from tests.browser.conftest import PHONE, SCREENSHOTS, Browsing
from tests.browser.helpers import log_in
from tests.browser.test_gp_bookings import choose_next_week_slot
from tests.notify.test_printed import sample_invitation

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


async def book(page: Page, browsing: Browsing) -> None:
    await log_in(page, browsing.server.demo.gp)
    await page.get_by_label("Fachgebiet").select_option(label="Kardiologie")
    await page.get_by_label("Fachärztin/Facharzt").select_option(label="Dr. Minh Nguyen")
    await choose_next_week_slot(page)
    await page.get_by_label("Vollständiger Name").fill("Hans Schmidt")
    await page.get_by_label("Geburtsdatum").fill("1948-02-29")
    await page.get_by_label("E-Mail oder Handynummer").fill("+49 3562 98765")
    await page.get_by_role("textbox", name="Fragestellung").fill("Bitte Einschätzung.")
    await page.get_by_role("button", name="Konsil verbindlich buchen").click()


async def test_after_booking_the_gp_uploads_a_document_and_prints_the_invitation(
    browsing: Browsing, tmp_path: Path
) -> None:
    page = await browsing.new_page()
    await book(page, browsing)
    await expect(page.get_by_role("heading", name="Konsil gebucht")).to_be_visible()
    link = await page.locator("[data-join-url]").input_value()

    documents = page.locator("[data-documents-box]")
    await expect(documents.get_by_text("Keine Dokumente.")).to_be_visible()
    await documents.get_by_role("button", name="Hochladen").click()
    await expect(documents.locator("[data-documents-status]")).to_contain_text("Datei")
    befund = tmp_path / "befund.pdf"
    befund.write_bytes(invitation_pdf(sample_invitation(), "de"))  # any real PDF will do
    await documents.get_by_label("Dokument hinzufügen").set_input_files(befund)
    await documents.get_by_role("button", name="Hochladen").click()
    await expect(documents.locator("[data-documents-status]")).to_have_text("Dokument hochgeladen.")
    await expect(documents.get_by_role("link", name="befund.pdf")).to_be_visible()

    served: list[bytes] = []

    async def keep(route: Route) -> None:
        response = await route.fetch()
        assert response.status == 200
        assert response.headers["content-type"] == "application/pdf"
        served.append(await response.body())
        await route.fulfill(response=response)

    await page.route("**/invitation.pdf", keep)
    async with page.expect_popup() as popup_info:
        await page.get_by_role("button", name="Einladung drucken (PDF)").click()
    await popup_info.value  # the tab that shows the PDF (a viewer or a download, headless)
    await expect(page.locator("[data-print-status]")).to_have_text(
        "Die Einladung öffnet sich in einem neuen Tab. Drucken Sie sie dort aus."
    )
    [pdf] = served

    document = pypdfium2.PdfDocument(pdf)
    try:
        image = document[0].render(scale=2).to_pil()
    finally:
        document.close()
    assert [code.text for code in zxingcpp.read_barcodes(image)] == [link]
    if os.environ.get("KONSIL_UPDATE_SCREENSHOTS") == "1":
        image.convert("L").resize((595, 842)).save(SCREENSHOTS / "printed-invitation.png")
    assert browsing.csp_violations() == []


async def test_the_link_box_fits_a_phone(browsing: Browsing) -> None:
    page = await browsing.new_page(PHONE)
    await book(page, browsing)
    await expect(page.get_by_role("button", name="Einladung drucken (PDF)")).to_be_visible()
    overflow = await page.evaluate("document.documentElement.scrollWidth > innerWidth")
    assert overflow is False
