"""Hostile clients through the proxy, each a patient in a room of its own: one that stops
reading, one flooding messages, one sending an oversized frame, one sending garbage.

``test_hostile`` sets them on beside live calls all at once; ``hostile_clients`` keeps the
flooder, the oversized-frame sender and the garbage sender busy, reconnecting when closed,
while a fault scenario (rolling restart, Redis down) does its work, and tallies what they got.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Origin

from tests.chaos.calls import staff_cookie
from tests.chaos.harness import Cluster, until
from tests.factories import make_appointment, patient_token
from tests.signaling.wsclient import raw_websocket

WAIT = 30.0
# An offer as large as the protocol allows, a burst of them within the rate limit's burst,
# then one every OFFER_GAP (within its rate).
SDP = "v=0\r\n" + "a=x-fill:" + "f" * 59_000 + "\r\n"
OFFER_BURST = 150
OFFER_GAP = 0.04
# Between two acts (and two connections) of one hostile client during a fault: often enough
# to act in every phase of it, seldom enough not to load the busy machine much.
PAUSE = 1.0


class Hostile:
    """A raw websocket of a patient in a room of its own, joined; and its room's details.
    ``heard`` is told the code of each ``error`` message it reads."""

    def __init__(
        self,
        ws: ClientConnection,
        appointment: int,
        participant_id: str,
        heard: Callable[[str], None] = lambda code: None,
    ) -> None:
        self.ws = ws
        self.appointment = appointment
        self.participant_id = participant_id
        self.heard = heard

    async def until(self, kind: str) -> dict[str, Any]:
        async with asyncio.timeout(WAIT):
            while True:
                message: dict[str, Any] = json.loads(await self.ws.recv())
                if message["type"] == "error":
                    self.heard(str(message["code"]))
                if message["type"] == kind:
                    return message

    async def close_code(self) -> int | None:
        """Reads everything left; the code of the close frame that ended it (None: none)."""
        async with asyncio.timeout(WAIT):
            try:
                while True:
                    message = json.loads(await self.ws.recv())
                    if message["type"] == "error":
                        self.heard(str(message["code"]))
            except ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd is not None else None


@asynccontextmanager
async def room(
    konsil: Cluster,
    *,
    sluggish: bool = False,
    specialist_id: int | None = None,
    heard: Callable[[str], None] = lambda code: None,
) -> AsyncIterator[Hostile]:
    appointment = await make_appointment(konsil.sessions, konsil.demo, specialist_id=specialist_id)
    assert appointment.id is not None
    token = await patient_token(konsil.sessions, konsil.settings, appointment)
    async with raw_websocket(
        konsil.proxy,
        f"as=patient&appointment={appointment.id}",
        f"konsil_patient={token}",
        origin=konsil.proxy.url,
        sluggish=sluggish,
    ) as ws:
        await ws.send(json.dumps({"type": "join"}))
        hostile = Hostile(ws, appointment.id, "", heard)
        hostile.participant_id = (await hostile.until("joined"))["participant_id"]
        yield hostile


async def stop_reading(konsil: Cluster, slow: Hostile) -> int | None:
    """The slow reader's specialist admits it and sends it large offers it never reads; once
    the server has given it up (the specialist sees it reconnecting), it reads again."""
    cookie = await staff_cookie(konsil, konsil.demo.specialist)
    async with connect(
        f"{konsil.proxy.ws}?as=staff&appointment={slow.appointment}",
        origin=Origin(konsil.proxy.url),
        additional_headers=Headers(Cookie=cookie),
        compression=None,
    ) as staff:
        specialist = Hostile(staff, slow.appointment, "")
        await staff.send(json.dumps({"type": "join"}))
        await specialist.until("joined")
        await staff.send(json.dumps({"type": "admit"}))
        await specialist.until("peer_joined")
        offer = json.dumps({"type": "offer", "to": slow.participant_id, "sdp": SDP})
        # The proxy's and the kernel's buffers take megabytes before the server's own send
        # queue fills: a burst, then offers at a pace within the rate limit, until then.
        for _ in range(OFFER_BURST):
            await staff.send(offer)
        given_up = asyncio.create_task(reconnecting(specialist))
        async with asyncio.timeout(WAIT):
            while not given_up.done():
                await staff.send(offer)
                await asyncio.sleep(OFFER_GAP)
        await given_up
    return await slow.close_code()


async def reconnecting(specialist: Hostile) -> None:
    while (await specialist.until("peer_state"))["connection"] != "reconnecting":
        pass


async def flood(flooder: Hostile) -> int | None:
    state = {"muted": False, "camera_off": False, "audio_only": False, "screen_sharing": False}
    frame = json.dumps({"type": "media_state", **state})
    with suppress(ConnectionClosed):  # closed while still sending: the code is read below
        for _ in range(600):
            await flooder.ws.send(frame)
    return await flooder.close_code()


async def send_oversized(oversized: Hostile) -> int | None:
    await oversized.ws.send(json.dumps({"type": "chat", "text": "x" * 100_000}))
    return await oversized.close_code()


async def send_garbage(garbage: Hostile) -> str:
    await garbage.ws.send("this is not json {")
    error = await garbage.until("error")
    return str(error["code"])


# --- acting throughout a fault -------------------------------------------------------------


@dataclass
class Tally:
    """What each kind of hostile client got: ``close N`` (``close none``: the connection ended
    without a close frame), ``error CODE``, ``HTTP N`` or ``proxy 503`` (handshake refused), or
    the name of an exception; and how many connections each had joined."""

    got: dict[str, Counter[str]] = field(default_factory=dict)
    joined: Counter[str] = field(default_factory=Counter)

    def add(self, kind: str, *outcomes: str) -> None:
        self.got.setdefault(kind, Counter()).update(outcomes)

    def snapshot(self) -> dict[str, Counter[str]]:
        return {kind: Counter(got) for kind, got in self.got.items()}

    def since(self, earlier: dict[str, Counter[str]]) -> dict[str, Counter[str]]:
        """What each got after ``earlier`` (a ``snapshot``)."""
        return {kind: self.got.get(kind, Counter()) - earlier.get(kind, Counter()) for kind in ACTS}

    def unexpected(self, allowed: set[str]) -> dict[str, list[str]]:
        """Per kind, what it got beside its own answer (``ANSWERS``) and ``allowed``."""
        return {
            kind: sorted(set(got) - {ANSWERS[kind]} - allowed)
            for kind, got in self.got.items()
            if set(got) - {ANSWERS[kind]} - allowed
        }

    def lines(self) -> list[str]:
        """Per kind: how many connections it joined and what it got, in words."""
        return [f"{kind} ({self.joined[kind]} joined): {said(self.got.get(kind))}" for kind in ACTS]


def said(got: Counter[str] | None) -> str:
    return ", ".join(f"`{what}` ×{n}" for what, n in sorted((got or {}).items())) or "nothing"


def _refused(exc: InvalidStatus) -> str:
    """``proxy 503``: HAProxy's own answer when it has no instance up; ``HTTP N`` otherwise."""
    response = exc.response
    if response.status_code == 503 and b"No server is available" in (response.body or b""):
        return "proxy 503"
    return f"HTTP {response.status_code}"


