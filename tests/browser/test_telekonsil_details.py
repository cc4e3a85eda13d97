"""The Telekonsil request's particulars on the GP's and the specialist's appointment pages, in
real Chromium: what the GP gave is shown in words, the medication with its line breaks and as
text (never as markup), and what was left out is not shown at all."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Browsing
from tests.browser.helpers import log_in
from tests.browser.test_gp_bookings import choose_next_week_slot
from tests.browser.test_on_call_gp import PHONE_390, api_as

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

# Far enough ahead to be a future day in every time zone whatever the hour of the run.
WEEK_AHEAD = date.today() + timedelta(days=7)
MEDICATION = "Bisoprolol 2,5 mg 1-0-0\nApixaban 5 mg 1-0-1 <b>nicht fett</b>"


async def test_the_particulars_are_shown_to_the_gp_and_the_specialist(browsing: Browsing) -> None:
    server = browsing.server
    body = {
        "specialty_id": server.demo.cardiology.id,
        "patient_name": "Erika Mustermann",
        "patient_birth_date": "1956-04-12",
        "patient_contact": "erika@example.org",
        "clinical_question": "Neu aufgetretenes Vorhofflimmern im EKG.",
        "mode": "practice",
        "patient_insurance_number": "X110411675",
        "patient_sex": "female",
        "diagnosis_code": "I48.0",
        "diagnosis_certainty": "V",
        "diagnosis_text": "Vorhofflimmern, paroxysmal",
        "medication": MEDICATION,
        "consent_recorded": True,
    }
    async with api_as(server, server.demo.gp) as gp_api:
        asked = await gp_api.post("/api/v1/on-call", json=body)
        assert asked.status_code == 201, asked.text
        plain = dict(body, patient_name="Max Muster")
        for key in (
            "patient_insurance_number",
            "patient_sex",
            "diagnosis_code",
            "diagnosis_certainty",
            "diagnosis_text",
            "medication",
            "consent_recorded",
        ):
            plain.pop(key)
        without = await gp_api.post("/api/v1/on-call", json=plain)
        assert without.status_code == 201, without.text
    appointment_id = asked.json()["appointment"]["id"]
    async with api_as(server, server.demo.other_specialist) as cardiologist:
        claimed = await cardiologist.post(f"/api/v1/on-call/{appointment_id}/claim")
        assert claimed.status_code == 200, claimed.text

    gp = await browsing.new_page(PHONE_390)
    await log_in(gp, server.demo.gp)
    specialist = await browsing.new_page()
    await log_in(specialist, server.demo.other_specialist)
    for page, url in (
        (gp, f"/gp/appointments/{appointment_id}"),
        (specialist, f"/specialist/appointments/{appointment_id}"),
    ):
        await page.goto(url)
        details = page.locator("[data-details]")
        await expect(details).to_contain_text("Versichertennummer")
        await expect(details).to_contain_text("X110411675")
        await expect(details).to_contain_text("Geschlecht")
        await expect(details).to_contain_text("weiblich")
        await expect(details).to_contain_text("Verdacht auf: I48.0 Vorhofflimmern, paroxysmal")
        await expect(details).to_contain_text("erfasst am")
        medication = details.locator("dd", has_text="Bisoprolol")
        assert await medication.inner_text() == MEDICATION  # its line break kept, as text
        assert await details.locator("b").count() == 0

    await gp.goto(f"/gp/appointments/{without.json()['appointment']['id']}")
    details = gp.locator("[data-details]")
    await expect(details).to_contain_text("Max Muster")
    for label in ("Versichertennummer", "Geschlecht", "Diagnose", "Medikation", "Einverständnis"):
        await expect(details).not_to_contain_text(label)
    assert browsing.csp_violations() == []
    assert browsing.console_errors == []


async def test_the_gp_gives_the_particulars_in_the_booking_form(browsing: Browsing) -> None:
    """On a phone: the particulars are folded away; a wrong insurance number is refused with
    its field marked and the fold opened; corrected, the booking carries every particular."""
    server = browsing.server
    page = await browsing.new_page(PHONE_390)
    await log_in(page, server.demo.gp)
    await page.get_by_label("Fachgebiet").select_option(label="Kardiologie")
    await choose_next_week_slot(page)
    form = page.locator("[data-booking-form]")
    fold = form.locator("[data-particulars]")
    await expect(fold).not_to_have_attribute("open", "")
    await form.get_by_label("Vollständiger Name").fill("Erika Mustermann")
    await form.get_by_label("Geburtsdatum").fill("1956-04-12")
    await form.get_by_label("E-Mail oder Handynummer").fill("erika@example.org")
    await form.get_by_role("textbox", name="Fragestellung").fill("Vorhofflimmern im EKG, bitte.")
    await fold.locator("summary").click()
    await form.get_by_label("Versichertennummer").fill("X110411676")  # wrong check digit
    await form.get_by_label("Geschlecht").select_option(label="weiblich")
    await form.get_by_label("ICD-10-GM-Code").fill("i48.0")
    await form.get_by_label("Diagnosesicherheit").select_option("V")
    await form.get_by_label("Diagnose in Worten").fill("Vorhofflimmern, paroxysmal")
    await form.get_by_label("Aktuelle Medikation").fill(MEDICATION)
    await form.get_by_label("Antwort benötigt bis").fill(WEEK_AHEAD.isoformat())
    await form.get_by_label("einverstanden").check()
    await fold.locator("summary").click()  # folded again before sending
    await form.get_by_role("button", name="Konsil verbindlich buchen").click()

    error = form.locator("[data-booking-error]")
    await expect(error).to_contain_text("Versichertennummer: ")
    await expect(error).to_contain_text("Prüfziffer")
    await expect(fold).to_have_attribute("open", "")
    insurance = form.get_by_label("Versichertennummer")
    await expect(insurance).to_have_attribute("aria-invalid", "true")

    await insurance.fill("X110411675")
    await form.get_by_role("button", name="Konsil verbindlich buchen").click()
    await expect(page.get_by_role("heading", name="Konsil gebucht")).to_be_visible()
    await page.get_by_role("link", name="Buchung öffnen").click()
    details = page.locator("[data-details]")
    await expect(details).to_contain_text("X110411675")
    await expect(details).to_contain_text("weiblich")
    await expect(details).to_contain_text("Verdacht auf: I48.0 Vorhofflimmern, paroxysmal")
    await expect(details).to_contain_text("erfasst am")
    medication = details.locator("dd", has_text="Bisoprolol")
    assert await medication.inner_text() == MEDICATION
    assert browsing.csp_violations() == []
    assert browsing.console_errors == [  # the refused first attempt, and nothing else
        "Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"
    ]
