"""The seats a dead process leaves in rooms nobody else has a replica of
(``app.signaling.orphans``): a survivor ends them after the resume window unless they were
resumed. (A process really killed: tests/chaos/test_kill.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import cast

import anyio
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.broker.memory import MemoryBroker
from app.scheduling.models import Appointment, RoomState
from app.settings import Settings
from app.signaling import envelope as env
from app.signaling import resume as records
from app.signaling.hub import Hub
from app.signaling.orphans import Orphans, scope
from app.signaling.replicas import Replicas
from app.signaling.seats import Seats
from app.signaling.session import Member
from app.tasks import Tasks
from tests.factories import Demo, make_appointment, patient_token
from tests.live import Live, live_server
from tests.services import REDIS_URL
from tests.signaling.test_liveness import hub_of
from tests.signaling.test_ws_resume import random_id
from tests.signaling.wsclient import TIMEOUT, ws_connect


def member(**changes: object) -> Member:
    values: dict[str, object] = {
        "id": "p_1",
        "role": "patient",
        "name": "",
        "session_key": "s",
        "conn": "c_1",
    }
    values.update(changes)
    return Member(**values)  # type: ignore[arg-type]


def test_a_taken_record_gives_its_room_and_member() -> None:
    seat = member(origin="o_dead", record="konsil:resume:x")
    assert records.parse(records.pack(42, seat)) == (42, seat)


@pytest.mark.parametrize(
    "raw", [b"", b"[]", b'{"member": {}}', b'{"appointment_id": "42", "member": {}}', b"\xff"]
)
def test_a_record_that_cannot_be_read_gives_nothing(raw: bytes) -> None:
    assert records.parse(raw) is None


def test_the_registry_is_one_per_database(make_settings: Callable[..., Settings]) -> None:
    one = make_settings(database_url="postgresql+asyncpg://k:secret@db/konsil")
    same = make_settings(database_url="postgresql+asyncpg://k:secret@db/konsil")
    other = make_settings(database_url="postgresql+asyncpg://k:secret@db/other")
    assert scope(one) == scope(same) != scope(other)
    assert "secret" not in env.processes_key(scope(one))


class Survivor:
    """An ``Orphans`` with what it needs of a process: its origin, its tasks, and seats that
    only record what they are told to end."""

    def __init__(self, settings: Settings, broker: MemoryBroker, tasks: Tasks, name: str):
        self.ended: list[tuple[int, Member]] = []
        replicas = SimpleNamespace(origin=name, tasks=tasks)
        seats = SimpleNamespace(end=self._end)
        self.orphans = Orphans(
            settings=settings,
            broker=broker,
            replicas=cast(Replicas, replicas),
            seats=cast(Seats, seats),
        )

    async def _end(self, appointment_id: int, member: Member) -> None:
        self.ended.append((appointment_id, member))


@asynccontextmanager
async def survivors(settings: Settings, broker: MemoryBroker) -> AsyncIterator[list[Survivor]]:
    async with anyio.create_task_group() as group:
        tasks = Tasks(group)
        found = [Survivor(settings, broker, tasks, name) for name in ("o_one", "o_two")]
        for survivor in found:
            await survivor.orphans.registered()  # each files itself
        yield found
        for survivor in found:
            await survivor.orphans.stop()


async def dead_process(settings: Settings, broker: MemoryBroker, seat: Member) -> str:
    """A registered process, now dead (no liveness key), with ``seat`` in room 42."""
    await broker.file(env.processes_key(scope(settings)), seat.origin, b"1", 60)
    await broker.file(env.seats_key(seat.origin), seat.record, b"42", 60)
    await broker.put(seat.record, records.pack(42, seat), 60)
    return seat.origin


async def handled(survivor: Survivor, origin: str) -> None:
    # The broker has no event for it; a short poll, bounded by the caller's timeout.
    while True:
        if origin not in await survivor.orphans.broker.filed(survivor.orphans.registry):
            return
        await asyncio.sleep(0.02)


async def test_orphans_one_survivor_ends_a_dead_process_seats_after_the_window(
    make_settings: Callable[..., Settings],
) -> None:
    settings, broker = make_settings(ws_resume_seconds=1), MemoryBroker()
    seat = member(origin="o_dead", record="konsil:resume:orphan")
    async with survivors(settings, broker) as (one, two):
        dead = await dead_process(settings, broker, seat)
        await one.orphans.claim(dead)
        await two.orphans.claim(dead)  # held by the first: not twice
        await one.orphans.claim(dead)  # under way: not twice either
        assert one.ended == two.ended == []  # the resume window first
        async with asyncio.timeout(TIMEOUT):
            await handled(one, dead)
        assert (one.ended, two.ended) == ([(42, seat)], [])
        assert await broker.filed(env.seats_key(dead)) == {}
        assert await one.orphans.registered() == {"o_two"}


async def test_orphans_a_seat_resumed_elsewhere_is_not_ended(
    make_settings: Callable[..., Settings],
) -> None:
    settings, broker = make_settings(ws_resume_seconds=1), MemoryBroker()
    seat = member(origin="o_dead", record="konsil:resume:orphan")
    async with survivors(settings, broker) as (one, _):
        dead = await dead_process(settings, broker, seat)
        await one.orphans.claim(dead)
        assert await broker.take(seat.record) is not None  # a resume within the window
        async with asyncio.timeout(TIMEOUT):
            await handled(one, dead)
        assert one.ended == []


async def test_orphans_a_process_that_only_stalled_keeps_its_seats(
    make_settings: Callable[..., Settings],
) -> None:
    settings, broker = make_settings(ws_resume_seconds=1), MemoryBroker()
    seat = member(origin="o_dead", record="konsil:resume:orphan")
    async with survivors(settings, broker) as (one, _):
        dead = await dead_process(settings, broker, seat)
        await one.orphans.claim(dead)
        await broker.put(env.alive_key(dead), b"1", 60)  # its beats are back
        await anyio.sleep(settings.ws_resume_seconds + 0.5)
        assert one.ended == []
        assert await broker.exists(seat.record)
        assert dead in await one.orphans.registered()


async def room_state(sessions: async_sessionmaker[AsyncSession], appointment_id: int) -> RoomState:
    async with sessions() as session:
        appointment = await session.get(Appointment, appointment_id, populate_existing=True)
        assert appointment is not None
        return appointment.room_state


def dies(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on the process does nothing about its seats, as if killed: no liveness key,
    and a connection that ends is not noticed (no expiry timer, the index as it was)."""

    async def nothing(*args: object, **kwargs: object) -> None:
        return None

    monkeypatch.setattr(hub.seats, "disconnect", nothing)


