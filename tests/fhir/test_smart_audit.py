"""What a FHIR system client does in its doctor's name is audited as the doctor's doing and
names the client too, so the audit log tells the client's actions from the doctor's own."""

from __future__ import annotations

from collections.abc import Callable

import httpx2
import pytest
from joserfc.jwk import RSAKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from app.audit.models import AuditEvent
from app.settings import Settings
from tests.factories import Demo, login
from tests.fhir.helpers import FHIR_JSON, free_slots, parameters
from tests.fhir.smart_client import authorized

ClientFactory = Callable[[], httpx2.AsyncClient]


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url)


@pytest.fixture(scope="module")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "praxis-2026", "alg": "RS384"})


async def rows_of(
    sessions: async_sessionmaker[AsyncSession], appointment_id: int
) -> list[AuditEvent]:
    async with sessions() as session:
        found = await session.execute(
            select(AuditEvent)
            .where(col(AuditEvent.appointment_id) == appointment_id)
            .order_by(col(AuditEvent.id))
        )
        return list(found.scalars().all())


async def test_a_system_clients_booking_and_cancel_name_the_client(
    client_factory: ClientFactory,
    demo: Demo,
    settings: Settings,
    rsa_key: RSAKey,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with client_factory() as doctor, client_factory() as system:
        await login(doctor, demo.gp)
        registered = await authorized(system, doctor, rsa_key, settings)
        slots = await free_slots(system, settings, demo.specialist)
        booked = await system.post(
            "/fhir/R4/Appointment/$book",
            json=parameters(f"Slot/{slots[0]['id']}"),
            headers={"Content-Type": FHIR_JSON},
        )
        assert booked.status_code == 201, booked.text
        by_client = int(booked.json()["id"])
        cancelled = await system.patch(
            f"/fhir/R4/Appointment/{by_client}",
            json=[{"op": "replace", "path": "/status", "value": "cancelled"}],
            headers={"Content-Type": "application/json-patch+json"},
        )
        assert cancelled.status_code == 200, cancelled.text
        # The doctor's own booking, with the session cookie: no client named.
        own = await doctor.post(
            "/fhir/R4/Appointment/$book",
            json=parameters(f"Slot/{slots[1]['id']}"),
            headers={"Content-Type": FHIR_JSON},
        )
        assert own.status_code == 201, own.text
        by_doctor = int(own.json()["id"])

    client_rows = await rows_of(sessions, by_client)
    actions = [r.action for r in client_rows]
    assert "appointment.booked" in actions
    assert "appointment.cancelled" in actions
    for row in client_rows:
        if row.actor_kind == "staff":
            assert (row.actor_id, row.detail.get("fhir_client")) == (demo.gp.id, registered["id"])
    doctor_rows = await rows_of(sessions, by_doctor)
    assert "appointment.booked" in [r.action for r in doctor_rows]
    assert all("fhir_client" not in r.detail for r in doctor_rows)
