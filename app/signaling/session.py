"""Pure signalling logic for one room: events in, addressed messages out. No I/O, no clock.

Every server process keeps a replica of each room it has participants in and applies the same
events in the broker's order; each process then delivers only the outputs addressed to its own
connections. A relay is checked at the sender's process (``check``) and applied everywhere
(``relay``), so a message can only ever reach members of the room it was sent in.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from app.errors import (
    WS_FORBIDDEN,
    WS_REPLACED,
    WS_ROOM_CLOSED,
    WS_UNAUTHENTICATED,
    JoinFirst,
    NotInCall,
    ScreenShareNotAllowed,
    UnknownPeer,
)
from app.rooms.state import is_closed
from app.scheduling.models import GuestKind, RoomState
from app.signaling import messages as m

# The guest ranks lowest: the others make the offers to it.
RANK: dict[str, int] = {"specialist": 3, "gp": 2, "patient": 1, "guest": 0}
APPLIED_EVENTS_KEPT = 256
# What a participant's media are until its client says otherwise. One instance for every such
# participant (messages are frozen): each waiting patient would hold its own otherwise.
NO_MEDIA = m.Media()
# The relay messages addressed to one peer. A tuple made once: ``A | B | C`` written inside a
# method builds a new union object on every call, and these checks run for every message.
TO_ONE_PEER = (m.Offer, m.Answer, m.Candidate)

# What a room holds of pairs, resyncs and guest statuses until it has any: shared and
# immutable, replaced (copied on write, never more than a few entries) once there is something
# to hold. Most replicas are one waiting patient's room, which never holds any of them; an
# empty set costs 216 bytes, an empty dict 64 (docs/performance.md, memory).
NO_PAIRS: frozenset[frozenset[str]] = frozenset()
NOBODY: frozenset[str] = frozenset()
EMPTY: Mapping[str, Any] = MappingProxyType({})

V = TypeVar("V")


def with_item(mapping: Mapping[str, V], key: str, value: V) -> Mapping[str, V]:
    """A copy of ``mapping`` with ``key`` set to ``value`` (``mapping`` is left as it is)."""
    return {**mapping, key: value}


def without_item(mapping: Mapping[str, V], key: str) -> Mapping[str, V]:
    """``mapping`` without ``key``: the same mapping if it has none, ``EMPTY`` once empty."""
    if key not in mapping:
        return mapping
    return {k: v for k, v in mapping.items() if k != key} or EMPTY


def _empty() -> Mapping[str, Any]:
    return EMPTY  # (a dataclass default may not be a mapping itself)


# What each member was last told of the room's state (``Room.heard``): the state and since
# when the patient waits, as in ``Room.state_message`` (kept as a tuple: a message model with
# its dict and its set of fields takes four times the memory, and every waiting patient has one).
Heard = tuple[RoomState, datetime | None]


@dataclass(frozen=True, slots=True)
class Member:
    """A participant. ``user_id``, ``session_key``, ``conn``, ``origin`` and ``record`` never
    leave the server.

    ``name``: a staff member's or the guest's display name, empty for the patient (whose name
    each process reads from the database, ``Room.patient_name``, so it never travels between
    processes). ``kind``: the guest's kind (interpreter, carer), None for everyone else.
    ``detail``: the specialty (German) or practice, ``detail_en`` the specialty in English;
    ``lang``: the language of this participant's page, which picks the details it is shown.
    ``media`` and ``connection``: its last ``media_state`` and whether its websocket is there;
    like the rest they travel with ``add``/``present`` to processes that learn the room later.
    ``origin``: the process holding its connection, ``record``: the broker key of its resume
    record (both empty in records of an older release); with them another process ends the
    seat if that process dies (``liveness``).
    """

    id: str
    role: m.Role
    name: str
    session_key: str
    conn: str
    user_id: int | None = None
    detail: str = ""
    detail_en: str = ""
    lang: str = "de"
    media: m.Media = NO_MEDIA
    connection: m.Connection = "connected"
    kind: GuestKind | None = None
    origin: str = ""
    record: str = ""

    def status(self) -> m.PeerStatus:
        return m.PeerStatus(**self.media.model_dump(), connection=self.connection)

    def peer_state(self) -> m.PeerState:
        return m.PeerState(peer_id=self.id, **self.status().model_dump())


@dataclass(frozen=True, slots=True)
class Send:
    """Deliver ``message`` to participant ``to`` (on whichever process holds its connection)."""

    to: str
    message: BaseModel


@dataclass(frozen=True, slots=True)
class Close:
    """Close connection ``conn`` with ``code`` after what was sent to it so far."""

    conn: str
    code: int
    reason: str


Out = Send | Close


def offers(a: Member, b: Member) -> bool:
    """Whether ``a`` makes the offer to ``b``: higher rank offers; ties by id."""
    return (RANK[a.role], a.id) > (RANK[b.role], b.id)


def same_seat(member: Member, role: m.Role, session_key: str, user_id: int | None) -> bool:
    """Whether a newcomer (``role``, ``session_key``, ``user_id``) takes ``member``'s seat: a
    connection of the same session, or the same staff member on another device. (The patient
    and the guest have one live session each: opening a link ends the earlier sessions, whose
    connections close with 4401.)"""
    if member.session_key == session_key:
        return True
    return (
        role in m.STAFF_ROLES
        and member.role == role
        and user_id is not None
        and member.user_id == user_id
    )


def seat_name(role: m.Role, session_key: str, user_id: int | None) -> str:
    """What ``same_seat`` compares, as one name: the same staff member in the same role (on
    any device), or else the same session."""
    if role in m.STAFF_ROLES and user_id is not None:
        return f"{role}:{user_id}"
    return f"session:{session_key}"


def check_media(role: m.Role, media: m.MediaState, *, patient_screen_share: bool) -> None:
    """Refuses ``screen_sharing: true`` from a guest always and from a patient unless the
    operator allows it (``KONSIL_PATIENT_SCREEN_SHARE``): the state is then neither kept nor
    relayed. Staff share (an ECG, a scan, a letter); a guest (an interpreter) has nothing of
    the case to show."""
    if not media.screen_sharing or role in m.STAFF_ROLES:
        return
    if role == "guest" or not patient_screen_share:
        raise ScreenShareNotAllowed()


@dataclass(slots=True)
class Room:
    """The replica of one consultation room."""

    appointment_id: int
    state: RoomState
    waiting_since: datetime | None = None
    # Shown to staff in the patient's ``peer_joined``; read from the database by each process.
    patient_name: str = ""
    members: dict[str, Member] = field(default_factory=dict)
    # Pairs that were told about each other (peer_joined) and may exchange signalling.
    pairs: frozenset[frozenset[str]] = NO_PAIRS
    # Members that resumed onto this replica before it knew them (and so their pairs).
    resyncing: frozenset[str] = NOBODY
    # The last room state each member was told: a state heard already is not sent again (the
    # joining process tells its joiner directly; a domain event may be delivered twice).
    heard: dict[str, Heard] = field(default_factory=dict)
    # The ids of the last domain events applied: the outbox delivers at least once, and a
    # redelivered older event must not undo a newer one.
    # (A dict keeps insertion order; an OrderedDict takes more than twice the memory.)
    applied: dict[str, None] = field(default_factory=dict)
    # The specialist let the guest in (in the database; from ``GuestChanged``).
    guest_admitted: bool = False
    # The last ``guest_status`` each staff member and the guest was told.
    guest_told: Mapping[str, m.GuestStatus] = field(default_factory=_empty)

    def first_time(self, event_id: str) -> bool:
        """Whether the domain event ``event_id`` is new to this replica (and remember it)."""
        if event_id in self.applied:
            return False
        self.applied[event_id] = None
        if len(self.applied) > APPLIED_EVENTS_KEPT:
            del self.applied[next(iter(self.applied))]
        return True

    def in_call(self, member: Member) -> bool:
        """Staff are always in the call; the patient while admitted; the guest while admitted
        by the specialist and the patient is (sent back or ended: the guest is out too)."""
        if member.role in m.STAFF_ROLES:
            return True
        admitted = self.state in (RoomState.ADMITTED, RoomState.IN_CALL)
        return admitted and (member.role == "patient" or self.guest_admitted)

    def full_for(self, role: m.Role, session_key: str, user_id: int | None) -> bool:
        """Whether a new participant would find its seat held by somebody else. A room has one
        seat per role (the patient, the guest, the specialist, the GP), so the mesh stays at
        four: a staff member's newer session takes its seat over (``add``). The patient and
        the guest are never refused, whoever else is in the room."""
        return role in m.STAFF_ROLES and any(
            mb.role == role and not same_seat(mb, role, session_key, user_id)
            for mb in self.members.values()
        )

    def guest_status(self) -> m.GuestStatus:
        guest = next((mb for mb in self.members.values() if mb.role == "guest"), None)
        if guest is None:
            return m.GuestStatus(state="absent")
        state: m.GuestState = "admitted" if self.guest_admitted else "waiting"
        return m.GuestStatus(state=state, name=guest.name, kind=guest.kind)

    def state_message(self) -> m.RoomStateChanged:
        state, since = self.state_now()
        return m.RoomStateChanged(state=state, waiting_since=since)

    def state_now(self) -> Heard:
        """What ``state_message`` says now, as ``heard`` keeps it."""
        return self.state, self.waiting_since if self.state is RoomState.WAITING else None

    def peer(self, member: Member, viewer: Member) -> m.Peer:
        """``member`` as ``viewer`` sees it: the patient's name only for staff (never for the
        guest); the guest's name and kind for everybody."""
        name = member.name
        if member.role == "patient":
            name = self.patient_name if viewer.role in m.STAFF_ROLES else ""
        detail = member.detail_en if viewer.lang == "en" and member.detail_en else member.detail
        return m.Peer(
            id=member.id,
            role=member.role,
            name=name,
            detail=detail,
            kind=member.kind if member.role == "guest" else None,
            state=member.status(),
        )

    # ---------------------------------------------------------------- events (every replica)

    def add(self, member: Member, partners: Collection[str] = ()) -> list[Out]:
        """A participant joined, or another process tells us it is there: ``partners`` are
        the pairs it already has there, which were introduced and need no ``peer_joined``."""
        if member.id in self.members:
            return []
        if member.media == NO_MEDIA and member.media is not NO_MEDIA:
            member = replace(member, media=NO_MEDIA)  # (one parsed from the broker)
        outs: list[Out] = []
        for old in list(self.members.values()):
            if same_seat(old, member.role, member.session_key, member.user_id):
                outs.append(Close(old.conn, WS_REPLACED, "replaced by a newer connection"))
                outs += self.remove(old.id)
        self.members[member.id] = member
        outs += self._pair_known(member, partners) + self._introduce()
        return outs + self._tell_guest()

    def remove(self, participant_id: str, reason: m.LeftReason = "left") -> list[Out]:
        """A participant left for good: its peers close their connections to it."""
        if self.members.pop(participant_id, None) is None:
            return []
        if participant_id in self.resyncing:
            self.resyncing = self.resyncing - {participant_id} or NOBODY
        self.heard.pop(participant_id, None)
        self.guest_told = without_item(self.guest_told, participant_id)
        outs: list[Out] = []
        gone = [p for p in self.pairs if participant_id in p]
        if gone:
            self.pairs = self.pairs.difference(gone) or NO_PAIRS
        for pair in gone:
            (other,) = pair - {participant_id}
            outs.append(Send(other, m.PeerLeft(peer_id=participant_id, reason=reason)))
        return outs + self._tell_guest()

    def set_guest(self, admitted: bool) -> list[Out]:
        """The specialist admitted the guest, or its invitation was issued anew or revoked
        (nobody admitted): the guest joins the call if the patient is in it, or leaves it."""
        self.guest_admitted = admitted
        outs = self._part("left", everyone=False) + self._introduce()
        return outs + self._tell_guest()

    def media(self, participant_id: str, media: m.Media) -> list[Out]:
        """The participant's client said what its media are: its peers hear of a change."""
        member = self.members.get(participant_id)
        if member is None or member.media == media:
            return []
        self.members[participant_id] = replace(member, media=media)
        return self._tell_status(participant_id)

    def away(self, participant_id: str, conn: str) -> list[Out]:
        """Connection ``conn`` of the participant dropped and its seat is held for the resume
        window. Ignored once the participant is on another connection: a resume elsewhere
        may reach this replica first."""
        member = self.members.get(participant_id)
        if member is None or member.conn != conn or member.connection == "reconnecting":
            return []
        self.members[participant_id] = replace(member, connection="reconnecting")
        return self._tell_status(participant_id)

    def resumed(self, member: Member) -> list[Out]:
        """The participant is back on connection ``member.conn``: the old connection (dead or
        still open) is closed with 4409, and every pair restarts ICE.

        A replica that did not know the participant (this process had nobody in the room) takes
        it as it is; its pairs follow with the other processes' ``present``."""
        known = self.members.get(member.id)
        if known is None:
            self.members[member.id] = member
            self.resyncing = self.resyncing | {member.id}
            return self._retell_guest(member.id)
        outs: list[Out] = []
        if known.conn != member.conn:
            outs.append(Close(known.conn, WS_REPLACED, "resumed on a newer connection"))
        self.members[member.id] = replace(
            known,
            conn=member.conn,
            lang=member.lang,
            connection="connected",
            origin=member.origin,
            record=member.record,
        )
        if known.connection == "reconnecting":
            outs += self._tell_status(member.id)
        return outs + self._renegotiate(member.id, "resumed") + self._retell_guest(member.id)

    def set_state(self, state: RoomState, waiting_since: datetime | None) -> list[Out]:
        """The room's state changed (in the database): everybody hears of it. A patient sent
        back to the waiting room leaves the call (the others hear ``peer_left``, the patient
        only the new state); a closed room ends every pair (everybody hears ``peer_left``)."""
        self.state, self.waiting_since = state, waiting_since
        closed = is_closed(state)
        outs = self._part("ended" if closed else "sent_back", everyone=closed)
        heard, message = self.state_now(), self.state_message()
        for pid in self.members:
            if self.heard.get(pid) != heard:
                self.heard[pid] = heard
                outs.append(Send(pid, message))
        if closed:
            outs += [Close(mb.conn, WS_ROOM_CLOSED, state.value) for mb in self.members.values()]
            return outs
        return outs + self._introduce()

    def revoke(self, user_id: int) -> list[Out]:
        """A staff member lost the right to be here (consultation transferred)."""
        gone = [mb for mb in self.members.values() if mb.user_id == user_id]
        outs: list[Out] = []
        for member in gone:
            outs.append(Close(member.conn, WS_FORBIDDEN, "transferred"))
            outs += self.remove(member.id)
        return outs

    def revoke_patients(self, keep: str | None = None) -> list[Out]:
        """The patient's sessions ended (link revoked, replaced or opened on another device):
        their connections go, but those of session ``keep``."""
        gone = [
            mb for mb in self.members.values() if mb.role == "patient" and mb.session_key != keep
        ]
        outs: list[Out] = []
        for member in gone:
            outs.append(Close(member.conn, WS_UNAUTHENTICATED, "session ended"))
            outs += self.remove(member.id)
        return outs

    def gap(self) -> list[Out]:
        """Signalling between processes was lost: every pair renegotiates."""
        outs: list[Out] = []
        for pair in self.pairs:
            a, b = (self.members[pid] for pid in sorted(pair))
            offerer, answerer = (a, b) if offers(a, b) else (b, a)
            outs.append(Send(offerer.id, m.Renegotiate(peer_id=answerer.id, reason="gap")))
        return outs

    def relay(self, sender: str, message: m.ClientMessage, at: datetime) -> list[Out]:
        """Delivers a checked relay message; anything outside the sender's pairs is dropped."""
        if isinstance(message, m.Chat):
            text = message.text
            return [
                Send(other, m.ChatFrom(sender=sender, text=text, at=at))
                for other in self.partners(sender)
            ]
        if not isinstance(message, TO_ONE_PEER):
            return []
        if not self.paired(sender, message.to):
            return []
        out: BaseModel
        if isinstance(message, m.Offer):
            out = m.OfferFrom(sender=sender, sdp=message.sdp)
        elif isinstance(message, m.Answer):
            out = m.AnswerFrom(sender=sender, sdp=message.sdp)
        else:
            out = m.CandidateFrom(sender=sender, candidate=message.candidate)
        return [Send(message.to, out)]

    # ---------------------------------------------------------------- checks (sender's process)

    def check(self, sender: str, message: m.ClientMessage) -> None:
        """Refuses a relay the sender may not make, with a precise error code."""
        member = self.members.get(sender)
        if member is None:
            raise JoinFirst()
        if not self.in_call(member):
            raise NotInCall()
        if isinstance(message, TO_ONE_PEER):
            target = self.members.get(message.to)
            if target is None:
                raise UnknownPeer()
            if not self.paired(sender, message.to):
                raise NotInCall("Diese Person ist noch nicht im Gespräch.")

    def starts_call(self, sender: str, message: m.ClientMessage) -> bool:
        """An answer between the patient and a staff member while admitted starts the call."""
        if not isinstance(message, m.Answer) or self.state is not RoomState.ADMITTED:
            return False
        roles = {self.members[sender].role, self.members[message.to].role}
        return "patient" in roles and bool(roles & m.STAFF_ROLES)

    # ---------------------------------------------------------------- helpers

    def paired(self, a: str, b: str) -> bool:
        """Whether ``a`` and ``b`` were introduced to each other (``b in partners(a)``, without
        building the list: this is asked for every relayed message, twice)."""
        return frozenset((a, b)) in self.pairs

    def partners(self, participant_id: str) -> list[str]:
        """The members ``participant_id`` was introduced to."""
        return [next(iter(p - {participant_id})) for p in self.pairs if participant_id in p]

    def _pair_known(self, member: Member, partners: Collection[str]) -> list[Out]:
        outs: list[Out] = []
        for other_id in partners:
            pair = frozenset({member.id, other_id})
            other = self.members.get(other_id)
            if other is None or pair in self.pairs:
                continue
            self.pairs = self.pairs | {pair}
            if other_id in self.resyncing:
                # Only the replica holding a resumed offerer's new connection can deliver its
                # renegotiate, and this one did not know the pair when the resume arrived.
                if offers(other, member):
                    outs.append(Send(other_id, m.Renegotiate(peer_id=member.id, reason="resumed")))
            elif self.in_call(member) and self.in_call(other):
                # The member's process introduced the pair and told its own connections only.
                # If ``other`` is held here, nobody told it (this replica did not know the pair):
                # e.g. the patient's process applied "admitted" before telling this one that
                # the patient is there. (If ``other`` is held elsewhere, the send goes nowhere.)
                peer = self.peer(member, other)
                outs.append(Send(other_id, m.PeerJoined(peer=peer, offer=offers(other, member))))
        return outs

    def _introduce(self) -> list[Out]:
        outs: list[Out] = []
        ready = [mb for mb in self.members.values() if self.in_call(mb)]
        for i, a in enumerate(ready):
            for b in ready[i + 1 :]:
                pair = frozenset({a.id, b.id})
                if pair in self.pairs:
                    continue
                self.pairs = self.pairs | {pair}
                outs.append(Send(a.id, m.PeerJoined(peer=self.peer(b, a), offer=offers(a, b))))
                outs.append(Send(b.id, m.PeerJoined(peer=self.peer(a, b), offer=offers(b, a))))
        return outs

    def _part(self, reason: m.LeftReason, *, everyone: bool) -> list[Out]:
        """Ends the pairs with a member who is no longer in the call (every pair if
        ``everyone``); the members still in the call (everyone) hear ``peer_left``."""
        outs: list[Out] = []
        for pair in sorted(self.pairs, key=sorted):
            a, b = (self.members[pid] for pid in sorted(pair))
            if not everyone and self.in_call(a) and self.in_call(b):
                continue
            self.pairs = self.pairs - {pair} or NO_PAIRS
            for me, other in ((a, b), (b, a)):
                if everyone or self.in_call(me):
                    outs.append(Send(me.id, m.PeerLeft(peer_id=other.id, reason=reason)))
        return outs

    def _tell_guest(self) -> list[Out]:
        """Staff and the guest hear when the guest comes, waits, is admitted or goes."""
        status = self.guest_status()
        outs: list[Out] = []
        for member in self.members.values():
            if member.role not in m.STAFF_ROLES and member.role != "guest":
                continue
            told = self.guest_told.get(member.id)
            if told == status or (told is None and status.state == "absent"):
                continue
            self.guest_told = with_item(self.guest_told, member.id, status)
            outs.append(Send(member.id, status))
        return outs

    def _retell_guest(self, participant_id: str) -> list[Out]:
        """What was sent while the member's connection was gone is lost: on its new one it
        hears the guest's current status again (``room_state`` is sent by the joining
        process)."""
        member = self.members[participant_id]
        if member.role not in m.STAFF_ROLES and member.role != "guest":
            return []
        status, told = self.guest_status(), self.guest_told.get(participant_id)
        if told is None and status.state == "absent":
            return []
        self.guest_told = with_item(self.guest_told, participant_id, status)
        return [Send(participant_id, status)]

    def _tell_status(self, participant_id: str) -> list[Out]:
        state = self.members[participant_id].peer_state()
        return [Send(other, state) for other in self.partners(participant_id)]

    def _renegotiate(self, participant_id: str, reason: Literal["resumed", "gap"]) -> list[Out]:
        me = self.members[participant_id]
        outs: list[Out] = []
        for other_id in self.partners(participant_id):
            other = self.members[other_id]
            if offers(me, other):
                outs.append(Send(me.id, m.Renegotiate(peer_id=other.id, reason=reason)))
            else:
                outs.append(Send(other.id, m.Renegotiate(peer_id=me.id, reason=reason)))
        return outs
