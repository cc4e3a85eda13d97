"""The call room in real Chromium (fake camera and microphone, real server): who is who on the
tiles of a three-way call, the self-view beside (never over) the others, no sideways scrolling
on a small phone, the specialist's documents and report beside the call, the end confirmation,
the question before leaving, and the chat that survives a reload."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import websockets
from playwright.async_api import Dialog, Page, ViewportSize, WebSocketRoute, expect
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

from app.accounts.models import User
from app.db import unit_of_work, utcnow
from app.records.models import Document
from tests.browser.conftest import Browsing, LiveServer, seeded_live_server
from tests.browser.helpers import appointment_with_link, log_in, wait_for_video

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PHONE_390: dict[str, int] = {"width": 390, "height": 844}
PHONE_390_LANDSCAPE: dict[str, int] = {"width": 844, "height": 390}
PHONE_320: dict[str, int] = {"width": 320, "height": 640}
DESKTOP_1366: dict[str, int] = {"width": 1366, "height": 768}
PATIENT = "Erika Mustermann"
SPECIALIST_LABEL = "Prof. Dr. Maria Schulz · Kardiologie"
GP_LABEL = "Dr. Anna Lehmann · Hausärztin bzw. Hausarzt"
PATIENT_LABEL = "Erika Mustermann · Patient/in"
REPORT = "Verdacht auf Herzinsuffizienz NYHA II. Empfehlung: Echokardiographie, NT-proBNP."
# A remote video that plays on: its currentTime advances (a dropped call would freeze it).
ADVANCING = """async (selector) => {
  const video = document.querySelector(selector);
  const before = video.currentTime;
  await new Promise((resolve) => setTimeout(resolve, 700));
  return video.currentTime > before && video.videoWidth > 0;
}"""
# Boxes of the self-view, of every remote tile and of the stage.
BOXES = """() => {
  const box = (el) => {
    const r = el.getBoundingClientRect();
    return [r.left, r.top, r.right, r.bottom];
  };
  return {
    self: box(document.querySelector("[data-self]")),
    remotes: [...document.querySelectorAll("[data-remote] .tile")].map(box),
    stage: box(document.querySelector("[data-stage]")),
  };
}"""


# A copy of the first remote tile: the layout of a fourth participant's tile.
FOURTH_TILE = """() => {
  const grid = document.querySelector("[data-remote]");
  const copy = grid.firstElementChild.cloneNode(true);
  copy.dataset.peer = "p_fourthtile";
  grid.append(copy);
}"""


@pytest.fixture
def resume_seconds() -> int:
    """The server's resume window; a test that waits it out sets a short one (parametrize)."""
    return 30


@pytest.fixture
async def live(tmp_path: Path, resume_seconds: int) -> AsyncIterator[LiveServer]:
    """tests/browser/conftest.py's server, with the resume window of ``resume_seconds``."""
    async with seeded_live_server(
        tmp_path,
        ws_resume_seconds=resume_seconds,
    ) as server:
        yield server


