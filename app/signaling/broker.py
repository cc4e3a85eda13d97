"""Fan-out of signalling messages between server processes, chosen by URL.

``memory://`` keeps everything in this process (one server). ``redis://host:port/db`` uses Redis
pub/sub so that several server processes can carry one call. Pub/sub delivers at most once;
the protocol layer above carries sequence numbers so a gap is noticed.

Besides pub/sub a broker keeps short-lived keys (``put`` with a time to live, atomic ``take``
and ``refresh``): the signalling hub stores resume records there, so a client may resume on
any process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Protocol


class Broker(Protocol):
    async def connect(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> bool: ...
    async def publish(self, channel: str, message: bytes) -> None:
        """Sends ``message``. Messages leave in the order of the calls: implementations take
        the message before their first ``await``, so callers need no lock to keep order."""
        ...

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """``async with broker.subscribe(ch) as messages: async for m in messages``."""
        ...

    async def put(self, key: str, value: bytes, ttl_seconds: int) -> None:
        """Stores ``value`` under ``key`` for ``ttl_seconds`` (overwrites)."""
        ...

    async def take(self, key: str) -> bytes | None:
        """Atomically reads and deletes ``key``: only one caller ever gets a value."""
        ...

    async def refresh(self, key: str, ttl_seconds: int) -> bool:
        """Sets a live ``key`` to expire in ``ttl_seconds``; False (and nothing stored) if it
        is gone, e.g. taken meanwhile. Atomic: never brings a taken key back."""
        ...


class FanOut:
    """This process's subscribers, one bounded queue each, by channel."""

    def __init__(self, queue_size: int = 1024) -> None:
        self._queue_size = queue_size
        self._subscribers: dict[str, set[asyncio.Queue[bytes]]] = {}

    def channels(self) -> list[str]:
        return list(self._subscribers)

    def deliver(self, channel: str, message: bytes) -> None:
        for queue in tuple(self._subscribers.get(channel, ())):
            # A subscriber that cannot keep up loses messages rather than stalling everyone.
            with suppress(asyncio.QueueFull):
                queue.put_nowait(message)

    def add(self, channel: str) -> tuple[asyncio.Queue[bytes], bool]:
        """A new queue for ``channel``; True when it is the channel's first subscriber."""
        queue: asyncio.Queue[bytes] = asyncio.Queue(self._queue_size)
        subscribers = self._subscribers.setdefault(channel, set())
        subscribers.add(queue)
        return queue, len(subscribers) == 1

    def remove(self, channel: str, queue: asyncio.Queue[bytes]) -> bool:
        """Drops ``queue``; True when the channel has no subscriber left."""
        subscribers = self._subscribers.get(channel)
        if subscribers is None:
            return False
        subscribers.discard(queue)
        if subscribers:
            return False
        del self._subscribers[channel]
        return True

    def clear(self) -> None:
        self._subscribers.clear()


class MemoryBroker:
    """In-process broker: each subscriber gets its own bounded queue."""

    def __init__(self, queue_size: int = 1024) -> None:
        self._fanout = FanOut(queue_size)
        self._keys: dict[str, tuple[float, bytes]] = {}

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        self._fanout.clear()
        self._keys.clear()

    async def ping(self) -> bool:
        return True

    async def publish(self, channel: str, message: bytes) -> None:
        self._fanout.deliver(channel, message)

    async def put(self, key: str, value: bytes, ttl_seconds: int) -> None:
        now = time.monotonic()
        # Expired keys are dropped on write, so the dict stays as small as the live keys.
        self._keys = {k: v for k, v in self._keys.items() if v[0] > now}
        self._keys[key] = (now + ttl_seconds, value)

    async def take(self, key: str) -> bytes | None:
        expiry, value = self._keys.pop(key, (0.0, b""))
        return value if expiry > time.monotonic() else None

    async def refresh(self, key: str, ttl_seconds: int) -> bool:
        now = time.monotonic()
        expiry, value = self._keys.get(key, (0.0, b""))
        if expiry <= now:
            self._keys.pop(key, None)
            return False
        self._keys[key] = (now + ttl_seconds, value)
        return True

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[bytes]]:
        queue, _ = self._fanout.add(channel)
        try:
            yield drain(queue)
        finally:
            self._fanout.remove(channel, queue)


async def drain(queue: asyncio.Queue[bytes]) -> AsyncIterator[bytes]:
    while True:
        yield await queue.get()


def create_broker(url: str) -> Broker:
    """The broker for ``url``: ``memory://`` or ``redis://...``."""
    if url.startswith("memory://"):
        return MemoryBroker()
    if url.startswith(("redis://", "rediss://")):
        from app.signaling.redis_broker import RedisBroker

        return RedisBroker(url)
    raise ValueError(f"unsupported broker URL scheme: {url.split('://', 1)[0]!r}")
