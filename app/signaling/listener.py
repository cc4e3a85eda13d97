"""Signalling's listener on the domain events: what each committed change means for the open
rooms, the specialists' dashboards and the websockets of sessions that ended.

The routes and services never call signalling; they record events, and the dispatcher hands each
one here after commit. Every effect is idempotent (a state already heard is not sent again, a
closed connection stays closed, a dashboard snapshot replaces the last), as the outbox delivers
at least once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.events import types as ev
from app.resources import Resources
from app.signaling.hub import Hub
from app.signaling.presence import counts_may_change


@asynccontextmanager
async def lifespan(res: Resources) -> AsyncIterator[None]:
    """Registered in ``app.main.PACKAGE_LIFESPANS``: the hub lives as long as the app, and
    hears every domain event."""
    instance = Hub(res)
    await instance.ended.start(res.tasks)
    await instance.liveness.start(res.tasks)
    res.hub = instance

    async def listener(event: ev.DomainEvent) -> None:
        await on_event(instance, event)

    res.events.subscribe("signaling", listener)
    try:
        yield
    finally:
        await instance.shutdown()
        res.hub = None


async def on_event(hub: Hub, event: ev.DomainEvent) -> None:
    match event:
        case ev.RoomStateChanged():
            await hub.room_state(
                event.appointment_id, event.state, event.waiting_since, ev=event.event_id
            )
            if event.specialist_id is not None:
                await hub.queue_changed(event.specialist_id, ev=event.event_id)
            elif event.specialty_id is not None:  # an on-call request nobody has taken yet
                await hub.on_call_changed(event.specialty_id, ev=event.event_id)
            if counts_may_change(event.previous, event.state):
                await hub.presence_changed(ev=event.event_id)
        case ev.AppointmentBooked() | ev.AppointmentRescheduled() | ev.DelayChanged():
            # Dashboards and waiting patients read the specialist's day (and notice) again.
            await hub.queue_changed(event.specialist_id, ev=event.event_id)
        case (
            ev.OnCallRequested() | ev.OnCallClaimed() | ev.OnCallUnclaimed() | ev.OnCallEscalated()
        ):
            # Every specialist of the specialty sees its open requests in the queue (the one
            # who claimed it sees it there now as their own).
            await hub.on_call_changed(event.specialty_id, ev=event.event_id)
            if isinstance(event, ev.OnCallClaimed):
                # A patient already waiting is in the specialist's line from now on.
                await hub.waiting.claimed(event.appointment_id, hub.replicas.rooms)
        case ev.WrittenRequested() | ev.WrittenClaimed():
            # The specialty's queue lists its open written requests (and, to the one who took
            # it, theirs to answer).
            await hub.on_call_changed(event.specialty_id, ev=event.event_id)
        case ev.AppointmentTransferred():
            await hub.revoke(event.appointment_id, event.from_specialist_id, ev=event.event_id)
            await hub.queue_changed(event.from_specialist_id, ev=event.event_id)
            await hub.queue_changed(event.to_specialist_id, ev=event.event_id)
        case ev.GuestChanged():
            await hub.guest_changed(
                event.appointment_id, admitted=event.admitted, ev=event.event_id
            )
        case ev.PatientSessionsEnded():
            await hub.revoke_patients(event.appointment_id, keep=event.keep, ev=event.event_id)
        case ev.SessionEnded():
            await hub.ended.end(ev=event.event_id, session=event.session_key)
            await hub.presence_changed(ev=event.event_id)  # a specialist's may be away now
        case ev.AccountDeactivated():
            await hub.ended.end(ev=event.event_id, user_id=event.user_id)
            await hub.presence_changed(ev=event.event_id)
        case ev.PresenceChanged():
            await hub.presence_changed(ev=event.event_id)
        case ev.ReportCompleted():
            # The day's list shows it completed; a written Telekonsil leaves the queue.
            await hub.queue_changed(event.specialist_id, ev=event.event_id)
        case (
            ev.AppointmentCancelled()
            | ev.ReportReady()
            | ev.LinkIssued()
            | ev.LinkRevoked()
            | ev.QuestionAsked()
        ):
            # Nothing open changes beyond what the room's own events do (a cancellation's
            # ``RoomStateChanged`` closes the room and refreshes the dashboard).
            pass
