"""Redis pub/sub backend of the broker (``redis://``), for more than one server process.

All of a process's subscriptions share ONE pub/sub connection and one reader task, which fans
messages out to local queues and listeners: a process with thousands of open rooms holds one Redis
connection for them, not one each (the connection pool would run dry at about 100).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from functools import partial
from typing import Any

import anyio
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from app.broker import Listening
from app.broker._fanout import FanOut, Sink, drain, guarded
from app.logging import get_logger

# Counter that lives from its creation (a window), not from its last change.
_COUNT = """
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if n == tonumber(ARGV[1]) and redis.call('PTTL', KEYS[1]) < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return n
"""
_HOLD = """
if redis.call('SET', KEYS[1], 1, 'PX', ARGV[1], 'NX') then return 0 end
return redis.call('PTTL', KEYS[1])
"""
# Never shortens: a key without expiry keeps none, a longer one keeps its own.
_EXTEND = """
local ttl = redis.call('TTL', KEYS[1])
if ttl == -2 then return 0 end
if ttl >= 0 and ttl < tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return 1
"""
# A hash's field set, and the hash kept at least ARGV[3] seconds from now (never shortened).
_FILE = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local ttl = redis.call('TTL', KEYS[1])
if ttl == -1 or ttl < tonumber(ARGV[3]) then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return 1
"""
# Set (or, with ARGV[4] = "1", deleted) only while it holds ARGV[1].
_PUT_IF = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[4] == '1' then redis.call('DEL', KEYS[1]) else
    redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
