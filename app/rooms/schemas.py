"""Request and response bodies of the rooms API (also embedded in the websocket ``queue``)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import Field

from app.scheduling.models import Mode, RoomState, Urgency
from app.schemas import Id, Out, Schema


class QueueEntry(Out):
    """One appointment of the specialist's day, as the live queue shows it."""

    appointment_id: int
    starts_at: datetime
    ends_at: datetime
    urgency: Urgency
    mode: Mode
    room_state: RoomState
    patient_name: str
    gp_name: str
    waiting_since: datetime | None = None
    waiting_seconds: int | None = Field(
        default=None, description="Seconds in the waiting room at the time of this snapshot."
    )


class QueueOut(Out):
    """Today's appointments (local day) and, separately, who is waiting right now.

    ``waiting`` is ordered urgent first, then by slot time, then by arrival; ``today`` by slot
    time (urgent first within the same slot time).
    """

    day: date
    generated_at: datetime
    waiting: list[QueueEntry]
    today: list[QueueEntry]


class RoomOut(Out):
    """A room's state after an action."""

    appointment_id: int
    room_state: RoomState
    specialist_id: int
    waiting_since: datetime | None
    admitted_at: datetime | None
    ended_at: datetime | None


class TransferIn(Schema):
    """Hand a not-yet-started consultation to another specialist of the same specialty."""

    specialist_id: Id


class IceOut(Out):
    """``RTCConfiguration.iceServers`` for this room plus how long the credentials last."""

    iceServers: list[dict[str, object]]
    ttl: int
