"""GP in the browser with e-mail and SMS set up (a real SMTP server and a real SMS gateway):
the booking form asks for the mobile number only with the SMS choice, the booking page lists
the SMS and the planned reminders, a refused SMS is shown and sent again; German at 390 px,
English at 1366 px."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import Browsing, LiveServer, seeded_live_server
from tests.browser.helpers import log_in
from tests.notify.conftest import MAIL_FROM
from tests.notify.smsd import SECRET, Gateway, Running, sms_gateway
from tests.notify.smtpd import Server, smtp_server

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
NARROW = {"width": 390, "height": 844}
WIDE = {"width": 1366, "height": 900}


@pytest.fixture
def gateway() -> Iterator[Running]:
    # The first SMS is refused (400), every later one accepted.
    with sms_gateway(Gateway(answers=[400])) as running:
        yield running


@pytest.fixture
def mail() -> Iterator[Server]:
    with smtp_server() as server:
        yield server


@pytest.fixture
async def live(tmp_path: Path, gateway: Running, mail: Server) -> AsyncIterator[LiveServer]:
    async with seeded_live_server(
        tmp_path,
        smtp_url=mail.url(),
        mail_from=MAIL_FROM,
        sms_url=gateway.url(),
        sms_secret=SECRET,
    ) as server:
        yield server


async def fill_booking(page: Page, *, name: str, contact: str) -> None:
    await page.get_by_role("button", name="Nächste Woche").click()
    await page.locator("[data-slots] button.slot").first.click()
    await page.get_by_label("Vollständiger Name").fill(name)
    await page.get_by_label("Geburtsdatum").fill("1948-02-29")
    await page.get_by_label("E-Mail oder Handynummer").fill(contact)
    await page.get_by_role("textbox", name="Fragestellung").fill(
        "Palpitationen, bitte Einschätzung."
    )


async def test_gp_books_with_sms_sees_it_refused_and_sends_it_again(
    browsing: Browsing,
    gateway: Running,
    screenshot: Callable[[Page, str], Any],
) -> None:
    page = await browsing.new_page(NARROW)
    await log_in(page, browsing.server.demo.gp)
    await fill_booking(page, name="Hans Schmidt", contact="0151 23456789")
    phone = page.get_by_label("Handynummer der Patientin bzw. des Patienten")
    await expect(phone).to_be_hidden()
    await expect(page.locator("[data-reminders]")).to_have_text(
        "Erinnerungen werden 24 h und 15 min vor dem Termin gesendet."
    )
    await page.get_by_label("Per SMS von Konsil").check()
    await expect(phone).to_be_visible()
    await expect(phone).to_have_value("0151 23456789")  # taken over from the contact
    await phone.fill("0151 123")
    await page.get_by_role("button", name="Konsil verbindlich buchen").click()
    error = page.locator("[data-booking-error]")
    await expect(error).to_contain_text("Handynummer der Patientin bzw. des Patienten:")
    await expect(error).to_contain_text("Die Mobilnummer ist ungültig.")
    await screenshot(page, "gp-book-sms-de-390")
    await phone.fill("0151 23456789")
    await page.get_by_role("button", name="Konsil verbindlich buchen").click()
    await expect(page.locator("[data-mailed]")).to_contain_text(
        "Konsil sendet die Einladung per SMS an +4915123456789."
    )

    await page.get_by_role("link", name="Buchung öffnen").click()
    messages = page.locator("[data-messages]")
    invitation = messages.locator("li[data-channel=sms]", has_text="Einladung mit dem Link")
    await expect(invitation).to_contain_text("fehlgeschlagen")
    await expect(invitation).to_contain_text("das SMS-Gateway hat sie abgelehnt (400)")
    await expect(messages.locator("li", has_text="Erinnerung 15 min vorher")).to_contain_text(
        "geplant für"
    )
    await expect(page.locator("[data-messages-note]")).to_contain_text(
        "SMS an die Patientin bzw. den Patienten gehen an +4915123456789."
    )
    await expect(page.locator("[data-details]")).to_contain_text("+4915123456789")
    await invitation.get_by_role("button", name="Erneut senden").click()
    await expect(page.locator("[data-notice]")).to_contain_text("erneut gesendet")
    await gateway.gateway.wait_for(1)
    await page.reload()
    sent = page.locator("[data-messages] li[data-channel=sms][data-status=sent]")
    await expect(sent).to_contain_text("Einladung mit dem Link")
    await screenshot(page, "gp-messages-sms-de-390")
    assert browsing.csp_violations() == []


async def test_booking_form_in_english_offers_email_and_sms(
    browsing: Browsing, screenshot: Callable[[Page, str], Any]
) -> None:
    page = await browsing.new_page(WIDE)
    await log_in(page, browsing.server.demo.gp)
    await page.goto("/gp?lang=en")
    await page.get_by_role("button", name="Next week").click()
    await page.locator("[data-slots] button.slot").first.click()
    await page.get_by_label("By SMS from Konsil").check()
    await expect(page.get_by_label("Patient's mobile number")).to_be_visible()
    await expect(page.get_by_label("By email from Konsil")).to_be_visible()
    await expect(page.locator("[data-reminders]")).to_have_text(
        "Reminders go out 24 h and 15 min before the appointment."
    )
    await screenshot(page, "gp-book-sms-en-1366")
    assert browsing.csp_violations() == []
