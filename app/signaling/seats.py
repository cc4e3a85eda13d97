"""Seats in the rooms: joining, resuming a seat, and giving it up when a connection ends.

A seat outlives its connection for the resume window: the resume record in the broker's keys
(``resume``) says who may take it back, on any process; an expiry timer ends it otherwise.
Whoever takes the record owns the participant, so a resume and an expiry never both win.
If the process holding a timer dies with it, another process with a replica of the room takes
the seat over (``adopt``, told by ``liveness``). Each process also files the records of the seats
it holds in its index in the broker (``env.seats_key``), so that a survivor can end them even
in rooms no process has a replica of any more (``orphans``).

A connection that joins afresh (a reloaded page has no resume id) replaces the participant of
its seat (``Room.add``) and names itself the seat's current one in the broker
(``resume.current_key``) before a patient's arrival: whichever process then takes the old
participant's record (a resume, an expiry here, an adoption, a survivor ending a dead
process's seats) finds it replaced, and the record ends nothing. A fresh join that fails
before the room heard of it gives the seat back to the participant it named itself in place of
(``_unname``), and undoes its own arrival.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, replace
from functools import partial
from typing import Literal

import anyio

from app.accounts.service import Principal
from app.broker import UNAVAILABLE, Broker
from app.errors import WS_ROOM_CLOSED, WS_UNAUTHENTICATED, KonsilError, LinkInvalid, RoomFull
from app.logging import get_logger
from app.rooms import service as rooms
from app.rooms.state import Action, Actor
from app.scheduling import guests
from app.scheduling.models import Appointment, RoomState
from app.settings import Settings
from app.signaling import envelope as env
from app.signaling import messages as m
from app.signaling import resume as records
from app.signaling import wire
from app.signaling.connection import Connection
from app.signaling.replicas import LocalRoom, Replicas
from app.signaling.session import Member
from app.signaling.waiting import WaitingRooms
from app.tokens import new_token, session_key
from app.turn import ice_servers

# The resume record outlives the window a little: the expiry timer, not the store's TTL, must
# be what ends the seat, or the record would vanish first and the departure never be announced.
# (If the process holding the timer died, the record still ends by itself shortly after.)
RESUME_RECORD_MARGIN_SECONDS = 5

# An adopted seat whose record was gone: how long the survivor that ends it holds the right to.
ENDING_HOLD_SECONDS = 60

RoomAction = Callable[[int, Action, Principal | None], Awaitable[Appointment]]
"""``act(appointment_id, action, who)``: a room change in the database (``Hub.room_action``)."""


log = get_logger("konsil.signaling")


@dataclass(frozen=True, slots=True)
class Taken:
    """A seat's resume record taken by a resume: its participant, key and stored bytes."""

    member: Member
    key: str
    raw: bytes


@dataclass(slots=True)
class Named:
    """A fresh join's name as its seat's current participant (``key``, naming ``member_id``):
    the name it replaced (``earlier``, once read) and whether its arrival took the room out of
    ``scheduled``, both undone if the join fails (``_unname``)."""

    key: str
    member_id: str
    read: bool = False
    earlier: bytes | None = None
    arrived: bool = False


@dataclass(slots=True)
class Seat:
    """A joined connection: who it is and the broker key of its current resume record."""

    appointment_id: int
    member: Member
    resume_key: str


