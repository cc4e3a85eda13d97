"""This process's subscribers, shared by both backends: bounded queues (``subscribe``) and
listeners called with each message (``listen``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import suppress

from app.logging import get_logger, redacted_traceback
from app.metrics import BROKER_LISTENER_FAILED

log = get_logger("konsil.broker")

Sink = Callable[[bytes], None]


class FanOut:
    """This process's subscribers by channel: each is a sink that takes a message at once.

    A channel's sinks are a tuple, replaced when one comes or goes: most channels have one
    (each waiting patient's room has its own), and a one-sink tuple takes a fifth of the memory
    of a set; a delivery needs no copy to be safe from a sink that unsubscribes."""

    def __init__(self, queue_size: int = 1024) -> None:
        self._queue_size = queue_size
        self._subscribers: dict[str, tuple[Sink, ...]] = {}

    def deliver(self, channel: str, message: bytes) -> None:
        for sink in self._subscribers.get(channel, ()):
            sink(message)

    def queue(self) -> tuple[asyncio.Queue[bytes], Sink]:
        """A bounded queue and the sink that fills it: a subscriber that cannot keep up loses
        messages rather than stalling everyone."""
        queue: asyncio.Queue[bytes] = asyncio.Queue(self._queue_size)

        def offer(message: bytes) -> None:
            with suppress(asyncio.QueueFull):
                queue.put_nowait(message)

        return queue, offer

    def add(self, channel: str, sink: Sink) -> bool:
        """Adds ``sink`` to ``channel``; True when it is the channel's first subscriber."""
        subscribers = self._subscribers.get(channel, ())
        if sink not in subscribers:
            subscribers += (sink,)
            self._subscribers[channel] = subscribers
        return len(subscribers) == 1

    def remove(self, channel: str, sink: Sink) -> bool:
        """Drops ``sink``; True when the channel has no subscriber left."""
        subscribers = self._subscribers.get(channel)
        if subscribers is None:
            return False
        subscribers = tuple(s for s in subscribers if s != sink)
        if subscribers:
            self._subscribers[channel] = subscribers
            return False
        del self._subscribers[channel]
        return True

    def clear(self) -> None:
        self._subscribers.clear()


def guarded(channel: str, listener: Sink) -> Sink:
    """``listener`` as a sink that never raises: a message it fails on is logged and counted,
    and the next one is delivered as ever."""

    def sink(message: bytes) -> None:
        try:
            listener(message)
        except Exception as exc:
            BROKER_LISTENER_FAILED.inc()
            # The type and where, not the text: it may quote what the message carried.
            log.error(
                "broker.listener_failed",
                channel=channel,
                error=type(exc).__name__,
                traceback=redacted_traceback(exc),
            )

    return sink


async def drain(queue: asyncio.Queue[bytes]) -> AsyncIterator[bytes]:
    while True:
        yield await queue.get()
