"""Hostile clients through the proxy, each a patient in a room of its own: one that stops
reading, one flooding messages, one sending an oversized frame, one sending garbage.

``test_hostile`` sets them on beside live calls all at once; ``hostile_clients`` keeps the
flooder, the oversized-frame sender and the garbage sender busy, reconnecting when closed,
while a fault scenario (rolling restart, Redis down, PostgreSQL restart, kill -9) does its
work, and tallies what they got, when, and from which instance.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Set
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import DBAPIError
from websockets.asyncio.client import ClientConnection, connect
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Origin

from tests.chaos.calls import staff_cookie
from tests.chaos.harness import Cluster
from tests.factories import make_appointment, patient_token
from tests.signaling.wsclient import raw_websocket
from tests.waiting import until

WAIT = 30.0
# An offer as large as the protocol allows, a burst of them within the rate limit's burst,
# then one every OFFER_GAP (within its rate).
SDP = "v=0\r\n" + "a=x-fill:" + "f" * 59_000 + "\r\n"
OFFER_BURST = 150
OFFER_GAP = 0.04
# Between two acts (and two connections) of one hostile client during a fault: often enough
# to act in every phase of it, seldom enough not to load the busy machine much.
PAUSE = 1.0
HURRY_CHECK = 0.05


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
        # The instance that answered the handshake (HAProxy's ``X-Konsil-Instance``).
        self.instance: str | None = None

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
    connected: Callable[[Hostile], None] = lambda hostile: None,
    prepared: Prepared | None = None,
) -> AsyncIterator[Hostile]:
    """A new room (or ``prepared``, one made earlier), its patient joined; ``connected`` is
    told once the handshake was answered, before the join."""
    appointment_id, token = prepared or await prepare(konsil, specialist_id)
    async with raw_websocket(
        konsil.proxy,
        f"as=patient&appointment={appointment_id}",
        f"konsil_patient={token}",
        origin=konsil.proxy.url,
        sluggish=sluggish,
    ) as ws:
        hostile = Hostile(ws, appointment_id, "", heard)
        hostile.instance = ws.response.headers.get("X-Konsil-Instance") if ws.response else None
        connected(hostile)
        await ws.send(json.dumps({"type": "join"}))
        hostile.participant_id = (await hostile.until("joined"))["participant_id"]
        yield hostile


# An appointment's id and its patient's cookie value.
Prepared = tuple[int, str]


async def prepare(konsil: Cluster, specialist_id: int | None = None) -> Prepared:
    """A room of its own, written directly to the database (not through the instances)."""
    appointment = await make_appointment(konsil.sessions, konsil.demo, specialist_id=specialist_id)
    assert appointment.id is not None
    return appointment.id, await patient_token(konsil.sessions, konsil.settings, appointment)


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


@dataclass(frozen=True)
class Event:
    """One thing a hostile client got: ``what`` (as in ``Tally``), when (``at``, monotonic),
    on a connection attempt begun at ``started`` whose handshake ``instance`` answered at
    ``opened`` (both None: no handshake was answered by an instance)."""

    kind: str
    what: str
    at: float
    started: float
    instance: str | None = None
    opened: float | None = None


@dataclass
class Tally:
    """What each kind of hostile client got: ``close N`` (``close none``: the connection ended
    without a close frame), ``error CODE``, ``HTTP N`` or ``proxy 503`` / ``proxy 502``
    (HAProxy's own answer to the handshake), or the name of an exception; and how many
    connections each had joined. ``events`` holds each of them with its time and instance;
    ``open`` each kind's connection open now (its instance and since when)."""

    got: dict[str, Counter[str]] = field(default_factory=dict)
    joined: Counter[str] = field(default_factory=Counter)
    events: list[Event] = field(default_factory=list)
    open: dict[str, tuple[str | None, float]] = field(default_factory=dict)
    rally_until: float = 0.0

    def rally(self, seconds: float) -> None:
        """For the next ``seconds`` the clients skip their pauses between connections and
        before acting: a fault only a fraction of a second long (a database restart) then
        meets their handshakes and joins, not just their pauses."""
        self.rally_until = time.monotonic() + seconds

    def rallied(self) -> bool:
        return time.monotonic() < self.rally_until

    def add(self, event: Event) -> None:
        self.events.append(event)
        self.got.setdefault(event.kind, Counter())[event.what] += 1

    def snapshot(self) -> dict[str, Counter[str]]:
        return {kind: Counter(got) for kind, got in self.got.items()}

    def since(self, earlier: dict[str, Counter[str]]) -> dict[str, Counter[str]]:
        """What each got after ``earlier`` (a ``snapshot``)."""
        return {kind: self.got.get(kind, Counter()) - earlier.get(kind, Counter()) for kind in ACTS}

    def unexpected(
        self, allowed: Set[str] = frozenset(), excused: Callable[[Event], bool] = lambda e: False
    ) -> dict[str, list[str]]:
        """Per kind, what it got beside its own answer (``ANSWERS``), ``allowed`` and what the
        fault ``excused`` (judged by time and instance)."""
        found: dict[str, set[str]] = {}
        for event in self.events:
            if event.what == ANSWERS[event.kind] or event.what in allowed or excused(event):
                continue
            found.setdefault(event.kind, set()).add(event.what)
        return {kind: sorted(whats) for kind, whats in found.items()}

    def lines(self) -> list[str]:
        """Per kind: how many connections it joined and what it got, in words."""
        return [f"{kind} ({self.joined[kind]} joined): {said(self.got.get(kind))}" for kind in ACTS]


def said(got: Counter[str] | None) -> str:
    return ", ".join(f"`{what}` ×{n}" for what, n in sorted((got or {}).items())) or "nothing"


def _refused(exc: InvalidStatus) -> str:
    """``proxy 503``: HAProxy's own answer when it has no instance up; ``proxy 502``: its own
    answer when the instance died with the handshake in it (no instance named it);
    ``HTTP N`` otherwise."""
    response = exc.response
    body = response.body or b""
    if response.status_code == 503 and b"No server is available" in body:
        return "proxy 503"
    if (
        response.status_code == 502
        and b"502 Bad Gateway" in body
        and "X-Konsil-Instance" not in response.headers
    ):
        return "proxy 502"
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


async def _paused(stop: asyncio.Event, hurry: Callable[[], bool] = lambda: False) -> bool:
    """Waits PAUSE seconds, less if stopped meanwhile, not at all while ``hurry`` holds;
    whether it was stopped."""
    deadline = time.monotonic() + PAUSE
    while not stop.is_set() and not hurry() and time.monotonic() < deadline:
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), min(HURRY_CHECK, deadline - time.monotonic()))
    return stop.is_set()


