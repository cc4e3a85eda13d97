"""A guest (interpreter) in real Chromium: the specialist invites her from the call page, she
opens her link, waits until the specialist lets her in, and then patient, specialist, GP and
guest each see the three others with live video and the right names. The guest sees the
patient as "Patient/in" only, and nothing of the case."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from playwright.async_api import Page, expect

from app.db import utcnow
from tests.browser.conftest import Browsing
from tests.browser.helpers import appointment_with_link, wait_for_video
from tests.browser.test_call_room import (
    ADVANCING,
    DESKTOP_1366,
    GP_LABEL,
    PATIENT,
    PATIENT_LABEL,
    PHONE_390,
    SPECIALIST_LABEL,
    enter_waiting_room,
    on_call_page,
)

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

GUEST = "Ayşe Demir"
GUEST_LABEL = "Ayşe Demir · Dolmetscher/in"


async def guest_waits(page: Page, path: str) -> None:
    await page.goto(path)
    await expect(
        page.get_by_role("heading", name="Sie wurden zu einer Video-Sprechstunde")
    ).to_be_visible()
    await expect(page.locator("[data-invitation-summary]")).to_contain_text(
        "Sie wurden als Dolmetscher/in zur Video-Sprechstunde mit Prof. Dr. Maria Schulz"
    )
    await page.get_by_label("Ich bin mit der Video-Sprechstunde einverstanden").check()
    await page.get_by_role("button", name="Weiter", exact=True).click()
    await wait_for_video(page, "[data-preview]")
    await page.get_by_role("button", name="Weiter ins Wartezimmer").click()
    await expect(page.locator("[data-waiting-status]")).to_contain_text(
        "Bitte warten Sie, die Ärztin bzw. der Arzt lässt Sie gleich herein."
    )


async def sees_three_live(page: Page, labels: list[str]) -> None:
    tiles = page.locator("[data-remote] .tile")
    await expect(tiles).to_have_count(3, timeout=30_000)
    await wait_for_video(page, "[data-remote] video")
    for label in labels:
        await expect(tiles.filter(has_text=label)).to_have_count(1)
    for index in range(3):
        selector = f"[data-remote] .tile:nth-child({index + 1}) video"
        assert await page.evaluate(ADVANCING, selector), f"{selector} does not play"


async def test_guest_four_way_call_with_names_for_everyone(
    browsing: Browsing, screenshot: Callable[[Page, str], Any]
) -> None:
    server = browsing.server
    appointment_id, token = await appointment_with_link(
        server.sessions,
        gp=server.demo.gp,
        specialist=server.demo.specialist,
        starts_at=utcnow() + timedelta(minutes=5),
        patient_name=PATIENT,
    )
    specialist = await on_call_page(browsing, server.demo.specialist, appointment_id)
    box = specialist.locator("[data-guest-invite]")
    await box.get_by_label("Name des Gastes").fill(GUEST)
    await box.get_by_label("Nimmt teil als").select_option(label="Dolmetscher/in")
    await box.get_by_role("button", name="Gast einladen").click()
    link = box.locator("[data-guest-url]")
    await expect(link).to_have_value(re.compile(r"^http.*/guest#[A-Za-z0-9_-]{43}$"))
    path = "/guest#" + (await link.input_value()).split("/guest#", 1)[1]
    await expect(box.locator("[data-guest-current]")).to_contain_text(
        "Ayşe Demir (Dolmetscher/in) ist eingeladen"
    )

    guest = await browsing.new_page(viewport=PHONE_390)
    await guest_waits(guest, path)
    await screenshot(guest, "guest-waiting-phone-390")
    banner = specialist.locator("[data-guest-banner]")
    await expect(banner).to_contain_text("Ayşe Demir (Dolmetscher/in) wartet darauf")

    patient = await browsing.new_page(viewport=PHONE_390)
    await enter_waiting_room(patient, token)
    await specialist.get_by_role("button", name="Patient/in hereinholen").click()
    await banner.get_by_role("button", name="Gast hereinlassen").click()
    await expect(banner).to_be_hidden()
    gp = await on_call_page(browsing, server.demo.gp, appointment_id, DESKTOP_1366)

    await sees_three_live(patient, [SPECIALIST_LABEL, GP_LABEL, GUEST_LABEL])
    await sees_three_live(specialist, [PATIENT_LABEL, GP_LABEL, GUEST_LABEL])
    await sees_three_live(gp, [PATIENT_LABEL, SPECIALIST_LABEL, GUEST_LABEL])
    await sees_three_live(guest, ["Patient/in", SPECIALIST_LABEL, GP_LABEL])
    # The guest knows the patient only as "Patient/in": no name, no question, no documents.
    text = await guest.locator("body").inner_text()
    assert PATIENT not in text
    assert "Belastungsdyspnoe" not in text
    await expect(box.locator("[data-guest-current]")).to_contain_text("wurde hereingelassen")
    await screenshot(guest, "guest-call-phone-390")
    await screenshot(specialist, "guest-specialist-call-1366")
    assert browsing.csp_violations() == []
