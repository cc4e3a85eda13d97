"""The outbox and its dispatcher on SQLite and PostgreSQL: delivered after commit, in order per
aggregate, at least once, retried with back-off, and each row claimed by one dispatcher."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from app.db import create_engine, session_factory, unit_of_work, utcnow
from app.events import outbox
from app.events import types as ev
from app.events.dispatcher import Dispatcher, Doorbell
from tests.conftest import create_schema


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    await create_schema(database_url)
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


class Heard:
    """A listener that writes down what it got, and can be told to fail."""

    def __init__(self) -> None:
        self.events: list[ev.DomainEvent] = []
        self.fail_for: set[int] = set()

    async def __call__(self, event: ev.DomainEvent) -> None:
        if isinstance(event, ev.LinkIssued) and event.appointment_id in self.fail_for:
            raise ConnectionError("broker down")
        self.events.append(event)


async def record(sessions: async_sessionmaker[AsyncSession], *events: ev.DomainEvent) -> None:
    async with unit_of_work(sessions) as session:
        for event in events:
            outbox.record(session, event)


async def rows(sessions: async_sessionmaker[AsyncSession]) -> list[outbox.OutboxEvent]:
    async with sessions() as session:
        found = await session.execute(
            select(outbox.OutboxEvent).order_by(col(outbox.OutboxEvent.id))
        )
        return list(found.scalars().all())


async def drain(dispatch: Dispatcher) -> int:
    """Rounds until one delivers nothing (each round takes the head of each aggregate)."""
    total = 0
    while delivered := (await dispatch.deliver_due()).delivered:
        total += delivered
    return total


def dispatcher(sessions: async_sessionmaker[AsyncSession], *listeners: Heard) -> Dispatcher:
    found = Dispatcher(sessions, Doorbell())
    for i, listener in enumerate(listeners):
        found.subscribe(f"l{i}", listener)
    return found


async def test_dispatcher_delivers_committed_events_in_order_and_prunes_them(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    events = [ev.LinkIssued(appointment_id=i % 3 + 1) for i in range(10)]
    await record(sessions, *events[:4])
    await record(sessions, *events[4:])
    heard = Heard()
    assert await drain(dispatcher(sessions, heard)) == 10
    for aggregate in ("appointment:1", "appointment:2", "appointment:3"):  # commit order each
        mine = [e for e in events if e.aggregate == aggregate]
        assert [e for e in heard.events if e.aggregate == aggregate] == mine
    assert await rows(sessions) == []


async def test_dispatcher_never_sees_events_of_a_rolled_back_unit_of_work(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async def failing_change() -> None:
        async with unit_of_work(sessions) as session:
            outbox.record(session, ev.LinkIssued(appointment_id=1))
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        await failing_change()
    assert await rows(sessions) == []


async def test_dispatcher_retries_a_failed_event_later_and_holds_back_its_aggregate(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    first, later = ev.LinkIssued(appointment_id=1), ev.LinkRevoked(appointment_id=1)
    other = ev.LinkIssued(appointment_id=2)
    await record(sessions, first, other, later)
    fine, failing = Heard(), Heard()
    failing.fail_for = {1}
    dispatch = dispatcher(sessions, fine, failing)

    done = await dispatch.deliver_due()
    assert done.failed
    assert await drain(dispatch) == 1  # only the other aggregate's event
    assert failing.events == [other]
    left = await rows(sessions)
    assert [r.event_id for r in left] == [first.event_id, later.event_id]
    assert left[0].attempts == 1
    assert left[0].available_at > utcnow()  # backing off

    assert (await dispatch.deliver_due()).delivered == 0  # not due yet; ``later`` waits for it
    failing.fail_for.clear()
    async with unit_of_work(sessions) as session:
        await session.execute(update(outbox.OutboxEvent).values(available_at=utcnow()))
    assert await drain(dispatch) == 2
    assert failing.events == [other, first, later]
    # The listener that had ``first`` already is not handed it again by this process.
    assert fine.events == [first, other, later]
    assert await rows(sessions) == []


async def test_dispatcher_leaves_unknown_event_types_to_the_release_that_knows_them(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    behind, elsewhere = ev.LinkIssued(appointment_id=1), ev.LinkIssued(appointment_id=2)
    async with unit_of_work(sessions) as session:
        newer = outbox.OutboxEvent(
            event_id="f" * 32, aggregate="appointment:1", type="appointment.paid", payload="{}"
        )
        session.add(newer)
        outbox.record(session, behind)
        outbox.record(session, elsewhere)
    heard = Heard()
    assert await drain(dispatcher(sessions, heard)) == 1
    assert heard.events == [elsewhere]  # ``behind`` keeps its place after the unknown one
    kept = await rows(sessions)
    assert [r.event_id for r in kept] == ["f" * 32, behind.event_id]
    assert (kept[0].attempts, kept[0].failed_at) == (0, None)


async def test_dispatcher_backs_off_from_a_row_it_cannot_read(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with unit_of_work(sessions) as session:
        session.add(
            outbox.OutboxEvent(
                event_id="e" * 32,
                aggregate="appointment:1",
                type="link.issued",
                payload='{"type": "link.issued", "appointment_id": 1, "new_field": 1}',
            )
        )
    done = await dispatcher(sessions, Heard()).deliver_due()
    assert (done.delivered, done.failed) == (0, True)
    (kept,) = await rows(sessions)
    assert kept.attempts == 1
    assert kept.failed_at is None
    assert kept.available_at > utcnow()


def test_outbox_retry_backs_off_and_gives_up_after_max_attempts() -> None:
    row = outbox.OutboxEvent(event_id="a" * 32, aggregate="a", type="t", payload="{}")
    now = utcnow()
    waits = []
    while outbox.retry_later(row, now):
        waits.append(row.available_at - now)
    assert waits[:3] == [timedelta(seconds=2), timedelta(seconds=4), timedelta(seconds=8)]
    assert max(waits) == outbox.BACKOFF_CAP
    assert row.attempts == outbox.MAX_ATTEMPTS
    assert row.failed_at == now


async def test_dispatcher_run_delivers_right_after_the_commit_that_rings(
    database_url: str,
) -> None:
    await create_schema(database_url)
    engine = create_engine(database_url)
    doorbell = Doorbell()
    sessions = session_factory(engine, events_committed=doorbell.ring)
    arrived = asyncio.Event()

    async def heard(event: ev.DomainEvent) -> None:
        arrived.set()

    dispatch = Dispatcher(sessions, doorbell, sweep_seconds=300)  # the sweep cannot be it
    dispatch.subscribe("heard", heard)
    task = asyncio.create_task(dispatch.run())
    try:
        await asyncio.sleep(0.1)  # idle, waiting for the bell
        await record(sessions, ev.LinkIssued(appointment_id=1))
        await asyncio.wait_for(arrived.wait(), 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await engine.dispose()


@pytest.fixture
async def two_factories(
    postgres_url: str,
) -> AsyncIterator[list[async_sessionmaker[AsyncSession]]]:
    """Two engines on one PostgreSQL database, as two server processes would have."""
    await create_schema(postgres_url)
    engines = [create_engine(postgres_url) for _ in range(2)]
    yield [session_factory(e) for e in engines]
    for engine in engines:
        await engine.dispose()


@pytest.mark.postgres
async def test_dispatcher_skips_rows_another_holds_and_keeps_their_aggregate_in_order(
    two_factories: list[async_sessionmaker[AsyncSession]],
) -> None:
    ev1, ev2 = ev.LinkIssued(appointment_id=1), ev.LinkIssued(appointment_id=2)
    ev3, ev4 = ev.LinkRevoked(appointment_id=1), ev.LinkIssued(appointment_id=3)
    await record(two_factories[0], ev1, ev2, ev3, ev4)
    delivered: list[tuple[str, ev.DomainEvent]] = []
    holding, gate = asyncio.Event(), asyncio.Event()

    async def slow(event: ev.DomainEvent) -> None:
        holding.set()
        await gate.wait()  # mid-delivery, its row still locked
        delivered.append(("a", event))

    async def quick(event: ev.DomainEvent) -> None:
        delivered.append(("b", event))

    a = Dispatcher(two_factories[0], Doorbell(), batch=1)
    a.subscribe("slow", slow)
    b = Dispatcher(two_factories[1], Doorbell())
    b.subscribe("quick", quick)

    first_round = asyncio.create_task(a.deliver_due())
    await asyncio.wait_for(holding.wait(), 10)
    await b.deliver_due()  # ev1 is locked by ``a``; ev3 is not a head while ev1 is owed
    assert delivered == [("b", ev2), ("b", ev4)]
    gate.set()
    assert (await first_round).delivered == 1
    assert (await b.deliver_due()).delivered == 1
    assert delivered == [("b", ev2), ("b", ev4), ("a", ev1), ("b", ev3)]
    assert await rows(two_factories[0]) == []


async def test_dispatcher_late_round_on_shared_sqlite_deletes_only_what_it_delivered(
    sqlite_url: str,
) -> None:
    """Two engines on one SQLite file (two test servers): both dispatchers claim a row (no
    SKIP LOCKED), and SQLite gives a deleted row's id to the next row. The later round must
    not delete that newer, undelivered event (the admit that never reached the patient)."""
    await create_schema(sqlite_url)
    engines = [create_engine(sqlite_url) for _ in range(2)]
    try:
        first, second = (session_factory(e) for e in engines)
        arrived, admitted = ev.LinkIssued(appointment_id=1), ev.LinkRevoked(appointment_id=1)
        await record(first, arrived)
        holding, gate = asyncio.Event(), asyncio.Event()

        async def slow(event: ev.DomainEvent) -> None:
            holding.set()
            await gate.wait()  # mid-delivery, its claimed row still in hand

        quick = Heard()
        a = Dispatcher(first, Doorbell())
        a.subscribe("slow", slow)
        b = Dispatcher(second, Doorbell())
        b.subscribe("quick", quick)
        late_round = asyncio.create_task(a.deliver_due())
        await asyncio.wait_for(holding.wait(), 10)
        (claimed,) = await rows(first)
        assert (await b.deliver_due()).delivered == 1  # the same row, delivered and deleted
        await record(first, admitted)
        assert [(r.id, r.event_id) for r in await rows(first)] == [
            (claimed.id, admitted.event_id)  # the premise: the id came back
        ]
        gate.set()
        assert (await late_round).delivered == 1
        assert [r.event_id for r in await rows(first)] == [admitted.event_id]
        assert (await b.deliver_due()).delivered == 1
        assert quick.events == [arrived, admitted]
    finally:
        for engine in engines:
            await engine.dispose()


@pytest.mark.postgres
async def test_two_dispatchers_on_postgresql_deliver_each_event_once_in_order(
    two_factories: list[async_sessionmaker[AsyncSession]],
) -> None:
    events = [ev.LinkIssued(appointment_id=i % 5 + 1) for i in range(200)]
    for start in range(0, 200, 20):
        await record(two_factories[0], *events[start : start + 20])
    seen: list[ev.DomainEvent] = []

    async def hear(event: ev.DomainEvent) -> None:
        await asyncio.sleep(0.001)  # let the two interleave
        seen.append(event)

    dispatchers = [Dispatcher(f, Doorbell(), batch=15) for f in two_factories]
    for d in dispatchers:
        d.subscribe("seen", hear)

    async def drain(d: Dispatcher) -> None:
        while True:
            done = await d.deliver_due()
            if not done.delivered:
                return
            await asyncio.sleep(0)

    await asyncio.wait_for(asyncio.gather(*(drain(d) for d in dispatchers)), 60)
    assert sorted(e.event_id for e in seen) == sorted(e.event_id for e in events)  # each once
    for appointment_id in range(1, 6):
        sent = [e.event_id for e in events if e.appointment_id == appointment_id]
        got = [e.event_id for e in seen if e.aggregate == f"appointment:{appointment_id}"]
        assert got == sent
    assert await rows(two_factories[0]) == []
