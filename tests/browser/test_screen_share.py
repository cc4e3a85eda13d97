"""Screen sharing in real Chromium (fake camera; headless Chromium captures its own window,
when ``--auto-select-desktop-capture-source`` picks it): the specialist's screen
reaches the patient in place of the camera and the camera comes back after; the browser's own
"stop sharing", audio only during a share, a peer joining during a share, a cancelled picker;
the patient has no button and may not capture the screen."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from playwright.async_api import Page, expect

from app.db import utcnow
from tests.browser.axe import axe_violations, report, require_axe
from tests.browser.conftest import Browsing
from tests.browser.helpers import appointment_with_link, log_in
from tests.browser.test_call_room import DESKTOP_1366, PHONE_390, call, on_call_page

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

CAMERA = (640, 480)  # Chromium's fake camera
SPECIALIST_VIDEO = "[data-remote] .tile[data-role=specialist] video"
# The size of the picture a video shows, once it is `size` (frames of the new source arrived).
SHOWS = """([selector, width, height]) => {
  const video = document.querySelector(selector);
  return video && video.videoWidth === width && video.videoHeight === height;
}"""
# Frames keep coming: the decoded frame count grows.
RECEIVING = """async (selector) => {
  const video = document.querySelector(selector);
  const before = video.getVideoPlaybackQuality().totalVideoFrames;
  await new Promise((resolve) => setTimeout(resolve, 1000));
  return video.getVideoPlaybackQuality().totalVideoFrames > before;
}"""
# Keeps the shared stream where the test can reach it (to end it as the browser's own "stop
# sharing" bar does) and lets the test decide how the picker answers.
# What the page asks of its video senders' encodings.
RECORD_PREFERENCES = """() => {
  window.preferences = [];
  const real = RTCRtpSender.prototype.setParameters;
  RTCRtpSender.prototype.setParameters = function (params, ...rest) {
    const scale = params.encodings?.[0]?.scaleResolutionDownBy ?? 1;
    window.preferences.push([params.degradationPreference || "default", scale]);
    return real.call(this, params, ...rest);
  };
}"""
KEEP_SCREEN = """() => {
  const real = navigator.mediaDevices.getDisplayMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getDisplayMedia = async (constraints) => {
    if (window.pickerAnswer) {
      window.pickerRefused = (window.pickerRefused || 0) + 1;
      throw new DOMException("picker", window.pickerAnswer);
    }
    window.sharedStream = await real(constraints);
    return window.sharedStream;
  };
}"""


async def screen_of(page: Page) -> tuple[int, int]:
    """What sharing the screen captures: headless Chromium's screen is the window."""
    width, height = await page.evaluate("[screen.width, screen.height]")
    return width, height


async def shows(page: Page, selector: str, size: tuple[int, int]) -> None:
    await page.wait_for_function(SHOWS, arg=[selector, *size], timeout=20_000)
    assert await page.evaluate(RECEIVING, selector)


def share_button(page: Page) -> Any:
    return page.get_by_role("button", name="Bildschirm teilen")


