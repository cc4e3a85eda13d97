"""The EBM billing helper in real Chromium on a phone (390 px): the GP downloads a quarter's CSV
from the bookings page, the specialist confirms the identity check on the appointment page."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from playwright.async_api import Page, expect

from app.billing.ebm import Quarter
from app.db import utcnow
from app.scheduling.models import Appointment, AppointmentStatus, RoomState
from tests.browser.axe import axe_violations, report, require_axe
from tests.browser.conftest import Browsing, LiveServer
from tests.browser.helpers import log_in
from tests.browser.test_on_call_gp import PHONE_390
from tests.factories import make_appointment

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture(autouse=True)
def axe_installed() -> None:
    require_axe()


async def assert_accessible(page: Page, where: str) -> None:
    violations = await axe_violations(page)
    assert violations == [], f"{where} ({page.url}):\n{report(violations)}"


async def consulted(server: LiveServer, *, ended: bool) -> Appointment:
    """A video consultation of the demo GP and specialist that began an hour ago."""
    admitted = utcnow().replace(microsecond=0) - timedelta(hours=1)
    return await make_appointment(
        server.sessions,
        server.demo,
        starts_at=admitted,
        room_state=RoomState.ENDED if ended else RoomState.IN_CALL,
        status=AppointmentStatus.COMPLETED if ended else AppointmentStatus.BOOKED,
        admitted_at=admitted,
        ended_at=admitted + timedelta(minutes=21) if ended else None,
        patient_name="Erika Mustermann",
    )


async def test_gp_downloads_the_quarter_csv_from_the_bookings_page(
    browsing: Browsing, screenshot: Callable[[Page, str], Any]
) -> None:
    server = browsing.server
    appointment = await consulted(server, ended=True)
    assert appointment.admitted_at is not None
    quarter = Quarter.of(appointment.admitted_at.astimezone(server.settings.tz).date())
    page = await browsing.new_page(PHONE_390)
    await log_in(page, server.demo.gp, "/login?next=/gp/appointments")
    form = page.get_by_role("region", name="Abrechnungshilfe (EBM)")
    await expect(form).to_contain_text("keine Abrechnungsdatei")
    await form.get_by_label("Quartal").select_option(str(quarter))
    await screenshot(page, "billing-gp-390")
    await assert_accessible(page, "the GP's bookings with the EBM download form")
    async with page.expect_download() as info:
        await form.get_by_role("button", name="CSV herunterladen").click()
    download = await info.value
    assert download.suggested_filename == f"konsil-ebm-{quarter}.csv"
    text = (await download.path()).read_text(encoding="utf-8")
    assert text.startswith("\ufeffAbrechnungshilfe – keine Abrechnungsdatei;")
    assert (
        f";Erika Mustermann;01.01.1950;;01670;Einholung eines Telekonsiliums;1;;{appointment.id};"
        in text
    )
    # No horizontal scrolling on the phone.
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    assert browsing.csp_violations() == []


async def test_specialist_confirms_the_identity_check_once_the_patient_was_let_in(
    browsing: Browsing, screenshot: Callable[[Page, str], Any]
) -> None:
    server = browsing.server
    appointment = await consulted(server, ended=False)
    not_yet = await make_appointment(
        server.sessions, server.demo, starts_at=utcnow() + timedelta(days=1)
    )
    page = await browsing.new_page(PHONE_390)
    await log_in(page, server.demo.specialist, f"/login?next=/specialist/appointments/{not_yet.id}")
    await expect(page.locator("[data-identity-status]")).to_have_text(
        "Bestätigen können Sie sie, sobald Sie die Patientin bzw. den Patienten hereingeholt haben."
    )
    await expect(page.get_by_role("button", name="Identitätsprüfung bestätigen")).to_be_hidden()

    await page.goto(f"/specialist/appointments/{appointment.id}")
    confirm = page.get_by_role("button", name="Identitätsprüfung bestätigen")
    await confirm.click()
    await expect(page.locator("[data-identity-status]")).to_contain_text(
        "Identitätsprüfung bestätigt am"
    )
    await expect(confirm).to_be_hidden()
    await screenshot(page, "billing-identity-390")
    await assert_accessible(page, "the specialist's appointment with the identity check confirmed")
    await page.reload()
    await expect(page.locator("[data-identity-status]")).to_contain_text(
        "Identitätsprüfung bestätigt am"
    )
    assert browsing.csp_violations() == []
