"""The signalling protocol: every websocket message is one of these pydantic models.

JSON text frames, one message per frame, discriminated on ``type``. Unknown types and unknown
fields are rejected. ``docs/protocol.md`` documents each message with an example; keep the two in
sync. Client messages never name their sender: the server takes it from the session.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictBool,
    TypeAdapter,
    model_serializer,
)

from app.presence.schemas import SpecialtyPresence
from app.rooms.schemas import QueueOut
from app.scheduling.models import GuestKind, RoomState

# Server-assigned, opaque, random per connection; never a user id.
ParticipantId = Annotated[str, Field(pattern=r"^p_[A-Za-z0-9_-]{8,40}$")]
Sdp = Annotated[str, Field(min_length=1, max_length=60_000)]
Role = Literal["patient", "specialist", "gp", "guest"]
"""A participant's role in a room: ``app.rooms.state.Actor`` without the server itself.
``guest``: the invited fourth participant (interpreter, carer), admitted by the specialist."""
PARTICIPANT_ROLES: dict[str, Role] = {
    "patient": "patient",
    "specialist": "specialist",
    "gp": "gp",
    "guest": "guest",
}
STAFF_ROLES: frozenset[str] = frozenset({"specialist", "gp"})
MAX_PARTICIPANTS = 4
"""A call is a mesh of at most four: patient, specialist, GP and one guest."""
GuestState = Literal["absent", "waiting", "admitted"]
Connection = Literal["connected", "reconnecting"]
"""``reconnecting``: the peer's websocket dropped and its seat is held for the resume window."""
LeftReason = Literal["left", "lost", "sent_back", "ended"]


