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
from app.errors import InvalidTransition
from app.rooms.state import Action
from app.scheduling.models import Appointment, RoomState
from app.settings import Settings
from app.signaling import envelope as env
from app.signaling import resume as records
from app.signaling.hub import Hub
from app.signaling.orphans import HOLD_MARGIN_SECONDS, Orphans, scope
from app.signaling.replicas import Replicas
from app.signaling.seats import RESUME_RECORD_MARGIN_SECONDS, Seats
from app.signaling.session import Member
from app.signaling.waiting import WaitingRooms
from app.tasks import Tasks
from tests.factories import Demo
from tests.live import live_server
from tests.services import REDIS_URL
from tests.signaling.dying import patient_on_a_dying_process, room_state
from tests.signaling.test_liveness import hub_of
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


def test_the_current_participant_of_a_seat_is_named_longer_than_any_record_lives(
    make_settings: Callable[..., Settings],
) -> None:
    # A record lives ``seat_ttl`` from its last write, and a survivor ending a dead process's
    # seats keeps it the window and its hold's margin more: a successor named for less would
    # leave an old record that ends it.
    settings = make_settings(ws_resume_seconds=120)
    longest = records.seat_ttl(settings) + settings.ws_resume_seconds
    longest += HOLD_MARGIN_SECONDS + RESUME_RECORD_MARGIN_SECONDS
    assert records.current_ttl(settings) >= longest


def test_the_registry_is_one_per_database(make_settings: Callable[..., Settings]) -> None:
    one = make_settings(database_url="postgresql+asyncpg://k:secret@db/konsil")
    same = make_settings(database_url="postgresql+asyncpg://k:secret@db/konsil")
    other = make_settings(database_url="postgresql+asyncpg://k:secret@db/other")
    assert scope(one) == scope(same) != scope(other)
    assert "secret" not in env.processes_key(scope(one))


class Ending:
    """A ``Seats`` told to end a dead process's seat, with a database that answers ``fails``
    (nothing: a departure that works)."""

    def __init__(self, settings: Settings, broker: MemoryBroker, fails: Exception | None):
        self.told: list[object] = []
        self.fails = fails

        async def publish(channel: str, message: object) -> None:
            self.told.append(message)

        replicas = SimpleNamespace(origin="o_survivor", rooms={}, publish=publish)
        self.seats = Seats(
            settings=settings,
            broker=broker,
            replicas=cast(Replicas, replicas),
            act=self._act,
            waiting=cast(WaitingRooms, SimpleNamespace()),
        )

    async def _act(self, appointment_id: int, action: Action, who: object) -> Appointment:
        if self.fails is not None:
            raise self.fails
        return cast(Appointment, SimpleNamespace())  # (not read by the departure)


async def test_seats_ending_a_seat_raises_if_the_database_is_out_of_reach(
    make_settings: Callable[..., Settings],
) -> None:
    ending = Ending(make_settings(), MemoryBroker(), OSError("the database is out of reach"))
    with pytest.raises(OSError, match="out of reach"):
        await ending.seats.end(42, member(origin="o_dead", record="konsil:resume:orphan"))


async def test_seats_ending_a_seat_whose_room_refuses_the_departure_is_done(
    make_settings: Callable[..., Settings],
) -> None:
    ending = Ending(make_settings(), MemoryBroker(), InvalidTransition())
    await ending.seats.end(42, member(origin="o_dead", record="konsil:resume:orphan"))
    assert len(ending.told) == 1  # the room heard it was lost


async def test_seats_a_seat_replaced_since_on_any_process_is_not_ended(
    make_settings: Callable[..., Settings],
) -> None:
    settings, broker = make_settings(), MemoryBroker()
    old = member(origin="o_dead", record="konsil:resume:orphan")
    # A reload joined afresh on a process this one knows nothing of.
    await broker.put(records.current_key_of(42, old), b"p_2", 60)
    ending = Ending(settings, broker, None)
    await ending.seats.end(42, old)
    assert ending.told == []
    await broker.put(records.current_key_of(42, old), old.id.encode(), 60)
    await ending.seats.end(42, old)
    assert len(ending.told) == 1


class Survivor:
    """An ``Orphans`` with what it needs of a process: its origin, its tasks, and seats that
    only record what they are told to end."""

    def __init__(self, settings: Settings, broker: MemoryBroker, tasks: Tasks, name: str):
        self.ended: list[tuple[int, Member]] = []
        self.failures = 0  # how many ``end`` calls fail first (the database out of reach)
        replicas = SimpleNamespace(origin=name, tasks=tasks)
        seats = SimpleNamespace(end=self._end)
        self.orphans = Orphans(
            settings=settings,
            broker=broker,
            replicas=cast(Replicas, replicas),
            seats=cast(Seats, seats),
        )

    async def _end(self, appointment_id: int, member: Member) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("the database is out of reach")
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


