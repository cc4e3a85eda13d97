"""Both broker backends: fan-out, ordering, unsubscribe, keys; Redis with many rooms."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from app.broker import Broker, create_broker
from app.broker.memory import MemoryBroker
from tests.services import REDIS_URL, require_redis


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    if request.param == "redis":
        require_redis()
    instance = create_broker("memory://" if request.param == "memory" else REDIS_URL)
    await instance.connect()
    try:
        yield instance
    finally:
        await instance.close()


def channel() -> str:
    return f"konsil:test:{uuid.uuid4().hex}"


async def next_message(messages: AsyncIterator[bytes]) -> bytes:
    return await asyncio.wait_for(anext(messages), 10)


async def test_broker_delivers_in_order_to_every_subscriber(broker: Broker) -> None:
    name = channel()
    async with broker.subscribe(name) as first, broker.subscribe(name) as second:
        for i in range(5):
            await broker.publish(name, f"m{i}".encode())
        assert [await next_message(first) for _ in range(5)] == [b"m0", b"m1", b"m2", b"m3", b"m4"]
        assert [await next_message(second) for _ in range(5)] == [b"m0", b"m1", b"m2", b"m3", b"m4"]


async def test_broker_concurrent_publishes_leave_in_call_order(broker: Broker) -> None:
    name = channel()
    expected = [f"m{i}".encode() for i in range(300)]
    async with broker.subscribe(name) as messages:
        await asyncio.gather(*(broker.publish(name, m) for m in expected))
        assert [await next_message(messages) for _ in expected] == expected


async def test_broker_keeps_channels_apart(broker: Broker) -> None:
    a, b = channel(), channel()
    async with broker.subscribe(a) as on_a, broker.subscribe(b) as on_b:
        await broker.publish(b, b"for b")
        await broker.publish(a, b"for a")
        assert await next_message(on_a) == b"for a"
        assert await next_message(on_b) == b"for b"


async def test_broker_resubscribe_after_last_subscriber_left(broker: Broker) -> None:
    name = channel()
    async with broker.subscribe(name) as messages:
        await broker.publish(name, b"one")
        assert await next_message(messages) == b"one"
    async with broker.subscribe(name) as messages:
        await broker.publish(name, b"two")
        assert await next_message(messages) == b"two"


async def test_broker_take_returns_a_key_once(broker: Broker) -> None:
    key = channel()
    await broker.put(key, b"record", 30)
    results = await asyncio.gather(*(broker.take(key) for _ in range(5)))
    assert results.count(b"record") == 1
    assert results.count(None) == 4


async def test_broker_take_reading_takes_one_key_and_reads_another(broker: Broker) -> None:
    key, other = channel(), channel()
    await broker.put(key, b"record", 30)
    await broker.put(other, b"current", 30)
    assert await broker.take_reading(key, other) == (b"record", b"current")
    assert await broker.take_reading(key, other) == (None, b"current")
    assert await broker.get(other) == b"current"  # read, not taken
    assert await broker.take_reading(key, channel()) == (None, None)


async def test_broker_put_if_changes_only_the_value_it_expects(broker: Broker) -> None:
    key = channel()
    assert await broker.put_if(key, b"mine", b"earlier", 30) is False  # missing: not mine
    assert await broker.get(key) is None
    await broker.put(key, b"newer", 30)
    assert await broker.put_if(key, b"mine", b"earlier", 30) is False
    assert await broker.get(key) == b"newer"
    assert await broker.put_if(key, b"newer", b"earlier", 30) is True
    assert await broker.get(key) == b"earlier"
    assert await broker.put_if(key, b"earlier", None, 30) is True  # None: deleted
    assert await broker.get(key) is None


async def test_broker_get_reads_without_taking(broker: Broker) -> None:
    key = channel()
    assert await broker.get(key) is None
    await broker.put(key, b"value", 30)
    assert await broker.get(key) == b"value"
    assert await broker.take(key) == b"value"
    assert await broker.get(key) is None


async def test_broker_refresh_keeps_a_live_key(broker: Broker) -> None:
    key = channel()
    await broker.put(key, b"record", 30)
    assert await broker.refresh(key, 60)
    assert await broker.take(key) == b"record"


async def test_broker_refresh_never_brings_back_a_taken_key(broker: Broker) -> None:
    key = channel()
    await broker.put(key, b"record", 30)
    await broker.take(key)
    assert not await broker.refresh(key, 60)
    assert await broker.take(key) is None


async def test_broker_counts_atomically_within_a_window(broker: Broker) -> None:
    key = channel()
    results = await asyncio.gather(*(broker.count(key, 1, 30) for _ in range(40)))
    assert sorted(results) == list(range(1, 41))  # each caller saw its own number
    assert await broker.count(key, -1, 30) == 39


async def test_broker_counter_lives_from_its_creation(broker: Broker) -> None:
    key = channel()
    # (A second of life: a loaded machine may take a good part of it to run the next line.)
    assert await broker.count(key, 1, 1.0) == 1
    await asyncio.sleep(0.1)
    assert await broker.count(key, 1, 30) == 2  # a later change does not extend the window
    await asyncio.sleep(1.1)
    assert await broker.count(key, 1, 30) == 1


async def test_broker_hold_is_taken_once_until_it_expires(broker: Broker) -> None:
    key = channel()
    results = await asyncio.gather(*(broker.hold(key, 0.4) for _ in range(10)))
    assert results.count(0.0) == 1
    assert all(0 < r <= 0.4 for r in results if r)
    await asyncio.sleep(0.5)
    assert await broker.hold(key, 30) == 0.0
    await broker.forget(key)
    assert await broker.hold(key, 30) == 0.0


async def test_broker_files_fields_of_a_hash_and_removes_them(broker: Broker) -> None:
    key = channel()
    assert await broker.filed(key) == {}
    await broker.file(key, "a", b"1", 30)
    await broker.file(key, "b", b"2", 30)
    await broker.file(key, "a", b"3", 30)
    assert await broker.filed(key) == {"a": b"3", "b": b"2"}
    await broker.unfile(key, "a", "missing")
    assert await broker.filed(key) == {"b": b"2"}
    await broker.unfile(key, "b")
    await broker.unfile(key)
    assert await broker.filed(key) == {}
    await broker.file(key, "c", b"4", 30)
    await broker.forget(key)
    assert await broker.filed(key) == {}


async def test_broker_hash_lives_from_its_longest_filing(broker: Broker) -> None:
    key = channel()
    await broker.file(key, "a", b"1", 1)
    await broker.file(key, "b", b"2", 30)  # longer: the hash lives on
    await broker.file(key, "c", b"3", 1)  # shorter: never cut short
    await asyncio.sleep(1.2)
    assert await broker.filed(key) == {"a": b"1", "b": b"2", "c": b"3"}
    other = channel()
    await broker.file(other, "a", b"1", 1)
    await asyncio.sleep(1.2)
    assert await broker.filed(other) == {}
    await broker.file(other, "b", b"2", 30)  # an expired hash starts empty
    assert await broker.filed(other) == {"b": b"2"}


async def test_broker_present_tells_each_key_in_order(broker: Broker) -> None:
    here, gone, taken = channel(), channel(), channel()
    await broker.put(here, b"1", 30)
    await broker.put(taken, b"1", 30)
    await broker.take(taken)
    assert await broker.present(here, gone, taken, here) == [True, False, False, True]
    assert await broker.present() == []


async def test_redis_broker_carries_many_rooms_on_one_connection() -> None:
    """More rooms than redis-py's default pool has connections (100)."""
    require_redis()
    broker = create_broker(REDIS_URL)
    await broker.connect()
    names = [channel() for _ in range(250)]
    try:
        async with AsyncExitStack() as stack:
            subscriptions = [await stack.enter_async_context(broker.subscribe(n)) for n in names]
            for i, name in enumerate(names):
                await broker.publish(name, str(i).encode())
            received = [await next_message(s) for s in subscriptions]
        assert received == [str(i).encode() for i in range(250)]
    finally:
        await broker.close()


