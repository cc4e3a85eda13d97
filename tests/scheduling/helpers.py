"""Test data for scheduling: booking bodies, free slots, bookings through the API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import httpx2

from app.accounts.models import User

ClientFactory = Callable[[], httpx2.AsyncClient]


def booking_body(specialist: User, starts_at: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "specialist_id": specialist.id,
        "starts_at": starts_at,
        "patient_name": "Erika Mustermann",
        "patient_birth_date": "1956-04-12",
        "patient_contact": "erika@example.org",
        "clinical_question": "Belastungsdyspnoe seit drei Wochen, EKG unauffällig. Echo nötig?",
        "urgency": "routine",
        "mode": "home",
    }
    body.update(overrides)
    return body


async def free_slots(
    client: httpx2.AsyncClient, specialist: User, first: date | None = None, days: int = 14
) -> list[dict[str, Any]]:
    params: dict[str, str | int] = {"specialist": specialist.id or 0}
    if first is not None:
        params["from"] = first.isoformat()
        params["to"] = date.fromordinal(first.toordinal() + days - 1).isoformat()
    response = await client.get("/api/v1/slots", params=params)
    assert response.status_code == 200, response.text
    slots: list[dict[str, Any]] = response.json()
    return slots


async def book(
    client: httpx2.AsyncClient,
    specialist: User,
    slot_index: int = 0,
    first: date | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Books the ``slot_index``-th free slot of ``specialist`` (client logged in as a GP), from
    the day ``first`` if given (else from now on)."""
    slots = await free_slots(client, specialist, first)
    response = await client.post(
        "/api/v1/appointments",
        json=booking_body(specialist, slots[slot_index]["starts_at"], **overrides),
    )
    assert response.status_code == 201, response.text
    booking: dict[str, Any] = response.json()
    return booking


def token_of(join_url: str) -> str:
    return join_url.split("#", 1)[1]
