"""The consultation room's state machine: which action moves which state, and who may do it.

Pure: no database, no clock. ``app.rooms.service`` applies the result to an appointment.

    scheduled --arrive--> waiting --admit--> admitted --start_call--> in_call --end--> ended
        ^                    |  ^               |                           |      ^
        +------depart--------+  +---send_back---+---------------------------+      |
                                                +--------------end-----------------+
    scheduled --no_show--> no_show         scheduled | waiting --cancel--> cancelled

``send_back``: the specialist moves the patient from the call back to the waiting room (to talk
to the GP alone, say) and admits them again later. The room is ``waiting`` then, but the
consultation has begun: callers pass ``admitted_before`` (the appointment's ``admitted_at`` is
set), and what only fits a consultation that has not begun (no-show, cancel, transfer) is
refused from then on, whatever the state.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.errors import Forbidden, InvalidTransition, RoomClosed
from app.scheduling.models import AppointmentStatus, RoomState

S = RoomState


class Actor(StrEnum):
    """Who acts on a room, relative to its appointment."""

    PATIENT = "patient"
    SPECIALIST = "specialist"  # the appointment's specialist
    GP = "gp"  # the appointment's booking GP
    GUEST = "guest"  # the appointment's invited guest (interpreter, carer): changes nothing
    SYSTEM = "system"  # the server itself (signalling events)


class Action(StrEnum):
    ARRIVE = "arrive"  # the patient enters the waiting room (or comes back)
    DEPART = "depart"  # the patient left and did not come back within the resume window
    ADMIT = "admit"
    START_CALL = "start_call"  # first SDP answer between patient and staff went through
    END = "end"
    NO_SHOW = "no_show"
    CANCEL = "cancel"
    TRANSFER = "transfer"  # to another specialist; the state itself does not change
    SEND_BACK = "send_back"  # the patient goes from the call back to the waiting room


# What may happen in the room of an on-call request that no specialist has taken yet: the
# patient comes and goes, the GP withdraws it. Letting the patient in is the specialist's, once
# one has taken it (a GP admitting first would leave a consultation nobody can end).
UNCLAIMED_ACTIONS = frozenset({Action.ARRIVE, Action.DEPART, Action.CANCEL})

CLOSED = frozenset({S.ENDED, S.NO_SHOW, S.CANCELLED})
# States that show the consultation has begun, whatever the clock says: links open 30 min early,
# so a specialist may admit a waiting patient before the slot. Admitting counts too: it is the
# specialist's own act, and the call may then fail and continue by phone. (The specialist's
# appointment page gets this set from the server.)
BEGUN = frozenset({S.ADMITTED, S.IN_CALL, S.ENDED})
# A consultation is going on: the specialist is not to be disturbed by knocks of other
# patients (Anlage 31b; the queue page gets this set from the server).
IN_CONSULTATION = frozenset({S.ADMITTED, S.IN_CALL})
# The appointment's status that a closing state decides; otherwise it stays as it is (booked,
# or completed by a report).
STATUS_AFTER = {
    S.ENDED: AppointmentStatus.COMPLETED,
    S.NO_SHOW: AppointmentStatus.NO_SHOW,
    S.CANCELLED: AppointmentStatus.CANCELLED,
}


@dataclass(frozen=True)
class Rule:
    moves: dict[RoomState, RoomState]
    actors: frozenset[Actor]


def _same(*states: RoomState) -> dict[RoomState, RoomState]:
    return {s: s for s in states}


RULES: dict[Action, Rule] = {
    Action.ARRIVE: Rule(
        {S.SCHEDULED: S.WAITING} | _same(S.WAITING, S.ADMITTED, S.IN_CALL),
        frozenset({Actor.PATIENT}),
    ),
    Action.DEPART: Rule(
        {S.WAITING: S.SCHEDULED} | _same(S.SCHEDULED, S.ADMITTED, S.IN_CALL),
        frozenset({Actor.PATIENT, Actor.SYSTEM}),
    ),
    Action.ADMIT: Rule({S.WAITING: S.ADMITTED}, frozenset({Actor.SPECIALIST, Actor.GP})),
    Action.START_CALL: Rule(
        {S.ADMITTED: S.IN_CALL, S.IN_CALL: S.IN_CALL}, frozenset({Actor.SYSTEM})
    ),
    Action.END: Rule(
        {S.WAITING: S.ENDED, S.ADMITTED: S.ENDED, S.IN_CALL: S.ENDED},
        frozenset({Actor.SPECIALIST}),
    ),
    Action.NO_SHOW: Rule({S.SCHEDULED: S.NO_SHOW}, frozenset({Actor.SPECIALIST})),
    Action.CANCEL: Rule(
        {S.SCHEDULED: S.CANCELLED, S.WAITING: S.CANCELLED},
        frozenset({Actor.SPECIALIST, Actor.GP, Actor.SYSTEM}),
    ),
    Action.TRANSFER: Rule(_same(S.SCHEDULED, S.WAITING), frozenset({Actor.SPECIALIST})),
    Action.SEND_BACK: Rule(
        {S.ADMITTED: S.WAITING, S.IN_CALL: S.WAITING}, frozenset({Actor.SPECIALIST})
    ),
}
# Actions only for a consultation that has not begun: once the patient was admitted (and sent
# back to the waiting room since), nobody can mark a no-show, cancel or hand it over.
BEFORE_ADMISSION = frozenset({Action.NO_SHOW, Action.CANCEL, Action.TRANSFER})

MESSAGES = {
    Action.ADMIT: "Es wartet gerade niemand, der eingelassen werden könnte.",
    Action.END: "Die Konsultation hat noch nicht begonnen.",
    Action.NO_SHOW: "Nur ein Termin, zu dem niemand wartet, kann als nicht erschienen gelten.",
    Action.TRANSFER: "Eine laufende Konsultation kann nicht mehr übergeben werden.",
    Action.SEND_BACK: "Die Patientin bzw. der Patient ist nicht im Gespräch.",
}
BEGUN_MESSAGE = "Die Konsultation hat schon begonnen."


def next_state(
    state: RoomState, action: Action, actor: Actor, *, admitted_before: bool = False
) -> RoomState:
    """The state after ``actor`` does ``action`` in ``state``. ``admitted_before``: the patient
    was admitted to this consultation before (and may have been sent back since).

    Raises ``Forbidden`` if the actor may never do it, ``RoomClosed`` once the room is closed,
    ``InvalidTransition`` if the action does not fit the current state, or only fits a
    consultation that has not begun.
    """
    rule = RULES[action]
    if actor not in rule.actors:
        raise Forbidden(action=action.value)
    if state in CLOSED:
        raise RoomClosed(state=state.value)
    if state not in rule.moves:
        raise InvalidTransition(MESSAGES.get(action), state=state.value, action=action.value)
    if admitted_before and action in BEFORE_ADMISSION:
        raise InvalidTransition(BEGUN_MESSAGE, state=state.value, action=action.value)
    return rule.moves[state]


# The states a booking may still be cancelled in (the CANCEL rule's sources).
CANCELLABLE = frozenset(RULES[Action.CANCEL].moves)


def is_closed(state: RoomState) -> bool:
    return state in CLOSED
