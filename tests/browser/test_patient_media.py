"""Camera and microphone problems, and a dropped connection, as the patient sees them."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from playwright.async_api import Page, WebSocketRoute, expect

from app.db import utcnow
from tests.browser.conftest import PHONE, Browsing
from tests.browser.helpers import appointment_with_link, log_in, wait_for_video

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

# Injected before the page's own scripts: the browser answers like a real one would.
DENY_ALL = """navigator.mediaDevices.getUserMedia = () =>
  Promise.reject(new DOMException("Permission denied", "NotAllowedError"));"""
NO_CAMERA = """{
  const real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = (c) => c && c.video
    ? Promise.reject(new DOMException("Requested device not found", "NotFoundError"))
    : real(c);
}"""


async def open_link(browsing: Browsing, init_script: str | None = None) -> tuple[Page, int]:
    server = browsing.server
    appointment_id, token = await appointment_with_link(
        server.sessions,
        gp=server.demo.gp,
        specialist=server.demo.specialist,
        starts_at=utcnow() + timedelta(minutes=5),
    )
    page = await browsing.new_page(viewport=PHONE)
    if init_script:
        await page.add_init_script(init_script)
    await page.goto(f"/join#{token}")
    await page.get_by_label("Ich bin mit der Video-Sprechstunde einverstanden").check()
    await page.get_by_role("button", name="Weiter", exact=True).click()
    return page, appointment_id


async def test_denied_camera_explains_how_to_allow_it(browsing: Browsing) -> None:
    page, _ = await open_link(browsing, DENY_ALL)
    await expect(page.locator("[data-media-error]")).to_contain_text("blockiert")
    await expect(page.get_by_role("button", name="Erneut versuchen")).to_be_visible()
    await expect(page.get_by_role("button", name="Weiter ins Wartezimmer")).to_be_hidden()


async def test_missing_camera_offers_audio_only(browsing: Browsing) -> None:
    page, _ = await open_link(browsing, NO_CAMERA)
    await expect(page.locator("[data-media-error]")).to_contain_text("keine Kamera")
    await expect(page.get_by_role("button", name="Weiter ins Wartezimmer")).to_be_hidden()
    await page.get_by_role("button", name="Nur mit Ton weiter").click()
    await expect(page.locator("[data-waiting-status]")).to_contain_text(
        "Sie sind im Wartezimmer", timeout=40_000
    )


async def test_dropped_connection_is_shown_and_resumed(browsing: Browsing) -> None:
    sockets: list[WebSocketRoute] = []
    blocked = False

    async def through(route: WebSocketRoute) -> None:
        if blocked:
            await route.close(code=1001, reason="unreachable")
            return
        server = route.connect_to_server()
        sockets.append(route)
        sockets.append(server)

    page, appointment_id = await open_link(browsing)
    await page.route_web_socket("**/ws?*", through)
    await page.get_by_role("button", name="Weiter ins Wartezimmer").click()
    await expect(page.locator("[data-waiting-status]")).to_contain_text(
        "Sie sind im Wartezimmer", timeout=40_000
    )
    specialist = await browsing.new_page()
    await log_in(specialist, browsing.server.demo.specialist, f"/call/{appointment_id}")
    await specialist.get_by_role("button", name="Patient/in hereinholen").click()
    await wait_for_video(page, "[data-remote] video")

    blocked = True
    # The network drops. (Playwright cannot cut the server's end, so the server notices only
    # when the client is back: like a half-open TCP connection after a network change.)
    await sockets[-1].close(code=1001, reason="network gone")
    await sockets[-2].close(code=1001, reason="network gone")
    status = page.locator("[data-call-status]")
    await expect(status).to_have_text("Verbindung unterbrochen, wird wiederhergestellt…")
    await asyncio.sleep(2)  # the network stays away a moment; the client keeps retrying
    blocked = False
    await expect(status).to_have_text("Verbunden", timeout=20_000)
    # The specialist sees one patient again (the stale peer is dropped), with video.
    await expect(specialist.locator("[data-remote] video")).to_have_count(1)
    await wait_for_video(specialist, "[data-remote] video")
    await wait_for_video(page, "[data-remote] video")
