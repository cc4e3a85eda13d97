"""The outbox across real server processes on PostgreSQL: nothing is lost when a process is
killed between commit and delivery, and two processes deliver each event exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import select

from app.db import create_engine, session_factory
from app.events.outbox import OutboxEvent
from app.events.types import EVENTS, RoomStateChanged
from app.scheduling.models import Appointment
from tests.conftest import create_schema
from tests.factories import Demo, login, make_appointment, seed
from tests.live import ServerProcess, free_port, run_server_async
from tests.services import REDIS_URL, require, require_redis
from tests.signaling.wsclient import LOGIN_TIMEOUT
from tests.waiting import until

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]
# A bound for what other processes do (nothing to await there), not a timing assertion.
WITHIN = 20.0


@dataclass
class Database:
    url: str
    sessions: async_sessionmaker[AsyncSession]
    demo: Demo


@pytest.fixture
async def database(postgres_url: str) -> AsyncIterator[Database]:
    await create_schema(postgres_url)
    engine = create_engine(postgres_url)
    sessions = session_factory(engine)
    yield Database(postgres_url, sessions, await seed(sessions))
    await engine.dispose()


@contextmanager
def private_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Redis of this test's own, so that pausing it disturbs nobody else."""
    binary = shutil.which("redis-server")
    require(binary is not None, "redis-server")
    assert binary is not None
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"redis://127.0.0.1:{port}/0", process
    finally:
        process.terminate()
        process.wait(10)


async def wait_for_redis(url: str) -> aioredis.Redis:
    client = aioredis.Redis.from_url(url)
    for _ in range(100):
        try:
            await client.ping()
            return client
        except (ConnectionError, OSError, aioredis.ConnectionError):
            await asyncio.sleep(0.05)
    raise RuntimeError("redis did not start")


@asynccontextmanager
async def listening(url: str, pattern: str) -> AsyncIterator[list[dict[str, Any]]]:
    """Every message published on channels matching ``pattern`` while the block runs."""
    client = aioredis.Redis.from_url(url)
    pubsub = client.pubsub()
    await pubsub.psubscribe(pattern)
    heard: list[dict[str, Any]] = []

    async def read() -> None:
        async for message in pubsub.listen():
            if message["type"] == "pmessage":
                heard.append(json.loads(message["data"]) | {"channel": message["channel"].decode()})

    reader = asyncio.create_task(read())
    try:
        yield heard
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()


@asynccontextmanager
async def gp_client(server: ServerProcess, database: Database) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(
        base_url=server.url, headers={"Origin": server.url}, timeout=LOGIN_TIMEOUT
    ) as client:
        await login(client, database.demo.gp)
        yield client


async def outbox_rows(database: Database) -> list[OutboxEvent]:
    async with database.sessions() as session:
        return list((await session.execute(select(OutboxEvent))).scalars().all())


async def delivered(database: Database) -> bool:
    return not await outbox_rows(database)


async def test_outbox_event_committed_by_a_killed_process_is_delivered_by_the_next(
    tmp_path: Path, database: Database
) -> None:
    appointment = await make_appointment(database.sessions, database.demo)
    with private_redis() as (broker, _):
        control = await wait_for_redis(broker)
        env = {"database_url": database.url, "broker_url": broker}
        async with listening(broker, "konsil:room:*") as heard:
            async with run_server_async(tmp_path, **env) as first:
                async with gp_client(first, database) as gp:
                    # Publishing now waits: the dispatcher holds its rows, mid-delivery.
                    await control.client_pause(30000, all=False)  # writes wait, PUBLISH too
                    cancelled = await gp.post(f"/api/v1/appointments/{appointment.id}/cancel")
                    assert cancelled.status_code == 200, cancelled.text
                await asyncio.sleep(0.5)  # claimed and blocked, or not claimed yet: owed either way
                os.kill(first.process.pid, signal.SIGKILL)
                await asyncio.to_thread(first.process.wait)
                # Committed with the cancellation, never delivered.
                pending = [EVENTS.validate_json(r.payload) for r in await outbox_rows(database)]
                (state,) = [e for e in pending if isinstance(e, RoomStateChanged)]
                assert state.appointment_id == appointment.id
            await control.client_unpause()
            assert heard == []  # the killed process's publish never went out
            async with run_server_async(tmp_path, **env):
                # Its start-up round delivers what the killed process owed.
                await until(
                    lambda: any(m.get("ev") == state.event_id for m in heard),
                    WITHIN,
                    "the owed event published",
                )
                await until(lambda: delivered(database), WITHIN, "the outbox emptied")
        await control.aclose()
    (message,) = [m for m in heard if m.get("ev") == state.event_id]
    assert (message["e"], message["state"]) == ("state", "cancelled")
    assert message["channel"] == f"konsil:room:{appointment.id}"
    async with database.sessions() as session:
        stored = await session.get(Appointment, appointment.id)
    assert stored is not None
    assert stored.room_state.value == "cancelled"


async def test_two_processes_on_postgresql_deliver_each_event_exactly_once(
    tmp_path: Path, database: Database
) -> None:
    require_redis()
    count = 30
    appointments = [await make_appointment(database.sessions, database.demo) for _ in range(count)]
    # Both sweep often, so each may also claim what the other committed. (Which process
    # delivers which event is up to timing; that the lock keeps two dispatchers apart is shown
    # deterministically in tests/events/test_dispatcher.py.)
    env = {"database_url": database.url, "broker_url": REDIS_URL, "outbox_sweep_seconds": "0.02"}
    async with (
        listening(REDIS_URL, "konsil:*") as heard,
        run_server_async(tmp_path, **env) as first,
        run_server_async(tmp_path, **env) as second,
        gp_client(first, database) as via_first,
        gp_client(second, database) as via_second,
    ):
        clients = [via_first, via_second]
        answers = await asyncio.gather(
            *(
                clients[i % 2].post(f"/api/v1/appointments/{a.id}/cancel")
                for i, a in enumerate(appointments)
            )
        )
        assert [r.status_code for r in answers] == [200] * count

        await until(
            lambda: len([m for m in heard if m["e"] == "state"]) >= count,
            WITHIN,
            "each room told",
        )
        await until(
            lambda: len([m for m in heard if m["e"] == "changed"]) >= count,
            WITHIN,
            "each queue told",
        )
        await asyncio.sleep(1.0)  # a duplicate would arrive now
        await until(lambda: delivered(database), WITHIN, "the outbox emptied")
    states = [m for m in heard if m["e"] == "state"]
    changed = [m for m in heard if m["e"] == "changed"]
    # Each room heard its cancellation once: no event lost, none delivered twice.
    rooms = sorted(int(m["channel"].rsplit(":", 1)[1]) for m in states)
    assert rooms == sorted(a.id for a in appointments if a.id is not None)
    assert len({m["ev"] for m in states}) == count
    # The specialist's queue heard each state change once.
    assert len(changed) == count
    assert sorted(m["ev"] for m in changed) == sorted(m["ev"] for m in states)