@dataclass
class Relay:
    """A page's room websocket, relayed by the test to the server: ``cut()`` ends the server's
    end abruptly (the server sees a dropped connection, not a leave, and holds the seat) and the
    page's end (it tries to resume), and keeps new connections out until ``mend()``."""

    server: LiveServer
    blocked: bool = False
    upstreams: list[ClientConnection] = field(default_factory=list)
    routes: list[WebSocketRoute] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def route(self, page: Page) -> None:
        async def through(route: WebSocketRoute) -> None:
            if self.blocked:
                await route.close(code=1001, reason="unreachable")
                return
            cookies = await page.context.cookies(self.server.url)
            cookie = "; ".join(f"{c['name']}={c['value']}" for c in cookies)
            path = route.url.split("/ws", 1)[1]
            upstream = await connect(
                f"{self.server.url.replace('http', 'ws', 1)}/ws{path}",
                origin=Origin(self.server.url),
                additional_headers={"Cookie": cookie},
                compression=None,
            )
            outbox: asyncio.Queue[str | bytes] = asyncio.Queue()
            route.on_message(outbox.put_nowait)
            self.upstreams.append(upstream)
            self.routes.append(route)
            self.tasks += [
                asyncio.create_task(self._up(outbox, upstream)),
                asyncio.create_task(self._down(upstream, route)),
            ]

        await page.route_web_socket(re.compile(r"/ws\?.*appointment="), through)

    async def _up(self, outbox: asyncio.Queue[str | bytes], upstream: ClientConnection) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await upstream.send(await outbox.get())

    async def _down(self, upstream: ClientConnection, route: WebSocketRoute) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in upstream:
                route.send(message)

    async def cut(self) -> None:
        self.blocked = True
        for upstream in self.upstreams:
            upstream.transport.abort()
        for route in self.routes:
            await route.close(code=1001, reason="network gone")
        self.upstreams.clear()
        self.routes.clear()

    def mend(self) -> None:
        self.blocked = False

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for upstream in self.upstreams:
            upstream.transport.abort()


@pytest.fixture
async def relay(browsing: Browsing) -> AsyncIterator[Relay]:
    through = Relay(browsing.server)
    yield through
    await through.close()


@dataclass
class ThreeWay:
    appointment_id: int
    patient: Page
    specialist: Page
    gp: Page | None


async def enter_waiting_room(page: Page, token: str) -> None:
    await page.goto(f"/join#{token}")
    await page.get_by_label("Ich bin mit der Video-Sprechstunde einverstanden").check()
    await page.get_by_role("button", name="Weiter", exact=True).click()
    await wait_for_video(page, "[data-preview]")
    await page.get_by_role("button", name="Weiter ins Wartezimmer").click()
    await expect(page.locator("[data-waiting-status]")).to_contain_text(
        "Sie sind im Wartezimmer", timeout=40_000
    )


async def on_call_page(
    browsing: Browsing,
    user: User,
    appointment_id: int,
    viewport: dict[str, int] = DESKTOP_1366,
    relay: Relay | None = None,
) -> Page:
    page = await browsing.new_page(viewport=viewport)
    if relay:
        await relay.route(page)
    await log_in(page, user, f"/call/{appointment_id}")
    await expect(page.locator("[data-call-status]")).not_to_have_text("Verbinde…")
    return page


async def add_document(browsing: Browsing, appointment_id: int, name: str) -> None:
    """A PDF the GP attached to the booking (written directly: the upload has its own test)."""
    data = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    gp_id = browsing.server.demo.gp.id
    assert gp_id is not None
    async with unit_of_work(browsing.server.sessions) as session:
        session.add(
            Document(
                appointment_id=appointment_id,
                uploaded_by=gp_id,
                filename=name,
                content_type="application/pdf",
                size=len(data),
                data=data,
            )
        )


async def call(
    browsing: Browsing,
    *,
    patient_viewport: dict[str, int],
    with_gp: bool = True,
    gp_viewport: dict[str, int] = DESKTOP_1366,
    specialist_relay: Relay | None = None,
) -> ThreeWay:
    """The patient waits, the specialist admits her, the booking GP joins: everybody sees
    the others' video."""
    server = browsing.server
    appointment_id, token = await appointment_with_link(
        server.sessions,
        gp=server.demo.gp,
        specialist=server.demo.specialist,
        starts_at=utcnow() + timedelta(minutes=5),
        patient_name=PATIENT,
    )
    await add_document(browsing, appointment_id, "EKG_Ruhe.pdf")
    await add_document(browsing, appointment_id, "Arztbrief_Hausarzt.pdf")
    patient = await browsing.new_page(viewport=patient_viewport)
    await enter_waiting_room(patient, token)
    specialist = await on_call_page(
        browsing, server.demo.specialist, appointment_id, relay=specialist_relay
    )
    await specialist.get_by_role("button", name="Patient/in hereinholen").click()
    await expect(patient.locator("[data-step=call]")).to_be_visible()
    gp = None
    remotes = 1
    if with_gp:
        gp = await on_call_page(browsing, server.demo.gp, appointment_id, gp_viewport)
        remotes = 2
        await expect(gp.locator("[data-remote] video")).to_have_count(2, timeout=30_000)
        await wait_for_video(gp, "[data-remote] video")
    for page in (patient, specialist):
        await expect(page.locator("[data-remote] video")).to_have_count(remotes, timeout=30_000)
        await wait_for_video(page, "[data-remote] video")
    return ThreeWay(appointment_id, patient, specialist, gp)


