"""Patients in waiting rooms: their place in the specialist's line and the late notice, live.

Every patient seat is watched here under the appointment's specialist. Like the dashboards,
each process listens once per specialist to ``konsil:queue:<specialist id>`` (the signalling
listener publishes ``changed`` there for every domain event that touches the specialist's day,
a late notice included) and then reads the views of its own patients again
(``app.rooms.delay.patient_views``: a few reads per specialist, none per patient). Changes that
come while a read runs are answered by one more read after it, not one each: a morning rush of
arrivals costs a line as many reads as it takes, not as many as there were arrivals. A patient
is sent ``position`` and ``delay`` only when they differ from what that connection was last
sent, so a repeated event says nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import partial

import anyio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.broker import Broker, Listening
from app.db import utcnow
from app.logging import get_logger
from app.rooms import delay
from app.rooms.schemas import WaitingView
from app.scheduling.models import RoomState
from app.settings import Settings
from app.signaling import envelope as env
from app.signaling import messages as m
from app.signaling import wire
from app.signaling.connection import Connection
from app.signaling.replicas import LocalRoom
from app.tasks import Tasks

log = get_logger("konsil.signaling")

# The states in which the patient's page shows the waiting room.
IN_WAITING_ROOM = frozenset({RoomState.SCHEDULED, RoomState.WAITING})


@dataclass(slots=True)
class Watcher:
    """One patient connection and what it was last told: ``position`` as ``(ahead,
    eta_minutes)`` (every waiting patient holds one for long, and a tuple takes a fifth of the
    memory of the message model with its dict and its set of fields), ``delay`` the notice."""

    conn: Connection
    appointment_id: int
    specialist_id: int
    position: tuple[int, int | None] | None = None
    delay: m.Delay | None = None


@dataclass(slots=True)
class Line:
    """One specialist's patients on this process, and the listener on their queue channel.
    ``refreshing``: a read of their views runs; ``again``: a change came meanwhile."""

    watchers: dict[str, Watcher] = field(default_factory=dict)
    listening: Listening | None = None
    refreshing: bool = False
    again: bool = False


def news(watcher: Watcher, view: WaitingView) -> list[m.Position | m.Delay]:
    """What ``watcher`` must be told now that its appointment looks like ``view`` (and
    remember it): nothing it heard already, nothing once the patient left the waiting room.
    A patient sent back from the call to the waiting room is told the place and any notice
    afresh (their page showed the call meanwhile)."""
    if view.room_state not in IN_WAITING_ROOM:
        watcher.position = None
        if watcher.delay is not None:
            # Not a notice anybody gives: a notice on coming back differs from it, and without
            # one the withdrawal is said again.
            watcher.delay = m.Delay(specialist_name="\0")
        return []
    out: list[m.Position | m.Delay] = []
    if view.ahead is not None:
        position = (view.ahead, view.eta_minutes)
        if position != watcher.position:
            watcher.position = position
            out.append(m.Position(ahead=view.ahead, eta_minutes=view.eta_minutes))
    if view.delay is not None:
        notice = m.Delay(**view.delay.model_dump())
        if notice != watcher.delay:
            watcher.delay = notice
            out.append(notice)
    elif watcher.delay is not None:
        watcher.delay = None
        out.append(m.Delay())  # withdrawn
    return out


def _always() -> bool:
    return True


def _holds(local: LocalRoom, conn: Connection) -> bool:
    """Whether the replica still holds ``conn`` (a connection that ended is taken out)."""
    return local.conns.get(conn.id) is conn


class WaitingRooms:
    """This process's patient connections per specialist, and their broker subscriptions."""

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
        self.lines: dict[int, Line] = {}
        self._by_conn: dict[str, Watcher] = {}
        # Per specialist, subscribing and unsubscribing take turns, so there is one listener.
        self._locks: dict[int, anyio.Lock] = {}

    async def watch(
        self, conn: Connection, appointment_id: int, wanted: Callable[[], bool] = _always
    ) -> None:
        """Tells the patient on ``conn`` their place and the notice now and on every change,
        until ``unwatch``. Never raises: the waiting room works without it. ``wanted``: whether
        the connection is still there to watch for (it may end while this reads, and its
        ``unwatch`` would then come before there is anything to end)."""
        try:
            views = await self._views([appointment_id])
            if appointment_id not in views:
                return
            watcher = Watcher(conn, appointment_id, views[appointment_id].specialist_id)
            if not await self._add(watcher, wanted):
                return
            # Read again once subscribed, so that no change slips in between.
            await self._refresh_watchers([watcher])
        except Exception as exc:
            log.warning("signaling.waiting_watch_failed", error=type(exc).__name__)

    async def claimed(self, appointment_id: int, rooms: Mapping[int, LocalRoom]) -> None:
        """An on-call request was taken: its patient's connections on this process, which had
        no specialist's line to watch when they joined, watch it now."""
        local = rooms.get(appointment_id)
        if local is None:
            return
        for conn in list(local.conns.values()):
            if conn.role == "patient" and conn.id not in self._by_conn:
                await self.watch(conn, appointment_id, partial(_holds, local, conn))

    async def unwatch(self, conn: Connection) -> None:
        """The connection ended; the last one of a specialist ends the subscription."""
        watcher = self._by_conn.pop(conn.id, None)
        if watcher is not None:
            await self._remove(watcher)

    async def refresh(self, specialist_id: int) -> None:
        """The specialist's day changed: tells each of their patients here what is new."""
        line = self.lines.get(specialist_id)
        if line is not None:
            await self._refresh_watchers(list(line.watchers.values()))

    async def shutdown(self) -> None:
        """Ends every listener (the rooms close the connections themselves)."""
        lines = list(self.lines.values())
        self.lines.clear()
        self._by_conn.clear()
        for line in lines:
            await self._stop_listening(line)

    async def _refresh_watchers(self, watchers: list[Watcher]) -> None:
        if not watchers:
            return
        views = await self._views({w.appointment_id for w in watchers})
        for watcher in watchers:
            view = views.get(watcher.appointment_id)
            if view is None:
                continue
            if view.specialist_id != watcher.specialist_id:
                # Transferred to a colleague: follow them (in a task of its own, as this may
                # run in the old specialist's subscription, which the move may end).
                self.tasks.spawn("signaling.waiting_move", partial(self._move, watcher, view))
                continue
            for message in news(watcher, view):
                watcher.conn.send(message)

    async def _move(self, watcher: Watcher, view: WaitingView) -> None:
        if self._by_conn.get(watcher.conn.id) is not watcher:
            return  # gone meanwhile
        await self._remove(watcher)
        watcher.specialist_id = view.specialist_id
        # Not if the connection ended meanwhile (its ``unwatch`` took it out of ``_by_conn``).
        if await self._add(watcher, lambda: self._by_conn.get(watcher.conn.id) is watcher):
            await self._refresh_watchers([watcher])

    async def _views(self, appointment_ids: Collection[int]) -> dict[int, WaitingView]:
        async with self.sessions() as session:
            return await delay.patient_views(
                session, appointment_ids=appointment_ids, now=utcnow(), tz=self.settings.tz
            )

    async def _add(self, watcher: Watcher, wanted: Callable[[], bool]) -> bool:
        """Adds ``watcher`` to its specialist's line if still ``wanted`` once it may (asked
        with no await before the watcher is in ``_by_conn``, where ``unwatch`` finds it)."""
        specialist_id = watcher.specialist_id
        async with self._locks.setdefault(specialist_id, anyio.Lock()):
            if not wanted():
                return False
            line = self.lines.setdefault(specialist_id, Line())
            line.watchers[watcher.conn.id] = watcher
            self._by_conn[watcher.conn.id] = watcher
            if line.listening is None:
                try:
                    line.listening = await self.broker.listen(
                        env.queue_channel(specialist_id), partial(self._changed, specialist_id)
                    )
                except BaseException:
                    line.watchers.pop(watcher.conn.id, None)
                    self._by_conn.pop(watcher.conn.id, None)
                    if not line.watchers:
                        self.lines.pop(specialist_id, None)
                    raise
        return True

    async def _remove(self, watcher: Watcher) -> None:
        specialist_id = watcher.specialist_id
        async with self._locks.setdefault(specialist_id, anyio.Lock()):
            line = self.lines.get(specialist_id)
            if line is None:
                return
            line.watchers.pop(watcher.conn.id, None)
            if line.watchers:
                return
            del self.lines[specialist_id]
            await self._stop_listening(line)

    @staticmethod
    async def _stop_listening(line: Line) -> None:
        listening, line.listening = line.listening, None
        if listening is not None:
            await listening.close()

    def _changed(self, specialist_id: int, raw: bytes) -> None:
        """The broker's listener on the specialist's queue channel (it must not block): starts
        a read of the views, or asks the one running for another once it is done."""
        if env.parsed(raw, wire.QUEUE, "queue") is None:
            return
        line = self.lines.get(specialist_id)
        if line is None:
            return  # the last patient left; a change on its way still came
        if line.refreshing:
            line.again = True
            return
        line.refreshing = True
        self.tasks.spawn("signaling.waiting", partial(self._refresh_line, specialist_id, line))

    async def _refresh_line(self, specialist_id: int, line: Line) -> None:
        try:
            while True:
                line.again = False
                try:
                    await self.refresh(specialist_id)
                except Exception as exc:
                    log.warning("signaling.waiting_refresh_failed", error=type(exc).__name__)
                if not line.again or self.lines.get(specialist_id) is not line:
                    return
        finally:
            line.refreshing = False
