"""In-process broker (``memory://``): one server process, nothing shared."""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

from app.broker import Listening
from app.broker._fanout import FanOut, drain, guarded


class MemoryBroker:
    """In-process broker: each subscriber gets its own bounded queue, each listener a call."""

    def __init__(self, queue_size: int = 1024, clock: Callable[[], float] = time.monotonic) -> None:
        self._fanout = FanOut(queue_size)
        self._clock = clock
        self._keys: dict[str, tuple[float, bytes]] = {}
        # (expiry, key) for each write, soonest first: expired keys are dropped from the top
        # (an entry whose key was written again later, or removed, is skipped).
        self._expiries: list[tuple[float, str]] = []
        # Hashes (``file``): one per process, few; expired ones are dropped when one is made.
        self._hashes: dict[str, tuple[float, dict[str, bytes]]] = {}

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        self._fanout.clear()
        self._keys.clear()
        self._expiries.clear()
        self._hashes.clear()

    async def ping(self) -> bool:
        return True

    async def publish(self, channel: str, message: bytes) -> None:
        self._fanout.deliver(channel, message)

    async def listen(self, channel: str, listener: Callable[[bytes], None]) -> Listening:
        # Called soon after, not inside ``publish``: the publisher finishes what it does first,
        # as it would with Redis. The loop runs such callbacks in the order they were made.
        loop = asyncio.get_running_loop()
        sink = guarded(channel, listener)

        def later(message: bytes) -> None:
            loop.call_soon(sink, message)

        self._fanout.add(channel, later)
        return _Listening(partial(self._fanout.remove, channel, later))

    async def put(self, key: str, value: bytes, ttl_seconds: int) -> None:
        now = self._clock()
        self._set(key, now + ttl_seconds, value, now)

    async def put_if(
        self, key: str, expected: bytes, value: bytes | None, ttl_seconds: int
    ) -> bool:
        if await self.get(key) != expected:
            return False
        if value is None:
            self._keys.pop(key, None)
        else:
            await self.put(key, value, ttl_seconds)
        return True

    async def take(self, key: str) -> bytes | None:
        expiry, value = self._keys.pop(key, (0.0, b""))
        return value if expiry > self._clock() else None

    async def take_reading(self, key: str, other: str) -> tuple[bytes | None, bytes | None]:
        return await self.take(key), await self.get(other)  # (no await in between really)

    async def get(self, key: str) -> bytes | None:
        expiry, value = self._keys.get(key, (0.0, b""))
        return value if expiry > self._clock() else None

    async def exists(self, key: str) -> bool:
        expiry, _ = self._keys.get(key, (0.0, b""))
        return expiry > self._clock()

    async def refresh(self, key: str, ttl_seconds: int) -> bool:
        now = self._clock()
        expiry, value = self._keys.get(key, (0.0, b""))
        if expiry <= now:
            self._keys.pop(key, None)
            return False
        self._set(key, now + ttl_seconds, value, now)
        return True

    async def extend(self, key: str, ttl_seconds: int) -> bool:
        now = self._clock()
        expiry, value = self._keys.get(key, (0.0, b""))
        if expiry <= now:
            self._keys.pop(key, None)
            return False
        self._set(key, max(expiry, now + ttl_seconds), value, now)
        return True

    async def count(self, key: str, delta: int, ttl_seconds: float) -> int:
        now = self._clock()
        expiry, value = self._keys.get(key, (0.0, b""))
        if expiry <= now:
            expiry, value = now + ttl_seconds, b"0"
        result = int(value) + delta
        self._set(key, expiry, str(result).encode(), now)
        return result

    async def hold(self, key: str, ttl_seconds: float) -> float:
        now = self._clock()
        expiry, _ = self._keys.get(key, (0.0, b""))
        if expiry > now:
            return expiry - now
        self._set(key, now + ttl_seconds, b"1", now)
        return 0.0

    async def forget(self, *keys: str) -> None:
        for key in keys:
            self._keys.pop(key, None)
            self._hashes.pop(key, None)

    async def file(self, key: str, field: str, value: bytes, ttl_seconds: int) -> None:
        now = self._clock()
        expiry, fields = self._hashes.get(key, (0.0, {}))
        if expiry <= now:
            self._hashes = {k: v for k, v in self._hashes.items() if v[0] > now}
            fields = {}
        fields[field] = value
        self._hashes[key] = (max(expiry, now + ttl_seconds), fields)

    async def unfile(self, key: str, *fields: str) -> None:
        _, filed = self._hashes.get(key, (0.0, {}))
        for field in fields:
            filed.pop(field, None)
        if not filed:
            self._hashes.pop(key, None)

    async def filed(self, key: str) -> dict[str, bytes]:
        expiry, fields = self._hashes.get(key, (0.0, {}))
        return dict(fields) if expiry > self._clock() else {}

    async def present(self, *keys: str) -> list[bool]:
        return [await self.exists(key) for key in keys]

    def _set(self, key: str, expiry: float, value: bytes, now: float) -> None:
        """Stores a key, and drops the keys expired by ``now``: the dict stays as small as the
        live keys, at a cost per write that does not grow with them."""
        self._keys[key] = (expiry, value)
        heapq.heappush(self._expiries, (expiry, key))
        expiries = self._expiries
        while expiries and expiries[0][0] <= now:
            _, old = heapq.heappop(expiries)
            if self._keys.get(old, (now + 1.0,))[0] <= now:
                del self._keys[old]
        if len(expiries) > 2 * len(self._keys) + 64:
            # Written again and again (or taken): rebuilt from the live keys.
            self._expiries = [(exp, k) for k, (exp, _) in self._keys.items()]
            heapq.heapify(self._expiries)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[bytes]]:
        queue, sink = self._fanout.queue()
        self._fanout.add(channel, sink)
        try:
            yield drain(queue)
        finally:
            self._fanout.remove(channel, sink)


class _Listening:
    def __init__(self, remove: Callable[[], object]) -> None:
        self._remove = remove

    async def close(self) -> None:
        self._remove()