end
return 1
"""
CONFIRM_SECONDS = 5.0
UNSUBSCRIBE_SECONDS = 5.0
MAX_BATCH = 512
# Commands share this many connections. A burst beyond it (hundreds of seats given up at once
# as a process shuts down, a rush of joins) waits for a free one, at most POOL_WAIT_SECONDS,
# instead of failing at once as redis-py's default pool does.
POOL_SIZE = 100
POOL_WAIT_SECONDS = 10.0
log = get_logger("konsil.broker")


class RedisBroker:
    """Publishes through the connection pool; subscribes through one shared pub/sub connection."""

    def __init__(self, url: str, queue_size: int = 1024) -> None:
        pool = BlockingConnectionPool.from_url(
            url, max_connections=POOL_SIZE, timeout=POOL_WAIT_SECONDS, health_check_interval=30
        )
        self._redis: Redis = Redis.from_pool(pool)  # (closed with it)
        self._count = self._redis.register_script(_COUNT)
        self._hold = self._redis.register_script(_HOLD)
        self._extend = self._redis.register_script(_EXTEND)
        self._file = self._redis.register_script(_FILE)
        self._put_if = self._redis.register_script(_PUT_IF)
        self._fanout = FanOut(queue_size)
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._commands = asyncio.Lock()  # SUBSCRIBE/UNSUBSCRIBE one at a time, in order
        self._confirm: dict[str, asyncio.Future[None]] = {}
        # Publishes wait here and leave in call order, many per round trip (one pipeline).
        self._outbox: list[tuple[str, bytes, asyncio.Future[None]]] = []
        self._pending = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        for task in (self._reader, self._writer):
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        self._fanout.clear()
        await self._redis.aclose()

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (OSError, RedisError):
            return False

    async def publish(self, channel: str, message: bytes) -> None:
        sent = asyncio.get_running_loop().create_future()
        self._outbox.append((channel, message, sent))
        self._pending.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())
        await sent

    async def _write(self) -> None:
        while True:
            await self._pending.wait()
            batch, self._outbox = self._outbox[:MAX_BATCH], self._outbox[MAX_BATCH:]
            if not self._outbox:
                self._pending.clear()
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for channel, message, _ in batch:
                        pipe.publish(channel, message)
                    await pipe.execute()
            except (RedisError, OSError) as exc:
                for *_, sent in batch:
                    if not sent.done():
                        sent.set_exception(exc)
            else:
                for *_, sent in batch:
                    if not sent.done():
                        sent.set_result(None)

    async def put(self, key: str, value: bytes, ttl_seconds: int) -> None:
        await self._redis.set(key, value, ex=ttl_seconds)

    async def put_if(
        self, key: str, expected: bytes, value: bytes | None, ttl_seconds: int
    ) -> bool:
        gone = "1" if value is None else "0"
        args: list[bytes | int | str] = [expected, value or b"", int(ttl_seconds), gone]
        return bool(await self._put_if(keys=[key], args=args))

    async def take(self, key: str) -> bytes | None:
        value = await self._redis.getdel(key)  # Redis >= 6.2: atomic read-and-delete
        return value if isinstance(value, bytes) or value is None else str(value).encode()

    async def take_reading(self, key: str, other: str) -> tuple[bytes | None, bytes | None]:
        async with self._redis.pipeline(transaction=True) as pipe:  # MULTI/EXEC: atomic
            pipe.getdel(key)
            pipe.get(other)
            taken, read = await pipe.execute()
        return _bytes(taken), _bytes(read)

    async def get(self, key: str) -> bytes | None:
        return _bytes(await self._redis.get(key))

    async def exists(self, key: str) -> bool:
        return bool(await self._redis.exists(key))

    async def refresh(self, key: str, ttl_seconds: int) -> bool:
        # EXPIRE on a missing key does nothing and answers 0: a taken key stays taken.
        return bool(await self._redis.expire(key, ttl_seconds))

    async def extend(self, key: str, ttl_seconds: int) -> bool:
        return bool(await self._extend(keys=[key], args=[int(ttl_seconds)]))

    async def count(self, key: str, delta: int, ttl_seconds: float) -> int:
        return int(await self._count(keys=[key], args=[delta, _ms(ttl_seconds)]))

    async def hold(self, key: str, ttl_seconds: float) -> float:
        remaining = int(await self._hold(keys=[key], args=[_ms(ttl_seconds)]))
        return max(remaining, 0) / 1000

    async def forget(self, *keys: str) -> None:
        if keys:
            await self._redis.delete(*keys)

    async def file(self, key: str, field: str, value: bytes, ttl_seconds: int) -> None:
        await self._file(keys=[key], args=[field, value, int(ttl_seconds)])

    async def unfile(self, key: str, *fields: str) -> None:
        if fields:
            await self._redis.hdel(key, *fields)

    async def filed(self, key: str) -> dict[str, bytes]:
        found = await self._redis.hgetall(key)
        return {_text(k): v if isinstance(v, bytes) else str(v).encode() for k, v in found.items()}

    async def present(self, *keys: str) -> list[bool]:
        if not keys:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.exists(key)
            return [bool(n) for n in await pipe.execute()]

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[bytes]]:
        queue, sink = self._fanout.queue()
        await self._add(channel, sink)
        try:
            yield drain(queue)
        finally:
            await self._remove(channel, sink)

    async def listen(self, channel: str, listener: Callable[[bytes], None]) -> Listening:
        # Called from the reader task, which reads every channel: no queue, no task.
        sink = guarded(channel, listener)
        await self._add(channel, sink)
        return _Listening(partial(self._remove, channel, sink))

    async def _add(self, channel: str, sink: Sink) -> None:
        if self._fanout.add(channel, sink):
            try:
                await self._redis_subscribe(channel)
            except BaseException:
                self._fanout.remove(channel, sink)
                raise

    async def _remove(self, channel: str, sink: Sink) -> None:
        if self._fanout.remove(channel, sink):
            # Shielded: a subscriber is usually left by cancelling its task, and a cancel
            # scope would cancel this wait too (for the command lock), leaving Redis sending
            # a channel nobody here reads.
            with (
                anyio.CancelScope(shield=True),
                anyio.move_on_after(UNSUBSCRIBE_SECONDS),
                suppress(RedisError, OSError),
            ):
                await self._redis_unsubscribe(channel)

    async def _redis_subscribe(self, channel: str) -> None:
        async with self._commands:
            pubsub = self._pubsub or self._redis.pubsub()
            self._pubsub = pubsub
            confirmed = asyncio.get_running_loop().create_future()
            self._confirm[channel] = confirmed
            await pubsub.subscribe(channel)
            if self._reader is None or self._reader.done():
                self._reader = asyncio.get_running_loop().create_task(self._read(pubsub))
        # A publish right after subscribe() must not be missed: wait for Redis to confirm.
        try:
            await asyncio.wait_for(asyncio.shield(confirmed), CONFIRM_SECONDS)
        finally:
            self._confirm.pop(channel, None)

    async def _redis_unsubscribe(self, channel: str) -> None:
        async with self._commands:
            if self._pubsub is not None:
                await self._pubsub.unsubscribe(channel)

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            try:
                item = await pubsub.get_message(timeout=1.0)
            except (RedisError, OSError) as exc:
                # redis-py reconnects and re-subscribes; what was published meanwhile is lost,
                # which the sequence numbers above the broker detect.
                log.warning("broker.redis_read_failed", error=type(exc).__name__)
                await asyncio.sleep(0.5)
                continue
            if item is not None:
                self._dispatch(item)

    def _dispatch(self, item: dict[str, Any]) -> None:
        kind, channel = item.get("type"), item.get("channel")
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        if kind == "message":
            data = item["data"]
            self._fanout.deliver(name, data if isinstance(data, bytes) else str(data).encode())
        elif kind == "subscribe":
            waiting = self._confirm.get(name)
            if waiting is not None and not waiting.done():
                waiting.set_result(None)


def _bytes(raw: object) -> bytes | None:
    return raw if isinstance(raw, bytes) or raw is None else str(raw).encode()


def _text(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class _Listening:
    def __init__(self, remove: Callable[[], Awaitable[None]]) -> None:
        self._remove = remove

    async def close(self) -> None:
        await self._remove()