class Message(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


class IceCandidate(Message):
    """An ICE candidate exactly as the browser's ``RTCIceCandidate.toJSON()`` gives it."""

    candidate: str = Field(max_length=1024)
    sdp_mid: str | None = Field(default=None, alias="sdpMid", max_length=64)
    sdp_m_line_index: int | None = Field(default=None, alias="sdpMLineIndex", ge=0, le=64)
    username_fragment: str | None = Field(default=None, alias="usernameFragment", max_length=256)


class IceServer(Message):
    """One entry of ``RTCConfiguration.iceServers``; STUN entries carry no credentials."""

    urls: list[str]
    username: str | None = None
    credential: str | None = None

    @model_serializer(mode="wrap")
    def _without_nulls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # As in GET /api/v1/rooms/{id}/ice: absent keys, not nulls, which the browser's
        # RTCIceServer would turn into the string "null".
        return {key: value for key, value in handler(self).items() if value is not None}


class Media(Message):
    """What a participant's client last said of its media (``media_state``); all false until
    it said anything."""

    muted: StrictBool = False
    camera_off: StrictBool = False
    audio_only: StrictBool = False
    screen_sharing: StrictBool = False


class PeerStatus(Media):
    """A peer's media and whether its websocket is there (``peer_joined``'s ``state``)."""

    connection: Connection = "connected"


class Peer(Message):
    """Another participant of the room, as this client may see it."""

    id: ParticipantId
    role: Role
    name: str = Field(
        default="",
        description="Display name of staff and of the guest; the patient's name for staff "
        "viewers, empty for anyone else (the guest never learns it).",
    )
    detail: str = Field(
        default="",
        description="The specialist's specialty, the GP's practice; empty for the patient and "
        "the guest.",
    )
    kind: GuestKind | None = Field(
        default=None,
        description="The guest's kind (role ``guest`` only, absent for the others), e.g. "
        "interpreter.",
    )
    state: PeerStatus = Field(default_factory=PeerStatus)

    @model_serializer(mode="wrap")
    def _kind_for_guests_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("kind") is None:
            data.pop("kind", None)
        return data


# --------------------------------------------------------------------------- client -> server


class Join(Message):
    """First message of every room connection. ``resume``: the resume id of a dropped
    connection (from its ``joined`` message) to keep the participant id and ICE-restart."""

    type: Literal["join"]
    resume: str | None = Field(default=None, min_length=16, max_length=64)


class Admit(Message):
    """Staff only: let the waiting patient into the call."""

    type: Literal["admit"]


class Offer(Message):
    """SDP offer for one peer (``to`` is a participant id from ``peer_joined``)."""

    type: Literal["offer"]
    to: ParticipantId
    sdp: Sdp


class Answer(Message):
    """SDP answer for one peer."""

    type: Literal["answer"]
    to: ParticipantId
    sdp: Sdp


class Candidate(Message):
    """A trickled ICE candidate for one peer; ``candidate: null`` means end of candidates."""

    type: Literal["candidate"]
    to: ParticipantId
    candidate: IceCandidate | None


class Chat(Message):
    """A chat line for everybody in the call. Relayed, never stored, never logged."""

    type: Literal["chat"]
    text: str = Field(min_length=1, max_length=2000)


class Leave(Message):
    """The participant leaves for good (no resume); the server closes with 1000."""

    type: Literal["leave"]


class MediaState(Message):
    """This client's media, right after ``joined`` and on every change (all four fields, every
    time). The server keeps the last one and tells the peers (``peer_state``)."""

    type: Literal["media_state"]
    muted: StrictBool
    camera_off: StrictBool
    audio_only: StrictBool
    screen_sharing: StrictBool

    def media(self) -> Media:
        return Media(
            muted=self.muted,
            camera_off=self.camera_off,
            audio_only=self.audio_only,
            screen_sharing=self.screen_sharing,
        )


class SendBack(Message):
    """The room's specialist only: the patient goes from the call back to the waiting room."""

    type: Literal["send_back"]


class AdmitGuest(Message):
    """The room's specialist only: let the waiting guest (``guest_status`` ``waiting``) into
    the call (same as ``POST /api/v1/rooms/{id}/guest/admit``)."""

    type: Literal["admit_guest"]


class Ping(Message):
    """Is this connection still alive? Answered at once with ``pong``, before and after
    ``join``, on room and dashboard connections alike. Neither a ``join`` nor activity of a
    staff session (the idle timeout); counted by the rate limit like every message."""

    type: Literal["ping"]


ClientMessage = Annotated[
    Join
    | Admit
    | Offer
    | Answer
    | Candidate
    | Chat
    | Leave
    | MediaState
    | SendBack
    | AdmitGuest
    | Ping,
    Field(discriminator="type"),
]
CLIENT_MESSAGES: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


# --------------------------------------------------------------------------- server -> client


class Joined(Message):
    """Reply to ``join``: who you are in this room and how to reach the media relays.

    Keep ``resume_id`` private (memory or sessionStorage only); it is single-use and works for
    ``resume_seconds`` after the connection drops. Every ``joined`` carries a fresh one.
    """

    type: Literal["joined"] = "joined"
    participant_id: ParticipantId
    role: Role
    resumed: bool = False
    resume_id: str
    resume_seconds: int
    room_state: RoomState
    ice_servers: list[IceServer]
    ice_ttl: int


class RoomStateChanged(Message):
    """Waiting-room status: the room's state, sent after ``joined`` and on every change.

    The patient sees ``waiting`` until admitted; staff see ``waiting`` while the patient is in
    the waiting room (``waiting_since`` set) and ``scheduled`` when nobody waits.
    """

    type: Literal["room_state"] = "room_state"
    state: RoomState
    waiting_since: datetime | None = None


class PeerJoined(Message):
    """A peer you may now call. ``offer: true``: you create the RTCPeerConnection offer."""

    type: Literal["peer_joined"] = "peer_joined"
    peer: Peer
    offer: bool


class PeerLeft(Message):
    """A peer is gone: close its connection. ``reason``: ``left`` (it said leave or hung up),
    ``lost`` (it did not come back within the resume window), ``sent_back`` (the patient went
    back to the waiting room), ``ended`` (the consultation ended)."""

    type: Literal["peer_left"] = "peer_left"
    peer_id: ParticipantId
    reason: LeftReason = "left"


class PeerState(Message):
    """A peer's media changed, its websocket dropped (``reconnecting``, its seat is held for the
    resume window) or it came back (``connected``)."""

    type: Literal["peer_state"] = "peer_state"
    peer_id: ParticipantId
    muted: bool
    camera_off: bool
    audio_only: bool
    screen_sharing: bool
    connection: Connection


class OfferFrom(Message):
    """An SDP offer from a peer; answer it with ``answer`` to ``from``."""

    type: Literal["offer"] = "offer"
    sender: ParticipantId = Field(alias="from")
    sdp: Sdp


class AnswerFrom(Message):
    """An SDP answer from a peer."""

    type: Literal["answer"] = "answer"
    sender: ParticipantId = Field(alias="from")
    sdp: Sdp


class CandidateFrom(Message):
    """A trickled ICE candidate from a peer (``null``: end of candidates)."""

    type: Literal["candidate"] = "candidate"
    sender: ParticipantId = Field(alias="from")
    candidate: IceCandidate | None


class ChatFrom(Message):
    """A chat line from a peer (never stored by the server)."""

    type: Literal["chat"] = "chat"
    sender: ParticipantId = Field(alias="from")
    text: str
    at: datetime


class Renegotiate(Message):
    """Restart ICE with ``peer``: sent to the offering side after a resume or a lost message."""

    type: Literal["renegotiate"] = "renegotiate"
    peer_id: ParticipantId
    ice_restart: bool = True
    reason: Literal["resumed", "gap"]


class Queue(QueueOut):
    """The specialist's live queue (dashboard connections): same body as GET /api/v1/queue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["queue"] = "queue"


class Position(Message):
    """Patients in the waiting room: how many waiting patients the specialist will see before
    you (0: you are next), and about how many minutes that takes (``eta_minutes``, in steps of
    five, from the specialist's recent consultations; null without enough of them). Sent after
    ``join`` and whenever either changes."""

    type: Literal["position"] = "position"
    ahead: int = Field(ge=0)
    eta_minutes: int | None = Field(default=None, ge=0)


class Delay(Message):
    """Patients: the specialist's late notice for the day, after ``join`` if there is one and
    whenever it changes. ``minutes`` (about so many minutes late) and ``note`` (a short text
    by the specialist) may each be null; both null: the notice was withdrawn."""

    type: Literal["delay"] = "delay"
    minutes: int | None = None
    note: str | None = None
    specialist_name: str = ""
    updated_at: datetime | None = None


class GuestStatus(Message):
    """To staff and to the guest: whether the room's guest is connected and admitted.
    ``absent``: no guest here; ``waiting``: the guest waits for the specialist's
    ``admit_guest``; ``admitted``: let in (in the call whenever the patient is). Sent after
    ``join`` when there is a guest, and on every change."""

    type: Literal["guest_status"] = "guest_status"
    state: GuestState
    name: str = ""
    kind: GuestKind | None = None


class Error(Message):
    """A refused message. The connection stays open unless a close frame follows."""

    type: Literal["error"] = "error"
    code: str
    message: str
    ref: str | None = Field(default=None, description="The ``type`` of the refused message.")


class Presence(Message):
    """GP dashboards: per specialty, how many specialists are on duty and free now
    (``on_duty``) and how many are in a consultation (``in_call``). Counts only: never who,
    never with which patient. Sent on connect and whenever a count changes."""

    type: Literal["presence"] = "presence"
    specialties: list[SpecialtyPresence]


class Pong(Message):
    """The answer to ``ping``: the connection is alive both ways."""

    type: Literal["pong"] = "pong"


ServerMessage = Annotated[
    Joined
    | RoomStateChanged
    | PeerJoined
    | PeerLeft
    | PeerState
    | OfferFrom
    | AnswerFrom
    | CandidateFrom
    | ChatFrom
    | Renegotiate
    | Queue
    | Position
    | Delay
    | GuestStatus
    | Error
    | Presence
    | Pong,
    Field(discriminator="type"),
]
SERVER_MESSAGES: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)


def encode(message: BaseModel) -> str:
    """The JSON text frame for a server message (aliases such as ``from`` applied)."""
    return message.model_dump_json(by_alias=True)
