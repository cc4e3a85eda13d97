"""Specialists' live queue dashboards: one broker subscription per specialist with one open.

The signalling listener publishes ``changed`` on ``konsil:queue:<specialist id>`` for each domain
event that touches a specialist's day; every process with a dashboard of that specialist then
sends its dashboards a fresh ``queue``.
Snapshots are idempotent, so a lost or repeated event never leaves a dashboard wrong for long.
"""

from __future__ import annotations

from functools import partial

import anyio
from anyio.abc import TaskStatus
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.broker import Broker
from app.db import utcnow
from app.errors import WS_GOING_AWAY
from app.logging import get_logger
from app.rooms import service as rooms
from app.settings import Settings
from app.signaling import envelope as env
from app.signaling import messages as m
from app.signaling import wire
from app.signaling.connection import Connection
from app.tasks import Task, Tasks

log = get_logger("konsil.signaling")


class Dashboards:
    """This process's open dashboards per specialist, and their broker subscriptions."""

    def __init__(
        self,
        *,
        settings: Settings,
        broker: Broker,
        sessions: async_sessionmaker[AsyncSession],
        tasks: Tasks,
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.sessions = sessions
        self.tasks = tasks
        self.watchers: dict[int, set[Connection]] = {}
        self._tasks: dict[int, Task] = {}
        # Per specialist, subscribing and unsubscribing take turns, so there is one subscription.
        self._locks: dict[int, anyio.Lock] = {}

    async def watch(self, conn: Connection, specialist_id: int) -> None:
        """Sends ``conn`` the queue now and after every change until ``unwatch``."""
        async with self._locks.setdefault(specialist_id, anyio.Lock()):
            self.watchers.setdefault(specialist_id, set()).add(conn)
            if specialist_id not in self._tasks:
                self._tasks[specialist_id] = await self.tasks.start(
                    "signaling.dashboard", partial(self._loop, specialist_id)
                )
        conn.send(await self._snapshot(specialist_id))

    async def unwatch(self, conn: Connection, specialist_id: int) -> None:
        """The dashboard closed; the last one of a specialist ends the subscription."""
        async with self._locks.setdefault(specialist_id, anyio.Lock()):
            watchers = self.watchers.get(specialist_id, set())
            watchers.discard(conn)
            if watchers:
                return
            self.watchers.pop(specialist_id, None)
            task = self._tasks.pop(specialist_id, None)
            if task is not None:
                await task.stop()

    async def shutdown(self) -> None:
        """Tells every dashboard 1001 and ends every subscription."""
        for watchers in self.watchers.values():
            for conn in watchers:
                conn.close(WS_GOING_AWAY, "server shutting down")
        # A copy: while a stop is awaited, closed dashboards unwatch and change the dict.
        for task in list(self._tasks.values()):
            await task.stop()
        self.watchers.clear()
        self._tasks.clear()

    async def _snapshot(self, specialist_id: int) -> m.Queue:
        async with self.sessions() as session:
            snapshot = await rooms.queue(
                session, specialist_id=specialist_id, tz=self.settings.tz, now=utcnow()
            )
        return m.Queue(**snapshot.model_dump())

    async def _loop(self, specialist_id: int, *, task_status: TaskStatus[None]) -> None:
        # Every event (and every gap) means: send a fresh snapshot. Snapshots are idempotent.
        async with self.broker.subscribe(env.queue_channel(specialist_id)) as events:
            task_status.started()
            async for _ in env.received(events, wire.QUEUE, "queue"):
                try:
                    snapshot = await self._snapshot(specialist_id)
                except Exception as exc:
                    # The type only: a validation error's text would carry patient names.
                    log.warning("signaling.queue_refresh_failed", error=type(exc).__name__)
                    continue
                for conn in list(self.watchers.get(specialist_id, ())):
                    conn.send(snapshot)
