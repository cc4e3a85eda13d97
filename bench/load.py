"""The load generator, run as its own process: ``python -m bench.load SCENARIO.json``.

Opens the websockets, drives one scenario and prints one JSON object with the results. Server
CPU and memory are read from /proc for the pids in the scenario, at the edges of the measured
window, so setup and warm-up are not counted.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.procstat import cpu_seconds, rss_bytes

CANDIDATE = (
    "candidate:842163049 1 udp 1677729535 198.51.100.23 54321 typ srflx raddr 0.0.0.0 "
    "rport 0 generation 0 ufrag aB3d network-id 3 network-cost 10 ts="
)
RELAYED = frozenset({"offer", "answer", "candidate"})
SDP = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" + (
    "a=candidate:1 1 udp 2130706431 192.0.2.10 54321 typ host generation 0\r\n" * 30
)


@dataclass
class Side:
    ws: ClientConnection
    peer: str  # the other side's participant id
    inbox: asyncio.Queue[str] = field(default_factory=asyncio.Queue)


@dataclass
class Pair:
    patient: Side
    staff: Side


@dataclass
class Window:
    start: float = float("inf")
    end: float = float("inf")
    latencies: list[float] = field(default_factory=list)
    received: int = 0
    sent: int = 0
    last_frame: float = 0.0
    # Connections the server closed while this rate ran (e.g. 1011 when a saturated server's
    # keepalive pong waited behind its backlog): counted and reported, not raised, so a
    # saturated rate is a measured result rather than a failed run.
    closed: set[int] = field(default_factory=set)


# ------------------------------------------------------------------------------ connections


async def open_ws(url: str, sc: dict[str, Any], cookie: str | None = None) -> ClientConnection:
    headers = {"Cookie": cookie} if cookie else {}
    return await connect(
        url,
        additional_headers=headers,
        origin=sc["origin"],  # type: ignore[arg-type]
        compression="deflate" if sc.get("deflate") else None,
        max_queue=None,
        ping_interval=None,
        open_timeout=60,
    )


async def until(ws: ClientConnection, kind: str, role: str | None = None) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if message["type"] == "error":
            raise RuntimeError(message)
        if message["type"] == kind and (role is None or message["peer"]["role"] == role):
            return message  # type: ignore[no-any-return]


async def konsil_pair(sc: dict[str, Any], aid: int, patient_cookie: str) -> Pair:
    """The patient joins and waits; then the specialist connects, joins and admits them.

    The specialist's socket is opened only once the patient is in: a socket that does not join
    within ``KONSIL_WS_JOIN_TIMEOUT_SECONDS`` (10 s) is closed, and on a loaded machine the
    patient's join can take longer than that."""
    urls = sc["urls"]
    p = await open_ws(
        f"{urls[0]}/ws?as=patient&appointment={aid}", sc, f"konsil_patient={patient_cookie}"
    )
    await p.send('{"type":"join"}')
    await until(p, "joined")
    s = await open_ws(
        f"{urls[-1]}/ws?as=staff&appointment={aid}", sc, f"konsil_staff={sc['staff_cookie']}"
    )
    await s.send('{"type":"join"}')
    await until(s, "joined")
    await s.send('{"type":"admit"}')
    to_staff = (await until(p, "peer_joined", "specialist"))["peer"]["id"]
    to_patient = (await until(s, "peer_joined", "patient"))["peer"]["id"]
    return Pair(Side(p, to_staff), Side(s, to_patient))


async def baseline_pair(sc: dict[str, Any], aid: int, _: str) -> Pair:
    urls = sc["urls"]
    p = await open_ws(f"{urls[0]}/ws?room={aid}&peer=p", sc)
    s = await open_ws(f"{urls[-1]}/ws?room={aid}&peer=s", sc)
    await asyncio.sleep(0.05 if len(urls) > 1 else 0)  # subscriptions settle
    return Pair(Side(p, "s"), Side(s, "p"))


async def open_pairs(sc: dict[str, Any], count: int) -> list[Pair]:
    make = konsil_pair if sc["target"] == "konsil" else baseline_pair
    pairs: list[Pair] = []
    rooms = sc["rooms"][:count]
    for i in range(0, len(rooms), 20):
        batch = rooms[i : i + 20]
        pairs += await asyncio.gather(*(make(sc, aid, cookie) for aid, cookie in batch))
    return pairs


def cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def rss(pids: list[int]) -> int:
    return sum(rss_bytes(pid) for pid in pids)


