"""Fan-out of signalling messages between server processes, chosen by URL.

``memory://`` keeps everything in this process (one server). ``redis://host:port/db`` uses Redis
pub/sub so that several server processes can carry one call. Pub/sub delivers at most once;
the protocol layer above carries sequence numbers so a gap is noticed.

Backends live in their own modules (``memory``, ``redis``) and are imported by the factory.

Besides pub/sub a broker keeps short-lived keys (``put`` with a time to live, atomic
``put_if``, ``take`` and ``take_reading``, ``get``, ``refresh``, ``extend`` and ``exists``):
the signalling hub stores resume records, the current participant of each seat and each
process's liveness there, so a client may resume on any process. Atomic counters and holds
(``count``, ``hold``, ``forget``) carry the throttles (``app.throttle``), so that two
processes share one budget. Small hashes (``file``, ``unfile``, ``filed``) and ``present``
carry the registry of server processes and the index of the seats each holds
(``app.signaling.orphans``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from redis.exceptions import RedisError

# What a broker call raises when the broker cannot be reached (Redis stopped or restarting):
# callers that can carry on without it (signalling of a running call) catch these.
UNAVAILABLE: tuple[type[Exception], ...] = (RedisError, OSError)


class Listening(Protocol):
    async def close(self) -> None:
        """No more messages for this listener (one already on its way may still come)."""
        ...


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

    async def listen(self, channel: str, listener: Callable[[bytes], None]) -> Listening:
        """Calls ``listener(message)`` for each message on ``channel`` until the returned
        ``close()``: in the channel's order, one at a time, never inside ``publish``, without
        a queue or a task of its own (it runs in the broker's reader, so it must not block).
        A listener that raises is logged and counted; the next message comes all the same.
        Returns once subscribed, like ``subscribe``."""
        ...

    async def put(self, key: str, value: bytes, ttl_seconds: int) -> None:
        """Stores ``value`` under ``key`` for ``ttl_seconds`` (overwrites)."""
        ...

    async def put_if(
        self, key: str, expected: bytes, value: bytes | None, ttl_seconds: int
    ) -> bool:
        """Stores ``value`` under ``key`` for ``ttl_seconds`` (deletes ``key`` if ``value`` is
        None) only while ``key`` holds ``expected``: whether it did. Atomic."""
        ...

    async def take(self, key: str) -> bytes | None:
        """Atomically reads and deletes ``key``: only one caller ever gets a value."""
        ...

    async def take_reading(self, key: str, other: str) -> tuple[bytes | None, bytes | None]:
        """``take(key)`` and the value of ``other`` (None if missing), in one atomic step and
        one round trip."""
        ...

    async def get(self, key: str) -> bytes | None:
        """The value of ``key``, None if it is missing or expired (read only)."""
        ...

    async def exists(self, key: str) -> bool:
        """Whether ``key`` is set and has not expired (read only)."""
        ...

    async def refresh(self, key: str, ttl_seconds: int) -> bool:
        """Sets a live ``key`` to expire in ``ttl_seconds``; False (and nothing stored) if it
        is gone, e.g. taken meanwhile. Atomic: never brings a taken key back."""
        ...

    async def extend(self, key: str, ttl_seconds: int) -> bool:
        """Makes a live ``key`` expire no sooner than in ``ttl_seconds`` (never sooner than it
        would have); False if it is gone. Atomic, like ``refresh``."""
        ...

    async def count(self, key: str, delta: int, ttl_seconds: float) -> int:
        """Atomically adds ``delta`` to the counter ``key`` and returns the result. A missing
        key starts at 0 and lives ``ttl_seconds``; later changes do not extend its life."""
        ...

    async def hold(self, key: str, ttl_seconds: float) -> float:
        """Atomically sets ``key`` for ``ttl_seconds`` unless it is set: 0.0 if this call set
        it, else the seconds the existing hold still lasts."""
        ...

    async def forget(self, *keys: str) -> None:
        """Deletes ``keys`` (counters, holds, values or hashes)."""
        ...

    async def file(self, key: str, field: str, value: bytes, ttl_seconds: int) -> None:
        """Sets ``field`` of the hash ``key`` to ``value`` (made if missing); the hash then
        lives at least ``ttl_seconds`` from now (never shortened). Atomic."""
        ...

    async def unfile(self, key: str, *fields: str) -> None:
        """Removes ``fields`` from the hash ``key`` (a hash left empty is gone)."""
        ...

    async def filed(self, key: str) -> dict[str, bytes]:
        """Every field of the hash ``key`` and its value ({} if it is missing)."""
        ...

    async def present(self, *keys: str) -> list[bool]:
        """For each of ``keys``, whether it is set and has not expired (one round trip)."""
        ...


def create_broker(url: str) -> Broker:
    """The broker for ``url``: ``memory://`` or ``redis://...``."""
    if url.startswith("memory://"):
        from app.broker.memory import MemoryBroker

        return MemoryBroker()
    if url.startswith(("redis://", "rediss://")):
        from app.broker.redis import RedisBroker

        return RedisBroker(url)
    raise ValueError(f"unsupported broker URL scheme: {url.split('://', 1)[0]!r}")