async def test_memory_broker_drops_for_a_full_subscriber_only() -> None:
    broker = MemoryBroker(queue_size=2)
    name = channel()
    async with broker.subscribe(name) as slow, broker.subscribe(name) as fast:
        for i in range(3):
            await broker.publish(name, str(i).encode())
            assert await next_message(fast) == str(i).encode()
        assert [await next_message(slow) for _ in range(2)] == [b"0", b"1"]


async def test_broker_exists_tells_a_live_key_without_taking_it(broker: Broker) -> None:
    key = channel()
    assert not await broker.exists(key)
    await broker.put(key, b"1", 1)
    assert await broker.exists(key)
    assert await broker.exists(key)
    await asyncio.sleep(1.2)
    assert not await broker.exists(key)  # expired


class Collected:
    """A listener that keeps what it got; ``wait(n)`` until it has ``n``."""

    def __init__(self) -> None:
        self.got: list[bytes] = []
        self._more = asyncio.Event()

    def __call__(self, message: bytes) -> None:
        self.got.append(message)
        self._more.set()

    async def wait(self, count: int) -> None:
        async with asyncio.timeout(10):
            while len(self.got) < count:
                self._more.clear()
                await self._more.wait()


async def test_broker_listener_gets_messages_in_order_never_inside_publish(
    broker: Broker,
) -> None:
    name = channel()
    collected = Collected()
    publisher = asyncio.current_task()
    in_publisher: list[bool] = []

    def listener(message: bytes) -> None:
        # Not called within the publisher's own call (its task, synchronously).
        in_publisher.append(asyncio.current_task() is publisher)
        collected(message)

    listening = await broker.listen(name, listener)
    try:
        for n in range(50):
            await broker.publish(name, str(n).encode())
        await collected.wait(50)
        assert collected.got == [str(n).encode() for n in range(50)]
        assert not any(in_publisher)
    finally:
        await listening.close()


