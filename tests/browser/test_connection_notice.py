"""While a page's websocket is lost and being restored, the notice at the top of the window says
so (frontend/static/connection-notice.js), in real Chromium against the real server: in sight
on a phone wherever the patient scrolled, in the page's language, accessible, and gone again
once the page has resumed; the same for the waiting guest, the specialist's queue and the GP's
booking page (its counts of who is on duty). The page's websocket goes through the test
(``Line`` of tests/browser/test_signaling_liveness.py), which silences it or closes it, and
holds the page's new attempts unopened until it is mended. Every step waits for something the
page did; nothing is timed. The notice's rules step by step with a fake clock:
tests/frontend/test_connection_notice.py."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.async_api import Locator, Page, expect

from app.db import utcnow
from tests.browser.axe import axe_violations, report
from tests.browser.conftest import Browsing
from tests.browser.helpers import appointment_with_link, eventually, log_in, wait_for_video
from tests.browser.test_call_room import on_call_page
from tests.browser.test_guest import guest_waits
from tests.browser.test_signaling_liveness import DASHBOARD, Line, serve_quick_signaling

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PHONE_390 = {"width": 390, "height": 844}
DESKTOP_1366 = {"width": 1366, "height": 768}


async def enter(page: Page, token: str, lang: str) -> None:
    # By the form's own elements: the labels are in the page's language.
    await page.goto(f"/join?lang={lang}#{token}")
    await page.locator("[data-consent-form] input[name=consent]").check()
    await page.locator("[data-consent-form] button[type=submit]").click()
    await wait_for_video(page, "[data-preview]")
    await page.locator("[data-devices-ok]").click()
    await expect(page.locator("[data-call]")).to_have_attribute(
        "data-connection", "alone", timeout=40_000
    )


async def in_first_viewport(page: Page, notice: Locator) -> None:
    """The notice's box lies wholly inside the window as it is scrolled now."""
    box = await notice.bounding_box()
    size = page.viewport_size
    assert box is not None
    assert size is not None
    assert box["height"] > 0
    assert box["y"] >= 0
    assert box["y"] + box["height"] <= size["height"], (box, size)


async def test_connection_notice_in_the_waiting_room_on_a_phone_comes_and_goes(
    browsing: Browsing,
) -> None:
    server = browsing.server
    _, token = await appointment_with_link(
        server.sessions,
        gp=server.demo.gp,
        specialist=server.demo.specialist,
        starts_at=utcnow() + timedelta(minutes=5),
    )
    patient = await browsing.new_page(viewport=PHONE_390)
    await serve_quick_signaling(patient)
    line = Line()
    await line.route(patient)
    try:
        await enter(patient, token, "de")
        notice = patient.get_by_role("status").filter(has=patient.locator(".connection-box"))
        region = patient.locator("[data-connection-notice]")
        await expect(region).to_have_attribute("aria-live", "polite")
        await expect(region).to_be_empty()
        await eventually(lambda: line.sockets[-1].heard_kind("pong"), "a pong")

        # A dead spot: the page gives the silent socket up and cannot open a new one.
        line.silence()
        await expect(notice).to_contain_text("Verbindung unterbrochen, wird wiederhergestellt…")
        await expect(notice).to_contain_text(
            "Sie müssen nichts tun. Ihr Platz im Wartezimmer bleibt erhalten."
        )
        await expect(notice).not_to_contain_text("verloren")
        # At the top, before the waiting room's own status line ...
        await in_first_viewport(patient, notice)
        status = patient.locator("[data-waiting-status]")
        status_box = await status.bounding_box()
        notice_box = await notice.bounding_box()
        assert status_box is not None
        assert notice_box is not None
        assert notice_box["y"] < status_box["y"]
        # ... and still in sight when the patient has scrolled down to the camera.
        await patient.locator("[data-waiting-preview]").scroll_into_view_if_needed()
        await patient.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        await in_first_viewport(patient, notice)
        # Large enough to read, and WCAG AA (contrast included) with the notice on screen.
        title = notice.locator(".connection-title")
        pixels = await title.evaluate("(el) => parseFloat(getComputedStyle(el).fontSize)")
        assert pixels >= 18
        violations = await axe_violations(patient)
        assert violations == [], report(violations)

        # The network is back: the page resumes its seat, says so briefly, and the notice goes.
        line.mend()
        await eventually(lambda: line.joined(resumed=True), "joined with resumed: true")
        await expect(notice).to_contain_text("Verbindung wiederhergestellt.")
        await in_first_viewport(patient, notice)
        await expect(region).to_be_empty()
        await expect(patient.locator("[data-waiting-status]")).to_contain_text(
            "Sie sind im Wartezimmer"
        )
    finally:
        await line.close()