# ------------------------------------------------------------------------------ relay


async def reader(side: Side, window: Window, forward: bool) -> None:
    try:
        await read_frames(side, window, forward)
    except ConnectionClosed:
        window.closed.add(id(side))


async def read_frames(side: Side, window: Window, forward: bool) -> None:
    async for frame in side.ws:
        now = window.last_frame = time.perf_counter()
        text = frame if isinstance(frame, str) else frame.decode()
        at = text.find("ts=")
        if at >= 0:
            if window.start <= now < window.end:
                end = text.find('"', at)
                window.latencies.append(now - int(text[at + 3 : end]) / 1e9)
                window.received += 1
        elif forward and json.loads(text).get("type") in RELAYED:
            side.inbox.put_nowait(text)


def candidate(to: str, stamp: bool = True) -> str:
    ts = time.perf_counter_ns() if stamp else 0
    return json.dumps(
        {
            "type": "candidate",
            "to": to,
            "candidate": {
                "candidate": f"{CANDIDATE}{ts}",
                "sdpMid": "0",
                "sdpMLineIndex": 0,
                "usernameFragment": "aB3d",
            },
        }
    )


async def sender(
    side: Side, interval: float, phase: float, window: Window, stop: asyncio.Event
) -> None:
    """Sends one candidate every ``interval`` seconds, starting ``phase`` (0..1) into it.

    The phases spread the senders evenly over the interval, so the offered load arrives as a
    steady stream on both servers. (They used to come from ``hash(side.peer)``: the baseline's
    peers are all named "p" or "s", so its 200 senders fired in two bursts of 100 per interval
    and the queue each burst built was measured as a 4-5 ms "latency" of the baseline.)
    """
    next_at = time.perf_counter() + interval * phase
    while not stop.is_set():
        delay = next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            await side.ws.send(candidate(side.peer))
        except ConnectionClosed:
            window.closed.add(id(side))
            return
        now = time.perf_counter()
        if window.start <= now < window.end:
            window.sent += 1
        next_at += interval


def mark_window(path: str) -> None:
    """Tells ``bench.profile`` that the measured window began (an empty file, made once)."""
    Path(path).touch()


async def relay(sc: dict[str, Any]) -> dict[str, Any]:
    pairs = await open_pairs(sc, sc["relay_rooms"])
    sides = [side for pair in pairs for side in (pair.patient, pair.staff)]
    results = []
    for rate in sc["rates"]:
        window = Window()
        stop = asyncio.Event()
        readers = [asyncio.create_task(reader(side, window, False)) for side in sides]
        senders = [
            asyncio.create_task(sender(side, len(sides) / rate, i / len(sides), window, stop))
            for i, side in enumerate(sides)
        ]
        await asyncio.sleep(sc["warmup"])
        cpu0, window.start = cpu(sc["pids"]), time.perf_counter()
        window.end = window.start + sc["duration"]
        if sc.get("window_file"):
            mark_window(sc["window_file"])
        await asyncio.sleep(sc["duration"])
        cpu1 = cpu(sc["pids"])
        stop.set()
        await asyncio.gather(*senders)
        await drained(window)
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        results.append(summary(rate, window, cpu1 - cpu0, sc["duration"]))
    await close_all(sides)
    return {"relay": results}


async def drained(window: Window, quiet: float = 0.5, limit: float = 30.0) -> None:
    """Waits until no frame has arrived for ``quiet`` seconds (at most ``limit``), so that a
    saturated server's backlog is delivered before the next rate's warm-up, not inside its
    measured window."""
    deadline = time.perf_counter() + limit
    while True:
        now = time.perf_counter()
        if now >= deadline or now - window.last_frame >= quiet:
            return
        await asyncio.sleep(quiet / 5)


def summary(rate: int, window: Window, cpu_used: float, duration: float) -> dict[str, Any]:
    lat = sorted(window.latencies)

    def pct(q: float) -> float | None:
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else None

    return {
        "offered": rate,
        "achieved": window.received / duration,
        "sent": window.sent,
        "received": window.received,
        "lost": max(window.sent - window.received, 0),
        "closed": len(window.closed),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "cpu_s": cpu_used,
        "cpu_us_per_msg": cpu_used / window.received * 1e6 if window.received else None,
    }


async def close_all(sides: list[Side]) -> None:
    await asyncio.gather(*(side.ws.close() for side in sides), return_exceptions=True)


