"""The Telekonsil request's particulars on the GP's and the specialist's appointment pages, in
real Chromium: what the GP gave is shown in words, the medication with its line breaks and as
text (never as markup), and what was left out is not shown at all."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Browsing
from tests.browser.helpers import log_in
from tests.browser.test_on_call_gp import PHONE_390, api_as

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

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
