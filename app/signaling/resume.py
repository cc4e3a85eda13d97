"""Resume records: which participant a private resume id gives back, kept in the broker's keys.

A record is stored when a connection joins (so a client whose old connection the server still
thinks alive can take its seat over) and shortened to the resume window when the connection
ends. Taking it is atomic, so a resume id is used once. The key binds the id to the room and
the session: an id used from another session finds nothing, and so cannot use up the owner's.

Beside the records, each seat of a room (``session.seat_name``) has a key naming its current
participant (``current_key``), written when a connection joins afresh, before a patient's
arrival: a reloaded page has no resume id and replaces the old participant of its seat
(``Room.add``) on whatever process it lands. A record counts only while its participant is
still the seat's current one: one taken afterwards (by a resume, an expiry, an adoption or the
ending of a dead process's seats) is used up and ends nothing.
"""

from __future__ import annotations

import json

from pydantic import TypeAdapter, ValidationError

from app.settings import Settings
from app.signaling import envelope as env
from app.signaling.messages import Role
from app.signaling.session import Member, seat_name
from app.tokens import token_hash

MEMBER: TypeAdapter[Member] = TypeAdapter(Member)


def seat_ttl(settings: Settings) -> int:
    """How long a live seat's record is kept: no seat outlives its session, of either kind.
    (A record survives a crashed process, so its clients can still resume elsewhere.)"""
    minutes = max(settings.session_ttl_minutes, settings.patient_session_ttl_minutes)
    return minutes * 60


# The key naming a seat's current participant outlives any record of an earlier participant of
# that seat: records live ``seat_ttl`` from their last write, and a dead process's are kept the
# resume window and about a minute more by the survivor ending them (``orphans``).
CURRENT_MARGIN_SECONDS = 300


def current_ttl(settings: Settings) -> int:
    """How long the key naming a seat's current participant is kept after a fresh join. (A
    missing key names nobody: the participant of a record is then taken as current.)"""
    return seat_ttl(settings) + settings.ws_resume_seconds + CURRENT_MARGIN_SECONDS


def current_key(appointment_id: int, role: Role, session: str, user_id: int | None) -> str:
    """The broker key naming the current participant of a seat (``session.seat_name``) in
    this room."""
    name = seat_name(role, session, user_id)
    return env.current_key(token_hash(f"{appointment_id}:{name}"))


def current_key_of(appointment_id: int, member: Member) -> str:
    """``current_key`` of ``member``'s seat."""
    return current_key(appointment_id, member.role, member.session_key, member.user_id)


def is_current(found: bytes | None, member: Member) -> bool:
    """Whether ``found`` (the value of its ``current_key``) leaves ``member`` current."""
    return found is None or found == member.id.encode()


def record_key(appointment_id: int, session: str, resume_id: str) -> str:
    """The broker key of a resume id, for ``session`` (a ``session_key``) in this room."""
    return env.resume_key(token_hash(f"{appointment_id}:{session}:{resume_id}"))


def pack(appointment_id: int, member: Member) -> bytes:
    record = {"appointment_id": appointment_id, "member": MEMBER.dump_python(member, mode="json")}
    # Compact: with the memory broker every waiting patient's record stays in this process.
    return json.dumps(record, separators=(",", ":")).encode()


def parse(raw: bytes) -> tuple[int, Member] | None:
    """The room and the member of a record taken by a process that is not resuming it (the
    seats of a dead process: ``orphans``); None if it cannot be read."""
    try:
        record = json.loads(raw)
        appointment_id = record["appointment_id"]
        member = MEMBER.validate_python(record["member"])
    except (KeyError, TypeError, ValueError, ValidationError):
        return None
    return (appointment_id, member) if isinstance(appointment_id, int) else None


def unpack(raw: bytes, appointment_id: int, session: str) -> Member | None:
    """The member in a taken record, if it really is of this room and session (fields a record
    of an older release lacks take their defaults)."""
    record = json.loads(raw)
    try:
        member = MEMBER.validate_python(record["member"])
    except (KeyError, TypeError, ValidationError):
        return None
    if record.get("appointment_id") != appointment_id or member.session_key != session:
        return None
    return member
