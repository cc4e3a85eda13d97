"""``python -m bench.setup_path``: whole call setups inside one process, without sockets.

What ``make bench`` measures as call setups, in the order it sends them: the specialist sends
an offer (the ~2.3 KB SDP of ``bench.load``) and 10 candidates, the patient gets them and sends
the answer and 10 candidates, the specialist gets those. Each frame the clients send goes
through what the endpoint does with a frame (the size check, the token bucket,
``endpoint._handle``: parse and validate, the per-type counter, the session's activity, the
dispatch, ``Hub.relay``); one room replica on the memory broker relays it, and it is taken
from the recipient's outbox as its writer task would take it and encoded as the socket would
send it. Only the websocket framing and the socket calls are left out: they are the same work
for Konsil and the baseline.

``--baseline`` runs the baseline relay's own code on the same frames instead
(``bench/baseline.py``: ``json.loads``, add ``from``, ``json.dumps``, encode), so the two
figures compare the Python each side runs per setup. ``--profile`` prints where Konsil's time
goes by function (cProfile, one round; cProfile's own overhead makes its totals higher than
the plain runs'). ``--breakdown RAW US`` sorts a py-spy sample of a run (``py-spy record
--format raw -o RAW -- python -m bench.setup_path``) into the parts of a setup, as
``bench.profile`` does for the socket benchmark, and prints each part's share of ``US`` µs.

Prints process CPU and wall time per setup. Seeds its own SQLite database in a temporary
directory.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import tempfile
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import anyio
import uvloop
from starlette.websockets import WebSocket

from app.accounts.models import Role, SessionKind
from app.accounts.service import Principal
from app.broker.memory import MemoryBroker
from app.db import create_engine, session_factory
from app.rooms.state import Actor
from app.scheduling.models import RoomState
from app.settings import Settings
from app.signaling.connection import Connection, TokenBucket
from app.signaling.endpoint import Link, Target, _handle
from app.signaling.hub import Hub
from app.signaling.messages import Role as MemberRole
from app.signaling.replicas import Replicas
from app.signaling.seats import Seat
from app.signaling.session import Member
from app.tasks import Tasks
from bench.load import SDP
from bench.load import candidate as candidate_text
from bench.profile import print_shares, tally
from bench.seed import seed

STAFF, PATIENT = "p_specialist0", "p_patient0"
# Where a sample's time goes, by its innermost frame that matches (``bench.profile.classify``).
READER = "reader: frame size check, token bucket (endpoint._reader)"
PARSE = "client message: parse and validate (pydantic), counter, activity (_handle)"
DISPATCH = "dispatch to the hub (_dispatch)"
HUB = "hub: Room.check, wire.Relay model, utcnow, starts_call (Hub.relay)"
ENVELOPE = "envelope: dump to JSON and stamp (wire.stamped_json)"
PUBLISH = "publish: sequence number, own-relay cache (Replicas.publish)"
BROKER = "broker hand-off: fan-out, call_soon, listener (memory broker, _on_message)"
APPLY = "room listener: sequence tracker, wire.apply (Replicas._apply)"
RELAY = "room rules: Room.relay, outgoing model (OfferFrom, CandidateFrom, ...)"
OUTBOX = "outbox: deliver, encode to JSON, queue, wake the writer (_deliver, Connection)"
WRITER = "writer: take the frame, encode it to bytes (uvicorn's part)"
SETUP_PARTS: list[tuple[str, str, str]] = [
    ("", "prometheus_client", PARSE),
    ("TokenBucket.take", "signaling/connection.py", READER),
    ("encode", "signaling/messages.py", OUTBOX),
    ("stamped_json", "signaling/wire.py", ENVELOPE),
    ("Replicas.publish", "signaling/replicas.py", PUBLISH),
    ("", "app/broker/", BROKER),
    ("Replicas._on_message", "signaling/replicas.py", BROKER),
    ("Replicas._deliver", "signaling/replicas.py", OUTBOX),
    ("Room.relay", "signaling/session.py", RELAY),
    ("apply", "signaling/wire.py", APPLY),
    ("", "signaling/envelope.py", APPLY),
    ("Replicas._apply", "signaling/replicas.py", APPLY),
    ("Room.check", "signaling/session.py", HUB),  # (``paired`` counts for its caller)
    ("Room.starts_call", "signaling/session.py", HUB),
    ("utcnow", "app/db.py", HUB),
    ("Hub.relay", "signaling/hub.py", HUB),
    ("", "signaling/connection.py", OUTBOX),
    ("_dispatch", "signaling/endpoint.py", DISPATCH),
    ("_handle", "signaling/endpoint.py", PARSE),
    ("_activity", "signaling/endpoint.py", PARSE),
    ("Side.send", "bench/setup_path.py", READER),
    ("Side.receive", "bench/setup_path.py", WRITER),
]
CANDIDATES = 10  # each way, as bench.load sends them


def frames(sender_to: str, kind: str) -> list[str]:
    """What one side sends in a setup, as ``bench.load.setups`` makes it."""
    first = json.dumps({"type": kind, "to": sender_to, "sdp": SDP})
    rest = [candidate_text(sender_to, stamp=False).replace("ts=0", "x=0")] * CANDIDATES
    return [first, *rest]


class Side:
    """One client of the room: its connection and the endpoint's state for it."""

    def __init__(self, link: Link, settings: Settings) -> None:
        self.link = link
        self.max_frame = settings.ws_max_frame_bytes
        # Raised as the benchmark raises it: the bucket still runs for every frame.
        self.bucket = TokenBucket(rate=1e9, burst=10**9, now=time.monotonic())

    async def send(self, data: str) -> None:
        """What ``endpoint._reader`` does with one received text frame."""
        size = len(data)
        if size * 4 > self.max_frame:
            size = len(data.encode())
        if size > self.max_frame or not self.bucket.take(time.monotonic()):
            raise RuntimeError("refused")
        await _handle(self.link, data)

    async def receive(self, count: int) -> int:
        """Takes ``count`` frames from the outbox as the writer would; their bytes."""
        total = 0
        for _ in range(count):
            frame = await self.link.conn.next()
            if frame is None or frame.startswith('{"type":"error"'):
                raise RuntimeError(f"not relayed: {frame}")
            total += len(frame.encode())  # (uvicorn encodes each text frame to send it)
        return total