def _closed(code: int | None) -> str:
    return f"close {'none' if code is None else code}"


async def _flood(hostile: Hostile, stop: asyncio.Event) -> str | None:
    return _closed(await flood(hostile))


async def _oversized(hostile: Hostile, stop: asyncio.Event) -> str | None:
    return _closed(await send_oversized(hostile))


async def _garbage(hostile: Hostile, stop: asyncio.Event) -> str | None:
    """Garbage again and again on one connection until it is closed or the block ends (each
    answer is ``heard``)."""
    while True:
        await send_garbage(hostile)
        if await _paused(stop):
            return None


ACTS: dict[str, Callable[[Hostile, asyncio.Event], Awaitable[str | None]]] = {
    "flooder": _flood,
    "oversized frame": _oversized,
    "garbage": _garbage,
}
# What each gets for what it does when nothing else happens.
ANSWERS = {
    "flooder": "close 4429",
    "oversized frame": "close 1009",
    "garbage": "error invalid_message",
}


async def _paused(stop: asyncio.Event) -> bool:
    """Waits PAUSE seconds, or less if stopped meanwhile; whether it was."""
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), PAUSE)
    return stop.is_set()


async def _keep_at(konsil: Cluster, kind: str, tally: Tally, stop: asyncio.Event) -> None:
    act = ACTS[kind]
    while not stop.is_set():
        outcome: str | None = None
        try:
            async with room(
                konsil,
                specialist_id=konsil.demo.dermatologist.id,
                heard=lambda code: tally.add(kind, f"error {code}"),
            ) as hostile:
                tally.joined[kind] += 1
                if await _paused(stop):
                    return
                outcome = await act(hostile, stop)
        except InvalidStatus as exc:
            outcome = _refused(exc)
        except ConnectionClosed as exc:
            outcome = _closed(exc.rcvd.code if exc.rcvd is not None else None)
        except (InvalidHandshake, OSError, TimeoutError) as exc:
            outcome = type(exc).__name__
        if outcome is not None:
            tally.add(kind, outcome)
        await _paused(stop)


@asynccontextmanager
async def hostile_clients(konsil: Cluster) -> AsyncIterator[Tally]:
    """While the block runs, a flooder, an oversized-frame sender and a garbage sender act
    through the proxy, each a patient of the dermatologist (whose queue nobody else is in),
    in a new room at each connection, again after each close. Each has joined once when the
    block starts; when it ends they stop (an act still on its way is cut short)."""
    tally = Tally()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_keep_at(konsil, kind, tally, stop)) for kind in ACTS]
    try:
        await until(
            lambda: all(tally.joined[k] or t.done() for k, t in zip(ACTS, tasks, strict=True)),
            WAIT,
            "hostile clients joined",
        )
        yield tally
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if any(not isinstance(e, asyncio.CancelledError) for e in errors):
        raise next(e for e in errors if not isinstance(e, asyncio.CancelledError))