async def test_screen_share_reaches_the_patient_and_the_camera_comes_back(
    browsing: Browsing, screenshot: Callable[[Page, str], Any]
) -> None:
    require_axe()
    room = await call(browsing, patient_viewport=PHONE_390, with_gp=False)
    specialist, patient = room.specialist, room.patient
    tile = patient.locator("[data-remote] .tile[data-role=specialist]")
    await shows(patient, SPECIALIST_VIDEO, CAMERA)

    button = share_button(specialist)
    await expect(button).to_have_attribute("aria-pressed", "false")
    await specialist.evaluate(RECORD_PREFERENCES)
    await button.click()
    await expect(button).to_have_attribute("aria-pressed", "true")
    # The specialist sees a sentence instead of a mirror of the screen.
    await expect(specialist.locator("[data-self]")).to_contain_text("Sie teilen Ihren Bildschirm")
    await expect(specialist.locator("[data-self] video")).to_be_hidden()
    # The patient: the screen in the specialist's tile, whole, at its own resolution.
    await expect(tile).to_have_attribute("data-screen-sharing", "true")
    await expect(tile.get_by_text("Teilt den Bildschirm")).to_be_visible()
    await shows(patient, SPECIALIST_VIDEO, await screen_of(specialist))
    fit = await patient.locator(SPECIALIST_VIDEO).evaluate("(v) => getComputedStyle(v).objectFit")
    assert fit == "contain"
    # A screen's text stays sharp: on a weak line the frame rate goes, not the resolution.
    # (The adaptive quality changes the same sender every 2 s: never its resolution then.)
    during = await specialist.evaluate("window.preferences")
    assert during, "the sender was never told to keep the resolution"
    assert all(entry == ["maintain-resolution", 1] for entry in during), during
    for page in (specialist, patient):
        violations = await axe_violations(page)
        assert violations == [], report(violations)
    await specialist.set_viewport_size({"width": 1366, "height": 900})
    await screenshot(specialist, "screen-share-specialist-1366")
    await screenshot(patient, "screen-share-patient-390")

    await button.click()
    await expect(button).to_have_attribute("aria-pressed", "false")
    await expect(tile).to_have_attribute("data-screen-sharing", "false")
    await expect(tile.get_by_text("Teilt den Bildschirm")).to_be_hidden()
    await expect(specialist.locator("[data-self] video")).to_be_visible()
    await shows(patient, SPECIALIST_VIDEO, CAMERA)
    preferences = await specialist.evaluate("window.preferences")
    assert preferences[: len(during)] == during
    assert preferences[-1][0] == "default", preferences

    # The patient has no button, and her page may not capture the screen at all.
    await expect(patient.locator("[data-share]")).to_have_count(0)
    refused = await patient.evaluate(
        "navigator.mediaDevices.getDisplayMedia({video: true}).then(() => 'shared', (e) => e.name)"
    )
    assert refused == "NotAllowedError"
    response = await patient.request.get("/join")
    assert "display-capture=()" in response.headers["permissions-policy"]
    assert browsing.csp_violations() == []


async def test_screen_share_ended_by_the_browser_and_audio_only_meanwhile(
    browsing: Browsing,
) -> None:
    room = await call(browsing, patient_viewport=PHONE_390, with_gp=False)
    specialist, patient = room.specialist, room.patient
    tile = patient.locator("[data-remote] .tile[data-role=specialist]")
    await specialist.evaluate(KEEP_SCREEN)
    await share_button(specialist).click()
    await shows(patient, SPECIALIST_VIDEO, await screen_of(specialist))

    # Audio only releases the camera; the screen goes on.
    audio_only = specialist.get_by_role("button", name="Nur Ton")
    await audio_only.click()
    await expect(audio_only).to_have_attribute("aria-pressed", "true")
    await expect(tile).to_have_attribute("data-audio-only", "true")
    await expect(patient.locator(SPECIALIST_VIDEO)).to_be_visible()
    assert await patient.evaluate(RECEIVING, SPECIALIST_VIDEO)

    # The browser's own "stop sharing" ends the track: the share stops, and with the camera
    # released the patient sees the name and "Nur Ton", not a frozen screen.
    await specialist.evaluate(
        "window.sharedStream.getVideoTracks()[0].dispatchEvent(new Event('ended'))"
    )
    await expect(share_button(specialist)).to_have_attribute("aria-pressed", "false")
    await expect(tile).to_have_attribute("data-screen-sharing", "false")
    await expect(tile.locator(".tile-note")).to_have_text("Nur Ton")
    ended = await specialist.evaluate("window.sharedStream.getVideoTracks()[0].readyState")
    assert ended == "ended"

    # The camera again: its picture, not the screen.
    await audio_only.click()
    await expect(audio_only).to_have_attribute("aria-pressed", "false")
    await shows(patient, SPECIALIST_VIDEO, CAMERA)