async def test_connection_notice_after_a_closed_websocket_speaks_the_patients_language(
    browsing: Browsing,
) -> None:
    server = browsing.server
    _, token = await appointment_with_link(
        server.sessions,
        gp=server.demo.gp,
        specialist=server.demo.specialist,
        starts_at=utcnow() + timedelta(minutes=5),
    )
    patient = await browsing.new_page(viewport=DESKTOP_1366)
    await serve_quick_signaling(patient)
    line = Line()
    await line.route(patient)
    try:
        await enter(patient, token, "tr")
        await expect(patient.locator("html")).to_have_attribute("lang", "tr")
        notice = patient.locator("[data-connection-notice]")
        socket = line.sockets[-1]

        # The connection closes (a server restart, 1012) and new ones do not open yet.
        line.silence()
        await socket.route.close(code=1012, reason="service restart")
        await expect(notice).to_contain_text("Bağlantı kesildi, yeniden kuruluyor…")
        await expect(notice).to_contain_text(
            "Hiçbir şey yapmanıza gerek yok. Bekleme odasındaki yeriniz korunuyor."
        )
        await in_first_viewport(patient, notice)

        line.mend()
        await eventually(lambda: line.joined(resumed=True), "joined with resumed: true")
        await expect(notice).to_contain_text("Bağlantı yeniden kuruldu.")
        await expect(notice).to_be_empty()
    finally:
        await line.close()


async def test_connection_notice_on_the_specialists_queue(browsing: Browsing) -> None:
    line = Line(pattern=DASHBOARD)
    queue = await browsing.new_page(viewport=PHONE_390)
    await serve_quick_signaling(queue)
    await line.route(queue)
    try:
        await log_in(queue, browsing.server.demo.specialist)
        await queue.goto("/specialist")
        notice = queue.locator("[data-connection-notice]")
        await expect(queue.locator("[data-live-status]")).to_have_text(
            "Live: Die Liste aktualisiert sich selbst."
        )
        await eventually(lambda: line.sockets[-1].heard_kind("pong"), "a pong")

        line.silence()
        await expect(notice).to_contain_text("Verbindung unterbrochen, wird wiederhergestellt…")
        await expect(notice).to_contain_text(
            "Bis dahin ist die Liste möglicherweise nicht aktuell."
        )
        await in_first_viewport(queue, notice)

        line.mend()
        await expect(notice).to_contain_text("Verbindung wiederhergestellt.")
        await expect(notice).to_be_empty()
        await expect(queue.locator("[data-live-status]")).not_to_have_class(re.compile(r"\blost\b"))
    finally:
        await line.close()


async def test_connection_notice_for_the_waiting_guest(browsing: Browsing) -> None:
    server = browsing.server
    appointment_id, _ = await appointment_with_link(
        server.sessions,
        gp=server.demo.gp,
        specialist=server.demo.specialist,
        starts_at=utcnow() + timedelta(minutes=5),
    )
    specialist = await on_call_page(browsing, server.demo.specialist, appointment_id)
    box = specialist.locator("[data-guest-invite]")
    await box.get_by_label("Name des Gastes").fill("Ayşe Demir")
    await box.get_by_label("Nimmt teil als").select_option(label="Dolmetscher/in")
    await box.get_by_role("button", name="Gast einladen").click()
    link = box.locator("[data-guest-url]")
    await expect(link).to_have_value(re.compile(r"^http.*/guest#[A-Za-z0-9_-]{43}$"))
    path = "/guest#" + (await link.input_value()).split("/guest#", 1)[1]

    guest = await browsing.new_page(viewport=PHONE_390)
    await serve_quick_signaling(guest)
    line = Line()
    await line.route(guest)
    try:
        await guest_waits(guest, path)
        notice = guest.locator("[data-connection-notice]")
        await eventually(lambda: line.sockets[-1].heard_kind("pong"), "a pong")

        line.silence()
        await expect(notice).to_contain_text("Verbindung unterbrochen, wird wiederhergestellt…")
        # The guest has no place in the patients' line: nothing is said about one.
        await expect(notice).to_contain_text(
            "Sie müssen nichts tun. Bitte lassen Sie diese Seite geöffnet."
        )
        await in_first_viewport(guest, notice)

        line.mend()
        await eventually(lambda: line.joined(resumed=True), "joined with resumed: true")
        await expect(notice).to_contain_text("Verbindung wiederhergestellt.")
        await expect(notice).to_be_empty()
    finally:
        await line.close()


async def test_connection_notice_on_the_gps_booking_page(browsing: Browsing) -> None:
    # The counts of who is on duty come over the websocket: they stand still while it is lost.
    line = Line(pattern=DASHBOARD)
    gp = await browsing.new_page(viewport=PHONE_390)
    await serve_quick_signaling(gp)
    await line.route(gp)
    try:
        await log_in(gp, browsing.server.demo.gp)
        await gp.goto("/gp")
        await expect(gp.locator("[data-presence-line]")).to_be_visible()
        notice = gp.locator("[data-connection-notice]")
        await eventually(lambda: line.sockets[-1].heard_kind("pong"), "a pong")

        line.silence()
        await expect(notice).to_contain_text("Verbindung unterbrochen, wird wiederhergestellt…")
        await expect(notice).to_contain_text(
            "Bis dahin ist die Angabe, wer im Dienst ist, möglicherweise nicht aktuell."
        )
        await in_first_viewport(gp, notice)

        line.mend()
        await expect(notice).to_contain_text("Verbindung wiederhergestellt.")
        await expect(notice).to_be_empty()
    finally:
        await line.close()
