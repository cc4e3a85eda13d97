"""An on-call consult in real Chromium: a GP asks cardiology for a consult now, both
cardiologists see the request arrive on their queue pages without a reload, one takes it (it
disappears from the other's page), the patient joins with the link, is let in, and the call
has video both ways; the GP joins as the third participant."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import PHONE, Browsing
from tests.browser.helpers import log_in, wait_for_video
from tests.browser.test_consultation import patient_enters_waiting_room
from tests.factories import login

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

DESKTOP_1366 = {"width": 1366, "height": 900}
QUESTION = (
    "Neu aufgetretenes Vorhofflimmern im EKG, Patientin sitzt in der Praxis. Antikoagulation?"
)


async def ask_cardiology(browsing: Browsing) -> dict[str, Any]:
    """GP (through the API, as the GP's page does): a consult now with cardiology."""
    server = browsing.server
    async with httpx2.AsyncClient(base_url=server.url, headers={"Origin": server.url}) as gp:
        await login(gp, server.demo.gp)
        asked = await gp.post(
            "/api/v1/on-call",
            json={
                "specialty_id": server.demo.cardiology.id,
                "patient_name": "Erika Mustermann",
                "patient_birth_date": "1950-04-01",
                "patient_contact": "erika.mustermann@example.org",
                "clinical_question": QUESTION,
                "mode": "home",
            },
        )
    assert asked.status_code == 201, asked.text
    return dict(asked.json())


async def test_on_call_from_request_to_video(
    browsing: Browsing, screenshot: Callable[[Page, str], Any]
) -> None:
    demo = browsing.server.demo
    first = await browsing.new_page(DESKTOP_1366)
    second = await browsing.new_page(PHONE)
    await log_in(first, demo.specialist)
    await log_in(second, demo.other_specialist)
    for page in (first, second):
        await page.goto("/specialist")
        await expect(page.locator("[data-live-status]")).to_contain_text("Live")
        await expect(page.locator("[data-on-call]")).to_be_hidden()

    asked = await ask_cardiology(browsing)
    appointment_id = asked["appointment"]["id"]
    for page in (first, second):  # live, no reload
        card = page.locator("[data-on-call]")
        await expect(card).to_be_visible()
        entry = card.locator(f"li[data-request='{appointment_id}']")
        await expect(entry).to_contain_text("Vorhofflimmern")
        await expect(entry).to_contain_text("Dringend")
        await expect(entry).not_to_contain_text("Erika")  # not before it is taken
    await screenshot(first, "on-call-queue-1366")
    await screenshot(second, "on-call-queue-360")

    await (
        first.locator(f"li[data-request='{appointment_id}']")
        .get_by_role("button", name="Übernehmen")
        .click()
    )
    await expect(first.locator("[data-on-call-status]")).to_contain_text("übernommen")
    await expect(second.locator(f"li[data-request='{appointment_id}']")).to_have_count(0)
    await expect(second.locator("[data-on-call]")).to_be_hidden()

    patient = await browsing.new_page(PHONE)
    await patient_enters_waiting_room(patient, asked["link"]["join_url"])
    waiting = first.locator(f"[data-waiting] li[data-appointment='{appointment_id}']")
    await expect(waiting).to_contain_text("Erika Mustermann")
    await expect(
        second.locator(f"[data-waiting] li[data-appointment='{appointment_id}']")
    ).to_have_count(0)
    await waiting.get_by_role("button", name="Hereinholen").click()
    await first.wait_for_url(f"**/call/{appointment_id}")
    await expect(patient.locator("[data-step=call]")).to_be_visible()
    await wait_for_video(first, "[data-remote] video")
    await wait_for_video(patient, "[data-remote] video")

    # The requesting GP joins: a three-way call like a booked consult.
    gp = await browsing.new_page(DESKTOP_1366)
    await log_in(gp, demo.gp)
    await gp.goto(f"/call/{appointment_id}")
    await expect(gp.locator("[data-remote] video")).to_have_count(2, timeout=30_000)
    await wait_for_video(gp, "[data-remote] video")
    await expect(patient.locator("[data-remote] video")).to_have_count(2, timeout=30_000)
    assert browsing.csp_violations() == []
