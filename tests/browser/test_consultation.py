"""The whole consultation in real Chromium: GP books, patient joins, specialist admits, call,
chat, three-way, hang up, report. Fake camera and microphone; real server; real clicks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import PHONE, Browsing
from tests.browser.helpers import log_in, wait_for_video

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

QUESTION = "Belastungsdyspnoe seit drei Wochen, EKG anbei. Bitte Einschätzung zur Herzinsuffizienz."
REPORT = "Verdacht auf Herzinsuffizienz NYHA II. Empfehlung: Echokardiographie, NT-proBNP."


def next_slot_start(tz: Any) -> datetime:
    """A slot start about ten minutes from now (local): its join link is already open (from 30
    minutes before), and the whole consultation, report included, happens before the start,
    as when a specialist admits a waiting patient early."""
    soon = datetime.now(tz) + timedelta(minutes=10)
    return soon.replace(second=0, microsecond=0)


async def publish_extra_hours(page: Page, starts: datetime) -> None:
    """Specialist: clears the weekly hours and offers one extra half hour starting soon."""
    await page.goto("/specialist/availability")
    rules = page.locator("[data-rules] li.rule")
    await expect(rules.first).to_be_visible()
    while await rules.count():
        await rules.first.get_by_role("button", name="Entfernen").click()
    await page.get_by_role("button", name="Wochenzeiten speichern").click()
    await expect(page.locator("[data-notice]")).to_contain_text("Wochenzeiten gespeichert")
    await page.get_by_label("Von", exact=True).last.fill(starts.strftime("%Y-%m-%dT%H:%M"))
    ends = starts + timedelta(minutes=30)
    await page.get_by_label("Bis", exact=True).last.fill(ends.strftime("%Y-%m-%dT%H:%M"))
    await page.get_by_role("radio", name="Zusätzliche Sprechzeit").check()
    await page.get_by_role("button", name="Hinzufügen", exact=True).click()
    await expect(page.locator("[data-exceptions]")).to_contain_text("Zusätzliche Sprechzeit")


async def book(page: Page, screenshot: Callable[[Page, str], Any]) -> tuple[int, str]:
    """GP: finds the cardiologist's free slot and books it; returns (id, patient link)."""
    await page.goto("/gp")
    await page.get_by_label("Fachgebiet").select_option(label="Kardiologie")
    await page.get_by_label("Fachärztin/Facharzt").select_option(label="Prof. Dr. Maria Schulz")
    slot = page.locator("[data-slots] button.slot").first
    await slot.click()
    await page.get_by_label("Vollständiger Name").fill("Erika Mustermann")
    await page.get_by_label("Geburtsdatum").fill("1950-04-01")
    await page.get_by_label("E-Mail oder Handynummer").fill("erika.mustermann@example.org")
    await page.get_by_role("textbox", name="Fragestellung").fill(QUESTION)
    await page.get_by_role("radio", name="Dringend").check()
    await screenshot(page, "gp-booking")
    await page.get_by_role("button", name="Konsil verbindlich buchen").click()
    await expect(page.get_by_role("heading", name="Konsil gebucht")).to_be_visible()
    link = await page.locator("[data-join-url]").input_value()
    href = await page.locator("[data-detail-link]").get_attribute("href")
    assert href is not None
    return int(href.rsplit("/", 1)[1]), link


async def patient_enters_waiting_room(page: Page, link: str) -> None:
    """Patient: opens the link, agrees, checks camera and microphone, waits."""
    await page.goto(link)
    consent = page.get_by_label("Ich bin mit der Video-Sprechstunde einverstanden")
    await expect(consent).to_be_visible()
    assert "#" not in page.url, "the token must leave the address bar at once"
    await consent.check()
    await page.get_by_role("button", name="Weiter", exact=True).click()
    await wait_for_video(page, "[data-preview]")
    await page.get_by_role("button", name="Weiter ins Wartezimmer").click()
    await expect(page.locator("[data-waiting-status]")).to_contain_text(
        "Sie sind im Wartezimmer", timeout=40_000
    )


async def test_consultation_from_booking_to_report(
    browsing: Browsing, screenshot: Callable[[Page, str], Any]
) -> None:
    demo = browsing.server.demo
    specialist = await browsing.new_page()
    gp = await browsing.new_page()
    patient = await browsing.new_page(viewport=PHONE)

    starts = next_slot_start(browsing.server.settings.tz)
    await log_in(specialist, demo.specialist)
    await publish_extra_hours(specialist, starts)
    await log_in(gp, demo.gp)
    appointment_id, link = await book(gp, screenshot)
    assert link.startswith(f"{browsing.server.url}/join#")

    await patient_enters_waiting_room(patient, link)
    await screenshot(patient, "patient-waiting")

    await specialist.goto("/specialist")
    waiting = specialist.locator(f"[data-waiting] li[data-appointment='{appointment_id}']")
    await expect(waiting).to_contain_text("Erika Mustermann")
    await expect(waiting).to_contain_text("Dringend")
    await screenshot(specialist, "specialist-queue")
    await waiting.get_by_role("button", name="Hereinholen").click()
    await specialist.wait_for_url(f"**/call/{appointment_id}")

    await expect(patient.locator("[data-step=call]")).to_be_visible()
    await wait_for_video(specialist, "[data-remote] video")
    await wait_for_video(patient, "[data-remote] video")
    await wait_for_video(patient, "[data-local]")

    # The booking GP joins as the third participant: everybody sees both others.
    await gp.goto(f"/call/{appointment_id}")
    await expect(gp.locator("[data-remote] video")).to_have_count(2, timeout=30_000)
    await wait_for_video(gp, "[data-remote] video")
    await expect(patient.locator("[data-remote] video")).to_have_count(2, timeout=30_000)
    await wait_for_video(patient, "[data-remote] video")

    await patient.get_by_label("Nachricht").fill("Guten Tag, ich höre Sie gut.")
    await patient.get_by_role("button", name="Senden").click()
    await expect(specialist.locator("[data-chat-log]")).to_contain_text("Guten Tag, ich höre Sie")
    await expect(gp.locator("[data-chat-log]")).to_contain_text("Guten Tag, ich höre Sie")

    # A toggle keeps its label; aria-pressed says that it is on.
    mute = patient.get_by_role("button", name="Stummschalten")
    await mute.click()
    await expect(mute).to_have_attribute("aria-pressed", "true")

    await specialist.get_by_role("button", name="Konsil beenden").click()
    await specialist.get_by_role("dialog").get_by_role("button", name="Konsil beenden").click()
    await expect(patient.locator("[data-ended-text]")).to_contain_text("beendet")
    await expect(specialist.locator("[data-call-ended]")).to_be_visible()
    await expect(gp.locator("[data-call-ended]")).to_be_visible()

    await specialist.get_by_role("link", name="Befund schreiben").last.click()
    await specialist.get_by_label("Befund und Empfehlung").fill(REPORT)
    await specialist.get_by_role("button", name="Befund speichern").click()
    await expect(specialist.locator("[data-report-saved]")).to_contain_text("Gespeichert")

    await gp.goto(f"/gp/appointments/{appointment_id}")
    await expect(gp.locator("[data-report]")).to_contain_text(REPORT)
    assert browsing.csp_violations() == []
