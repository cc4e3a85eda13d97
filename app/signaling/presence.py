"""GPs' live presence counts: how many specialists of each specialty are on duty and in a
consultation, pushed to GP dashboard connections.

One broker channel, ``konsil:presence``: the signalling listener publishes ``presence`` there
for every domain event that may change a count (a specialist's toggle, a room entering or
leaving a consultation, a session ended, an account deactivated). Each process with GP
dashboards open subscribes once, reads the counts again (``app.presence.service``) and sends a
connection ``presence`` only when the counts differ from what it last sent that connection,
so a repeated or irrelevant event says nothing.
"""

from __future__ import annotations

from datetime import timedelta

import anyio
from anyio.abc import TaskStatus
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.broker import Broker
from app.db import utcnow
from app.errors import WS_GOING_AWAY
from app.logging import get_logger
from app.presence import service as presence
from app.scheduling.models import RoomState
from app.settings import Settings
from app.signaling import envelope as env
from app.signaling import messages as m
from app.signaling import wire
from app.signaling.connection import Connection
from app.tasks import Task, Tasks

log = get_logger("konsil.signaling")

# The room states in which a specialist counts as in a consultation (``app.rooms.history``:
# admitted, in the call, or the patient sent back to the waiting room meanwhile).
_CONSULTING = frozenset({RoomState.WAITING, RoomState.ADMITTED, RoomState.IN_CALL})


def counts_may_change(previous: RoomState, state: RoomState) -> bool:
    """Whether a room's move from ``previous`` to ``state`` may change who is in a call."""
    return previous != state and (previous in _CONSULTING or state in _CONSULTING)


class PresenceBoard:
    """This process's GP dashboards, what each was last sent, and the one subscription."""

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
        self.watchers: dict[Connection, m.Presence | None] = {}
        self._task: Task | None = None
        self._lock = anyio.Lock()  # subscribing and unsubscribing take turns
        self._reading = anyio.Lock()  # one read and send at a time: never an older one last

    async def watch(self, conn: Connection) -> None:
        """Sends ``conn`` the counts now and whenever they change, until ``unwatch``. Never
        raises: the page works without it (it read the counts on load)."""
        try:
            async with self._lock:
                self.watchers[conn] = None
                if self._task is None:
                    self._task = await self.tasks.start("signaling.presence", self._loop)
            await self.refresh()
        except Exception as exc:
            log.warning("signaling.presence_watch_failed", error=type(exc).__name__)

    async def unwatch(self, conn: Connection) -> None:
        """The connection ended; the last one here ends the subscription."""
        async with self._lock:
            self.watchers.pop(conn, None)
            if self.watchers or self._task is None:
                return
            task, self._task = self._task, None
            await task.stop()

    async def refresh(self) -> None:
        """Reads the counts and tells each connection that was told something else."""
        async with self._reading:
            if not self.watchers:
                return
            idle = timedelta(minutes=self.settings.session_idle_minutes)
            async with self.sessions() as session:
                counts = await presence.by_specialty(session, now=utcnow(), idle=idle)
            message = m.Presence(specialties=counts)
            for conn, told in list(self.watchers.items()):
                if told != message and conn in self.watchers:
                    self.watchers[conn] = message
                    conn.send(message)

    async def shutdown(self) -> None:
        """Tells every GP dashboard 1001 and ends the subscription."""
        async with self._lock:
            for conn in self.watchers:
                conn.close(WS_GOING_AWAY, "server shutting down")
            task, self._task = self._task, None
            self.watchers.clear()
        if task is not None:
            await task.stop()

    async def _loop(self, *, task_status: TaskStatus[None]) -> None:
        async with self.broker.subscribe(env.PRESENCE) as events:
            task_status.started()
            async for _ in env.received(events, wire.PRESENCE, "presence"):
                try:
                    await self.refresh()
                except Exception as exc:
                    log.warning("signaling.presence_refresh_failed", error=type(exc).__name__)
