"""axe-core (WCAG 2.x A and AA) on every page of the patient's way at 390 px, in real Chromium
with the pages' own Content-Security-Policy: the link's landing and consent, the camera and
microphone check, the connection check, the waiting room, the call (patient and specialist
while in it), the pages for links that do not or not yet work, and the invited guest's
pages."""

from __future__ import annotations

from datetime import timedelta

import httpx2
import pytest
from playwright.async_api import Page, expect

from app.db import utcnow
from tests.browser.axe import axe_violations, report, require_axe
from tests.browser.conftest import Browsing
from tests.browser.helpers import appointment_with_link, log_in, wait_for_video
from tests.factories import login

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PHONE_390 = {"width": 390, "height": 844}


@pytest.fixture(autouse=True)
def axe_installed() -> None:
    """Before any browsing: without axe-core a CI run fails here, a developer's run skips."""
    require_axe()


async def assert_accessible(page: Page, where: str) -> None:
    violations = await axe_violations(page)
    assert violations == [], f"{where} ({page.url}):\n{report(violations)}"


async def test_patient_pages_have_no_axe_violations(browsing: Browsing) -> None:
    server = browsing.server
    appointment_id, token = await appointment_with_link(
        server.sessions,
        gp=server.demo.gp,
        specialist=server.demo.specialist,
        starts_at=utcnow() + timedelta(minutes=10),
    )
    patient = await browsing.new_page(viewport=PHONE_390)
    await patient.goto(f"/join#{token}")
    consent = patient.get_by_label("Ich bin mit der Video-Sprechstunde einverstanden")
    await expect(consent).to_be_visible()
    await assert_accessible(patient, "consent")
    await patient.get_by_role("button", name="Weiter", exact=True).click()
    await expect(patient.locator("[data-consent-error]")).to_be_visible()
    await assert_accessible(patient, "consent, not given")

    await consent.check()
    await patient.get_by_role("button", name="Weiter", exact=True).click()
    await wait_for_video(patient, "[data-preview]")
    await assert_accessible(patient, "camera and microphone check")

    await patient.get_by_role("button", name="Weiter ins Wartezimmer").click()
    await expect(patient.get_by_role("heading", name="Verbindung wird geprüft")).to_be_visible()
    await assert_accessible(patient, "connection check")

    await expect(patient.locator("[data-waiting-status]")).to_contain_text(
        "Sie sind im Wartezimmer", timeout=40_000
    )
    await expect(patient.locator("[data-check-result]")).to_be_visible()
    await assert_accessible(patient, "waiting room")

    specialist = await browsing.new_page(viewport=PHONE_390)
    await log_in(specialist, server.demo.specialist)
    await specialist.goto("/specialist")
    waiting = specialist.locator(f"[data-waiting] li[data-appointment='{appointment_id}']")
    await waiting.get_by_role("button", name="Hereinholen").click()
    await specialist.wait_for_url(f"**/call/{appointment_id}")
    await wait_for_video(specialist, "[data-remote] video")
    await wait_for_video(patient, "[data-remote] video")
    await assert_accessible(patient, "the patient's call")
    await assert_accessible(specialist, "the specialist's call")

    # Ended through the API: the page's own button may ask first.
    me = await specialist.request.get("/api/v1/auth/me")
    ended = await specialist.request.post(
        f"/api/v1/rooms/{appointment_id}/end",
        headers={"X-CSRF-Token": (await me.json())["csrf_token"], "Origin": server.url},
    )
    assert ended.ok, await ended.text()
    await expect(patient.locator("[data-ended-text]")).to_be_visible()
    await assert_accessible(patient, "consultation ended")
    await expect(specialist.locator("[data-call-ended]")).to_be_visible()
    await assert_accessible(specialist, "the specialist's call, ended")
    assert browsing.csp_violations() == []


