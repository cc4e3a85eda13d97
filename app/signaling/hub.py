"""Per-process registry of signalling connections and their broker subscriptions.

One subscription per room with local participants (``konsil:room:<id>``); the specialists'
dashboards (``konsil:queue:<id>``) live in ``dashboards.Dashboards``, which the hub owns. Every
room event goes through the broker, also for local peers, so one process and many behave the
same. Room rules live in ``session.Room``; the messages between processes in ``wire``.

The hub writes to the database only for what a websocket causes (a patient arrives or leaves
for good, an admit, the first answer that starts the call); those changes, like every other,
reach the rooms as domain events through ``listener``.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Coroutine
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from app.accounts.service import Principal
from app.db import unit_of_work, utcnow
from app.errors import WS_GOING_AWAY, WS_ROOM_CLOSED, WS_UNAUTHENTICATED
from app.logging import get_logger
from app.metrics import BROKER_DROPPED, ROOMS_ACTIVE
from app.resources import Resources, resources
from app.rooms import service as rooms
from app.rooms.state import Action, Actor
from app.scheduling.models import Appointment, RoomState
from app.signaling import envelope as env
from app.signaling import messages as m
from app.signaling import resume as records
from app.signaling import wire
from app.signaling.connection import Connection
from app.signaling.dashboards import Dashboards
from app.signaling.ended import EndedSessions
from app.signaling.session import Close, Member, Out, Room
from app.tokens import new_token, session_key
from app.turn import ice_servers

log = get_logger("konsil.signaling")
# The resume record outlives the window a little: the expiry timer, not the store's TTL, must
# be what ends the seat, or the record would vanish first and the departure never be announced.
# (If the process holding the timer died, the record still ends by itself shortly after.)
RESUME_RECORD_MARGIN_SECONDS = 5


def hub(conn: HTTPConnection) -> Hub:
    found = resources(conn).hub
    assert found is not None, "signalling hub not started"
    return found


@dataclass
class LocalRoom:
    room: Room
    conns: dict[str, Connection] = field(default_factory=dict)
    timers: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None


@dataclass
class Seat:
    """A joined connection: who it is and the broker key of its current resume record."""

    appointment_id: int
    member: Member
    resume_key: str


class Hub:
    """Routes room events between local connections and the broker."""

    def __init__(self, res: Resources) -> None:
        self.settings = res.settings
        self.broker = res.broker
        self.sessions: async_sessionmaker[AsyncSession] = res.sessions
        self.origin = "o_" + secrets.token_urlsafe(9)
        self.tracker = env.SequenceTracker()
        self.rooms: dict[int, LocalRoom] = {}
        self._seq: dict[str, int] = {}
        self.dashboards = Dashboards(
            settings=self.settings, broker=self.broker, sessions=self.sessions
        )
        self.ended = EndedSessions(broker=self.broker, origin=self.origin)
        self._room_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.seat_ttl = records.seat_ttl(self.settings)

    # ---------------------------------------------------------------- broker plumbing

    async def publish(self, channel: str, message: wire.Wire) -> None:
        """Stamps ``message`` with this process and its next sequence number, and sends it."""
        # No await between numbering and handing over: brokers send in call order, so the
        # sequence order and the publish order stay the same without a lock.
        seq = self._seq[channel] = self._seq.get(channel, 0) + 1
        stamped = message.model_copy(update={"o": self.origin, "s": seq})
        await self.broker.publish(channel, stamped.model_dump_json().encode())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---------------------------------------------------------------- rooms

    async def _room(self, appointment_id: int) -> LocalRoom:
        async with self._room_lock:
            local = self.rooms.get(appointment_id)
            if local is not None:
                return local
            ready = asyncio.Event()
            local = LocalRoom(room=Room(appointment_id=appointment_id, state=RoomState.SCHEDULED))
            local.task = asyncio.get_running_loop().create_task(self._room_loop(local, ready))
            await asyncio.wait_for(ready.wait(), 10)
            # Read the state only once subscribed, so no change can slip in between.
            async with self.sessions() as session:
                appointment = await rooms.load(session, appointment_id)
            local.room.state = appointment.room_state
            local.room.waiting_since = appointment.waiting_since
            self.rooms[appointment_id] = local
            ROOMS_ACTIVE.inc()
            return local

    async def _room_loop(self, local: LocalRoom, ready: asyncio.Event) -> None:
        channel = env.room_channel(local.room.appointment_id)
        async with self.broker.subscribe(channel) as events:
            ready.set()
            async for raw in events:
                message = wire.parse(wire.ROOM, raw)
                if message is None:
                    BROKER_DROPPED.labels(channel="room").inc()
                    continue
                self._apply(local, channel, message)

    def _apply(self, local: LocalRoom, channel: str, message: wire.RoomMessage) -> None:
        outs: list[Out] = []
        if self.tracker.see(channel, message.o, message.s):
            outs += local.room.gap()
            self._spawn(self._present(local))
        outs += wire.apply(local.room, message)
        if isinstance(message, wire.Add | wire.Resumed) and message.o != self.origin:
            # The joining process may have had nobody in this room: tell it who is here.
            self._spawn(self._present(local))
        self._deliver(local, outs)

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

    async def _present(self, local: LocalRoom) -> None:
        """Tells the other processes about our own participants (after a join or a gap)."""
        channel = env.room_channel(local.room.appointment_id)
        for member in list(local.room.members.values()):
            if member.conn in local.conns or member.id in local.timers:
                partners = local.room.partners(member.id)
                await self.publish(channel, wire.Present(member=member, partners=partners))

    async def _release(self, appointment_id: int) -> None:
        local = self.rooms.get(appointment_id)
        if local is None or local.conns or local.timers:
            return
        del self.rooms[appointment_id]
        ROOMS_ACTIVE.dec()
        self.tracker.forget(env.room_channel(appointment_id))
        if local.task is not None:
            local.task.cancel()
            with suppress(asyncio.CancelledError):
                await local.task

    # ---------------------------------------------------------------- joining and leaving

    async def join(
        self,
        conn: Connection,
        *,
        appointment_id: int,
        actor: Actor,
        who: Principal,
        resume: str | None,
    ) -> Seat:
        """Seats ``conn`` in the room: takes the old participant's seat over if ``resume`` is
        valid, whether its old connection already ended or is still open (closed with 4409)."""
        local = await self._room(appointment_id)
        try:
            seat = await self._resume(local, who, resume) if resume else None
            state, since = local.room.state, local.room.waiting_since
            if seat is None and actor is Actor.PATIENT:
                appointment = await self._room_action(appointment_id, Action.ARRIVE, who)
                state, since = appointment.room_state, appointment.waiting_since
        except BaseException:
            await self._release(appointment_id)
            raise
        local.conns[conn.id] = conn
        if resume and seat is None:
            conn.send(m.Error(code="resume_failed", message="Neu verbunden.", ref="join"))
        resumed = seat is not None
        seat = seat or self._new_seat(appointment_id, actor, who)
        seat.member = replace(seat.member, conn=conn.id)
        joined = self._joined(seat, resumed, state)
        await self.broker.put(
            seat.resume_key, records.pack(appointment_id, seat.member), self.seat_ttl
        )
        conn.send(joined)
        since = since if state is RoomState.WAITING else None  # as in Room.state_message
        told = m.RoomStateChanged(state=state, waiting_since=since)
        conn.send(told)
        # The event of this very change may reach the replica after the member: not twice.
        local.room.heard[seat.member.id] = told
        channel = env.room_channel(appointment_id)
        if resumed:
            await self.publish(channel, wire.Resumed(member=seat.member))
        else:
            await self.publish(channel, wire.Add(member=seat.member))
        return seat

    def _new_seat(self, appointment_id: int, actor: Actor, who: Principal) -> Seat:
        member = Member(
            id="p_" + secrets.token_urlsafe(12),
            role="patient" if actor is Actor.PATIENT else actor.value,  # type: ignore[arg-type]
            name="" if actor is Actor.PATIENT else who.display_name,
            session_key=session_key(who.session_id),
            conn="",
            user_id=who.user_id,
        )
        return Seat(appointment_id, member, "")

    def _joined(self, seat: Seat, resumed: bool, state: RoomState) -> m.Joined:
        resume_id = new_token()
        seat.resume_key = records.record_key(
            seat.appointment_id, seat.member.session_key, resume_id
        )
        servers = ice_servers(self.settings, seat.appointment_id)
        return m.Joined(
            participant_id=seat.member.id,
            role=seat.member.role,
            resumed=resumed,
            resume_id=resume_id,
            resume_seconds=self.settings.ws_resume_seconds,
            room_state=state,
            ice_servers=[m.IceServer.model_validate(s) for s in servers],
            ice_ttl=self.settings.turn_ttl_seconds,
        )

    async def _resume(self, local: LocalRoom, who: Principal, resume: str) -> Seat | None:
        appointment_id, session = local.room.appointment_id, session_key(who.session_id)
        raw = await self.broker.take(records.record_key(appointment_id, session, resume))
        member = records.unpack(raw, appointment_id, session) if raw is not None else None
        if member is None:
            return None
        timer = local.timers.pop(member.id, None)
        if timer is not None:
            timer.cancel()
        return Seat(local.room.appointment_id, member, "")

    async def disconnect(self, conn: Connection, seat: Seat, *, left: bool) -> None:
        """The connection ended. ``left``: the client said ``leave`` (no resume)."""
        local = self.rooms.get(seat.appointment_id)
        if local is None:
            return
        local.conns.pop(conn.id, None)
        current = local.room.members.get(seat.member.id)
        key = seat.resume_key
        if current is None:
            # Replaced, transferred away or the room closed: the resume id goes with the seat.
            await self.broker.take(key)
        elif current.conn != conn.id:
            pass  # resumed on a newer connection, which has its own record
        elif left or conn.close_code in (WS_ROOM_CLOSED, WS_UNAUTHENTICATED):
            # (A connection whose session ended cannot resume: its seat goes now.)
            # Whoever takes the record owns the participant: a resume that won keeps it.
            if await self.broker.take(key) is not None:
                await self._gone(seat)
        elif await self.broker.refresh(
            key, self.settings.ws_resume_seconds + RESUME_RECORD_MARGIN_SECONDS
        ):
            local.timers[seat.member.id] = asyncio.get_running_loop().create_task(
                self._expire(seat, key)
            )
        # Otherwise a resume has just taken the seat over; its "resumed" event is on its way.
        await self._release(seat.appointment_id)

    async def _expire(self, seat: Seat, key: str) -> None:
        await asyncio.sleep(self.settings.ws_resume_seconds)
        local = self.rooms.get(seat.appointment_id)
        if local is not None:
            local.timers.pop(seat.member.id, None)
        # Whoever takes the record owns the participant: a resume elsewhere or this expiry.
        if await self.broker.take(key) is not None:
            await self._gone(seat)
        await self._release(seat.appointment_id)

    async def _gone(self, seat: Seat) -> None:
        await self.publish(env.room_channel(seat.appointment_id), wire.Leave(pid=seat.member.id))
        if seat.member.role == "patient":
            with suppress(Exception):
                await self._room_action(seat.appointment_id, Action.DEPART, None)

    async def _room_action(
        self, appointment_id: int, action: Action, who: Principal | None
    ) -> Appointment:
        # The room's new state reaches every replica as a domain event (``listener``).
        async with unit_of_work(self.sessions) as session:
            return await rooms.act(
                session, appointment_id=appointment_id, action=action, who=who, now=utcnow()
            )

    async def act(self, seat: Seat, action: Action, who: Principal) -> None:
        await self._room_action(seat.appointment_id, action, who)

    # ---------------------------------------------------------------- effects of domain events

    async def room_state(
        self, appointment_id: int, state: RoomState, waiting_since: datetime | None, *, ev: str
    ) -> None:
        """Tells every process about a room's new state (a committed change)."""
        message = wire.State(ev=ev, state=state, waiting_since=waiting_since)
        await self.publish(env.room_channel(appointment_id), message)

    async def revoke(self, appointment_id: int, user_id: int, *, ev: str) -> None:
        """Closes a staff member's connections in this room on every process (transferred)."""
        await self.publish(env.room_channel(appointment_id), wire.Revoke(ev=ev, user_id=user_id))

    async def revoke_patients(self, appointment_id: int, *, keep: str | None, ev: str) -> None:
        """Closes the patient's connections in this room on every process (its sessions ended
        in the database), but those of session key ``keep``."""
        message = wire.RevokePatients(ev=ev, keep=keep)
        await self.publish(env.room_channel(appointment_id), message)

    async def relay(self, seat: Seat, message: m.ClientMessage) -> None:
        """Checks and forwards a relay message; an answer to the patient may start the call."""
        local = self.rooms[seat.appointment_id]
        local.room.check(seat.member.id, message)
        relayed = wire.Relay(sender=seat.member.id, msg=message, at=utcnow())
        await self.publish(env.room_channel(seat.appointment_id), relayed)
        if local.room.starts_call(seat.member.id, message):
            await self._room_action(seat.appointment_id, Action.START_CALL, None)

    # ---------------------------------------------------------------- dashboards

    async def watch_queue(self, conn: Connection, specialist_id: int) -> None:
        await self.dashboards.watch(conn, specialist_id)

    async def unwatch_queue(self, conn: Connection, specialist_id: int) -> None:
        await self.dashboards.unwatch(conn, specialist_id)

    async def queue_changed(self, specialist_id: int, *, ev: str) -> None:
        await self.publish(env.queue_channel(specialist_id), wire.QueueChanged(ev=ev))

    # ---------------------------------------------------------------- shutdown

    async def shutdown(self) -> None:
        """Tells every client 1001 and ends every subscription and timer."""
        for local in self.rooms.values():
            for conn in local.conns.values():
                conn.close(WS_GOING_AWAY, "server shutting down")
        await self.dashboards.shutdown()
        await self.ended.stop()
        tasks = [t for local in self.rooms.values() for t in local.timers.values()]
        tasks += [local.task for local in self.rooms.values() if local.task]
        tasks += self._tasks
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        ROOMS_ACTIVE.dec(len(self.rooms))
        self.rooms.clear()
