"""This process's subscribers and their bounded queues: shared by both backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import suppress


class FanOut:
    """This process's subscribers, one bounded queue each, by channel."""

    def __init__(self, queue_size: int = 1024) -> None:
        self._queue_size = queue_size
        self._subscribers: dict[str, set[asyncio.Queue[bytes]]] = {}

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


async def drain(queue: asyncio.Queue[bytes]) -> AsyncIterator[bytes]:
    while True:
        yield await queue.get()
