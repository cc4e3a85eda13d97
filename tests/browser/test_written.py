"""The written Telekonsil in real Chromium: the GP sends a question in writing from the booking
page on a phone (no patient contact, no link; the deadline and the consent required), the
request's page says what it is; a specialist finds it in the queue without the patient's name,
takes it, answers with a report, and the GP reads it. axe-core checks the new states."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import Browsing
from tests.browser.helpers import log_in
from tests.browser.test_on_call_gp import DESKTOP_1366, PHONE_390, assert_accessible

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

QUESTION = "Belastungsdyspnoe seit drei Monaten, EKG und Echo anbei: weitere Abklärung nötig?"
REPORT = "Befund: Belastungsdyspnoe am ehesten pulmonal. Empfehlung: Lungenfunktion."


async def send_in_writing(gp: Page, answer_by: str) -> int:
    await gp.goto("/gp?specialty=kardiologie")
    offer = gp.locator("[data-written-offer]")
    await expect(offer).to_contain_text("Kein Video nötig?")
    await assert_accessible(gp, "the booking page's offer of a written Telekonsil")
    await offer.get_by_role("button", name="Schriftlich anfragen").click()
    await expect(gp.locator("[data-chosen-slot]")).to_contain_text(
        "Schriftliches Telekonsil · Kardiologie"
    )
    # Nobody contacts the patient: no contact, no link to send, no place of the patient.
    await expect(gp.locator("[data-contact-field]")).to_be_hidden()
    await expect(gp.locator("[data-invite]")).to_be_hidden()
    await expect(gp.locator("[data-mode-choice]")).to_be_hidden()
    await expect(gp.locator("[data-particulars]")).to_have_attribute("open", "")
    await gp.get_by_label("Vollständiger Name").fill("Erika Mustermann")
    await gp.get_by_label("Geburtsdatum").fill("1956-04-12")
    await gp.get_by_role("textbox", name="Fragestellung").fill(QUESTION)
    await gp.get_by_label("ICD-10-GM-Code").fill("R06.0")
    await gp.get_by_label("Antwort benötigt bis").fill(answer_by)
    send = gp.locator("[data-booking-form]").get_by_role(
        "button", name="Schriftliche Anfrage senden"
    )
    # Without the patient's consent it is not sent.
    await send.click()
    await expect(gp.locator("[data-booking-error]")).to_be_visible()
    consent = gp.get_by_label("Die Patientin bzw. der Patient ist mit dem Konsil")
    await expect(consent).to_have_attribute("aria-invalid", "true")
    assert "/gp/appointments/" not in gp.url
    await consent.check()
    await send.click()
    await gp.wait_for_url("**/gp/appointments/*")
    return int(gp.url.rsplit("/", 1)[1])


async def test_a_written_telekonsil_from_question_to_report(
    browsing: Browsing, screenshot: Callable[[Page, str], Any]
) -> None:
    server = browsing.server
    answer_by = (datetime.now(server.settings.tz) + timedelta(days=7)).date()
    gp = await browsing.new_page(PHONE_390)
    await log_in(gp, server.demo.gp)
    appointment_id = await send_in_writing(gp, answer_by.isoformat())

    await expect(gp.get_by_role("heading", level=1)).to_have_text(
        "Schriftliches Telekonsil · Kardiologie"
    )
    details = gp.locator("[data-details]")
    await expect(details).to_contain_text("Angefragt")
    await expect(details).to_contain_text("noch nicht übernommen")
    await expect(details).not_to_contain_text("Patienten-Link")
    await expect(gp.locator("[data-join]")).to_be_hidden()
    await expect(gp.locator("[data-new-link]")).to_be_hidden()
    await expect(gp.locator("[data-actions] [data-staff-ics]")).to_be_hidden()
    await expect(gp.locator("[data-messages-note]")).to_have_text(
        "Bei einem schriftlichen Telekonsil erhält die Patientin oder der Patient keine "
        "Nachrichten. Der E-Mail-Versand ist auf diesem Server nicht eingerichtet."
    )
    await expect(gp.locator("[data-cancel]")).to_have_text("Anfrage zurückziehen")
    await screenshot(gp, "written-gp-request-390")
    await assert_accessible(gp, "a written request's page before anybody took it")

    specialist = await browsing.new_page(DESKTOP_1366)
    await log_in(specialist, server.demo.specialist)
    card = specialist.locator("[data-written]")
    entry = card.locator(f"[data-written-request='{appointment_id}']")
    await expect(entry).to_contain_text(QUESTION)
    await expect(entry).to_contain_text("Antwort bis")
    await expect(card).not_to_contain_text("Mustermann")  # not who, before taking it
    await screenshot(specialist, "written-specialist-queue-1366")
    await assert_accessible(specialist, "the queue with a written request")
    await entry.get_by_role("button", name="Übernehmen").click()
    await specialist.wait_for_url(f"**/specialist/appointments/{appointment_id}")
    await expect(specialist.get_by_role("heading", level=1)).to_have_text(
        "Schriftliches Telekonsil · Kardiologie"
    )
    await expect(specialist.locator("[data-details]")).to_contain_text("Erika Mustermann")
    await expect(specialist.locator("[data-join]")).to_be_hidden()
    await expect(specialist.locator("[data-identity]")).to_be_hidden()
    await specialist.get_by_label("Befund und Empfehlung").fill(REPORT)
    await specialist.get_by_role("button", name="Befund speichern").click()
    await expect(specialist.locator("[data-report-pdf]")).to_be_visible()
    await assert_accessible(specialist, "a written request's page with its report")

    await gp.reload()
    await expect(gp.locator("[data-report-body]")).to_have_text(REPORT)
    await expect(gp.locator("[data-details]")).to_contain_text("Abgeschlossen")
    await gp.goto("/gp/appointments")
    await gp.locator("[data-show-past]").check()  # answered: no longer among the open ones
    listed = gp.locator(f"[data-appointment='{appointment_id}']")
    await expect(listed).to_contain_text("Schriftliches Telekonsil · Kardiologie")
    assert browsing.csp_violations() == []
