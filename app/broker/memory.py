"""In-process broker (``memory://``): one server process, nothing shared."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.broker._fanout import FanOut, drain


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