def side(hub: Hub, appointment_id: int, member: Member, actor: Actor) -> Link:
    staff = actor is Actor.SPECIALIST
    who = Principal(
        kind=SessionKind.STAFF if staff else SessionKind.PATIENT,
        session_id=member.session_key,
        csrf_token="",
        user_id=member.user_id,
        role=Role.SPECIALIST if staff else None,
        appointment_id=None if staff else appointment_id,
    )
    assert member.conn
    conn = hub.replicas.rooms[appointment_id].conns[member.conn]
    link = Link(
        websocket=cast(WebSocket, None),  # read only for a session's once-a-minute activity
        conn=conn,
        target=Target(who=who, appointment_id=appointment_id, actor=actor),
        hub=hub,
        seat=Seat(appointment_id=appointment_id, member=member, resume_key=""),
    )
    link.staff = staff
    link.active_at = time.monotonic() + 3600  # no activity write inside the measurement
    return link


async def konsil(url: str, appointment_id: int, count: int, profile: bool) -> tuple[float, float]:
    settings = Settings()
    engine = create_engine(url)
    sessions = session_factory(engine)
    offer, answer = frames(PATIENT, "offer"), frames(STAFF, "answer")
    try:
        async with anyio.create_task_group() as group:
            replicas = Replicas(broker=MemoryBroker(), sessions=sessions, tasks=Tasks(group))
            hub = Hub.__new__(Hub)  # only what ``Hub.relay`` uses: the replicas
            hub.replicas, hub.sessions, hub.settings = replicas, sessions, settings
            local = await replicas.acquire(appointment_id)
            local.room.state = RoomState.IN_CALL
            links: dict[str, Link] = {}
            people: list[tuple[str, MemberRole, Actor]] = [
                (PATIENT, "patient", Actor.PATIENT),
                (STAFF, "specialist", Actor.SPECIALIST),
            ]
            for pid, role, actor in people:
                conn = Connection(limit=1000, role=role)
                local.conns[conn.id] = conn
                member = Member(id=pid, role=role, name="", session_key=pid, conn=conn.id)
                member = replace(member, user_id=1 if role != "patient" else None)
                local.room.add(member)
                links[pid] = side(hub, appointment_id, member, actor)
            staff, patient = (Side(links[p], settings) for p in (STAFF, PATIENT))
            for s in (staff, patient):
                while s.link.conn._items:  # what joining told it
                    await s.link.conn.next()

            async def setup() -> None:
                for data in offer:
                    await staff.send(data)
                await patient.receive(1)  # the offer, before the patient answers
                for data in answer:
                    await patient.send(data)
                await patient.receive(CANDIDATES)
                await staff.receive(1 + CANDIDATES)

            for _ in range(min(count, 200)):  # warm-up
                await setup()
            profiler = cProfile.Profile() if profile else None
            cpu, wall = time.process_time(), time.perf_counter()
            if profiler is not None:
                profiler.enable()
            for _ in range(count):
                await setup()
            if profiler is not None:
                profiler.disable()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            if profiler is not None:
                out = io.StringIO()
                stats = pstats.Stats(profiler, stream=out)
                stats.sort_stats("tottime").print_stats(30)
                print(out.getvalue())
            await replicas.shutdown()
            group.cancel_scope.cancel()
    finally:
        await engine.dispose()
    return cpu / count * 1e6, wall / count * 1e6


