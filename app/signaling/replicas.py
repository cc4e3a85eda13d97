"""This process's room replicas and their broker subscriptions.

One subscription per room with local participants (``konsil:room:<id>``), a broker listener
rather than a queue and a task. Every room message goes through the broker, also for local
peers, so one process and many behave the same: each replica applies the messages in broker
order (``wire.apply`` on a ``session.Room``) and delivers the results to the connections this
process holds.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import partial

import anyio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.broker import Broker, Listening
from app.errors import WS_GOING_AWAY
from app.metrics import ROOMS_ACTIVE
from app.rooms import service as rooms
from app.scheduling import guests
from app.scheduling.models import RoomState
from app.signaling import envelope as env
from app.signaling import wire
from app.signaling.connection import Connection
from app.signaling.session import EMPTY, Close, Out, Room, with_item, without_item
from app.tasks import Task, Tasks


def _no_timers() -> Mapping[str, Task]:
    return EMPTY  # shared: few replicas ever hold a timer (docs/performance.md, memory)


@dataclass(slots=True)
class LocalRoom:
    """A room replica, the connections this process holds in it, the expiry timers of its
    seats held for a resume (by member id; ``hold``, ``unhold``), and its broker subscription
    (``listening``; ``closed`` once released)."""

    room: Room
    conns: dict[str, Connection] = field(default_factory=dict)
    timers: Mapping[str, Task] = field(default_factory=_no_timers)
    listening: Listening | None = None
    closed: bool = False

    def hold(self, member_id: str, timer: Task) -> None:
        self.timers = with_item(self.timers, member_id, timer)

    def unhold(self, member_id: str) -> Task | None:
        """The member's timer, no longer held here (None if there was none)."""
        timer = self.timers.get(member_id)
        self.timers = without_item(self.timers, member_id)
        return timer


# A participant joined or came back (made once: see ``session.TO_ONE_PEER``).
JOINED = (wire.Add, wire.Resumed)
# What this process takes back as it published it (``Replicas.publish``; made once too).
KEPT_AS_PUBLISHED = (wire.Relay, wire.Add, wire.Resumed)

# Relays and members this process published and has not yet had back from the broker, by their
# bytes (see ``Replicas.publish``). Bounded: a message that never comes back (the room was
# released meanwhile, the broker lost it) is forgotten after this many newer ones.
OWN_KEPT = 1024


