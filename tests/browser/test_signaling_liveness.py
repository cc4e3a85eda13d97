"""The page notices a dead signalling websocket by itself (frontend/static/signaling.js;
docs/protocol.md, Liveness), in real Chromium against the real server.

A dead spot leaves a websocket open but silent: nothing arrives, nothing is closed, and TCP
(or the server's keepalive) notices only much later. Here the page's room websocket goes
through the test (a routed websocket), which can fall silent both ways without closing
anything, and hold new connection attempts unopened, as when their SYN is lost in the cut.
The page's intervals are shortened by serving it ``signaling.js`` with smaller constants (the
module's own, nothing else changed). Every step waits for something the page or the server
did; nothing is timed. The rules themselves, step by step with a fake clock:
tests/frontend/test_signaling_liveness.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, Route, WebSocketRoute, expect

from app.db import utcnow
from tests.browser.conftest import Browsing
from tests.browser.helpers import appointment_with_link, eventually, log_in
from tests.browser.test_call_room import enter_waiting_room

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

SIGNALING = Path(__file__).resolve().parents[2] / "frontend" / "static" / "signaling.js"
# Short enough for a test, long enough that a busy machine's server answers a ping in time.
QUICK = {"IDLE_MS": 1500, "PONG_WAIT_MS": 2000, "PROBE_WAIT_MS": 2000, "OPEN_WAIT_MS": 3000}
ROOM = re.compile(r"/ws\?.*appointment=")
DASHBOARD = re.compile(r"/ws\?as=staff$")


def quick_signaling() -> str:
    """signaling.js with the ``QUICK`` values for its liveness constants."""
    text = SIGNALING.read_text()
    for name, value in QUICK.items():
        text, found = re.subn(
            rf"^const {name} = \d+;$", f"const {name} = {value};", text, flags=re.M
        )
        assert found == 1, f"signaling.js has no `const {name} = …;` line"
    return text


async def serve_quick_signaling(page: Page) -> None:
    body = quick_signaling()

    async def fulfill(route: Route) -> None:
        await route.fulfill(status=200, content_type="text/javascript; charset=utf-8", body=body)

    await page.route(re.compile(r"/static/(v-[^/]+/)?signaling\.js(\?.*)?$"), fulfill)


def parsed(message: str | bytes) -> dict[str, Any]:
    with contextlib.suppress(ValueError):
        body = json.loads(message)
        if isinstance(body, dict):
            return body
    return {}


@dataclass(eq=False)
class Socket:
    """One websocket the page opened, as the test relays it."""

    route: WebSocketRoute
    server: WebSocketRoute | None = None  # the route's server side, once connected
    silenced: bool = False
    page_closed: bool = False
    sent: list[dict[str, Any]] = field(default_factory=list)
    heard: list[dict[str, Any]] = field(default_factory=list)
    # What was not passed on while silenced, from the page and from the server.
    lost_up: list[dict[str, Any]] = field(default_factory=list)
    lost_down: list[dict[str, Any]] = field(default_factory=list)
    server_closed: list[int | None] = field(default_factory=list)

    def heard_kind(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.heard if m.get("type") == kind]


@dataclass
class Line:
    """The page's room websocket through the test. ``silence()``: the sockets there are pass
    nothing more, either way, and are not closed (a dead spot); new ones hang unopened until
    ``mend()``. A socket silenced stays so: its connection is gone for good."""

    pattern: re.Pattern[str] = ROOM
    silent: bool = False
    sockets: list[Socket] = field(default_factory=list)
    held: list[Socket] = field(default_factory=list)
    mended: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def route(self, page: Page) -> None:
        await page.route_web_socket(self.pattern, self._through)

    async def _through(self, route: WebSocketRoute) -> None:
        socket = Socket(route)
        self.sockets.append(socket)
        route.on_close(lambda code, reason: self._page_closed(socket))
        if self.silent:
            self.held.append(socket)
            await self.mended.wait()  # unopened meanwhile: the page sees it connecting
            if socket.page_closed:
                return  # given up by the page: it never opens
        server = route.connect_to_server()
        socket.server = server
        route.on_message(lambda message: self._up(socket, message))
        server.on_message(lambda message: self._down(socket, message))
        server.on_close(lambda code, reason: self._server_closed(socket, code, reason))

    def _up(self, socket: Socket, message: str | bytes) -> None:
        if socket.silenced:
            socket.lost_up.append(parsed(message))
            return
        socket.sent.append(parsed(message))
        assert socket.server is not None
        socket.server.send(message)

    def _down(self, socket: Socket, message: str | bytes) -> None:
        if socket.silenced:
            socket.lost_down.append(parsed(message))
            return
        socket.heard.append(parsed(message))
        socket.route.send(message)

    def _page_closed(self, socket: Socket) -> None:
        socket.page_closed = True
        if socket.server is not None and not socket.silenced:
            self.tasks.append(asyncio.create_task(socket.server.close()))

    def _server_closed(self, socket: Socket, code: int | None, reason: str | None) -> None:
        socket.server_closed.append(code)
        if not socket.silenced:
            self.tasks.append(asyncio.create_task(socket.route.close(code=code, reason=reason)))

    def silence(self) -> None:
        self.silent = True
        self.mended.clear()
        for socket in self.sockets:
            socket.silenced = True

    def mend(self) -> None:
        self.silent = False
        self.mended.set()

    def joined(self, *, resumed: bool) -> Socket | None:
        """The last socket on which the server said ``joined`` (a resumed one if ``resumed``)."""
        for socket in reversed(self.sockets):
            if any(bool(m.get("resumed")) == resumed for m in socket.heard_kind("joined")):
                return socket
        return None

    async def close(self) -> None:
        self.mended.set()  # a hanging handler ends with the test
        for task in self.tasks:
            with contextlib.suppress(Exception):
                await task


async def test_signaling_a_silent_websocket_is_given_up_and_resumed_on_a_new_one(
    browsing: Browsing,
) -> None:
    server = browsing.server
    _, token = await appointment_with_link(
        server.sessions,
        gp=server.demo.gp,
        specialist=server.demo.specialist,
        starts_at=utcnow() + timedelta(minutes=5),
    )
    line = Line()
    patient = await browsing.new_page()
    await serve_quick_signaling(patient)
    await line.route(patient)
    try:
        await enter_waiting_room(patient, token)
        call = patient.locator("[data-call]")
        await expect(call).to_have_attribute("data-connection", "alone")
        # A quiet waiting room: the page asks now and then, and is answered.
        await eventually(lambda: line.sockets[-1].heard_kind("pong"), "a pong")
        dead = line.sockets[-1]

        # A dead spot: nothing passes, nothing is closed.
        line.silence()
        await expect(call).to_have_attribute("data-connection", "lost")
        await eventually(lambda: dead.page_closed, "the page giving the silent socket up")
        # Its last word on it was a ping, and one ping was all it sent into the silence.
        assert (dead.sent + dead.lost_up)[-1].get("type") == "ping"
        assert sum(m.get("type") == "ping" for m in dead.lost_up) <= 1
        assert dead.server_closed == []  # the page noticed by itself; nobody told it

        # Its new attempts do not open (their SYN is lost): each is given up for a fresh one.
        await eventually(
            lambda: len(line.held) >= 2 and line.held[0].page_closed,
            "an attempt that did not open, replaced by a fresh one",
        )
        await expect(call).to_have_attribute("data-connection", "lost")

        # The network is back: the page resumes its seat on a new websocket.
        line.mend()
        await eventually(lambda: line.joined(resumed=True), "joined with resumed: true")
        fresh = line.joined(resumed=True)
        assert fresh is not None
        assert fresh is not dead
        assert fresh.sent[0].get("type") == "join"
        assert fresh.sent[0].get("resume")
        await expect(call).to_have_attribute("data-connection", "alone")
        await expect(patient.locator("[data-waiting-status]")).to_contain_text(
            "Sie sind im Wartezimmer"
        )

        # The server closes the old connection now that its seat was taken over (4409). That
        # close reaches the page late, on the socket it gave up: it changes nothing.
        await eventually(lambda: dead.server_closed, "the server closing the old socket")
        assert dead.server_closed == [4409]
        await dead.route.close(code=4409, reason="resumed on a newer connection")
        pongs = len(fresh.heard_kind("pong"))
        await eventually(lambda: len(fresh.heard_kind("pong")) > pongs, "a pong on the new one")
        await expect(call).to_have_attribute("data-connection", "alone")
        await expect(patient.locator("[data-waiting-status]")).to_contain_text(
            "Sie sind im Wartezimmer"
        )
        assert not fresh.page_closed
        assert fresh.server_closed == []
    finally:
        await line.close()


async def test_signaling_the_specialists_queue_gives_a_silent_websocket_up_too(
    browsing: Browsing,
) -> None:
    # A dashboard connection (no join): the same check, and the list is live again.
    line = Line(pattern=DASHBOARD)
    queue = await browsing.new_page()
    await serve_quick_signaling(queue)
    await line.route(queue)
    try:
        await log_in(queue, browsing.server.demo.specialist)
        await queue.goto("/specialist")
        status = queue.locator("[data-live-status]")
        await expect(status).to_have_text("Live: Die Liste aktualisiert sich selbst.")
        await eventually(lambda: line.sockets[-1].heard_kind("pong"), "a pong")
        dead = line.sockets[-1]

        line.silence()
        await expect(status).to_have_class(re.compile(r"\blost\b"))
        await eventually(lambda: dead.page_closed, "the page giving the silent socket up")
        assert dead.server_closed == []

        line.mend()
        await eventually(
            lambda: any(
                s.heard_kind("queue") for s in line.sockets[line.sockets.index(dead) + 1 :]
            ),
            "the queue on a new websocket",
        )
        await expect(status).to_have_text("Live: Die Liste aktualisiert sich selbst.")
        await expect(status).not_to_have_class(re.compile(r"\blost\b"))
    finally:
        await line.close()
