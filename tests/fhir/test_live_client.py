"""A FHIR client library from outside Konsil (``fhirclient``, SMART Health IT's R4 models and
its requests-based server) against a live uvicorn server over real HTTP, following the ISiK
flow as a practice system would: a SMART Backend Services token with a signed assertion,
CapabilityStatement, HealthcareService, Schedule, Slot, ``$book``, read, ``PATCH`` cancel.
Every answer is parsed by ``fhirclient``'s own (strict) R4 models, not by the
``fhir.resources`` models Konsil builds them with."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from fhirclient.models.appointment import Appointment
from fhirclient.models.healthcareservice import HealthcareService
from fhirclient.models.schedule import Schedule
from fhirclient.models.slot import Slot
from fhirclient.server import FHIRServer
from joserfc import jwt
from joserfc.jwk import RSAKey

from app.db import unit_of_work, utcnow
from app.fhir import clients
from app.fhir.schemas import FhirClientIn
from tests.browser.conftest import LiveServer, seeded_live_server
from tests.fhir.helpers import parameters

pytestmark = [pytest.mark.e2e]

SCOPES = ["system/HealthcareService.read", "system/Schedule.read", "system/Slot.read",
          "system/Appointment.read", "system/Appointment.write"]  # fmt: skip
TIMEOUT = 30


def practice_system(server: LiveServer, key: RSAKey, client_id: str) -> FHIRServer:
    """What the practice system does, synchronously as the library works (run in a thread)."""
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": f"{server.url}/oauth/token",
              "exp": now + 240, "jti": uuid.uuid4().hex}  # fmt: skip
    signed = jwt.encode({"alg": "RS384", "kid": key.kid}, claims, key, algorithms=["RS384"])
    answer = requests.post(
        f"{server.url}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "scope": " ".join(SCOPES),
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": signed,
        },
        timeout=TIMEOUT,
    )
    answer.raise_for_status()
    fhir = FHIRServer(None, base_uri=f"{server.url}/fhir/R4/")
    fhir.session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
    return fhir


def isik_flow(server: LiveServer, fhir: FHIRServer) -> tuple[Appointment, Appointment]:
    statement = fhir.capabilityStatement
    served = {r.type: r for r in statement.rest[0].resource}
    assert [o.name for o in served["Appointment"].operation] == ["book"]
    assert statement.rest[0].security.service[0].coding[0].code == "SMART-on-FHIR"

    services = list(HealthcareService.where({}).perform_resources_iter(fhir))
    cardiology = next(s for s in services if s.name == server.demo.cardiology.name_de)
    code = cardiology.type[0].coding[0].code
    schedules = list(Schedule.where({"service-type": code}).perform_resources_iter(fhir))
    assert {s.id for s in schedules} >= {str(server.demo.specialist.id)}

    today = utcnow().astimezone(server.settings.tz).date()
    slots = list(
        Slot.where(
            {
                "schedule": f"Schedule/{server.demo.specialist.id}",
                "status": "free",
                "start": f"ge{(today + timedelta(days=1)).isoformat()}",
            }
        ).perform_resources_iter(fhir)
    )
    assert slots, "the demo specialist has free slots in the next seven days"
    slot = slots[0]
    assert slot.status == "free"

    booked = fhir.post_json("Appointment/$book", parameters(f"Slot/{slot.id}"))
    assert booked.status_code == 201
    appointment = Appointment(booked.json())  # strict: an unknown element would raise
    assert appointment.status == "booked"
    assert appointment.start.isostring == slot.start.isostring

    cancelled = fhir.session.patch(
        f"{server.url}/fhir/R4/Appointment/{appointment.id}",
        data='[{"op": "replace", "path": "/status", "value": "cancelled"}]',
        headers={"Content-Type": "application/json-patch+json"},
        timeout=TIMEOUT,
    )
    assert cancelled.status_code == 200, cancelled.text
    return appointment, Appointment.read(appointment.id, fhir)


async def test_a_fhir_client_library_books_and_cancels_on_a_live_server(tmp_path: Path) -> None:
    key = RSAKey.generate_key(2048, parameters={"kid": "praxis-system"})
    async with seeded_live_server(tmp_path) as server:
        async with unit_of_work(server.sessions) as session:
            client = await clients.register(
                session,
                owner_id=server.demo.gp.id or 0,
                data=FhirClientIn(
                    name="Praxis-System",
                    scopes=SCOPES,
                    jwks={"keys": [key.as_dict(private=False)]},
                ),
            )
        fhir = await asyncio.to_thread(practice_system, server, key, client.client_id)
        booked, read = await asyncio.to_thread(isik_flow, server, fhir)
    assert read.id == booked.id
    assert read.status == "cancelled"
