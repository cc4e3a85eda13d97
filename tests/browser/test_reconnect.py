"""A reload in the middle of the call brings the patient straight back into the call."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.async_api import expect

from app.db import utcnow
from tests.browser.conftest import PHONE, Browsing
from tests.browser.helpers import appointment_with_link, log_in, wait_for_video

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


async def test_patient_reload_during_the_call_reconnects(browsing: Browsing) -> None:
    server = browsing.server
    appointment_id, token = await appointment_with_link(
        server.sessions,
        gp=server.demo.gp,
        specialist=server.demo.specialist,
        starts_at=utcnow() + timedelta(minutes=5),
    )
    patient = await browsing.new_page(viewport=PHONE)
    await patient.goto(f"/join#{token}")
    await patient.get_by_label("Ich bin mit der Video-Sprechstunde einverstanden").check()
    await patient.get_by_role("button", name="Weiter", exact=True).click()
    await patient.get_by_role("button", name="Weiter ins Wartezimmer").click()
    await expect(patient.locator("[data-waiting-status]")).to_contain_text(
        "Sie sind im Wartezimmer", timeout=40_000
    )

    specialist = await browsing.new_page()
    await log_in(specialist, server.demo.specialist, f"/call/{appointment_id}")
    await specialist.get_by_role("button", name="Patient/in hereinholen").click()
    await wait_for_video(patient, "[data-remote] video")
    await wait_for_video(specialist, "[data-remote] video")

    await patient.reload()
    # No consent, device or waiting steps again: the session and the choices are remembered.
    await expect(patient.locator("[data-step=call]")).to_be_visible(timeout=30_000)
    await wait_for_video(patient, "[data-remote] video")
    await expect(specialist.locator("[data-remote] video")).to_have_count(1, timeout=30_000)
    await wait_for_video(specialist, "[data-remote] video[data-peer-role=patient]")
    await expect(specialist.locator("[data-call-status]")).to_have_text("Verbunden")
    await expect(patient.locator("[data-call-status]")).to_have_text("Verbunden")
