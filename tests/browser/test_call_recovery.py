"""The offering side's ICE restart after a failed media path (frontend/static/call.js,
recoverPath; docs/protocol.md, Resume and ICE restart), in real Chromium, in the two cases where
it used to give up: the failure was seen while an offer was out, and the restart could not be
sent because the websocket was down; and that an answered restart stays the failure's only one.

A real failure takes a network cut and its own pace (tests/browser/test_call_quality.py); here
the test holds the specialist's peer connection "failed" the way Chromium reports a vanished
network (connectionState only), and while it does, withholds the browser's own state events, as
a dead path sends none. Signalling goes through the test (a routed websocket), which can hold
back an answer, drop the server's ``renegotiate``, and cut the websocket. Every step waits for
something the page did; nothing is timed.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from playwright.async_api import Page, WebSocketRoute, expect

from app.db import utcnow
from tests.browser.conftest import Browsing
from tests.browser.helpers import appointment_with_link, eventually, log_in, wait_for_video
from tests.browser.test_call_room import enter_waiting_room

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

# Runs before the page's modules. ``__failPath(true)`` holds every peer connection "failed" (in
# connectionState, as Chromium does when a network goes away) and tells the page, as the browser
# would; meanwhile the browser's own state events are withheld. ``__failPath(false)`` lets go.
# Both resolve after the page has run what the event started, with the number of ICE-restart
# offers the page has created so far.
FAIL_PATH = """(() => {
  const Original = window.RTCPeerConnection;
  const STATE_EVENTS = new Set(["connectionstatechange", "iceconnectionstatechange"]);
  window.__connections = [];
  window.__restarts = 0;
  window.RTCPeerConnection = class extends Original {
    constructor(...args) {
      super(...args);
      this.__failed = false;
      window.__connections.push(this);
    }
    get connectionState() {
      return this.__failed ? "failed" : super.connectionState;
    }
    addEventListener(type, listener, options) {
      if (!STATE_EVENTS.has(type)) return super.addEventListener(type, listener, options);
      return super.addEventListener(type, (event) => {
        if (!this.__failed || !event.isTrusted) listener.call(this, event);
      }, options);
    }
    createOffer(options) {
      if (options && options.iceRestart) window.__restarts += 1;
      return super.createOffer(options);
    }
  };
  window.__failPath = async (failed) => {
    for (const pc of window.__connections) {
      if (pc.signalingState === "closed") continue;
      pc.__failed = failed;
      pc.dispatchEvent(new Event("connectionstatechange"));
    }
    await new Promise((resolve) => setTimeout(resolve, 0));
    return window.__restarts;
  };
})();"""
SIGNALLING_STATE = """() => window.__connections.filter((c) => c.signalingState !== "closed")
  .map((c) => c.signalingState).join(",")"""


def parsed(message: str | bytes) -> dict[str, Any]:
    with contextlib.suppress(ValueError):
        body = json.loads(message)
        if isinstance(body, dict):
            return body
    return {}


def ice_ufrag(sdp: str) -> str:
    found = re.search(r"^a=ice-ufrag:(\S+)", sdp, re.MULTILINE)
    assert found, sdp
    return found.group(1)


@dataclass
class Signalling:
    """The specialist page's room websocket, relayed by the test: what the page sent, and what
    the server sent it (``renegotiate`` dropped when ``drop_renegotiate``; answers held while
    ``hold_answers`` until ``release()``). ``cut()`` closes it and refuses new connections until
    ``mend()``; the page keeps retrying and resumes."""

    hold_answers: bool = False
    drop_renegotiate: bool = False
    blocked: bool = False
    sent: list[dict[str, Any]] = field(default_factory=list)
    heard: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    held: list[tuple[WebSocketRoute, str | bytes]] = field(default_factory=list)
    sockets: list[tuple[WebSocketRoute, WebSocketRoute]] = field(default_factory=list)

    async def route(self, page: Page) -> None:
        await page.route_web_socket(re.compile(r"/ws\?.*appointment="), self._through)

    async def _through(self, route: WebSocketRoute) -> None:
        if self.blocked:
            await route.close(code=1001, reason="unreachable")
            return
        server = route.connect_to_server()
        self.sockets.append((route, server))
        route.on_message(lambda message: self._up(server, message))
        server.on_message(lambda message: self._down(route, message))

    def _up(self, server: WebSocketRoute, message: str | bytes) -> None:
        self.sent.append(parsed(message))
        server.send(message)

    def _down(self, route: WebSocketRoute, message: str | bytes) -> None:
        body = parsed(message)
        kind = body.get("type")
        if kind == "renegotiate" and self.drop_renegotiate:
            self.dropped.append(body)
            return
        if kind == "answer" and self.hold_answers:
            self.held.append((route, message))
            return
        self.heard.append(body)
        route.send(message)

    def offers(self) -> list[str]:
        return [m["sdp"] for m in self.sent if m.get("type") == "offer"]

    def answers(self) -> int:
        return sum(m.get("type") == "answer" for m in self.heard)

    def release(self) -> None:
        self.hold_answers = False
        for route, message in self.held:
            self.heard.append(parsed(message))
            route.send(message)
        self.held.clear()

    async def cut(self) -> None:
        self.blocked = True
        for route, server in self.sockets:
            await server.close(code=1001, reason="network gone")
            await route.close(code=1001, reason="network gone")
        self.sockets.clear()

    def mend(self) -> None:
        self.blocked = False


@dataclass
class Room:
    patient: Page
    specialist: Page


async def admitted(browsing: Browsing, signalling: Signalling) -> Room:
    """The patient waits; the specialist (the offering side, its websocket through
    ``signalling``) opens the call and admits her."""
    server = browsing.server
    appointment_id, token = await appointment_with_link(
        server.sessions,
        gp=server.demo.gp,
        specialist=server.demo.specialist,
        starts_at=utcnow() + timedelta(minutes=5),
    )
    patient = await browsing.new_page()
    await enter_waiting_room(patient, token)
    specialist = await browsing.new_page()
    await specialist.add_init_script(FAIL_PATH)
    await signalling.route(specialist)
    await log_in(specialist, server.demo.specialist, f"/call/{appointment_id}")
    await specialist.get_by_role("button", name="Patient/in hereinholen").click()
    return Room(patient, specialist)


async def fail_path(page: Page, failed: bool) -> int:
    restarts = await page.evaluate("(failed) => window.__failPath(failed)", failed)
    assert isinstance(restarts, int)
    return restarts


async def call_is_back(room: Room) -> None:
    for page in (room.patient, room.specialist):
        await wait_for_video(page, "[data-remote] video")
        await expect(page.locator("[data-call-status]")).to_have_text("Verbunden")


async def test_call_recovery_a_failure_while_the_offer_is_out_restarts_after_the_answer(
    browsing: Browsing,
) -> None:
    signalling = Signalling(hold_answers=True)
    room = await admitted(browsing, signalling)
    specialist = room.specialist
    # The specialist's offer is out, its answer held back by the network.
    await eventually(lambda: bool(signalling.held), "the patient's answer")
    assert await specialist.evaluate(SIGNALLING_STATE) == "have-local-offer"

    # The path fails meanwhile: no restart while the offer is out.
    assert await fail_path(specialist, True) == 0
    assert len(signalling.offers()) == 1

    # The answer comes and leaves the path failed: the specialist restarts ICE, once.
    signalling.release()
    await eventually(lambda: len(signalling.offers()) == 2, "an ICE-restart offer")
    first, restart = signalling.offers()
    assert ice_ufrag(restart) != ice_ufrag(first)
    await eventually(lambda: signalling.answers() == 2, "the answer to the restart")
    await specialist.wait_for_function(f"() => ({SIGNALLING_STATE})() === 'stable'")
    # More signs of the same failure: that restart was its one.
    assert await fail_path(specialist, True) == 1

    await fail_path(specialist, False)
    await call_is_back(room)
    assert len(signalling.offers()) == 2


async def test_call_recovery_a_restart_the_websocket_could_not_send_is_tried_again(
    browsing: Browsing,
) -> None:
    signalling = Signalling()
    room = await admitted(browsing, signalling)
    specialist = room.specialist
    await call_is_back(room)
    status = specialist.locator("[data-call-status]")

    # The specialist's websocket is down when the path fails: the restart cannot be sent, and
    # its offer is taken back (nobody would answer it).
    await signalling.cut()
    await expect(status).to_have_text("Verbindung unterbrochen, wird wiederhergestellt…")
    assert await fail_path(specialist, True) == 1
    await specialist.wait_for_function(f"() => ({SIGNALLING_STATE})() === 'stable'")
    offers = len(signalling.offers())

    # The websocket resumes, but the server's renegotiate is lost on the way.
    signalling.drop_renegotiate = True
    signalling.mend()
    await eventually(
        lambda: any(m.get("type") == "joined" and m.get("resumed") for m in signalling.heard),
        "the resumed join",
    )
    await eventually(lambda: bool(signalling.dropped), "the server's renegotiate")
    assert len(signalling.offers()) == offers

    # The next sign of the same failure restarts ICE, and this time the offer goes out.
    answers = signalling.answers()
    assert await fail_path(specialist, True) == 2
    await eventually(lambda: len(signalling.offers()) == offers + 1, "an ICE-restart offer")
    await eventually(lambda: signalling.answers() == answers + 1, "the answer to the restart")
    await specialist.wait_for_function(f"() => ({SIGNALLING_STATE})() === 'stable'")
    await fail_path(specialist, False)
    await call_is_back(room)


async def test_call_recovery_an_answered_restart_is_the_failures_one_restart(
    browsing: Browsing,
) -> None:
    signalling = Signalling()
    room = await admitted(browsing, signalling)
    specialist = room.specialist
    await call_is_back(room)

    # The specialist's websocket drops and resumes: the server's renegotiate makes her page
    # restart ICE. Its answer is held back, and the path fails meanwhile.
    await signalling.cut()
    await expect(specialist.locator("[data-call-status]")).to_have_text(
        "Verbindung unterbrochen, wird wiederhergestellt…"
    )
    signalling.hold_answers = True
    signalling.mend()
    await eventually(
        lambda: any(m.get("type") == "renegotiate" for m in signalling.heard), "renegotiate"
    )
    await eventually(lambda: bool(signalling.held), "the answer to the restart")
    offers = len(signalling.offers())
    assert await fail_path(specialist, True) == 1

    # The answer comes: that restart was this failure's, no second one on top of it.
    signalling.release()
    await specialist.wait_for_function(f"() => ({SIGNALLING_STATE})() === 'stable'")
    assert await fail_path(specialist, True) == 1
    await fail_path(specialist, False)
    await call_is_back(room)
    assert len(signalling.offers()) == offers