async def waiting_patient(
    server: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> tuple[Appointment, str, str]:
    appointment = await make_appointment(sessions, demo, appointment_id=random_id())
    query = f"as=patient&appointment={appointment.id}"
    cookie = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    return appointment, query, cookie


async def cleaned_up(survivor: Hub, dead: Hub) -> None:
    """Waits until the survivor has dealt with the dead process: registry entry and index gone."""
    registry = survivor.liveness.orphans.registry
    # The broker has no event for it; a short poll, bounded by the caller's timeout.
    while True:
        if dead.replicas.origin not in await survivor.replicas.broker.filed(registry):
            break
        await asyncio.sleep(0.05)
    assert await survivor.replicas.broker.filed(env.seats_key(dead.replicas.origin)) == {}


@pytest.mark.redis
@pytest.mark.usefixtures("quick_liveness")
async def test_a_patient_waiting_alone_on_a_dead_process_is_ended_by_a_survivor(
    make_settings: Callable[..., Settings],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = make_settings(broker_url=REDIS_URL, ws_resume_seconds=1)
    async with live_server(cfg) as first, live_server(cfg) as second:
        dead, survivor = hub_of(first), hub_of(second)
        appointment, query, cookie = await waiting_patient(first, demo, cfg, sessions)
        assert appointment.id is not None
        async with ws_connect(first, query, cookie) as patient:
            await patient.send(type="join")
            await patient.expect("joined")
            assert await room_state(sessions, appointment.id) is RoomState.WAITING
            # The room is on the dead process only: no survivor has a replica to adopt from.
            assert appointment.id not in survivor.replicas.rooms
            indexed = await survivor.replicas.broker.filed(env.seats_key(dead.replicas.origin))
            assert list(indexed.values()) == [str(appointment.id).encode()]
            dies(dead, monkeypatch)
            await dead.liveness.stop()
            # The patient's device is gone too.
            patient.ws.transport.abort()
            async with asyncio.timeout(TIMEOUT + cfg.ws_resume_seconds):
                await cleaned_up(survivor, dead)
        assert await room_state(sessions, appointment.id) is RoomState.SCHEDULED


@pytest.mark.redis
@pytest.mark.usefixtures("quick_liveness")
async def test_a_patient_of_a_dead_process_who_resumes_within_the_window_keeps_the_seat(
    make_settings: Callable[..., Settings],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = make_settings(broker_url=REDIS_URL, ws_resume_seconds=3)
    async with live_server(cfg) as first, live_server(cfg) as second:
        dead, survivor = hub_of(first), hub_of(second)
        appointment, query, cookie = await waiting_patient(first, demo, cfg, sessions)
        assert appointment.id is not None
        async with ws_connect(first, query, cookie) as patient:
            await patient.send(type="join")
            joined = await patient.expect("joined")
            dies(dead, monkeypatch)
            await dead.liveness.stop()
            patient.ws.transport.abort()
        # Back at once, on the survivor: its old record (still in the dead one's index) is
        # taken by the resume, so the survivor ending the dead process's seats leaves it be.
        async with ws_connect(second, query, cookie) as again:
            await again.send(type="join", resume=joined["resume_id"])
            resumed = await again.expect("joined")
            assert resumed["resumed"] is True
            async with asyncio.timeout(TIMEOUT + cfg.ws_resume_seconds):
                await cleaned_up(survivor, dead)
            assert await room_state(sessions, appointment.id) is RoomState.WAITING
            members = survivor.replicas.rooms[appointment.id].room.members
            assert joined["participant_id"] in members
            # The seat is in the survivor's index now, under its new record.
            mine = await survivor.replicas.broker.filed(env.seats_key(survivor.replicas.origin))
            assert str(appointment.id).encode() in mine.values()


@pytest.mark.redis
@pytest.mark.usefixtures("quick_liveness")
async def test_a_patient_of_a_dead_process_who_reloads_on_the_survivor_stays_waiting(
    make_settings: Callable[..., Settings],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reloaded page has no resume id: the patient joins afresh on the survivor. Ending the
    dead process's old seat of that session must not take them out of the waiting room."""
    cfg = make_settings(broker_url=REDIS_URL, ws_resume_seconds=2)
    async with live_server(cfg) as first, live_server(cfg) as second:
        dead, survivor = hub_of(first), hub_of(second)
        appointment, query, cookie = await waiting_patient(first, demo, cfg, sessions)
        assert appointment.id is not None
        async with ws_connect(first, query, cookie) as patient:
            await patient.send(type="join")
            joined = await patient.expect("joined")
            dies(dead, monkeypatch)
            await dead.liveness.stop()
            patient.ws.transport.abort()
        async with ws_connect(second, query, cookie) as again:
            await again.send(type="join")
            fresh = await again.expect("joined")
            assert fresh["resumed"] is False
            async with asyncio.timeout(TIMEOUT + cfg.ws_resume_seconds):
                await cleaned_up(survivor, dead)
            assert await room_state(sessions, appointment.id) is RoomState.WAITING
            members = survivor.replicas.rooms[appointment.id].room.members
            assert list(members) == [fresh["participant_id"]]
            assert joined["participant_id"] not in members