async def baseline(count: int) -> tuple[float, float]:
    """The baseline relay's own lines on the same frames: parse, add ``from``, dump, encode."""
    offer, answer = frames(PATIENT, "offer"), frames(STAFF, "answer")
    sent: deque[str] = deque()  # what it writes to the other socket at once

    async def relay(peer: str, data: str) -> None:
        message: dict[str, Any] = json.loads(data)
        message["from"] = peer
        sent.append(json.dumps(message))

    async def receive(n: int) -> None:
        for _ in range(n):
            sent.popleft().encode()

    async def setup() -> None:
        for data in offer:
            await relay(STAFF, data)
        await receive(1 + CANDIDATES)
        for data in answer:
            await relay(PATIENT, data)
        await receive(1 + CANDIDATES)

    for _ in range(min(count, 200)):
        await setup()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        await setup()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / count * 1e6, wall / count * 1e6


def breakdown(raw: Path, us_per_setup: float) -> None:
    """Prints the parts of a setup from a py-spy sample (raw format) of this benchmark."""
    # Only the event loop's stacks: not the imports, the seeding, the database's thread.
    shares = tally(raw, SETUP_PARTS, lambda frames: any("asyncio/runners.py" in f for f in frames))
    print_shares(shares, "| part of a call setup | share | µs per setup |", us_per_setup, 0)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.setup_path", description=__doc__)
    parser.add_argument("--count", type=int, default=5_000, help="setups per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", action="store_true", help="the baseline's code instead")
    parser.add_argument("--profile", action="store_true", help="cProfile one round of Konsil")
    parser.add_argument("--breakdown", nargs=2, metavar=("RAW", "US"), help="py-spy raw file")
    args = parser.parse_args()
    if args.breakdown:
        breakdown(Path(args.breakdown[0]), float(args.breakdown[1]))
        return
    with tempfile.TemporaryDirectory(prefix="konsil-setup-path-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        (appointment_id, _), *_ = seed(url, 1, staff_rooms=1).rooms
        for n in range(args.rounds):
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # as deployed
                if args.baseline:
                    cpu, wall = runner.run(baseline(args.count))
                else:
                    cpu, wall = runner.run(konsil(url, appointment_id, args.count, args.profile))
            name = "baseline" if args.baseline else "konsil"
            print(
                f"{name} round {n + 1}: {cpu:.0f} µs CPU, {wall:.0f} µs wall per setup "
                f"({cpu / (2 + 2 * CANDIDATES):.1f} µs CPU per message)"
            )


if __name__ == "__main__":
    main()