async def test_broker_listener_closed_gets_nothing_more(broker: Broker) -> None:
    name = channel()
    collected = Collected()
    listening = await broker.listen(name, collected)
    await broker.publish(name, b"before")
    await collected.wait(1)
    await listening.close()
    async with broker.subscribe(name) as messages:  # a subscriber still there tells when
        await broker.publish(name, b"after")
        assert await next_message(messages) == b"after"
    await asyncio.sleep(0.05)
    assert collected.got == [b"before"]


async def test_broker_listener_that_fails_gets_the_next_message(broker: Broker) -> None:
    name = channel()
    collected = Collected()

    def listener(message: bytes) -> None:
        if message == b"bad":
            raise ValueError("cannot take it")
        collected(message)

    listening = await broker.listen(name, listener)
    try:
        await broker.publish(name, b"bad")
        await broker.publish(name, b"good")
        await collected.wait(1)
        assert collected.got == [b"good"]
    finally:
        await listening.close()


async def test_broker_extend_lengthens_a_key_but_never_shortens_it(broker: Broker) -> None:
    short, long = channel(), channel()
    await broker.put(short, b"1", 1)
    await broker.put(long, b"1", 60)
    assert await broker.extend(short, 30)
    assert await broker.extend(long, 1)
    await asyncio.sleep(1.2)
    assert await broker.exists(short)  # lengthened to 30 s
    assert await broker.exists(long)  # kept its 60 s, not cut to 1
    assert await broker.take(long) == b"1"
    assert not await broker.extend(long, 30)  # gone: nothing brought back
    assert not await broker.exists(long)


async def test_memory_broker_drops_expired_keys_without_walking_the_live_ones() -> None:
    """Each write drops what has expired (the dict stays as small as the live keys), from
    the soonest expiry on: a key written again, refreshed shorter or taken is judged by what
    it is now, not by an earlier write."""
    now = [1000.0]
    broker = MemoryBroker(clock=lambda: now[0])
    for n in range(1000):
        await broker.put(f"seat:{n}", b"x", 10)
    await broker.put("again", b"1", 1)
    await broker.put("again", b"2", 30)  # written again: lives on
    await broker.put("shorter", b"x", 30)
    assert await broker.refresh("shorter", 5)
    await broker.put("taken", b"x", 1)
    assert await broker.take("taken") == b"x"
    now[0] += 11
    await broker.put("late", b"x", 10)
    assert set(broker._keys) == {"again", "late"}
    assert await broker.take("again") == b"2"
    assert not await broker.exists("shorter")
    assert len(broker._expiries) <= 2 * len(broker._keys) + 64


async def test_broker_takes_a_burst_of_more_commands_than_connections(broker: Broker) -> None:
    # Hundreds of seats given up at once (a process shutting down, a rush of joins): with
    # Redis the commands beyond the pool's connections wait for one instead of failing.
    prefix = channel()
    keys = [f"{prefix}:{i}" for i in range(400)]
    await asyncio.gather(*(broker.put(key, b"seat", 30) for key in keys))
    taken = await asyncio.gather(*(broker.take(key) for key in keys))
    assert taken == [b"seat"] * len(keys)
