"""``python -m bench.relay_path``: the relay path inside one process, without sockets.

One room replica on the memory broker with a patient and a specialist in the call; a candidate
is checked (``Room.check``), published as the hub publishes it (``Replicas.publish``) and
waited for in the recipient's outbox, as its writer task would take it. Prints process CPU
and wall time per relayed message: the figure that A/B comparisons of changes in the relay
path use, because on a shared machine it moves far less than the socket benchmark's
(docs/performance.md). Seeds its own SQLite database in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import anyio
import uvloop

from app.broker.memory import MemoryBroker
from app.db import create_engine, session_factory, utcnow
from app.scheduling.models import RoomState
from app.signaling import envelope as env
from app.signaling import messages as m
from app.signaling import wire
from app.signaling.connection import Connection
from app.signaling.replicas import Replicas
from app.signaling.session import Member
from app.tasks import Tasks
from bench.seed import seed

CANDIDATE = {
    "candidate": "candidate:1 1 udp 2122260223 192.0.2.10 54400 typ host generation 0",
    "sdpMid": "0",
    "sdpMLineIndex": 0,
}


async def run(url: str, appointment_id: int, count: int) -> tuple[float, float]:
    engine = create_engine(url)
    sessions = session_factory(engine)
    try:
        async with anyio.create_task_group() as group:
            replicas = Replicas(broker=MemoryBroker(), sessions=sessions, tasks=Tasks(group))
            local = await replicas.acquire(appointment_id)
            local.room.state = RoomState.IN_CALL
            conns = {}
            for pid, role in (("p_patient0", "patient"), ("p_specialist0", "specialist")):
                conn = Connection(limit=count + 100, role=role)
                conns[pid] = conn
                local.conns[conn.id] = conn
                member = Member(id=pid, role=role, name="", session_key=pid, conn=conn.id)
                local.room.add(replace(member, user_id=1 if role != "patient" else None))
            recipient = conns["p_specialist0"]
            while recipient._items:  # what joining told it
                await recipient.next()
            channel = env.room_channel(appointment_id)
            message = m.Candidate(type="candidate", to="p_specialist0", candidate=CANDIDATE)
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(count):
                local.room.check("p_patient0", message)
                relayed = wire.Relay(sender="p_patient0", msg=message, at=utcnow())
                await replicas.publish(channel, relayed)
                await recipient.next()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            await replicas.shutdown()
            group.cancel_scope.cancel()
    finally:
        await engine.dispose()
    return cpu / count * 1e6, wall / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.relay_path", description=__doc__)
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="konsil-relay-path-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        (appointment_id, _), *_ = seed(url, 1, staff_rooms=1).rooms
        for n in range(args.rounds):
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # as deployed
                cpu, wall = runner.run(run(url, appointment_id, args.count))
            print(f"round {n + 1}: {cpu:.1f} µs CPU, {wall:.1f} µs wall per relayed message")


if __name__ == "__main__":
    main()
