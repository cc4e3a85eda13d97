"""Domain events: typed, frozen, ids only, and parsed back exactly as they were written."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.events import types as ev
from app.scheduling.models import RoomState


def test_event_round_trips_through_json_as_its_own_type() -> None:
    event = ev.RoomStateChanged(
        appointment_id=7, specialist_id=3, previous=RoomState.SCHEDULED, state=RoomState.WAITING
    )
    back = ev.EVENTS.validate_json(event.model_dump_json())
    assert isinstance(back, ev.RoomStateChanged)
    assert back == event


def test_event_ids_are_unique_per_event() -> None:
    one, two = ev.LinkIssued(appointment_id=1), ev.LinkIssued(appointment_id=1)
    assert one.event_id != two.event_id


@pytest.mark.parametrize(
    ("event", "aggregate"),
    [
        (ev.AppointmentBooked(appointment_id=5, specialist_id=2, gp_id=1), "appointment:5"),
        (ev.PatientSessionsEnded(appointment_id=5), "appointment:5"),
        (ev.SessionEnded(session_key="a" * 32), "session:" + "a" * 32),
        (ev.AccountDeactivated(user_id=9), "user:9"),
        (ev.DelayChanged(specialist_id=4), "delay:4"),
    ],
)
def test_event_names_its_aggregate(event: ev.Event, aggregate: str) -> None:
    assert event.aggregate == aggregate


def test_event_is_frozen() -> None:
    event = ev.LinkRevoked(appointment_id=1)
    with pytest.raises(ValidationError):
        event.appointment_id = 2  # type: ignore[misc]


def test_event_parsing_rejects_unknown_types_and_fields() -> None:
    with pytest.raises(ValidationError):
        ev.EVENTS.validate_json('{"type": "appointment.exploded", "appointment_id": 1}')
    extra = ev.LinkIssued(appointment_id=1).model_dump() | {"patient_name": "Erika"}
    with pytest.raises(ValidationError):
        ev.EVENTS.validate_python(extra)


def test_session_ended_refuses_anything_but_a_fingerprint() -> None:
    # A raw session id (64 hex characters) must never be written into the outbox.
    with pytest.raises(ValidationError):
        ev.SessionEnded(session_key="f" * 64)
