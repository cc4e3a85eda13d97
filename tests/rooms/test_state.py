"""The room state machine: every transition, who may do it, and what is refused."""

from __future__ import annotations

import pytest

from app.errors import Forbidden, InvalidTransition, RoomClosed
from app.rooms.state import RULES, Action, Actor, is_closed, next_state
from app.scheduling.models import RoomState as S

HAPPY_PATH = [
    (S.SCHEDULED, Action.ARRIVE, Actor.PATIENT, S.WAITING),
    (S.WAITING, Action.ADMIT, Actor.SPECIALIST, S.ADMITTED),
    (S.ADMITTED, Action.START_CALL, Actor.SYSTEM, S.IN_CALL),
    (S.IN_CALL, Action.END, Actor.SPECIALIST, S.ENDED),
]


@pytest.mark.parametrize(("state", "action", "actor", "expected"), HAPPY_PATH)
def test_state_happy_path(state: S, action: Action, actor: Actor, expected: S) -> None:
    assert next_state(state, action, actor) is expected


def test_state_gp_may_admit() -> None:
    assert next_state(S.WAITING, Action.ADMIT, Actor.GP) is S.ADMITTED


def test_state_patient_may_not_admit() -> None:
    with pytest.raises(Forbidden):
        next_state(S.WAITING, Action.ADMIT, Actor.PATIENT)


def test_state_gp_may_not_end_or_mark_no_show() -> None:
    with pytest.raises(Forbidden):
        next_state(S.IN_CALL, Action.END, Actor.GP)
    with pytest.raises(Forbidden):
        next_state(S.SCHEDULED, Action.NO_SHOW, Actor.GP)


def test_state_admit_without_waiting_patient_is_invalid() -> None:
    with pytest.raises(InvalidTransition):
        next_state(S.SCHEDULED, Action.ADMIT, Actor.SPECIALIST)


def test_state_departure_returns_waiting_room_to_scheduled() -> None:
    assert next_state(S.WAITING, Action.DEPART, Actor.SYSTEM) is S.SCHEDULED


def test_state_departure_during_call_keeps_the_call() -> None:
    assert next_state(S.IN_CALL, Action.DEPART, Actor.SYSTEM) is S.IN_CALL


def test_state_rejoin_after_admission_keeps_state() -> None:
    assert next_state(S.ADMITTED, Action.ARRIVE, Actor.PATIENT) is S.ADMITTED


def test_state_no_show_only_when_nobody_came() -> None:
    assert next_state(S.SCHEDULED, Action.NO_SHOW, Actor.SPECIALIST) is S.NO_SHOW
    with pytest.raises(InvalidTransition):
        next_state(S.WAITING, Action.NO_SHOW, Actor.SPECIALIST)


def test_state_transfer_only_before_the_call() -> None:
    assert next_state(S.WAITING, Action.TRANSFER, Actor.SPECIALIST) is S.WAITING
    for state in (S.ADMITTED, S.IN_CALL):
        with pytest.raises(InvalidTransition):
            next_state(state, Action.TRANSFER, Actor.SPECIALIST)


@pytest.mark.parametrize("closed", [S.ENDED, S.NO_SHOW, S.CANCELLED])
@pytest.mark.parametrize("action", list(Action))
def test_state_closed_rooms_refuse_everything(closed: S, action: Action) -> None:
    actor = next(iter(RULES[action].actors))
    with pytest.raises(RoomClosed):
        next_state(closed, action, actor)
    assert is_closed(closed)


def test_state_forbidden_is_checked_before_state() -> None:
    # A patient learns nothing about the room's state from a refused admit.
    with pytest.raises(Forbidden):
        next_state(S.ENDED, Action.ADMIT, Actor.PATIENT)


def test_state_every_target_is_a_known_state() -> None:
    for rule in RULES.values():
        assert set(rule.moves.values()) <= set(S)
        assert rule.actors


@pytest.mark.parametrize("state", [S.ADMITTED, S.IN_CALL])
def test_state_specialist_sends_the_patient_back_to_the_waiting_room(state: S) -> None:
    assert next_state(state, Action.SEND_BACK, Actor.SPECIALIST) is S.WAITING


@pytest.mark.parametrize("actor", [Actor.GP, Actor.PATIENT, Actor.SYSTEM])
def test_state_only_the_specialist_sends_back(actor: Actor) -> None:
    with pytest.raises(Forbidden):
        next_state(S.IN_CALL, Action.SEND_BACK, actor)


@pytest.mark.parametrize("state", [S.SCHEDULED, S.WAITING])
def test_state_send_back_needs_the_patient_in_the_call(state: S) -> None:
    with pytest.raises(InvalidTransition):
        next_state(state, Action.SEND_BACK, Actor.SPECIALIST)


def test_state_sent_back_patient_is_admitted_again() -> None:
    state = next_state(S.IN_CALL, Action.SEND_BACK, Actor.SPECIALIST)
    state = next_state(state, Action.ADMIT, Actor.SPECIALIST, admitted_before=True)
    assert state is S.ADMITTED
    assert next_state(state, Action.START_CALL, Actor.SYSTEM) is S.IN_CALL


def test_state_sent_back_patient_who_leaves_makes_the_room_scheduled() -> None:
    assert next_state(S.WAITING, Action.DEPART, Actor.SYSTEM, admitted_before=True) is S.SCHEDULED


def test_state_sent_back_consultation_can_still_end() -> None:
    assert next_state(S.WAITING, Action.END, Actor.SPECIALIST, admitted_before=True) is S.ENDED


@pytest.mark.parametrize(
    ("state", "action", "actor"),
    [
        (S.WAITING, Action.CANCEL, Actor.GP),
        (S.WAITING, Action.TRANSFER, Actor.SPECIALIST),
        (S.SCHEDULED, Action.NO_SHOW, Actor.SPECIALIST),  # sent back, then left
        (S.SCHEDULED, Action.CANCEL, Actor.SPECIALIST),
    ],
)
def test_state_begun_consultation_refuses_what_fits_only_before(
    state: S, action: Action, actor: Actor
) -> None:
    next_state(state, action, actor)  # allowed before anybody was admitted
    with pytest.raises(InvalidTransition) as err:
        next_state(state, action, actor, admitted_before=True)
    assert err.value.message == "Die Konsultation hat schon begonnen."
