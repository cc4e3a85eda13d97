"""One websocket as the hub sees it: a bounded outbox, a close request, a rate limit.

Pure of I/O: the endpoint's writer task drains the outbox into the socket. The hub never
awaits a connection, so one slow consumer cannot hold up anybody else; when its outbox is full
it is closed with 4408 and everybody else carries on.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from collections.abc import Callable

from pydantic import BaseModel

from app.errors import WS_SLOW_CONSUMER
from app.metrics import WS_ERRORS
from app.signaling.messages import encode


class Connection:
    """A connection's outbox. ``send`` never blocks; ``close`` is a request the writer honours."""

    def __init__(self, *, limit: int, role: str) -> None:
        self.id = "c_" + secrets.token_urlsafe(12)
        self.role = role
        self._limit = limit
        self._items: deque[str] = deque()
        self._wake = asyncio.Event()
        self.closing = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""
        # Called once when a close is requested (the endpoint bounds the time left to write).
        self.on_close: Callable[[], None] | None = None

    def send(self, message: BaseModel) -> None:
        if self.close_code is not None:
            return
        if len(self._items) >= self._limit:
            # What was queued is stale by now; the client resumes and ICE-restarts.
            self._items.clear()
            self.close(WS_SLOW_CONSUMER, "send queue overflow")
            return
        self._items.append(encode(message))
        self._wake.set()

    def close(self, code: int, reason: str = "") -> None:
        """Asks for a close after the messages already queued (first request wins)."""
        if self.close_code is not None:
            return
        self.close_code, self.close_reason = code, reason
        WS_ERRORS.labels(code=str(code)).inc()
        self._wake.set()
        self.closing.set()
        if self.on_close is not None:
            self.on_close()

    async def next(self) -> str | None:
        """The next frame to write, or None once a close was requested and the queue is empty."""
        while True:
            if self._items:
                return self._items.popleft()
            if self.close_code is not None:
                return None
            self._wake.clear()
            await self._wake.wait()


class TokenBucket:
    """``rate`` messages per second on average, bursts up to ``burst``. Times are monotonic."""

    def __init__(self, *, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.last = float(burst), now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