async def test_link_problem_pages_have_no_axe_violations(browsing: Browsing) -> None:
    server = browsing.server
    demo = server.demo
    now = utcnow()
    _, early = await appointment_with_link(
        server.sessions, gp=demo.gp, specialist=demo.specialist, starts_at=now + timedelta(days=3)
    )
    _, expired = await appointment_with_link(
        server.sessions, gp=demo.gp, specialist=demo.specialist, starts_at=now - timedelta(hours=3)
    )
    cancelled_id, cancelled = await appointment_with_link(
        server.sessions, gp=demo.gp, specialist=demo.specialist, starts_at=now + timedelta(days=2)
    )
    async with httpx2.AsyncClient(base_url=server.url, headers={"Origin": server.url}) as gp:
        await login(gp, demo.gp)
        assert (await gp.post(f"/api/v1/appointments/{cancelled_id}/cancel")).status_code == 200
    for fragment, heading in [
        (early, "noch nicht freigeschaltet"),
        (expired, "Dieser Link ist abgelaufen"),
        (cancelled, "Dieser Termin wurde abgesagt"),
        ("x" * 43, "Dieser Link ist ungültig"),
    ]:
        # A page of its own each: a new fragment on the same address would not load anew.
        page = await browsing.new_page(viewport=PHONE_390)
        await page.goto(f"/join#{fragment}")
        await expect(page.get_by_role("heading", name=heading)).to_be_visible()
        await assert_accessible(page, heading)
    await page.goto("/join")
    await expect(page.get_by_role("heading", name="Einladungslink")).to_be_visible()
    await assert_accessible(page, "join without a link")
    missing = await page.goto("/no-such-page")
    assert missing is not None
    assert missing.status == 404
    await assert_accessible(page, "the error page")
    assert browsing.csp_violations() == []


async def test_queue_and_slot_search_have_no_axe_violations(browsing: Browsing) -> None:
    demo = browsing.server.demo
    specialist = await browsing.new_page(viewport=PHONE_390)
    await log_in(specialist, demo.specialist)
    await expect(specialist.locator("[data-delay-add]")).to_have_count(3)
    await assert_accessible(specialist, "the specialist's queue with the late-notice buttons")

    gp = await browsing.new_page(viewport=PHONE_390)
    await log_in(gp, demo.gp)
    await gp.get_by_label("Fachgebiet").select_option(label="Kardiologie")
    await gp.get_by_role("button", name="Nächste Woche").click()
    await expect(gp.locator("[data-slots] .slot-doctor").first).to_be_visible()
    await assert_accessible(gp, "free slots of any cardiologist, each naming the doctor")
    assert browsing.csp_violations() == []


async def test_guest_pages_have_no_axe_violations(browsing: Browsing) -> None:
    server = browsing.server
    demo = server.demo
    appointment_id, _ = await appointment_with_link(
        server.sessions,
        gp=demo.gp,
        specialist=demo.specialist,
        starts_at=utcnow() + timedelta(minutes=10),
    )
    async with httpx2.AsyncClient(base_url=server.url, headers={"Origin": server.url}) as gp:
        await login(gp, demo.gp)
        issued = await gp.post(
            f"/api/v1/appointments/{appointment_id}/guest",
            json={"name": "Ayşe Demir", "kind": "sign_language"},
        )
        assert issued.status_code == 201, issued.text
    token = issued.json()["guest_url"].split("#", 1)[1]
    guest = await browsing.new_page(viewport=PHONE_390)
    await guest.goto(f"/guest#{token}")
    consent = guest.get_by_label("Ich bin mit der Video-Sprechstunde einverstanden")
    await expect(consent).to_be_visible()
    await assert_accessible(guest, "the guest's invitation and consent")
    await consent.check()
    await guest.get_by_role("button", name="Weiter", exact=True).click()
    await wait_for_video(guest, "[data-preview]")
    await assert_accessible(guest, "the guest's camera and microphone check")
    await guest.get_by_role("button", name="Weiter ins Wartezimmer").click()
    await expect(guest.locator("[data-waiting-status]")).to_contain_text("Bitte warten Sie")
    await assert_accessible(guest, "the guest's waiting room")

    elsewhere = await browsing.new_page(viewport=PHONE_390)
    await elsewhere.goto(f"/guest#{token}")
    await expect(elsewhere.get_by_role("heading", name="schon verwendet")).to_be_visible()
    await assert_accessible(elsewhere, "a guest link opened on a second device")
    await elsewhere.goto("/guest")
    await expect(elsewhere.get_by_role("heading", name="Einladungslink")).to_be_visible()
    await assert_accessible(elsewhere, "the guest page without a link")
    assert browsing.csp_violations() == []
