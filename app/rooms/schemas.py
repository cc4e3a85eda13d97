"""Request and response bodies of the rooms API (also embedded in the websocket ``queue``)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import (
    Field,
    StrictInt,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from app.rooms.models import MAX_NOTE
from app.rooms.waiting import MAX_DELAY_MINUTES
from app.scheduling.models import Mode, RoomState, Urgency
from app.scheduling.schemas import OnCallEntry, WrittenEntry
from app.schemas import Id, Out, Schema

_CONTROL = frozenset(chr(c) for c in (*range(0x20), 0x7F))


class DelayOut(Out):
    """The specialist's late notice for today."""

    day: date
    minutes: int | None = Field(description="About this many minutes late (null: not said).")
    note: str | None = Field(description="A short note shown to the waiting patients.")
    updated_at: datetime


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

    ``waiting`` is ordered: a patient sent back from the call first, then urgent first, then by
    slot time, then by arrival; ``today`` by slot
    time (urgent first within the same slot time).
    """

    day: date
    generated_at: datetime
    waiting: list[QueueEntry]
    today: list[QueueEntry]
    delay: DelayOut | None = Field(
        default=None, description="The late notice the specialist gave for today, if any."
    )
    in_consultation: bool = Field(
        default=False,
        description="A room of this specialist is admitted or in a call now, or its patient "
        "was sent back to the waiting room (of any day, admitted within the last 12 hours): "
        "the queue page makes no sound then.",
    )
    on_call: list[OnCallEntry] = Field(
        default_factory=list,
        description="On-call requests of the specialist's specialty that nobody has taken "
        "yet (urgent first, then the longest asked); the first to claim one owns it.",
    )
    written: list[WrittenEntry] = Field(
        default_factory=list,
        description="Written Telekonsile (no video): those of the specialist's specialty "
        "nobody has taken yet and those the specialist took and has not answered, the day "
        "the answer is due first.",
    )


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


class DelayIn(Schema):
    """The specialist's late notice for today: about ``minutes`` late, a short ``note`` for the
    waiting patients, or both. It replaces the previous one."""

    minutes: StrictInt | None = Field(default=None, ge=1, le=MAX_DELAY_MINUTES)
    note: str | None = Field(default=None, max_length=MAX_NOTE)

    @field_validator("minutes", mode="wrap")
    @classmethod
    def _minutes(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError(
                "invalid",
                f"Bitte eine Verspätung zwischen 1 und {MAX_DELAY_MINUTES} Minuten angeben.",
            ) from None

    @field_validator("note", mode="wrap")
    @classmethod
    def _note(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            note = handler(value)
        except ValidationError:
            raise PydanticCustomError(
                "invalid", f"Der Hinweis muss ein Text mit höchstens {MAX_NOTE} Zeichen sein."
            ) from None
        if note is not None and any(c in _CONTROL for c in note):
            raise PydanticCustomError("invalid", "Der Hinweis muss eine einzelne Zeile sein.")
        return note or None

    @model_validator(mode="after")
    def _something(self) -> DelayIn:
        if self.minutes is None and self.note is None:
            raise PydanticCustomError(
                "invalid", "Bitte eine Verspätung in Minuten oder einen kurzen Hinweis angeben."
            )
        return self


class PatientDelay(Out):
    """A late notice as a waiting patient sees it: with the specialist's name as the patient's
    page shows it anyway."""

    minutes: int | None
    note: str | None
    specialist_name: str
    updated_at: datetime


class WaitingView(Out):
    """What the waiting room tells one patient: where they stand and any late notice."""

    appointment_id: int
    specialist_id: int
    room_state: RoomState
    ahead: int | None = Field(description="Waiting patients before this one (0: next).")
    eta_minutes: int | None = Field(
        default=None,
        description="About how many minutes until the specialist sees this patient, from "
        "the specialist's recent consultations; None without enough of them.",
    )
    delay: PatientDelay | None
