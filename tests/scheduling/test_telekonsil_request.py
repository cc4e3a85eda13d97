"""The Telekonsil request's particulars (Telekonsilien-Vereinbarung § 3) on a booking and on an
on-call request: given, checked, stored and shown to the GP and the specialist; bad ones are
refused field by field and nothing is stored."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import select

from app.scheduling.models import Appointment
from app.settings import Settings
from tests.factories import Demo, login
from tests.scheduling.helpers import booking_body, free_slots
from tests.scheduling.test_on_call import ON_CALL, ORIGIN, on_call_body

PARTICULARS: dict[str, Any] = {
    "patient_insurance_number": "x 110 411 675",
    "patient_sex": "female",
    "diagnosis_code": "i48.0",
    "diagnosis_certainty": "V",
    "diagnosis_text": "Vorhofflimmern, paroxysmal",
    "medication": "Bisoprolol 2,5 mg 1-0-0\nApixaban 5 mg 1-0-1",
    "consent_recorded": True,
}


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    """On SQLite and on PostgreSQL alike."""
    return make_settings(database_url=database_url)


def answer_by() -> str:
    return (datetime.now(UTC) + timedelta(days=3)).date().isoformat()


async def test_a_booking_carries_the_particulars_to_the_gp_and_the_specialist(
    client_factory: Callable[[], httpx2.AsyncClient], demo: Demo
) -> None:
    async with client_factory() as gp, client_factory() as specialist:
        await login(gp, demo.gp)
        await login(specialist, demo.specialist)
        slot = (await free_slots(gp, demo.specialist))[0]
        body = booking_body(demo.specialist, slot["starts_at"], **PARTICULARS)
        body["answer_by"] = answer_by()
        booked = await gp.post("/api/v1/appointments", json=body)
        assert booked.status_code == 201, booked.text
        appointment_id = booked.json()["appointment"]["id"]
        for who in (gp, specialist):
            shown = (await who.get(f"/api/v1/appointments/{appointment_id}")).json()
            # Canonical forms: capitals, no spaces.
            assert shown["patient_insurance_number"] == "X110411675"
            assert shown["diagnosis_code"] == "I48.0"
            assert (shown["patient_sex"], shown["diagnosis_certainty"]) == ("female", "V")
            assert shown["diagnosis_text"] == "Vorhofflimmern, paroxysmal"
            assert shown["medication"] == PARTICULARS["medication"]
            assert shown["answer_by"] == body["answer_by"]
            assert shown["consent_recorded_at"] is not None


async def test_an_on_call_request_carries_them_too_and_none_are_required(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.gp)
    given = await client.post(
        ON_CALL, json=on_call_body(demo.cardiology, **PARTICULARS), headers=ORIGIN
    )
    assert given.status_code == 201, given.text
    assert given.json()["appointment"]["diagnosis_code"] == "I48.0"
    plain = await client.post(ON_CALL, json=on_call_body(demo.cardiology), headers=ORIGIN)
    assert plain.status_code == 201, plain.text
    appointment = plain.json()["appointment"]
    assert appointment["patient_insurance_number"] is None
    assert appointment["consent_recorded_at"] is None


async def test_bad_particulars_are_refused_field_by_field_and_nothing_is_stored(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await login(client, demo.gp)
    slot = (await free_slots(client, demo.specialist))[0]
    yesterday = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    body = booking_body(
        demo.specialist,
        slot["starts_at"],
        patient_insurance_number="X110411676",  # check digit off by one
        patient_sex="w",
        diagnosis_code="VHF",
        answer_by=yesterday,
    )
    response = await client.post("/api/v1/appointments", json=body)
    assert response.status_code == 422, response.text
    fields = {f["field"]: f["message"] for f in response.json()["error"]["detail"]["fields"]}
    assert set(fields) == {"patient_insurance_number", "patient_sex", "diagnosis_code", "answer_by"}
    assert "Prüfziffer" in fields["patient_insurance_number"]
    assert "ICD-10-GM" in fields["diagnosis_code"]
    assert "X110411676" not in response.text  # submitted values are not echoed

    certainty_alone = booking_body(demo.specialist, slot["starts_at"], diagnosis_certainty="G")
    response = await client.post("/api/v1/appointments", json=certainty_alone)
    assert response.status_code == 422, response.text
    (error,) = response.json()["error"]["detail"]["fields"]
    assert error["field"] == "diagnosis_certainty"
    assert "Diagnosesicherheit" in error["message"]
    async with sessions() as session:
        assert (await session.execute(select(Appointment))).first() is None