async def _keep_at(
    konsil: Cluster,
    kind: str,
    tally: Tally,
    stop: asyncio.Event,
    rooms: list[Prepared],
) -> None:
    act = ACTS[kind]
    while not stop.is_set():
        prepared = await _room_for(konsil, rooms)
        started = time.monotonic()
        on: dict[str, Any] = {"instance": None, "opened": None}

        def event(what: str, at_start: float = started, on: dict[str, Any] = on) -> Event:
            return Event(kind, what, time.monotonic(), at_start, on["instance"], on["opened"])

        def connected(hostile: Hostile, on: dict[str, Any] = on) -> None:
            on.update(instance=hostile.instance, opened=time.monotonic())
            tally.open[kind] = (hostile.instance, on["opened"])

        outcome: str | None = None
        try:
            async with room(
                konsil,
                specialist_id=konsil.demo.dermatologist.id,
                heard=lambda code: tally.add(event(f"error {code}")),
                connected=connected,
                prepared=prepared,
            ) as hostile:
                tally.joined[kind] += 1
                if await _paused(stop, tally.rallied):
                    return
                outcome = await act(hostile, stop)
        except InvalidStatus as exc:
            on["instance"] = exc.response.headers.get("X-Konsil-Instance")
            outcome = _refused(exc)
        except ConnectionClosed as exc:
            outcome = _closed(exc.rcvd.code if exc.rcvd is not None else None)
        except (InvalidHandshake, OSError, TimeoutError) as exc:
            outcome = type(exc).__name__
        finally:
            tally.open.pop(kind, None)
        if outcome is not None:
            tally.add(event(outcome))
        await _paused(stop, tally.rallied)


async def _room_for(konsil: Cluster, rooms: list[Prepared]) -> Prepared:
    """One of the rooms made ahead, else a new one; the test's own write of it to the database
    is tried again while that cannot be reached (a restart), for at most WAIT seconds."""
    if rooms:
        return rooms.pop()
    deadline = time.monotonic() + WAIT
    while True:
        try:
            return await prepare(konsil, konsil.demo.dermatologist.id)
        except (DBAPIError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


@asynccontextmanager
async def hostile_clients(konsil: Cluster, ahead: int = 0) -> AsyncIterator[Tally]:
    """While the block runs, a flooder, an oversized-frame sender and a garbage sender act
    through the proxy, each a patient of the dermatologist (whose queue nobody else is in),
    in a new room at each connection, again after each close. Each has joined once when the
    block starts; when it ends they stop (an act still on its way is cut short).

    ``ahead``: rooms made for each before they start, used first (the test writes a new room
    to the database itself; while the database restarts it could not, and the clients would
    stop acting just when it matters). ``Tally.rally`` makes them connect and act back to
    back for a while (the garbage sender keeps its pace: it stays on one connection)."""
    tally = Tally()
    stop = asyncio.Event()
    rooms = {
        kind: [await prepare(konsil, konsil.demo.dermatologist.id) for _ in range(ahead)]
        for kind in ACTS
    }
    tasks = [asyncio.create_task(_keep_at(konsil, kind, tally, stop, rooms[kind])) for kind in ACTS]
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