async def given_up(survivor: Survivor, origin: str) -> None:
    """Waits until the survivor tried to end ``origin``'s seats and gave up its hold."""
    # The broker has no event for it; a short poll, bounded by the caller's timeout.
    while True:
        hold = env.orphans_key(origin)
        if not survivor.failures and not await survivor.orphans.broker.exists(hold):
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


async def test_orphans_a_seat_whose_ending_failed_is_ended_at_the_next_claim(
    make_settings: Callable[..., Settings],
) -> None:
    settings, broker = make_settings(ws_resume_seconds=1), MemoryBroker()
    seat = member(origin="o_dead", record="konsil:resume:orphan")
    async with survivors(settings, broker) as (one, two):
        one.failures = 1
        dead = await dead_process(settings, broker, seat)
        await one.orphans.claim(dead)
        async with asyncio.timeout(TIMEOUT):
            await given_up(one, dead)
        # Not ended: the record is back and the dead process still registered, for the next
        # beat's claim (here by the other survivor).
        assert one.ended == []
        assert await broker.exists(seat.record)
        assert dead in await two.orphans.registered()
        await two.orphans.claim(dead)
        async with asyncio.timeout(TIMEOUT):
            await handled(two, dead)
        assert (one.ended, two.ended) == ([], [(42, seat)])


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
    async with patient_on_a_dying_process(cfg, demo, sessions, monkeypatch) as dying:
        async with asyncio.timeout(TIMEOUT + cfg.ws_resume_seconds):
            await cleaned_up(dying.survivor, dying.dead)
        assert await room_state(sessions, dying.appointment_id) is RoomState.SCHEDULED


@pytest.mark.redis
@pytest.mark.usefixtures("quick_liveness")
async def test_a_patient_of_a_dead_process_who_resumes_within_the_window_keeps_the_seat(
    make_settings: Callable[..., Settings],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = make_settings(broker_url=REDIS_URL, ws_resume_seconds=3)
    async with (
        patient_on_a_dying_process(cfg, demo, sessions, monkeypatch) as dying,
        # Back at once, on the survivor: its old record (still in the dead one's index) is
        # taken by the resume, so the survivor ending the dead process's seats leaves it be.
        ws_connect(dying.second, dying.query, dying.cookie) as again,
    ):
        survivor, joined = dying.survivor, dying.joined
        await again.send(type="join", resume=joined["resume_id"])
        resumed = await again.expect("joined")
        assert resumed["resumed"] is True
        async with asyncio.timeout(TIMEOUT + cfg.ws_resume_seconds):
            await cleaned_up(survivor, dying.dead)
        assert await room_state(sessions, dying.appointment_id) is RoomState.WAITING
        members = survivor.replicas.rooms[dying.appointment_id].room.members
        assert joined["participant_id"] in members
        # The seat is in the survivor's index now, under its new record.
        mine = await survivor.replicas.broker.filed(env.seats_key(survivor.replicas.origin))
        assert str(dying.appointment_id).encode() in mine.values()


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
    async with (
        patient_on_a_dying_process(cfg, demo, sessions, monkeypatch) as dying,
        ws_connect(dying.second, dying.query, dying.cookie) as again,
    ):
        await again.send(type="join")
        fresh = await again.expect("joined")
        assert fresh["resumed"] is False
        async with asyncio.timeout(TIMEOUT + cfg.ws_resume_seconds):
            await cleaned_up(dying.survivor, dying.dead)
        assert await room_state(sessions, dying.appointment_id) is RoomState.WAITING
        members = dying.survivor.replicas.rooms[dying.appointment_id].room.members
        assert list(members) == [fresh["participant_id"]]
        assert dying.joined["participant_id"] not in members


@pytest.mark.redis
@pytest.mark.usefixtures("quick_liveness")
async def test_a_patient_of_a_dead_process_who_reloads_on_a_third_process_stays_waiting(
    make_settings: Callable[..., Settings],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The reloaded page lands on a third process; the survivor that ends the dead process's
    seats has no replica of the room and never heard of the new participant: it must still
    leave the patient in the waiting room."""
    cfg = make_settings(broker_url=REDIS_URL, ws_resume_seconds=2)
    async with (
        patient_on_a_dying_process(cfg, demo, sessions, monkeypatch) as dying,
        live_server(cfg) as third,
    ):
        # Only the survivor (the second) may end the dead process's seats.
        monkeypatch.setattr(hub_of(third).liveness.orphans, "claim", nothing)
        async with ws_connect(third, dying.query, dying.cookie) as again:
            await again.send(type="join")
            fresh = await again.expect("joined")
            assert fresh["resumed"] is False
            async with asyncio.timeout(TIMEOUT + cfg.ws_resume_seconds):
                await cleaned_up(dying.survivor, dying.dead)
            assert dying.appointment_id not in dying.survivor.replicas.rooms
            assert await room_state(sessions, dying.appointment_id) is RoomState.WAITING
            members = hub_of(third).replicas.rooms[dying.appointment_id].room.members
            assert list(members) == [fresh["participant_id"]]


async def nothing(*args: object, **kwargs: object) -> None:
    return None
