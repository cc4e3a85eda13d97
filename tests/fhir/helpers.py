"""FHIR test data: the booking request, slot searches, resources checked by the R4B models."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx2
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome

from app.accounts.models import User
from app.db import utcnow
from app.settings import Settings

FHIR_JSON = "application/fhir+json"
ASYNC = {"Content-Type": FHIR_JSON, "Prefer": "respond-async"}
POLLS = 200  # at 50 ms: ten seconds at most


def parameters(slot_ref: str, **changes: Any) -> dict[str, Any]:
    """An ISiK $book Parameters for ``slot_ref`` (``Slot/<id>``)."""
    appointment: dict[str, Any] = {
        "resourceType": "Appointment",
        "status": "proposed",
        "slot": [{"reference": slot_ref}],
        "contained": [
            {
                "resourceType": "Patient",
                "id": "p1",
                "name": [{"family": "Mustermann", "given": ["Erika"]}],
                "birthDate": "1956-04-12",
                "telecom": [{"system": "email", "value": "erika@example.org"}],
            }
        ],
        "participant": [{"actor": {"reference": "#p1"}, "status": "accepted"}],
        "comment": "Belastungsdyspnoe seit drei Wochen, EKG unauffällig. Echo nötig?",
        "priority": 1,
    }
    appointment.update(changes)
    return {
        "resourceType": "Parameters",
        "parameter": [{"name": "appt-resource", "resource": appointment}],
    }


async def free_slots(
    client: httpx2.AsyncClient, settings: Settings, specialist: User
) -> list[dict[str, Any]]:
    """The specialist's free slots of the next 14 local days, as a validated Bundle's."""
    today = utcnow().astimezone(settings.tz).date()
    response = await client.get(
        "/fhir/R4/Slot",
        params=[
            ("schedule", f"Schedule/{specialist.id}"),
            ("start", f"ge{today.isoformat()}"),
            ("start", f"lt{(today + timedelta(days=14)).isoformat()}"),
            ("status", "free"),
        ],
    )
    assert response.status_code == 200, response.text
    found = Bundle.model_validate(response.json())
    assert found.total == len(found.entry or [])
    return [e["resource"] for e in response.json().get("entry", [])]


def assert_outcome(response: httpx2.Response, status: int) -> OperationOutcome:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    return OperationOutcome.model_validate(response.json())


async def kick_off(client: httpx2.AsyncClient, slot_id: str) -> str:
    """Sends the asynchronous $book; the status URL's path."""
    response = await client.post(
        "/fhir/R4/Appointment/$book", json=parameters(f"Slot/{slot_id}"), headers=ASYNC
    )
    accepted = assert_outcome(response, 202)
    assert accepted.issue[0].severity == "information"
    location = httpx2.URL(response.headers["content-location"])
    assert location.path.startswith("/fhir/R4/_jobs/")
    assert location.is_absolute_url  # the server's configured base URL
    return location.path


async def poll(client: httpx2.AsyncClient, path: str) -> httpx2.Response:
    """Polls until the job has ended (each 202 saying when to ask again)."""
    for _ in range(POLLS):
        response = await client.get(path)
        if response.status_code != 202:
            return response
        assert response.headers["retry-after"] == "1"
        await asyncio.sleep(0.05)
    raise AssertionError("the job did not end")