def overlaps(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


async def assert_self_view_beside_the_others(page: Page, remotes: int) -> None:
    boxes = await page.evaluate(BOXES)
    assert len(boxes["remotes"]) == remotes
    for remote in boxes["remotes"]:
        assert not overlaps(boxes["self"], remote), (boxes["self"], remote)
    assert not overlaps(boxes["self"], boxes["stage"]), "the self-view is outside the stage"


async def assert_no_sideways_scrolling(page: Page) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    viewport = await page.evaluate("window.innerWidth")
    assert width <= viewport, f"the page is {width} px wide on a {viewport} px screen"


async def test_call_room_three_way_shows_who_is_who_on_a_phone(
    browsing: Browsing, screenshot: Callable[[Page, str], Any]
) -> None:
    room = await call(browsing, patient_viewport=PHONE_390)
    patient, specialist, gp = room.patient, room.specialist, room.gp
    assert gp is not None
    tiles = patient.locator("[data-remote] .tile")
    await expect(tiles.filter(has_text=SPECIALIST_LABEL)).to_have_count(1)
    await expect(tiles.filter(has_text=GP_LABEL)).to_have_count(1)
    await expect(specialist.locator("[data-remote] .tile")).to_contain_text(
        [PATIENT_LABEL, GP_LABEL], ignore_case=False
    )
    gp_tiles = gp.locator("[data-remote] .tile")
    await expect(gp_tiles.filter(has_text=PATIENT_LABEL)).to_have_count(1)
    await expect(gp_tiles.filter(has_text=SPECIALIST_LABEL)).to_have_count(1)
    # The fake microphone beeps: the tile of whoever makes a sound gets the speaking outline.
    await expect(tiles.filter(has_text=SPECIALIST_LABEL)).to_have_attribute("data-speaking", "true")
    # The call timer runs from the first connection.
    await expect(patient.locator("[data-call-timer]")).to_have_text(re.compile(r"^0:\d\d$"))

    await assert_self_view_beside_the_others(patient, 2)
    await assert_self_view_beside_the_others(specialist, 2)
    await assert_no_sideways_scrolling(patient)
    await screenshot(patient, "call-three-way-phone-390")

    await patient.set_viewport_size(ViewportSize(**PHONE_390_LANDSCAPE))  # type: ignore[typeddict-item]
    await patient.evaluate("document.querySelector('[data-call-main]').scrollIntoView()")
    await expect(patient.locator("[data-remote]")).to_have_attribute("data-count", "2")
    await assert_self_view_beside_the_others(patient, 2)
    await assert_no_sideways_scrolling(patient)

    # Four participants (three remote tiles; a guest is not in this round): one column on a
    # phone held upright, 2 × 2 on the desktop, nothing under the self-view.
    for page, viewport, columns in (
        (patient, PHONE_390, "1"),
        (specialist, {"width": 1366, "height": 770}, "2"),
    ):
        await page.evaluate(FOURTH_TILE)
        await page.set_viewport_size(ViewportSize(**viewport))  # type: ignore[typeddict-item]
        grid = page.locator("[data-remote]")
        await expect(grid).to_have_attribute("data-count", "3")
        assert await grid.evaluate("(g) => g.style.getPropertyValue('--cols')") == columns
        await assert_self_view_beside_the_others(page, 3)
        await assert_no_sideways_scrolling(page)
        boxes = await page.evaluate(BOXES)
        stage = boxes["stage"]
        for tile in boxes["remotes"]:
            left, top, right, bottom = tile
            assert stage[0] <= left, (tile, stage)
            assert stage[1] <= top, (tile, stage)
            assert right <= stage[2] + 0.5, (tile, stage)
            assert bottom <= stage[3] + 0.5, (tile, stage)
            assert tile[3] - tile[1] >= 120, "each tile keeps a useful height"
    assert browsing.csp_violations() == []


async def test_call_room_report_is_written_beside_the_call_without_dropping_it(
    browsing: Browsing, screenshot: Callable[[Page, str], Any]
) -> None:
    room = await call(browsing, patient_viewport=PHONE_390)
    specialist, patient = room.specialist, room.patient
    documents = specialist.locator("[data-documents]")
    await expect(documents.get_by_role("link", name="EKG_Ruhe.pdf")).to_have_attribute(
        "download", "EKG_Ruhe.pdf"
    )
    await expect(documents.get_by_role("link", name="Arztbrief_Hausarzt.pdf")).to_be_visible()
    url = specialist.url

    await specialist.get_by_role("button", name="Befund schreiben").click()
    report = specialist.get_by_label("Befund und Empfehlung")
    await expect(report).to_be_focused()
    await report.fill(REPORT)
    await specialist.get_by_role("button", name="Befund speichern").click()
    await expect(specialist.locator("[data-report-saved]")).to_contain_text("Gespeichert")
    await screenshot(specialist, "call-specialist-documents-report-1366")
    # Still the same page and the same call: the videos play on at both ends.
    assert specialist.url == url
    assert await specialist.evaluate(ADVANCING, "[data-remote] video[data-peer-role=patient]")
    assert await patient.evaluate(ADVANCING, "[data-remote] video[data-peer-role=specialist]")
    await expect(specialist.locator("[data-call-status]")).to_have_text("Verbunden")
    await assert_self_view_beside_the_others(specialist, 2)

    # The GP reads it on the booking.
    assert room.gp is not None
    reader = await browsing.new_page()
    await log_in(reader, browsing.server.demo.gp, f"/gp/appointments/{room.appointment_id}")
    await expect(reader.locator("[data-report]")).to_contain_text(REPORT)
    assert browsing.csp_violations() == []


async def test_call_room_asks_before_ending_or_leaving_the_call(browsing: Browsing) -> None:
    room = await call(browsing, patient_viewport=PHONE_390, with_gp=False)
    specialist, patient = room.specialist, room.patient

    # "Konsil beenden" asks first; "Gespräch fortsetzen" keeps the call.
    await specialist.get_by_role("button", name="Konsil beenden").click()
    dialog = specialist.get_by_role("dialog", name="Konsil beenden?")
    await expect(dialog).to_be_visible()
    await dialog.get_by_role("button", name="Gespräch fortsetzen").click()
    await expect(dialog).to_be_hidden()
    assert await patient.evaluate(ADVANCING, "[data-remote] video")

    # Leaving the page during the call asks (beforeunload); staying keeps the call.
    async def stay(prompt: Dialog) -> None:
        await prompt.dismiss()

    specialist.on("dialog", stay)
    async with specialist.expect_event("dialog") as asked:
        await specialist.close(run_before_unload=True)
    assert (await asked.value).type == "beforeunload"
    assert not specialist.is_closed()
    assert await specialist.evaluate(ADVANCING, "[data-remote] video")
    specialist.remove_listener("dialog", stay)

    await specialist.get_by_role("button", name="Konsil beenden").click()
    await dialog.get_by_role("button", name="Konsil beenden").click()
    await expect(patient.locator("[data-ended-text]")).to_contain_text("beendet")
    await expect(specialist.locator("[data-call-ended]")).to_be_visible()
    # The report panel stays after the end.
    await expect(specialist.get_by_label("Befund und Empfehlung")).to_be_visible()


async def test_call_room_fits_a_320_px_phone(browsing: Browsing) -> None:
    room = await call(browsing, patient_viewport=PHONE_320, gp_viewport=PHONE_320)
    assert room.gp is not None
    for page in (room.patient, room.gp):
        await expect(page.locator("[data-remote] .tile")).to_have_count(2)
        await assert_no_sideways_scrolling(page)
        await assert_self_view_beside_the_others(page, 2)
    # Full screen: the Fullscreen API; without it (an iPhone) the call fills the window.
    patient = room.patient
    full = patient.get_by_role("button", name="Vollbild")
    await full.click()
    await expect(full).to_have_attribute("aria-pressed", "true")
    assert await patient.evaluate("document.fullscreenElement?.matches('[data-call-main]')")
    await full.click()
    await expect(full).to_have_attribute("aria-pressed", "false")
    await patient.wait_for_function("document.fullscreenElement === null")
    await patient.evaluate(
        "delete Element.prototype.requestFullscreen;"
        " delete Element.prototype.webkitRequestFullscreen"
    )
    await full.click()
    await expect(full).to_have_attribute("aria-pressed", "true")
    await expect(patient.locator("[data-call-main]")).to_have_class(re.compile(r"\bfilled\b"))
    box = await patient.locator("[data-call-main]").bounding_box()
    assert box == {"x": 0, "y": 0, "width": 320, "height": 640}
    await patient.keyboard.press("Escape")
    await expect(full).to_have_attribute("aria-pressed", "false")

    # Every control is whole on the screen and large enough to tap.
    for button in await room.patient.locator(".controls button").all():
        box = await button.bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= 320
        assert box["height"] >= 48


async def test_call_room_chat_survives_a_reload_and_goes_with_the_call(
    browsing: Browsing,
) -> None:
    room = await call(browsing, patient_viewport=PHONE_390, with_gp=False)
    patient, specialist = room.patient, room.specialist
    await patient.get_by_label("Nachricht").fill("Guten Tag, ich höre Sie gut.")
    await patient.get_by_role("button", name="Senden").click()
    await expect(specialist.locator("[data-chat-log]")).to_contain_text("ich höre Sie gut")
    await specialist.get_by_label("Nachricht").fill("Bitte halten Sie den Befund bereit.")
    await specialist.get_by_role("button", name="Senden").click()
    log = patient.locator("[data-chat-log] li")
    await expect(log).to_have_count(2)

    await patient.reload()
    await expect(patient.locator("[data-step=call]")).to_be_visible(timeout=30_000)
    await expect(log).to_have_text(
        [
            re.compile(r"^Sie \(\d\d:\d\d\): Guten Tag, ich höre Sie gut\.$"),
            re.compile(r"^Prof\. Dr\. Maria Schulz \(\d\d:\d\d\): Bitte halten Sie"),
        ]
    )
    await wait_for_video(patient, "[data-remote] video")
    # The server keeps nothing: the specialist's page has what it saw, nothing more.
    await expect(specialist.locator("[data-chat-log] li")).to_have_count(2)

    await patient.get_by_role("button", name="Auflegen").click()
    await expect(patient.locator("[data-step=ended]")).to_be_visible()
    key = f"konsil.chat.{room.appointment_id}"
    assert await patient.evaluate("(key) => sessionStorage.getItem(key)", key) is None


# ---------------------------------------------------------------- what the others see


async def test_call_room_mute_and_camera_off_are_seen_by_the_other_side(
    browsing: Browsing,
) -> None:
    room = await call(browsing, patient_viewport=PHONE_390, with_gp=False)
    patient, specialist = room.patient, room.specialist
    tile = specialist.locator("[data-remote] .tile[data-role=patient]")
    await expect(tile).to_have_attribute("data-muted", "false")
    await expect(tile.get_by_text("Mikrofon aus")).to_be_hidden()

    await patient.get_by_role("button", name="Stummschalten").click()
    await expect(tile).to_have_attribute("data-muted", "true")
    await expect(tile.get_by_text("Mikrofon aus")).to_be_visible()
    # The patient sees it on her own tile too.
    await expect(patient.locator("[data-self]").get_by_text("Mikrofon aus")).to_be_visible()

    await patient.get_by_role("button", name="Kamera aus").click()
    await expect(tile).to_have_attribute("data-camera-off", "true")
    await expect(tile.locator(".tile-placeholder")).to_be_visible()
    await expect(tile.locator(".tile-note")).to_have_text("Kamera aus")
    await expect(tile.locator(".tile-placeholder")).to_contain_text(PATIENT)
    await expect(tile.locator("video")).to_be_hidden()

    await patient.get_by_role("button", name="Stummschalten").click()
    await patient.get_by_role("button", name="Kamera aus").click()
    await expect(tile).to_have_attribute("data-muted", "false")
    await expect(tile).to_have_attribute("data-camera-off", "false")
    await expect(tile.locator(".tile-placeholder")).to_be_hidden()
    await expect(tile.locator("video")).to_be_visible()
    assert await specialist.evaluate(ADVANCING, "[data-remote] video[data-peer-role=patient]")
    assert browsing.csp_violations() == []


async def test_call_room_audio_only_shows_a_notice_not_a_frozen_frame(
    browsing: Browsing,
) -> None:
    room = await call(browsing, patient_viewport=PHONE_390, with_gp=False)
    patient, specialist = room.patient, room.specialist
    tile = patient.locator("[data-remote] .tile[data-role=specialist]")
    await specialist.get_by_role("button", name="Nur Ton").click()
    await expect(specialist.get_by_role("button", name="Nur Ton")).to_have_attribute(
        "aria-pressed", "true"
    )
    await expect(tile).to_have_attribute("data-audio-only", "true")
    # No last picture frozen on the tile: the name and "Nur Ton" instead.
    await expect(tile.locator("video")).to_be_hidden()
    await expect(tile.locator(".tile-note")).to_have_text("Nur Ton")
    await expect(tile.locator(".tile-placeholder")).to_contain_text("Prof. Dr. Maria Schulz")

    await specialist.get_by_role("button", name="Nur Ton").click()
    await expect(tile).to_have_attribute("data-audio-only", "false")
    await expect(tile.locator("video")).to_be_visible()
    assert await patient.evaluate(ADVANCING, "[data-remote] video[data-peer-role=specialist]")

    # A camera that dies without a word (no media_state): no frozen frame either.
    await specialist.evaluate(
        "document.querySelector('[data-local]').srcObject.getVideoTracks()[0].stop()"
    )
    # The page calls a picture stalled after 3 s without a new frame, checked once a second;
    # frames still in flight and a loaded machine come on top of that.
    await expect(tile.locator(".tile-note")).to_have_text("Zurzeit kein Bild", timeout=15_000)
    await expect(tile.locator("video")).to_be_hidden()


@pytest.mark.parametrize("resume_seconds", [5])
async def test_call_room_tells_a_left_peer_from_a_dropped_one(
    browsing: Browsing, relay: Relay
) -> None:
    room = await call(browsing, patient_viewport=PHONE_390, specialist_relay=relay)
    patient, specialist, gp = room.patient, room.specialist, room.gp
    assert gp is not None
    notice = patient.locator("[data-stage-notice]")

    # The GP hangs up: "left", at once, for both others.
    await gp.get_by_role("button", name="Gespräch verlassen").click()
    await expect(notice).to_have_text("Dr. Anna Lehmann hat das Gespräch verlassen.")
    await expect(specialist.locator("[data-stage-notice]")).to_have_text(
        "Dr. Anna Lehmann hat das Gespräch verlassen."
    )
    await expect(patient.locator("[data-remote] .tile")).to_have_count(1)

    # The specialist's network drops: a dropped connection, being restored, not "left".
    tile = patient.locator("[data-remote] .tile[data-role=specialist]")
    await relay.cut()
    await expect(tile).to_have_attribute("data-connection", "reconnecting")
    await expect(tile.locator(".tile-overlay")).to_have_text(
        "Verbindung zu Prof. Dr. Maria Schulz unterbrochen, wird wiederhergestellt…"
    )
    relay.mend()
    await expect(tile).to_have_attribute("data-connection", "connected", timeout=20_000)
    await expect(tile.locator(".tile-overlay")).to_be_hidden()

    # It drops for longer than the resume window: lost; and the patient, alone, is told
    # what to do instead of looking at a frozen face.
    await relay.cut()
    await expect(tile.locator(".tile-overlay")).to_be_visible()
    placeholder = patient.locator("[data-placeholder]")
    await expect(placeholder).to_contain_text(
        "Die Verbindung zu Prof. Dr. Maria Schulz ist abgebrochen.", timeout=20_000
    )
    await expect(patient.locator("[data-remote] .tile")).to_have_count(0)
    await expect(patient.locator("[data-placeholder-advice]")).to_contain_text(
        "Bitte bleiben Sie auf dieser Seite", timeout=20_000
    )
    await expect(patient.locator("[data-placeholder-advice]")).to_contain_text("Hausarztpraxis an")


@pytest.mark.parametrize("resume_seconds", [3])
async def test_call_room_specialist_closing_the_tab_has_left(browsing: Browsing) -> None:
    room = await call(browsing, patient_viewport=PHONE_390, with_gp=False)
    patient, specialist = room.patient, room.specialist

    async def leave(prompt: Dialog) -> None:
        await prompt.accept()

    specialist.on("dialog", leave)
    await specialist.close(run_before_unload=True)
    placeholder = patient.locator("[data-placeholder]")
    await expect(placeholder).to_contain_text("Prof. Dr. Maria Schulz hat das Gespräch verlassen.")
    await expect(patient.locator("[data-placeholder-advice]")).to_contain_text(
        "Die Ärztin bzw. der Arzt kann Sie wieder ins Gespräch holen", timeout=15_000
    )


async def test_call_room_specialist_sends_the_patient_back_and_admits_her_again(
    browsing: Browsing,
) -> None:
    room = await call(browsing, patient_viewport=PHONE_390)
    patient, specialist, gp = room.patient, room.specialist, room.gp
    assert gp is not None
    back = specialist.get_by_role("button", name="Zurück ins Wartezimmer")
    await back.click()

    await expect(patient.locator("[data-step=waiting]")).to_be_visible()
    await expect(patient.locator("[data-sent-back]")).to_contain_text("kurz ins Wartezimmer")
    await expect(patient.locator("[data-remote] .tile")).to_have_count(0)
    for staff in (specialist, gp):
        await expect(staff.locator("[data-remote] .tile")).to_have_count(1)
        await expect(staff.locator("[data-stage-notice]")).to_have_text(
            f"{PATIENT} ist wieder im Wartezimmer."
        )
    await expect(back).to_be_hidden()
    # The specialist and the GP talk on.
    assert await gp.evaluate(ADVANCING, "[data-remote] video[data-peer-role=specialist]")

    await specialist.get_by_role("button", name="Patient/in hereinholen").click()
    await expect(patient.locator("[data-step=call]")).to_be_visible()
    await expect(patient.locator("[data-remote] video")).to_have_count(2, timeout=30_000)
    await wait_for_video(patient, "[data-remote] video")
    await expect(patient.locator("[data-sent-back]")).to_be_hidden()
    await expect(back).to_be_visible()
