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
    """A connection's outbox. ``send`` never blocks; ``close`` is a request the writer honours.

    Small, as every waiting patient holds one for long (docs/performance.md, memory): slots,
    a queue only while messages wait, and one future for the writer to wait on instead of two
    ``asyncio.Event`` (each with a queue of its own)."""

    __slots__ = (
        "_closing",
        "_items",
        "_limit",
        "_waiter",
        "close_code",
        "close_reason",
        "id",
        "on_close",
        "role",
    )

    def __init__(self, *, limit: int, role: str) -> None:
        self.id = "c_" + secrets.token_urlsafe(12)
        self.role = role
        self._limit = limit
        self._items: deque[str] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._closing: asyncio.Event | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        # Called once when a close is requested (the endpoint bounds the time left to write).
        self.on_close: Callable[[], None] | None = None

    @property
    def closing(self) -> asyncio.Event:
        """Set once a close was requested (made when first asked for)."""
        if self._closing is None:
            self._closing = asyncio.Event()
            if self.close_code is not None:
                self._closing.set()
        return self._closing

    def send(self, message: BaseModel) -> None:
        if self.close_code is not None:
            return
        items = self._items
        if items is None:
            items = self._items = deque()
        elif len(items) >= self._limit:
            # What was queued is stale by now; the client resumes and ICE-restarts.
            items.clear()
            self.close(WS_SLOW_CONSUMER, "send queue overflow")
            return
        items.append(encode(message))
        self._wake()

    def close(self, code: int, reason: str = "") -> None:
        """Asks for a close after the messages already queued (first request wins)."""
        if self.close_code is not None:
            return
        self.close_code, self.close_reason = code, reason
        WS_ERRORS.labels(code=str(code)).inc()
        self._wake()
        if self._closing is not None:
            self._closing.set()
        if self.on_close is not None:
            self.on_close()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next(self) -> str | None:
        """The next frame to write, or None once a close was requested and the queue is empty."""
        while True:
            items = self._items
            if items:
                frame = items.popleft()
                if not items:
                    self._items = None  # an idle connection holds no queue
                return frame
            if self.close_code is not None:
                return None
            waiter = self._waiter
            if waiter is None or waiter.done():  # (done: a wait that was cancelled)
                waiter = self._waiter = asyncio.get_running_loop().create_future()
            await waiter


class TokenBucket:
    """``rate`` messages per second on average, bursts up to ``burst``. Times are monotonic."""

    __slots__ = ("burst", "last", "rate", "tokens")

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