async def test_screen_share_reaches_a_peer_who_joins_during_it(
    browsing: Browsing, screenshot: Callable[[Page, str], Any]
) -> None:
    room = await call(browsing, patient_viewport=PHONE_390, with_gp=False)
    specialist, patient = room.specialist, room.patient
    await share_button(specialist).click()
    await shows(patient, SPECIALIST_VIDEO, await screen_of(specialist))

    gp = await on_call_page(browsing, browsing.server.demo.gp, room.appointment_id, DESKTOP_1366)
    await expect(gp.locator("[data-remote] video")).to_have_count(2, timeout=30_000)
    await shows(gp, SPECIALIST_VIDEO, await screen_of(specialist))
    gp_tile = gp.locator("[data-remote] .tile[data-role=specialist]")
    await expect(gp_tile.get_by_text("Teilt den Bildschirm")).to_be_visible()

    # The screen takes most of the stage, the others in a column beside it or a row below it.
    for page in (gp, patient):
        grid = page.locator("[data-remote]")
        await expect(grid).to_have_attribute("data-focus", re.compile("^(side|below)$"))
        big = await page.locator("[data-remote] .tile.focused").bounding_box()
        small = await page.locator("[data-remote] .tile:not(.focused)").bounding_box()
        assert big is not None
        assert small is not None
        # Most of the stage: at least three quarters of what the tiles cover.
        assert big["width"] * big["height"] >= 3 * small["width"] * small["height"], (big, small)
    await screenshot(patient, "screen-share-three-way-patient-390")
    await gp.set_viewport_size({"width": 1366, "height": 900})
    await screenshot(gp, "screen-share-three-way-gp-1366")

    await share_button(specialist).click()
    await expect(gp.locator("[data-remote]")).not_to_have_attribute("data-focus", re.compile("."))
    await shows(gp, SPECIALIST_VIDEO, CAMERA)


async def test_screen_share_picker_cancelled_or_failing(browsing: Browsing) -> None:
    room = await call(browsing, patient_viewport=PHONE_390, with_gp=False)
    specialist = room.specialist
    button = share_button(specialist)
    await specialist.evaluate(KEEP_SCREEN)
    # Cancelled: nothing changes, no message.
    await specialist.evaluate("window.pickerAnswer = 'NotAllowedError'")
    await button.click()
    # The picker answered and the page has dealt with it (the button is no longer busy).
    await specialist.wait_for_function("window.pickerRefused === 1")
    await expect(button).not_to_have_attribute("aria-busy", "true")
    await expect(button).to_have_attribute("aria-pressed", "false")
    await expect(specialist.locator("[data-chat-log] li")).to_have_count(0)
    # Another failure: a short notice in the chat, still not sharing.
    await specialist.evaluate("window.pickerAnswer = 'NotReadableError'")
    await button.click()
    await expect(specialist.locator("[data-chat-log]")).to_contain_text(
        "Der Bildschirm konnte nicht geteilt werden."
    )
    await expect(button).to_have_attribute("aria-pressed", "false")


async def test_screen_share_button_only_where_the_browser_can_share(browsing: Browsing) -> None:
    server = browsing.server
    appointment_id, _token = await appointment_with_link(
        server.sessions,
        gp=server.demo.gp,
        specialist=server.demo.specialist,
        starts_at=utcnow() + timedelta(minutes=5),
    )
    specialist = await on_call_page(browsing, server.demo.specialist, appointment_id)
    await expect(share_button(specialist)).to_be_visible()
    await expect(share_button(specialist)).to_have_attribute("aria-pressed", "false")
    # A phone's browser has no getDisplayMedia: no button.
    phone = await browsing.new_page(viewport=PHONE_390)
    await phone.add_init_script("delete MediaDevices.prototype.getDisplayMedia")
    await log_in(phone, server.demo.gp, f"/call/{appointment_id}")
    await expect(phone.get_by_role("button", name="Stummschalten")).to_be_visible()
    await expect(phone.locator("[data-share]")).to_be_hidden()
