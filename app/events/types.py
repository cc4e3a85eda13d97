"""The domain events: one frozen model per thing that happened, carrying ids, never health data.

Each event names its aggregate (``appointment:<id>``, ``session:<key>``, ``user:<id>``,
``delay:<specialist id>``, ``presence:<specialist id>``):
listeners get the events of one aggregate in the order they were committed. Every event has its
own ``event_id`` so that a listener can tell a redelivery (the outbox delivers at least once).
"""

from __future__ import annotations

import typing
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from app.scheduling.models import RoomState


def _event_id() -> str:
    return uuid.uuid4().hex


class Event(BaseModel):
    """Base of every domain event."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(default_factory=_event_id, pattern=r"^[0-9a-f]{32}$")

    @property
    def aggregate(self) -> str:
        raise NotImplementedError


class AppointmentEvent(Event):
    appointment_id: int

    @property
    def aggregate(self) -> str:
        return f"appointment:{self.appointment_id}"


class AppointmentBooked(AppointmentEvent):
    """A GP booked a slot (its join link is issued in the same unit of work)."""

    type: Literal["appointment.booked"] = "appointment.booked"
    specialist_id: int
    gp_id: int


class AppointmentRescheduled(AppointmentEvent):
    """The booking GP moved the appointment to another slot of the same specialist."""

    type: Literal["appointment.rescheduled"] = "appointment.rescheduled"
    specialist_id: int
    gp_id: int


class AppointmentCancelled(AppointmentEvent):
    """The GP or the specialist cancelled (the room's ``cancelled`` state comes with it)."""

    type: Literal["appointment.cancelled"] = "appointment.cancelled"
    specialist_id: int | None  # None: an on-call request nobody had taken
    gp_id: int


class OnCallEvent(AppointmentEvent):
    """Something happened to an on-call request of ``specialty_id`` (app/scheduling/on_call)."""

    specialty_id: int
    gp_id: int


class OnCallRequested(OnCallEvent):
    """A GP asked the specialty for a consult now (its patient link comes with it)."""

    type: Literal["on_call.requested"] = "on_call.requested"


class OnCallClaimed(OnCallEvent):
    """A specialist of the specialty took the request: it is theirs now."""

    type: Literal["on_call.claimed"] = "on_call.claimed"
    specialist_id: int


class OnCallUnclaimed(OnCallEvent):
    """Nobody took the request in time: its GP is told."""

    type: Literal["on_call.unclaimed"] = "on_call.unclaimed"


class OnCallEscalated(OnCallEvent):
    """The GP asked the specialty again (urgent, with a new time limit)."""

    type: Literal["on_call.escalated"] = "on_call.escalated"


class WrittenEvent(AppointmentEvent):
    """Something happened to a written Telekonsil to ``specialty_id``
    (app/scheduling/written.py): the specialty's open requests changed."""

    specialty_id: int
    gp_id: int


class WrittenRequested(WrittenEvent):
    """A GP sent a written Telekonsil to the specialty."""

    type: Literal["written.requested"] = "written.requested"


class WrittenClaimed(WrittenEvent):
    """A specialist of the specialty took the written Telekonsil: theirs to answer."""

    type: Literal["written.claimed"] = "written.claimed"
    specialist_id: int


class AppointmentTransferred(AppointmentEvent):
    """A consultation that had not begun went to a colleague of the same specialty."""

    type: Literal["appointment.transferred"] = "appointment.transferred"
    from_specialist_id: int
    to_specialist_id: int


class RoomStateChanged(AppointmentEvent):
    """The consultation room moved to ``state`` (``app.rooms.state`` decided it)."""

    type: Literal["room.state_changed"] = "room.state_changed"
    # None while an on-call request waits for a specialist: then its specialty's.
    specialist_id: int | None
    specialty_id: int | None = None
    previous: RoomState
    state: RoomState
    waiting_since: datetime | None = None


class ReportCompleted(AppointmentEvent):
    """The specialist's report completed the appointment."""

    type: Literal["report.completed"] = "report.completed"
    specialist_id: int
    gp_id: int


LinkReason = Literal["booked", "rescheduled", "reissued"]


class LinkIssued(AppointmentEvent):
    """A join link was issued (at booking, or anew: every earlier one is revoked), and why."""

    type: Literal["link.issued"] = "link.issued"
    link_id: int | None = None
    reason: LinkReason = "booked"


class ReportReady(AppointmentEvent):
    """The specialist wrote the appointment's first report (``ReportCompleted`` comes only
    when the report completed a booked appointment; this one comes with every first report)."""

    type: Literal["report.ready"] = "report.ready"
    specialist_id: int
    gp_id: int


class QuestionAsked(AppointmentEvent):
    """The specialist asked the booking GP back (``app.records.conversation``): a question now
    waits for the GP's answer (only the one that opens it; more while it is open do not)."""

    type: Literal["conversation.question_asked"] = "conversation.question_asked"
    specialist_id: int
    gp_id: int


class LinkRevoked(AppointmentEvent):
    """The appointment's join links were revoked without a new one."""

    type: Literal["link.revoked"] = "link.revoked"


class PatientSessionsEnded(AppointmentEvent):
    """The patient sessions of this appointment ended, but the one ``keep`` names (its
    ``session_key``): a link revoked or replaced, or the link opened on another device."""

    type: Literal["patient.sessions_ended"] = "patient.sessions_ended"
    keep: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")


class GuestChanged(AppointmentEvent):
    """The appointment's guest (interpreter, carer) was admitted by the specialist
    (``admitted``), or its invitation was issued anew or revoked (``admitted`` false: nobody
    is admitted; the old guest's session ended with ``SessionEnded``)."""

    type: Literal["guest.changed"] = "guest.changed"
    admitted: bool


class SessionEnded(Event):
    """One session ended: a logout (staff or patient), or a browser that opened a new link.

    ``session_key`` is the session's fingerprint (``app.tokens.session_key``), never its id."""

    type: Literal["session.ended"] = "session.ended"
    session_key: str = Field(pattern=r"^[0-9a-f]{32}$")

    @property
    def aggregate(self) -> str:
        return f"session:{self.session_key}"


class AccountDeactivated(Event):
    """An admin deactivated a staff account; all its sessions ended with it."""

    type: Literal["account.deactivated"] = "account.deactivated"
    user_id: int

    @property
    def aggregate(self) -> str:
        return f"user:{self.user_id}"


class DelayChanged(Event):
    """A specialist set, changed or cleared the day's late notice (``app.rooms.delay`` holds
    it; listeners read it there: the note is free text and stays out of the outbox)."""

    type: Literal["delay.changed"] = "delay.changed"
    specialist_id: int

    @property
    def aggregate(self) -> str:
        return f"delay:{self.specialist_id}"


class PresenceChanged(Event):
    """A specialist set their presence on the queue page (on duty or away); listeners count
    again what GPs see (``app.presence.service``)."""

    type: Literal["presence.changed"] = "presence.changed"
    specialist_id: int

    @property
    def aggregate(self) -> str:
        return f"presence:{self.specialist_id}"


DomainEvent = Annotated[
    AppointmentBooked
    | AppointmentRescheduled
    | AppointmentCancelled
    | AppointmentTransferred
    | OnCallRequested
    | OnCallClaimed
    | OnCallUnclaimed
    | OnCallEscalated
    | WrittenRequested
    | WrittenClaimed
    | QuestionAsked
    | RoomStateChanged
    | ReportCompleted
    | ReportReady
    | LinkIssued
    | LinkRevoked
    | PatientSessionsEnded
    | GuestChanged
    | SessionEnded
    | AccountDeactivated
    | DelayChanged
    | PresenceChanged,
    Field(discriminator="type"),
]
EVENTS: TypeAdapter[DomainEvent] = TypeAdapter(DomainEvent)
# The types this release can deliver; rows of other types (a newer release) wait for it.
EVENT_TYPES = frozenset(
    model.model_fields["type"].default for model in typing.get_args(typing.get_args(DomainEvent)[0])
)
