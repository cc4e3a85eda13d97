"""The signalling hub of one process: what the websocket endpoint and the domain events talk to.

It puts together the room replicas (``replicas``), the seats and their resume (``seats``), the
specialists' dashboards (``dashboards``), the patients' place in line and the late notice
(``waiting``), the closing of ended sessions (``ended``) and the watch over the other
processes (``liveness``: the seats of one that died end all the same), and does
the database side of what a websocket causes (a patient arrives or leaves for good, an admit,
the first answer that starts the call). Those changes, like every other, reach the rooms as
domain events through ``listener``, which calls the effects at the end of this class.
"""

from __future__ import annotations

from datetime import datetime

from starlette.requests import HTTPConnection

from app.accounts.service import Principal
from app.db import unit_of_work, utcnow
from app.resources import Resources, resources
from app.rooms import service as rooms
from app.rooms.state import Action
from app.scheduling import guests
from app.scheduling import repository as scheduling
from app.scheduling.models import Appointment, RoomState
from app.signaling import envelope as env
from app.signaling import messages as m
from app.signaling import wire
from app.signaling.connection import Connection
from app.signaling.dashboards import Dashboards
from app.signaling.ended import EndedSessions
from app.signaling.liveness import Liveness
from app.signaling.presence import PresenceBoard
from app.signaling.replicas import Replicas
from app.signaling.seats import Seat, Seats
from app.signaling.waiting import WaitingRooms


def hub(conn: HTTPConnection) -> Hub:
    found = resources(conn).hub
    assert found is not None, "signalling hub not started"
    return found


class Hub:
    """Routes room events between local connections and the broker."""

    def __init__(self, res: Resources) -> None:
        self.settings = res.settings
        self.sessions = res.sessions
        self.replicas = Replicas(broker=res.broker, sessions=res.sessions, tasks=res.tasks)
        self.waiting = WaitingRooms(
            settings=res.settings, broker=res.broker, sessions=res.sessions, tasks=res.tasks
        )
        self.seats = Seats(
            settings=res.settings,
            broker=res.broker,
            replicas=self.replicas,
            act=self.room_action,
            waiting=self.waiting,
        )
        self.dashboards = Dashboards(
            settings=res.settings, broker=res.broker, sessions=res.sessions, tasks=res.tasks
        )
        self.liveness = Liveness(broker=res.broker, replicas=self.replicas, seats=self.seats)
        self.ended = EndedSessions(broker=res.broker, origin=self.replicas.origin)
        self.presence = PresenceBoard(
            settings=res.settings, broker=res.broker, sessions=res.sessions, tasks=res.tasks
        )

    # ---------------------------------------------------------------- the endpoint's calls
    # (joining and leaving go to ``seats`` directly)

    async def act(self, seat: Seat, action: Action, who: Principal) -> None:
        await self.room_action(seat.appointment_id, action, who)

    async def relay(self, seat: Seat, message: m.ClientMessage) -> None:
        """Checks and forwards a relay message; an answer to the patient may start the call."""
        local = self.replicas.rooms[seat.appointment_id]
        local.room.check(seat.member.id, message)
        relayed = wire.Relay(sender=seat.member.id, msg=message, at=utcnow())
        await self.replicas.publish(env.room_channel(seat.appointment_id), relayed)
        if local.room.starts_call(seat.member.id, message):
            await self.room_action(seat.appointment_id, Action.START_CALL, None)

    async def media(self, seat: Seat, message: m.MediaState) -> None:
        """Keeps the participant's media on every replica; its peers hear of a change. Also
        from a patient in the waiting room: they see it in ``peer_joined`` once admitted."""
        await self.replicas.publish(
            env.room_channel(seat.appointment_id),
            wire.MediaChanged(pid=seat.member.id, media=message.media()),
        )

    async def admit_guest(self, seat: Seat, who: Principal) -> None:
        """The specialist lets the guest in: written to the database; every replica hears of
        it as a domain event (``GuestChanged``), in the broker's order."""
        async with unit_of_work(self.sessions) as session:
            await guests.admit(session, who=who, appointment_id=seat.appointment_id)

    async def room_action(
        self, appointment_id: int, action: Action, who: Principal | None
    ) -> Appointment:
        # The room's new state reaches every replica as a domain event (``listener``).
        async with unit_of_work(self.sessions) as session:
            return await rooms.act(
                session, appointment_id=appointment_id, action=action, who=who, now=utcnow()
            )

    # ---------------------------------------------------------------- effects of domain events

    async def room_state(
        self, appointment_id: int, state: RoomState, waiting_since: datetime | None, *, ev: str
    ) -> None:
        """Tells every process about a room's new state (a committed change)."""
        message = wire.State(ev=ev, state=state, waiting_since=waiting_since)
        await self.replicas.publish(env.room_channel(appointment_id), message)

    async def revoke(self, appointment_id: int, user_id: int, *, ev: str) -> None:
        """Closes a staff member's connections in this room on every process (transferred)."""
        await self.replicas.publish(
            env.room_channel(appointment_id), wire.Revoke(ev=ev, user_id=user_id)
        )

    async def revoke_patients(self, appointment_id: int, *, keep: str | None, ev: str) -> None:
        """Closes the patient's connections in this room on every process (its sessions ended
        in the database), but those of session key ``keep``."""
        message = wire.RevokePatients(ev=ev, keep=keep)
        await self.replicas.publish(env.room_channel(appointment_id), message)

    async def guest_changed(self, appointment_id: int, *, admitted: bool, ev: str) -> None:
        """Tells every process that the room's guest was admitted (or nobody is any more)."""
        message = wire.Guest(ev=ev, admitted=admitted)
        await self.replicas.publish(env.room_channel(appointment_id), message)

    # ---------------------------------------------------------------- dashboards

    async def watch_queue(self, conn: Connection, specialist_id: int) -> None:
        await self.dashboards.watch(conn, specialist_id)

    async def unwatch_queue(self, conn: Connection, specialist_id: int) -> None:
        await self.dashboards.unwatch(conn, specialist_id)

    async def queue_changed(self, specialist_id: int, *, ev: str) -> None:
        await self.replicas.publish(env.queue_channel(specialist_id), wire.QueueChanged(ev=ev))

    async def on_call_changed(self, specialty_id: int, *, ev: str) -> None:
        """The specialty's open on-call requests changed: every specialist of it reads the
        queue again (their queue shows the requests)."""
        async with self.sessions() as session:
            specialists = await scheduling.specialist_ids(session, specialty_id)
        for specialist_id in specialists:
            await self.queue_changed(specialist_id, ev=ev)

    # ---------------------------------------------------------------- presence (GPs)

    async def presence_changed(self, *, ev: str) -> None:
        """Tells every process that specialists' presence may have changed."""
        await self.replicas.publish(env.PRESENCE, wire.PresenceChanged(ev=ev))

    # ---------------------------------------------------------------- shutdown

    async def shutdown(self) -> None:
        """Tells every client 1001 and ends every subscription and timer."""
        await self.liveness.stop()  # first: no seat adopted while the replicas end
        await self.replicas.shutdown()
        await self.dashboards.shutdown()
        await self.waiting.shutdown()
        await self.ended.stop()
        await self.presence.shutdown()