class Seats:
    """This process's seats; room changes they cause go through ``act``."""

    def __init__(
        self,
        *,
        settings: Settings,
        broker: Broker,
        replicas: Replicas,
        act: RoomAction,
        waiting: WaitingRooms,
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.replicas = replicas
        self.act = act
        self.waiting = waiting
        self.seat_ttl = records.seat_ttl(settings)
        self.current_ttl = records.current_ttl(settings)
        self.index = env.seats_key(replicas.origin)  # this process's seats (``orphans``)
        self._ending: set[str] = set()  # adopted seats being ended (``_expire_adopted``)

    async def join(
        self,
        conn: Connection,
        *,
        appointment_id: int,
        actor: Actor,
        who: Principal,
        resume: str | None,
        lang: str = "de",
    ) -> Seat:
        """Seats ``conn`` in the room: takes the old participant's seat over if ``resume`` is
        valid, whether its old connection already ended or is still open (closed with 4409).
        ``lang``: the language of the participant's page (which details of staff it is shown)."""
        local = await self.replicas.acquire(appointment_id)
        taken: Taken | None = None  # the record a resume took, to give back if the join fails
        named: Named | None = None  # a fresh join's name in the broker, likewise
        try:
            role = m.PARTICIPANT_ROLES[actor.value]
            taken = await self._resume(local, role, who, resume) if resume else None
            seat = Seat(appointment_id, taken.member, "") if taken is not None else None
            if seat is None and local.room.full_for(role, session_key(who.session_id), who.user_id):
                # (Only the participants this process knows of: see docs/protocol.md.)
                raise RoomFull()
            state, since = local.room.state, local.room.waiting_since
            resumed = seat is not None
            if seat is None:
                seat = await self._new_seat(appointment_id, actor, who)
                # Before the arrival: the seat's earlier participant, if any, is replaced from
                # now on, on every process. (An expiry of it that asked just before this may
                # still depart; it has then almost always done so before the arrival below.)
                named = Named(records.current_key_of(appointment_id, seat.member), seat.member.id)
                await self._name(named)
                if actor is Actor.PATIENT:
                    appointment = await self.act(appointment_id, Action.ARRIVE, who)
                    came = appointment.room_state is not RoomState.SCHEDULED
                    named.arrived = came and state is RoomState.SCHEDULED
                    state, since = appointment.room_state, appointment.waiting_since
        except BaseException:
            with anyio.CancelScope(shield=True):
                if named is not None:
                    with suppress(Exception):
                        await self._unname(appointment_id, named)
                await self.replicas.release(appointment_id)
            raise
        local.conns[conn.id] = conn
        recorded = False  # whether the seat's new record is stored
        try:
            if resume and not resumed:
                conn.send(m.Error(code="resume_failed", message="Neu verbunden.", ref="join"))
            joined = self._joined(seat, resumed, state)
            moved = seat.member.record if seat.member.origin == self.replicas.origin else ""
            seat.member = replace(
                seat.member,
                conn=conn.id,
                lang=lang,
                origin=self.replicas.origin,
                record=seat.resume_key,
            )
            await self.broker.put(
                seat.resume_key, records.pack(appointment_id, seat.member), self.seat_ttl
            )
            recorded = True
            with suppress(*UNAVAILABLE):  # (read by ``orphans`` only: best effort)
                await self.broker.file(
                    self.index, seat.resume_key, str(appointment_id).encode(), self.seat_ttl
                )
            if moved:  # resumed from a connection of this process: its record is used up
                await self._unfile(moved)
            conn.send(joined)
            since = since if state is RoomState.WAITING else None  # as in Room.state_message
            told = m.RoomStateChanged(state=state, waiting_since=since)
            conn.send(told)
            # The event of this very change may reach the replica after the member: not twice.
            local.room.heard[seat.member.id] = (state, since)
            channel = env.room_channel(appointment_id)
            if resumed:
                await self.replicas.publish(channel, wire.Resumed(member=seat.member))
            else:
                await self.replicas.publish(channel, wire.Add(member=seat.member))
        except BaseException:
            # The broker failed half-way (a Redis hiccup): this connection holds nothing here
            # any more, and a seat the room heard of is held for a resume, as after a drop.
            with anyio.CancelScope(shield=True):
                with suppress(Exception):
                    if taken is None:
                        await self.disconnect(conn, seat, left=False)
                    else:
                        await self._resume_failed(local, conn, seat, taken, recorded)
                # (Unless the room heard of it after all and its seat is held as after a drop.)
                if named is not None and seat.member.id not in local.timers:
                    with suppress(Exception):
                        await self._unname(appointment_id, named)
                local.conns.pop(conn.id, None)
                await self.replicas.release(appointment_id)
            raise
        if actor is Actor.PATIENT:
            # After ``joined`` and ``room_state``: the place in line and any late notice.
            await self.waiting.watch(conn, appointment_id)
        return seat

    async def _new_seat(self, appointment_id: int, actor: Actor, who: Principal) -> Seat:
        detail, detail_en = "", ""
        name = "" if actor is Actor.PATIENT else who.display_name
        kind = None
        if actor is Actor.GUEST:
            async with self.replicas.sessions() as session:
                invitation = await guests.of_session(session, who.session_id)
            if invitation is None:
                raise LinkInvalid()  # revoked since the connection was authorised
            name, kind = invitation.name, invitation.kind
        elif actor is not Actor.PATIENT and who.user_id is not None:
            async with self.replicas.sessions() as session:
                detail, detail_en = await rooms.staff_detail(session, who.user_id)
        member = Member(
            id="p_" + secrets.token_urlsafe(12),
            role=m.PARTICIPANT_ROLES[actor.value],  # KeyError for SYSTEM: it never takes a seat
            name=name,
            session_key=session_key(who.session_id),
            conn="",
            user_id=who.user_id,
            detail=detail,
            detail_en=detail_en,
            kind=kind,
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

    async def _resume(
        self, local: LocalRoom, role: m.Role, who: Principal, resume: str
    ) -> Taken | None:
        appointment_id, session = local.room.appointment_id, session_key(who.session_id)
        key = records.record_key(appointment_id, session, resume)
        raw, current = await self.broker.take_reading(
            key, records.current_key(appointment_id, role, session, who.user_id)
        )
        member = records.unpack(raw, appointment_id, session) if raw is not None else None
        if raw is None or member is None or not records.is_current(current, member):
            return None  # (a record of a participant replaced since is used up all the same)
        timer = local.unhold(member.id)
        if timer is not None:
            timer.cancel()
        return Taken(member, key, raw)

    async def _resume_failed(
        self, local: LocalRoom, conn: Connection, seat: Seat, taken: Taken, recorded: bool
    ) -> None:
        """A resume that took the seat's record failed before the room heard of it (the broker
        failed half-way): the seat is held for the window again, as after the drop it resumed
        from, so that it is resumed or ends, and never stays in the room with nobody on it.

        The record that is still good is kept: the new one if it was stored (its resume id
        went out with ``joined``), else the old one put back, so the client can try the same
        resume again. If that fails too (the broker is down), no record can be resumed and
        this process ends the seat at the window's end unless it was replaced meanwhile."""
        await self.waiting.unwatch(conn)
        local.conns.pop(conn.id, None)
        if recorded:
            self._hold(local, seat, seat.resume_key)
            return
        old = Seat(seat.appointment_id, taken.member, taken.key)
        try:
            await self.broker.put(taken.key, taken.raw, self.seat_ttl)
        except UNAVAILABLE:
            self._hold(local, old, taken.key, owned=True)
        else:
            self._hold(local, old, taken.key)

    async def _name(self, named: Named) -> None:
        """Names the fresh join's participant its seat's current one, keeping the name it
        replaces in ``named`` (to give back if the join fails)."""
        named.earlier = await self.broker.get(named.key)
        named.read = True  # (from here on the name may be written, even if ``put`` fails)
        await self.broker.put(named.key, named.member_id.encode(), self.current_ttl)

    async def _unname(self, appointment_id: int, named: Named) -> None:
        """A fresh join failed before the room heard of its participant (the broker failed
        half-way): the seat is its earlier participant's again, which can still resume, and
        ends at its window's end unless it does; the room goes back to ``scheduled`` if this
        join's arrival took it out of it. Not if a newer join named itself meanwhile.

        If the broker refuses the name back, it is tried again every second for a resume
        window: the earlier participant's expiry asks for it at that window's end."""
        if named.arrived:
            try:
                await self.act(appointment_id, Action.DEPART, None)
            except Exception as exc:  # the database is out of reach: the room stays waiting
                log.warning("signaling.arrival_not_undone", error=type(exc).__name__)
        if not named.read:
            return  # nothing was written
        try:
            await self._give_back(named)
        except UNAVAILABLE:
            self.replicas.tasks.spawn("signaling.unname", partial(self._give_back_later, named))

    async def _give_back(self, named: Named) -> None:
        await self.broker.put_if(
            named.key, named.member_id.encode(), named.earlier, self.current_ttl
        )

    async def _give_back_later(self, named: Named) -> None:
        for _ in range(max(1, self.settings.ws_resume_seconds)):
            await anyio.sleep(1)
            with suppress(*UNAVAILABLE):
                await self._give_back(named)
                return
        log.warning("signaling.unname_failed")

    async def disconnect(self, conn: Connection, seat: Seat, *, left: bool) -> None:
        """The connection ended. ``left``: the client said ``leave`` (no resume)."""
        await self.waiting.unwatch(conn)
        local = self.replicas.rooms.get(seat.appointment_id)
        if local is None:
            return
        local.conns.pop(conn.id, None)
        current = local.room.members.get(seat.member.id)
        key = seat.resume_key
        kept = False  # whether this process still holds the seat (for the resume window)
        owned = False  # whether it took the seat's record (nobody can resume it any more)
        ours = current is not None and current.conn == conn.id
        # (A connection whose session ended cannot resume: its seat goes now.)
        leaving = left or conn.close_code in (WS_ROOM_CLOSED, WS_UNAUTHENTICATED)
        try:
            if current is None:
                # Replaced, transferred away or the room closed: the resume id goes with it.
                await self.broker.take(key)
            elif not ours:
                pass  # resumed on a newer connection, which has its own record
            elif leaving:
                # Whoever takes the record owns the participant: a resume that won keeps it.
                if await self._take(seat.appointment_id, seat.member, key):
                    owned = True
                    await self._gone(seat, "left")
            elif await self.broker.refresh(
                key, self.settings.ws_resume_seconds + RESUME_RECORD_MARGIN_SECONDS
            ):
                kept = self._hold(local, seat, key)
                # The peers show "reconnecting"; a resume on any process says "connected" again
                # (and wins whichever arrives first: ``Room.away`` checks the connection).
                await self.replicas.publish(
                    env.room_channel(seat.appointment_id),
                    wire.Away(pid=seat.member.id, conn=conn.id),
                )
            # (Else a resume has just taken the seat over; its "resumed" event is on its way.)
        except UNAVAILABLE as exc:
            # The broker is out of reach (Redis down), so whether a resume took the seat is
            # not known: one still this connection's is held for the window as after any drop,
            # and its expiry asks the broker again.
            log.warning("signaling.disconnect_unavailable", error=type(exc).__name__)
            if ours and not kept:
                # A seat that was leaving ends at the window's end as having left, also one
                # whose record this process took before announcing the departure failed.
                reason: Literal["left", "lost"] = "left" if leaving else "lost"
                kept = self._hold(local, seat, key, owned=owned, reason=reason)
        if not kept:
            await self._unfile(key)
        await self.replicas.release(seat.appointment_id)

    def _hold(
        self,
        local: LocalRoom,
        seat: Seat,
        key: str,
        *,
        owned: bool = False,
        reason: Literal["left", "lost"] = "lost",
    ) -> bool:
        """Holds the seat of a connection that ended for the resume window (an expiry timer).
        ``owned``: this process took the seat's record already (no resume can take it)."""
        expire = partial(self._expire, seat, key, owned=owned, reason=reason)
        local.hold(seat.member.id, self.replicas.tasks.spawn("signaling.resume_expiry", expire))
        return True

    async def _expire(
        self, seat: Seat, key: str, *, owned: bool, reason: Literal["left", "lost"]
    ) -> None:
        await anyio.sleep(self.settings.ws_resume_seconds)
        local = self.replicas.rooms.get(seat.appointment_id)
        if local is not None:
            # No longer cancellable by a resume: whoever takes the record below wins.
            local.unhold(seat.member.id)
        try:
            # Whoever takes the record owns the participant: a resume elsewhere or this expiry.
            # A seat whose record this process took already ends unless a fresh join replaced
            # its participant meanwhile (nothing else can: its record is gone).
            if owned:
                ends = self._still_held(seat) and await self._current(
                    seat.appointment_id, seat.member
                )
            else:
                ends = await self._take(seat.appointment_id, seat.member, key)
            if ends:
                await self._gone(seat, reason)
        except Exception as exc:  # the broker or the database is down: the replica still goes
            log.warning("signaling.expiry_failed", error=type(exc).__name__)
        await self._unfile(key)
        await self.replicas.release(seat.appointment_id)

    async def _unfile(self, key: str) -> None:
        """The seat of record ``key`` is no longer this process's. (Left in the index if the
        broker is out of reach: harmless, as its record is gone or taken by whoever wins.)"""
        with suppress(*UNAVAILABLE):
            await self.broker.unfile(self.index, key)

    async def adopt(self, origin: str) -> None:
        """The process ``origin`` died (``liveness``): the seats it held in this process's rooms
        are held here for the resume window, as it would have held them. Their peers show
        "reconnecting"; a resume on any process takes the seat back; otherwise it ends."""
        window = self.settings.ws_resume_seconds
        for local in list(self.replicas.rooms.values()):
            for member in list(local.room.members.values()):
                if (
                    member.origin != origin
                    or not member.record
                    or member.id in local.timers
                    or member.id in self._ending
                ):
                    continue
                # The record must outlive the window from now (a graceful shutdown shortened
                # it to the window from its connection's end), and is never shortened here (a
                # process that only stalled keeps its seat's record as long as it was).
                held = await self.broker.extend(
                    member.record, window + RESUME_RECORD_MARGIN_SECONDS
                )
                seat = Seat(local.room.appointment_id, member, member.record)
                expiry = partial(self._expire_adopted, seat, held=held)
                local.hold(member.id, self.replicas.tasks.spawn("signaling.resume_expiry", expiry))
                log.info("signaling.seat_adopted", room=seat.appointment_id, origin=origin)
                await self.replicas.publish(
                    env.room_channel(seat.appointment_id),
                    wire.Away(pid=member.id, conn=member.conn),
                )

    async def _expire_adopted(self, seat: Seat, *, held: bool) -> None:
        """``_expire`` for a seat whose process died: ends it unless it was resumed meanwhile
        or that process turns out to be alive after all (stalled, not dead).

        ``held``: its resume record was there at adoption and outlives the window, so whoever
        takes it owns the participant, as ever. A record already gone at adoption can no
        longer be resumed; then one survivor (a broker hold) ends the seat if, a whole window
        later, no resume has been heard of."""
        member_id = seat.member.id
        await anyio.sleep(self.settings.ws_resume_seconds)
        local = self.replicas.rooms.get(seat.appointment_id)
        if local is not None:
            local.unhold(member_id)  # no longer cancellable by a resume
        self._ending.add(member_id)  # nor adopted again while this ends it
        try:
            if self._still_held(seat) and not await self.broker.exists(
                env.alive_key(seat.member.origin)
            ):
                if held:
                    ends = await self._take(seat.appointment_id, seat.member, seat.resume_key)
                else:
                    await self.broker.take(seat.resume_key)  # (if it came back meanwhile)
                    hold = env.ending_key(seat.appointment_id, member_id)
                    ends = (
                        await self._current(seat.appointment_id, seat.member)
                        and await self.broker.hold(hold, ENDING_HOLD_SECONDS) == 0.0
                    )
                if ends:
                    await self._gone(seat, "lost")
        except Exception as exc:  # the broker or the database is down: tried again later
            log.warning("signaling.expiry_failed", error=type(exc).__name__)
        finally:
            self._ending.discard(member_id)
        await self.replicas.release(seat.appointment_id)

    def _still_held(self, seat: Seat) -> bool:
        """Whether the replica still has the participant on the connection it had."""
        local = self.replicas.rooms.get(seat.appointment_id)
        current = local.room.members.get(seat.member.id) if local is not None else None
        return current is not None and current.conn == seat.member.conn

    async def end(self, appointment_id: int, member: Member) -> None:
        """Ends the seat of a dead process whose record the caller took (``orphans``): its
        room hears it was lost and a patient's room goes back to ``scheduled``, as if it had
        expired on that process. Not if the participant was replaced meanwhile, on any process
        (a reloaded page joins afresh, without a resume id): its successor holds the room."""
        if await self._current(appointment_id, member):
            # Raises if the room could not be told, or the database was out of reach: the
            # caller tries again later. (A room that refuses the departure needs none.)
            seat = Seat(appointment_id, member, member.record)
            await self._gone(seat, "lost", ignored=KonsilError)

    async def _take(self, appointment_id: int, member: Member, key: str) -> bool:
        """Takes ``member``'s record ``key``: whether it was there and ``member`` is still its
        seat's current participant. Whoever takes the record owns the participant; the record
        of one replaced by a fresh join is used up (one broker call)."""
        raw, current = await self.broker.take_reading(
            key, records.current_key_of(appointment_id, member)
        )
        return raw is not None and records.is_current(current, member)

    async def _current(self, appointment_id: int, member: Member) -> bool:
        """Whether ``member`` is still its seat's current participant (not replaced since)."""
        found = await self.broker.get(records.current_key_of(appointment_id, member))
        return records.is_current(found, member)

    async def _gone(
        self,
        seat: Seat,
        reason: Literal["left", "lost"],
        *,
        ignored: type[Exception] = Exception,
    ) -> None:
        """The participant left for good: its room hears so, and a patient's room goes back
        to ``scheduled``. ``ignored``: the failures of the latter that are not raised."""
        await self.replicas.publish(
            env.room_channel(seat.appointment_id), wire.Leave(pid=seat.member.id, reason=reason)
        )
        if seat.member.role == "patient":
            with suppress(ignored):
                await self.act(seat.appointment_id, Action.DEPART, None)
