"""Delivers committed domain events from the outbox to their listeners, at least once.

A round claims, in one transaction, the due rows that head their aggregate (``outbox.claim``),
hands each event to every listener, deletes the delivered rows and commits; the next round
finds the aggregates' next events. If the process dies mid-round the transaction rolls back,
its row locks go with it, and the rows are delivered again: by this process on its next start,
or by another one at its next sweep. Listeners must therefore tolerate an event twice (by its
``event_id``); within one process the dispatcher remembers its recent deliveries, so a retry
after one listener failed skips the listeners that had the event.

The doorbell (``ring``) is called by ``app.db.unit_of_work`` after a commit that wrote events,
so delivery follows within milliseconds; the periodic sweep picks up what other processes left.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import anyio
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import unit_of_work, utcnow
from app.events import outbox
from app.events.types import EVENT_TYPES, EVENTS, DomainEvent
from app.logging import get_logger
from app.metrics import EVENTS_DELIVERED, EVENTS_FAILED

Listener = Callable[[DomainEvent], Awaitable[None]]
"""An async callable that acts on one event; it must tolerate seeing an event again."""

Outcome = Literal["delivered", "retry", "set_aside"]

log = get_logger("konsil.events")
STOP_GRACE_SECONDS = 15.0


class Doorbell:
    """Wakes the dispatcher; rung after a commit, from the event loop's thread."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def ring(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> None:
        """Until rung (or rung before this call), or ``seconds`` passed."""
        with anyio.move_on_after(seconds):
            await self._event.wait()
        self._event.clear()


class Recent:
    """A bounded memory of (listener, event id) pairs already handed over in this process."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._seen

    def add(self, key: tuple[str, str]) -> None:
        self._seen[key] = None
        if len(self._seen) > self._size:
            self._seen.popitem(last=False)


@dataclass
class Round:
    """What one round did: rows delivered, and whether a listener failed."""

    delivered: int = 0
    failed: bool = False


@dataclass
class Dispatcher:
    """This process's dispatcher. Packages ``subscribe`` while the app starts; ``run`` lives in
    the lifespan's task group."""

    sessions: async_sessionmaker[AsyncSession]
    doorbell: Doorbell
    sweep_seconds: float = 2.0
    batch: int = 100
    listener_timeout: float = 10.0
    listeners: dict[str, Listener] = field(default_factory=dict)
    recent: Recent = field(default_factory=Recent)
    _stopping: bool = field(default=False, init=False)
    _round_scope: anyio.CancelScope | None = field(default=None, init=False)

    def subscribe(self, name: str, listener: Listener) -> None:
        """Adds a listener under a stable ``name`` (used in logs and for redelivery checks)."""
        if name in self.listeners:
            raise ValueError(f"listener {name!r} is already subscribed")
        self.listeners[name] = listener

    async def run(self) -> None:
        """Delivers what is due now (left over from before a restart), then on every ring and
        every ``sweep_seconds``, until ``stop``. Cancelling it interrupts a wait, never a
        round."""
        await self._loop()

    def stop(self) -> None:
        """Ends ``run`` after the round in progress, and that round after its current event: a
        round is not cancelled halfway (its database connection would be cut mid-query) unless
        it outlasts ``STOP_GRACE_SECONDS``. What it did not delete is delivered next time."""
        self._stopping = True
        self.doorbell.ring()
        if self._round_scope is not None:
            self._round_scope.deadline = anyio.current_time() + STOP_GRACE_SECONDS

    async def _loop(self) -> None:
        while not self._stopping:
            with anyio.CancelScope(shield=True) as self._round_scope:
                done = await self.deliver_due()
            self._round_scope = None
            if done.delivered and not done.failed:
                continue  # the next events of the same aggregates are heads now
            await self.doorbell.wait(self.sweep_seconds)

    async def deliver_due(self) -> Round:
        """One round; never raises (a failing database is retried at the next round)."""
        try:
            return await self._round()
        except Exception as exc:
            log.warning("events.round_failed", error=type(exc).__name__)
            return Round()

    async def _round(self) -> Round:
        done = Round()
        async with unit_of_work(self.sessions) as session:
            rows = await outbox.claim(session, now=utcnow(), limit=self.batch, types=EVENT_TYPES)
            delivered: list[outbox.OutboxEvent] = []
            for row in rows:
                if self._stopping:
                    break  # the rest stays owed; delivered next time
                outcome = await self._deliver(row)
                if outcome == "delivered":
                    delivered.append(row)
                elif outcome == "retry":
                    # A listener is failing (the broker is down?): no point in trying the
                    # rest now, and the round's row locks should not be held for long.
                    done.failed = True
                    break
            await outbox.delivered(session, delivered)
        done.delivered = len(delivered)
        return done

    async def _deliver(self, row: outbox.OutboxEvent) -> Outcome:
        try:
            event = EVENTS.validate_json(row.payload)
        except ValidationError as exc:
            # A type this release knows, with fields it does not (a newer release wrote it):
            # back off, so that a process of the newer release delivers it meanwhile.
            return self._failed(row, "parse", exc)
        for name, listener in self.listeners.items():
            if (name, event.event_id) in self.recent:
                continue
            try:
                with anyio.fail_after(self.listener_timeout):
                    await listener(event)
            except Exception as exc:
                return self._failed(row, name, exc)
            self.recent.add((name, event.event_id))
        EVENTS_DELIVERED.labels(type=event.type).inc()
        return "delivered"

    def _failed(self, row: outbox.OutboxEvent, listener: str, exc: Exception) -> Outcome:
        # The type only: an exception's text could quote data.
        retry = outbox.retry_later(row, utcnow())
        outcome: Outcome = "retry" if retry else "set_aside"
        EVENTS_FAILED.labels(type=row.type, outcome=outcome).inc()
        log.warning(
            "events.listener_failed",
            listener=listener,
            type=row.type,
            event_id=row.event_id,
            attempts=row.attempts,
            error=type(exc).__name__,
            outcome=outcome,
        )
        return outcome