# ------------------------------------------------------------------------------ call setups


async def setups(sc: dict[str, Any]) -> dict[str, Any]:
    pairs = await open_pairs(sc, sc["setup_rooms"])
    window = Window()
    stop = asyncio.Event()
    readers = [
        asyncio.create_task(reader(side, window, True))
        for pair in pairs
        for side in (pair.patient, pair.staff)
    ]
    done = [0]

    async def expect(side: Side, kind: str, count: int) -> None:
        for _ in range(count):
            text = await side.inbox.get()
            if f'"type":"{kind}"' not in text.replace(" ", ""):
                raise RuntimeError(f"expected {kind}, got {text[:200]}")

    async def one_room(pair: Pair) -> None:
        s, p = pair.staff, pair.patient
        while not stop.is_set():
            await s.ws.send(json.dumps({"type": "offer", "to": s.peer, "sdp": SDP}))
            for _ in range(10):
                await s.ws.send(candidate(s.peer, stamp=False).replace("ts=0", "x=0"))
            await expect(p, "offer", 1)
            await p.ws.send(json.dumps({"type": "answer", "to": p.peer, "sdp": SDP}))
            for _ in range(10):
                await p.ws.send(candidate(p.peer, stamp=False).replace("ts=0", "x=0"))
            await expect(p, "candidate", 10)
            await expect(s, "answer", 1)
            await expect(s, "candidate", 10)
            if window.start <= time.perf_counter() < window.end:
                done[0] += 1

    rooms = [asyncio.create_task(one_room(pair)) for pair in pairs]
    await asyncio.sleep(sc["warmup"])
    cpu0, window.start = cpu(sc["pids"]), time.perf_counter()
    window.end = window.start + sc["duration"]
    if sc.get("window_file"):
        mark_window(sc["window_file"])
    await asyncio.sleep(sc["duration"])
    cpu1 = cpu(sc["pids"])
    stop.set()
    await asyncio.wait(rooms, timeout=5)
    for task in [*rooms, *readers]:
        task.cancel()
    await asyncio.gather(*rooms, *readers, return_exceptions=True)
    await close_all([side for pair in pairs for side in (pair.patient, pair.staff)])
    cpu_used = cpu1 - cpu0
    return {
        "setups_per_s": done[0] / sc["duration"],
        "cpu_ms_per_setup": cpu_used / done[0] * 1000 if done[0] else None,
    }


# ------------------------------------------------------------------------------ idle connections


async def idle(sc: dict[str, Any]) -> dict[str, Any]:
    opened: list[ClientConnection] = []
    rooms = sc["rooms"]
    await asyncio.sleep(1)
    base = rss(sc["pids"])
    levels = []

    async def one(i: int) -> ClientConnection:
        if sc["target"] == "konsil":
            # A patient waiting in their own room: authenticated and joined.
            aid, cookie = rooms[i]
            url = f"{sc['urls'][0]}/ws?as=patient&appointment={aid}"
            ws = await open_ws(url, sc, f"konsil_patient={cookie}")
            await ws.send(json.dumps({"type": "join"}))
            await until(ws, "joined")
            return ws
        return await open_ws(f"{sc['urls'][0]}/ws?room=idle{i}&peer=x", sc)

    for level in sc["levels"]:
        # The server's CPU for the connections of this level: handshake, checks and join.
        cpu0, before = cpu(sc["pids"]), len(opened)
        try:
            while len(opened) < level:
                batch = range(len(opened), min(level, len(opened) + 100))
                opened += await asyncio.gather(*(one(i) for i in batch))
        except OSError as exc:
            levels.append({"connections": level, "error": f"{type(exc).__name__}: {exc}"})
            break
        cpu_used = cpu(sc["pids"]) - cpu0
        await asyncio.sleep(3)  # let allocations settle
        grown = rss(sc["pids"]) - base
        levels.append(
            {
                "connections": level,
                "rss_delta": grown,
                "bytes_per_conn": grown / len(opened),
                "cpu_ms_per_conn": cpu_used / max(1, len(opened) - before) * 1000,
            }
        )
    await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)
    return {"idle": levels, "rss_base": base}


SCENARIOS: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "relay": relay,
    "setup": setups,
    "idle": idle,
}


def main() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with open(sys.argv[1]) as f:
        scenario = json.load(f)
    result = uvloop.run(SCENARIOS[scenario["kind"]](scenario))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
