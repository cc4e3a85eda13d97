"""What server processes tell each other on broker channels: a typed union, and its pure effect.

Every message is JSON ``{"o": <origin process>, "s": <sequence per origin and channel>,
"e": <kind>, ...}``, one pydantic model per kind, discriminated on ``e``. Redis pub/sub delivers
at most once, so a receiver that sees a sequence number jump knows it missed something
(``envelope.SequenceTracker``) and makes its clients renegotiate. ``parse`` turns anything
malformed or unknown into ``None`` (the reader counts it and drops it); ``apply`` is the pure
effect of a room message on a room replica, tested without sockets.

Messages that come from a domain event carry its id (``ev``): a replica applies each event once,
so an event delivered again (the outbox delivers at least once) cannot undo a later one.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Literal, TypeVar, assert_never

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from app.scheduling.models import RoomState
from app.signaling import messages as m
from app.signaling.session import Member, Out, Room

EventId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


class Wire(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_name=True, serialize_by_alias=True
    )

    # The sending process and its sequence number on this channel: stamped by the publisher.
    o: str = Field(default="", max_length=64)
    s: int = Field(default=0, ge=0)


# ---------------------------------------------------------------- room channel konsil:room:<id>


class Add(Wire):
    """A participant joined on the sending process; ``partners``: pairs it already has."""

    e: Literal["add"] = "add"
    member: Member
    partners: list[str] = Field(default_factory=list)


class Present(Wire):
    """The sender's own participants, repeated after a join elsewhere or a gap."""

    e: Literal["present"] = "present"
    member: Member
    partners: list[str] = Field(default_factory=list)


class Leave(Wire):
    """A participant left for good: ``left`` (said leave, or its session ended) or ``lost``
    (its resume window ran out)."""

    e: Literal["leave"] = "leave"
    pid: str
    reason: Literal["left", "lost"] = "left"


class MediaChanged(Wire):
    """A participant's client said what its media are (``media_state``)."""

    e: Literal["media"] = "media"
    pid: str
    media: m.Media


class Away(Wire):
    """A participant's connection ``conn`` dropped; its seat is held for the resume window."""

    e: Literal["away"] = "away"
    pid: str
    conn: str


class Resumed(Wire):
    """A participant took its seat back on a new connection of the sending process."""

    e: Literal["resumed"] = "resumed"
    member: Member


class State(Wire):
    """The room's state changed in the database (from ``RoomStateChanged``)."""

    e: Literal["state"] = "state"
    ev: EventId
    state: RoomState
    waiting_since: datetime | None = None


class Relay(Wire):
    """A checked signalling message from ``sender`` to be delivered where its target is."""

    e: Literal["relay"] = "relay"
    sender: str = Field(alias="from")
    msg: m.ClientMessage
    at: datetime


class Revoke(Wire):
    """A staff member lost the room (the consultation was transferred away from them)."""

    e: Literal["revoke"] = "revoke"
    ev: EventId
    user_id: int


class RevokePatients(Wire):
    """The patient's sessions ended, but the one with session key ``keep``."""

    e: Literal["revoke_patients"] = "revoke_patients"
    ev: EventId
    keep: str | None = None


class Guest(Wire):
    """The guest was admitted, or nobody is any more (from ``GuestChanged``)."""

    e: Literal["guest"] = "guest"
    ev: EventId
    admitted: bool


RoomMessage = Annotated[
    Add
    | Present
    | Leave
    | MediaChanged
    | Away
    | Resumed
    | State
    | Relay
    | Revoke
    | RevokePatients
    | Guest,
    Field(discriminator="e"),
]
ROOM: TypeAdapter[RoomMessage] = TypeAdapter(RoomMessage)


# ---------------------------------------------------------------- other channels


class QueueChanged(Wire):
    """On ``konsil:queue:<specialist id>``: the specialist's day changed; refresh dashboards."""

    e: Literal["changed"] = "changed"
    ev: EventId


class SessionsEnd(Wire):
    """On ``konsil:sessions``: close the connections of this session, or of this user."""

    e: Literal["end"] = "end"
    ev: EventId
    session: str | None = None
    user_id: int | None = None


class PresenceChanged(Wire):
    """On ``konsil:presence``: a specialist's presence may have changed (a toggle, a room
    entering or leaving a consultation, a session ended); GP dashboards count again."""

    e: Literal["presence"] = "presence"
    ev: EventId


T = TypeVar("T")

_UNSTAMPED = b'{"o":"","s":0,'


def stamped_json(message: Wire, origin: str, seq: int) -> bytes:
    """``message`` as JSON with ``origin`` and ``seq`` as its ``o`` and ``s``: the bytes of a
    copy with both set, made without copying the model (it is on every relayed message)."""
    # The serializer's bytes as they are (``model_dump_json`` would decode them to a str, which
    # is encoded again here: two copies of an offer's SDP per relay).
    body = message.__pydantic_serializer__.to_json(message)
    if not body.startswith(_UNSTAMPED):  # already stamped: the copy, as ever
        return message.model_copy(update={"o": origin, "s": seq}).model_dump_json().encode()
    return _head(origin) + str(int(seq)).encode() + b"," + body[len(_UNSTAMPED) :]


@lru_cache(maxsize=16)
def _head(origin: str) -> bytes:
    """``{"o":<origin>,"s":`` (a process has one origin)."""
    return b'{"o":' + json.dumps(origin).encode() + b',"s":'


def parse(adapter: TypeAdapter[T], raw: bytes) -> T | None:
    """The message, or None for anything malformed or unknown (never trusted blindly)."""
    try:
        return adapter.validate_json(raw)
    except ValidationError:
        return None


QUEUE: TypeAdapter[QueueChanged] = TypeAdapter(QueueChanged)
SESSIONS: TypeAdapter[SessionsEnd] = TypeAdapter(SessionsEnd)
PRESENCE: TypeAdapter[PresenceChanged] = TypeAdapter(PresenceChanged)


# Room messages that come from a domain event (made once: see ``session.TO_ONE_PEER``).
FROM_EVENTS = (State, Revoke, RevokePatients, Guest)


def apply(room: Room, message: RoomMessage) -> list[Out]:
    """What a room message does to a replica: the messages to send and connections to close.
    A domain event's message that this replica applied before does nothing."""
    if isinstance(message, FROM_EVENTS) and not room.first_time(message.ev):
        return []
    match message:  # (the relay first: it is nearly every message a room gets)
        case Relay():
            return room.relay(message.sender, message.msg, message.at)
        case Add() | Present():
            return room.add(message.member, message.partners)
        case Leave():
            return room.remove(message.pid, message.reason)
        case MediaChanged():
            return room.media(message.pid, message.media)
        case Away():
            return room.away(message.pid, message.conn)
        case Resumed():
            return room.resumed(message.member)
        case State():
            return room.set_state(message.state, message.waiting_since)
        case Revoke():
            return room.revoke(message.user_id)
        case RevokePatients():
            return room.revoke_patients(keep=message.keep)
        case Guest():
            return room.set_guest(message.admitted)
        case _:
            assert_never(message)
