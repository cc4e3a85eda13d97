"""The report as a doctor's letter in real Chromium: once the specialist has saved the report,
the specialist's page offers the letter; the GP's booking page offers it beside the report; the
link delivers the PDF as a download (phone width for the GP, desktop for the specialist)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pypdfium2
import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import DESKTOP, Browsing
from tests.browser.helpers import log_in
from tests.browser.test_on_call_gp import PHONE_390, api_as

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

REPORT = (
    "Echokardiographie: normale Pumpfunktion, keine relevante Klappenerkrankung.\n"
    "Blutdruck ≥ 140/90 mmHg → Ramipril steigern.\n\n"
    "Übelkeit am ehesten medikamentös bedingt; Kontrolle in drei Monaten."
)


def pdf_text(path: Path) -> str:
    document = pypdfium2.PdfDocument(path)
    try:
        text = " ".join(page.get_textpage().get_text_range() for page in document)
    finally:
        document.close()
    return " ".join(text.split())


async def download_letter(page: Page, tmp_path: Path, name: str) -> tuple[str, Path]:
    """Clicks the page's letter link; the file's suggested name and where it was saved."""
    async with page.expect_download() as info:
        await page.get_by_role("link", name="Arztbrief als PDF herunterladen").click()
    download = await info.value
    target = tmp_path / name
    await download.save_as(target)
    return download.suggested_filename, target


async def test_the_specialist_and_the_gp_download_the_report_as_a_letter(
    browsing: Browsing, tmp_path: Path, screenshot: Callable[[Page, str], Any]
) -> None:
    server = browsing.server
    async with api_as(server, server.demo.gp) as gp_api:
        asked = await gp_api.post(
            "/api/v1/on-call",
            json={
                "specialty_id": server.demo.cardiology.id,
                "patient_name": "Jürgen Größler",
                "patient_birth_date": "1956-04-12",
                "patient_contact": "juergen@example.org",
                "clinical_question": "Neu aufgetretenes Vorhofflimmern. Antikoagulation?",
                "mode": "practice",
                "patient_insurance_number": "X110411675",
                "diagnosis_code": "I48.0",
                "diagnosis_certainty": "V",
            },
        )
        assert asked.status_code == 201, asked.text
    appointment_id = asked.json()["appointment"]["id"]
    async with api_as(server, server.demo.other_specialist) as cardiologist:
        claimed = await cardiologist.post(f"/api/v1/on-call/{appointment_id}/claim")
        assert claimed.status_code == 200, claimed.text

    specialist = await browsing.new_page()
    await log_in(specialist, server.demo.other_specialist)
    await specialist.goto(f"/specialist/appointments/{appointment_id}")
    letter_link = specialist.get_by_role("link", name="Arztbrief als PDF herunterladen")
    await expect(specialist.locator("[data-details]")).to_contain_text("Jürgen Größler")
    await expect(letter_link).to_be_hidden()  # no report yet, no letter
    await specialist.get_by_label("Befund und Empfehlung").fill(REPORT)
    await specialist.get_by_role("button", name="Befund speichern").click()
    await expect(specialist.locator("[data-report-saved]")).to_contain_text("Gespeichert")
    await expect(letter_link).to_be_visible()
    await screenshot(specialist, "report-letter-specialist")
    await specialist.set_viewport_size(PHONE_390)  # type: ignore[arg-type]
    await screenshot(specialist, "report-letter-specialist-390")
    name, saved = await download_letter(specialist, tmp_path, "specialist.pdf")
    assert re.fullmatch(rf"Arztbrief-\d{{4}}-\d\d-\d\d-{appointment_id}\.pdf", name), name
    assert "Übelkeit am ehesten medikamentös bedingt" in pdf_text(saved)

    gp = await browsing.new_page(PHONE_390)
    await log_in(gp, server.demo.gp)
    await gp.goto(f"/gp/appointments/{appointment_id}")
    await expect(gp.locator("[data-report-body]")).to_contain_text("Kontrolle in drei Monaten")
    await screenshot(gp, "report-letter-gp-390")
    assert await gp.evaluate("document.documentElement.scrollWidth > innerWidth") is False
    await gp.set_viewport_size(DESKTOP)  # type: ignore[arg-type]
    await screenshot(gp, "report-letter-gp")
    name, saved = await download_letter(gp, tmp_path, "gp.pdf")
    assert re.fullmatch(rf"Arztbrief-\d{{4}}-\d\d-\d\d-{appointment_id}\.pdf", name), name
    assert saved.read_bytes().startswith(b"%PDF-")
    text = pdf_text(saved)
    for expected in (
        "Betreff: Telekonsil vom",
        "Patient/in: Jürgen Größler, geb. 12.04.1956",
        "Versichertennummer (KVNR): X110411675",
        "I48.0 V (Verdachtsdiagnose)",
        "Neu aufgetretenes Vorhofflimmern. Antikoagulation?",
        "Blutdruck ≥ 140/90 mmHg → Ramipril steigern.",
        "Übelkeit am ehesten medikamentös bedingt",
        "Seite 1 von",
    ):
        assert expected in text, expected
    assert browsing.csp_violations() == []
    assert browsing.console_errors == []