class Replicas:
    """The replicas of the rooms this process has participants in."""

    def __init__(
        self, *, broker: Broker, sessions: async_sessionmaker[AsyncSession], tasks: Tasks
    ) -> None:
        self.broker = broker
        self.sessions = sessions
        self.tasks = tasks
        self.origin = "o_" + secrets.token_urlsafe(9)
        self.tracker = env.SequenceTracker()
        self.rooms: dict[int, LocalRoom] = {}
        self._seq: dict[str, int] = {}
        self._own: dict[bytes, tuple[wire.Relay | wire.Add | wire.Resumed, int]] = {}
        self._room_lock = asyncio.Lock()

    async def publish(self, channel: str, message: wire.Wire) -> None:
        """Stamps ``message`` with this process and its next sequence number, and sends it."""
        # No await between numbering and handing over: brokers send in call order, so the
        # sequence order and the publish order stay the same without a lock.
        seq = self._seq[channel] = self._seq.get(channel, 0) + 1
        raw = wire.stamped_json(message, self.origin, seq)
        if isinstance(message, KEPT_AS_PUBLISHED):
            # Every room message comes back to this process's own room listener through the
            # broker (one process and many behave the same). A relay or a member it gets back
            # byte for byte is what this process made (from a validated client message, or the
            # seat it holds), so the listener takes the model as it is instead of parsing and
            # validating it again: no CPU on every relay, and the replica holds the seat's own
            # member, not a parsed copy of it with strings of its own (every waiting patient's
            # room holds one for long). Anything else is parsed as ever.
            self._own[raw] = (message, seq)
            if len(self._own) > OWN_KEPT:
                del self._own[next(iter(self._own))]
        await self.broker.publish(channel, raw)

    def remote_origins(self) -> set[str]:
        """The other processes that hold participants of this process's rooms."""
        return {
            member.origin
            for local in self.rooms.values()
            for member in local.room.members.values()
            if member.origin and member.origin != self.origin
        }

    async def acquire(self, appointment_id: int) -> LocalRoom:
        """The replica of this room, subscribed (made and subscribed first if need be)."""
        async with self._room_lock:
            local = self.rooms.get(appointment_id)
            if local is not None:
                return local
            local = LocalRoom(room=Room(appointment_id=appointment_id, state=RoomState.SCHEDULED))
            channel = env.room_channel(appointment_id)
            local.listening = await self.broker.listen(
                channel, partial(self._on_message, local, channel)
            )
            try:
                # Read the state only once subscribed, so no change can slip in between.
                async with self.sessions() as session:
                    appointment = await rooms.load(session, appointment_id)
                    guest_admitted = await guests.admitted(session, appointment_id)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await self._close(local)  # nobody will release a room that was never added
                raise
            local.room.state = appointment.room_state
            local.room.waiting_since = appointment.waiting_since
            local.room.patient_name = appointment.patient_name
            local.room.guest_admitted = guest_admitted
            self.rooms[appointment_id] = local
            ROOMS_ACTIVE.inc()
            return local

    def _on_message(self, local: LocalRoom, channel: str, raw: bytes) -> None:
        """A message on the room's channel, called by the broker (in order, one at a time):
        applied at once, no queue and no task of its own (docs/performance.md)."""
        if local.closed:
            return
        own = self._own.pop(raw, None)
        if own is not None:
            mine, seq = own  # (published unstamped: its sender and number are these)
            self._apply(local, channel, mine, self.origin, seq)
            return
        message = env.parsed(raw, wire.ROOM, "room")
        if message is not None:
            self._apply(local, channel, message, message.o, message.s)

    def _apply(
        self, local: LocalRoom, channel: str, message: wire.RoomMessage, origin: str, seq: int
    ) -> None:
        outs: list[Out] = []
        if self.tracker.see(channel, origin, seq):
            outs += local.room.gap()
            self._present_soon(local)
        outs += wire.apply(local.room, message)
        if isinstance(message, JOINED) and origin != self.origin:
            # The joining process may have had nobody in this room: tell it who is here.
            self._present_soon(local)
        if isinstance(message, wire.Away) and origin != self.origin:
            self._still_here(local, message)
        self._deliver(local, outs)

    def _still_here(self, local: LocalRoom, away: wire.Away) -> None:
        """Another process took this process for dead (``liveness``: it stalled) and marked
        one of its participants away: if the connection is still here, the room hears so."""
        member = local.room.members.get(away.pid)
        if member is None or member.conn != away.conn or member.conn not in local.conns:
            return
        back = wire.Resumed(member=replace(member, connection="connected"))
        channel = env.room_channel(local.room.appointment_id)
        self.tasks.spawn("signaling.still_here", partial(self.publish, channel, back))

    def _deliver(self, local: LocalRoom, outs: list[Out]) -> None:
        for out in outs:
            if isinstance(out, Close):
                conn = local.conns.get(out.conn)
                if conn is not None:
                    conn.close(out.code, out.reason)
                continue
            member = local.room.members.get(out.to)
            conn = local.conns.get(member.conn) if member else None
            if conn is not None:
                conn.send(out.message)

    def _present_soon(self, local: LocalRoom) -> None:
        self.tasks.spawn("signaling.present", partial(self._present, local))

    async def _present(self, local: LocalRoom) -> None:
        """Tells the other processes about our own participants (after a join or a gap)."""
        channel = env.room_channel(local.room.appointment_id)
        for member in list(local.room.members.values()):
            if member.conn in local.conns or member.id in local.timers:
                partners = local.room.partners(member.id)
                await self.publish(channel, wire.Present(member=member, partners=partners))

    async def release(self, appointment_id: int) -> None:
        """Ends the replica once this process has no connection and no timer left in it."""
        local = self.rooms.get(appointment_id)
        if local is None or local.conns or local.timers:
            return
        del self.rooms[appointment_id]
        ROOMS_ACTIVE.dec()
        await self._close(local)
        # After the subscription has ended (a message on its way is ignored: ``closed``).
        self.tracker.forget(env.room_channel(appointment_id))

    async def _close(self, local: LocalRoom) -> None:
        local.closed = True
        if local.listening is not None:
            await local.listening.close()

    async def shutdown(self) -> None:
        """Tells every connection 1001 and ends every subscription and timer."""
        for local in self.rooms.values():
            for conn in local.conns.values():
                conn.close(WS_GOING_AWAY, "server shutting down")
        tasks = [t for local in self.rooms.values() for t in local.timers.values()]
        for task in tasks:
            await task.stop()
        for local in self.rooms.values():
            await self._close(local)
        ROOMS_ACTIVE.dec(len(self.rooms))
        self.rooms.clear()
