"""Booking through the API: happy path, refusals, validation, what is stored."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx2
import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from app import metrics
from app.audit.models import AuditEvent
from app.scheduling.models import Appointment, JoinToken
from app.scheduling.schemas import ConsultIn
from app.settings import Settings
from app.tokens import token_hash
from tests.factories import Demo, login
from tests.scheduling.helpers import ClientFactory, book, booking_body, free_slots, token_of


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    """These behaviours must hold on SQLite and on PostgreSQL alike."""
    return make_settings(database_url=database_url)


async def test_book_returns_join_url_and_patient_ics(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.gp)
    slot = (await free_slots(client, demo.specialist))[0]
    response = await client.post(
        "/api/v1/appointments", json=booking_body(demo.specialist, slot["starts_at"])
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    appointment, link = body["appointment"], body["link"]
    assert appointment["starts_at"] == slot["starts_at"]
    assert appointment["specialist_id"] == demo.specialist.id
    assert appointment["gp_id"] == demo.gp.id
    assert appointment["status"] == "booked"
    assert appointment["room_state"] == "scheduled"
    assert appointment["specialty"] == "Kardiologie"
    assert link["join_url"].startswith("http://127.0.0.1:8000/join#")
    assert len(token_of(link["join_url"])) >= 43
    assert "BEGIN:VCALENDAR" in link["patient_ics"]
    starts = datetime.fromisoformat(appointment["starts_at"])
    assert datetime.fromisoformat(link["valid_from"]) == starts - timedelta(minutes=30)
    assert appointment["link"]["valid_from"] == link["valid_from"]


async def test_book_stores_only_the_hash_of_the_link_token(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await login(client, demo.gp)
    booking = await book(client, demo.specialist)
    token = token_of(booking["link"]["join_url"])
    async with sessions() as session:
        rows = (await session.execute(select(JoinToken))).scalars().all()
    assert [r.token_hash for r in rows] == [token_hash(token)]
    assert all(token not in (r.token_hash, str(r.model_dump())) for r in rows)


async def test_book_records_audit_without_health_data_and_counts_metric(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await login(client, demo.gp)
    before = metrics.BOOKINGS._value.get()
    booking = await book(client, demo.specialist)
    assert metrics.BOOKINGS._value.get() == before + 1
    async with sessions() as session:
        events = (
            (
                await session.execute(
                    select(AuditEvent).where(
                        col(AuditEvent.appointment_id) == booking["appointment"]["id"]
                    )
                )
            )
            .scalars()
            .all()
        )
    assert {e.action for e in events} == {"appointment.booked", "link.issued"}
    dumped = " ".join(str(e.model_dump()) for e in events)
    for secret in ("Erika", "Mustermann", "1956", "erika@example.org", "Dyspnoe"):
        assert secret not in dumped


async def test_book_taken_slot_is_409(
    client: httpx2.AsyncClient, demo: Demo, client_factory: ClientFactory
) -> None:
    await login(client, demo.gp)
    slot = (await free_slots(client, demo.specialist))[0]
    first = await client.post(
        "/api/v1/appointments", json=booking_body(demo.specialist, slot["starts_at"])
    )
    assert first.status_code == 201
    async with client_factory() as other:
        await login(other, demo.other_gp)
        second = await other.post(
            "/api/v1/appointments", json=booking_body(demo.specialist, slot["starts_at"])
        )
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "slot_taken"
    remaining = await free_slots(client, demo.specialist)
    assert slot["starts_at"] not in [s["starts_at"] for s in remaining]


async def test_book_slot_not_offered_is_409(client: httpx2.AsyncClient, demo: Demo) -> None:
    await login(client, demo.gp)
    slot = (await free_slots(client, demo.specialist))[0]
    odd = datetime.fromisoformat(slot["starts_at"]) + timedelta(minutes=7)
    response = await client.post(
        "/api/v1/appointments", json=booking_body(demo.specialist, odd.isoformat())
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "slot_unavailable"
    assert response.json()["error"]["detail"]["reason"] == "not_offered"


async def test_book_past_slot_is_409(client: httpx2.AsyncClient, demo: Demo) -> None:
    await login(client, demo.gp)
    now = datetime.now(UTC)
    # Last week's Tuesday 10:00 local is an offered weekly slot, but in the past.
    tuesday = (now - timedelta(days=7 + (now.weekday() - 1) % 7)).date()
    past = datetime(tuesday.year, tuesday.month, tuesday.day, 8, 0, tzinfo=UTC)
    response = await client.post(
        "/api/v1/appointments", json=booking_body(demo.specialist, past.isoformat())
    )
    assert response.status_code == 409
    assert response.json()["error"]["detail"]["reason"] in {"past", "not_offered"}


async def test_book_invalid_input_is_422_with_fields_and_stores_nothing(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await login(client, demo.gp)
    slot = (await free_slots(client, demo.specialist))[0]
    tomorrow = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    body = booking_body(
        demo.specialist,
        slot["starts_at"],
        patient_birth_date=tomorrow,
        patient_contact="not a contact",
        clinical_question="",
        urgency="asap",
        mode="car",
    )
    response = await client.post("/api/v1/appointments", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    fields = {f["field"] for f in error["detail"]["fields"]}
    assert fields == {
        "patient_birth_date",
        "patient_contact",
        "clinical_question",
        "urgency",
        "mode",
    }
    assert "not a contact" not in response.text  # submitted values are not echoed
    async with sessions() as session:
        assert (await session.execute(select(Appointment))).first() is None
        assert (await session.execute(select(JoinToken))).first() is None


async def test_book_rejects_naive_time_unknown_fields_and_implausible_birth_date(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.gp)
    slot = (await free_slots(client, demo.specialist))[0]
    naive = slot["starts_at"].replace("+00:00", "").replace("Z", "")
    body = booking_body(demo.specialist, naive, patient_birth_date="1850-01-01", vip=True)
    response = await client.post("/api/v1/appointments", json=body)
    assert response.status_code == 422
    fields = {f["field"] for f in response.json()["error"]["detail"]["fields"]}
    assert fields == {"starts_at", "patient_birth_date", "vip"}


async def test_book_accepts_phone_contact_and_practice_mode(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.gp)
    booking = await book(
        client,
        demo.specialist,
        patient_contact="+49 3563 123456",
        mode="practice",
        urgency="urgent",
    )
    assert booking["appointment"]["patient_contact"] == "+49 3563 123456"
    assert booking["appointment"]["mode"] == "practice"
    assert booking["appointment"]["urgency"] == "urgent"


async def test_book_only_gps_may_book(client: httpx2.AsyncClient, demo: Demo) -> None:
    await login(client, demo.specialist)
    slot = (await free_slots(client, demo.other_specialist))[0]
    response = await client.post(
        "/api/v1/appointments", json=booking_body(demo.other_specialist, slot["starts_at"])
    )
    assert response.status_code == 403


async def test_book_unknown_specialist_is_404(client: httpx2.AsyncClient, demo: Demo) -> None:
    await login(client, demo.gp)
    slot = (await free_slots(client, demo.specialist))[0]
    body = booking_body(demo.specialist, slot["starts_at"], specialist_id=demo.gp.id)
    response = await client.post("/api/v1/appointments", json=body)
    assert response.status_code == 404


async def test_book_without_login_or_csrf_is_refused(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    body = booking_body(demo.specialist, "2030-01-07T08:00:00+00:00")
    assert (await client.post("/api/v1/appointments", json=body)).status_code == 401
    await login(client, demo.gp)
    del client.headers["X-CSRF-Token"]
    assert (await client.post("/api/v1/appointments", json=body)).status_code == 403


@pytest.mark.parametrize(("born", "accepted"), [("2026-06-15", True), ("2026-06-16", False)])
def test_a_birth_date_counts_as_today_where_it_is_already_today(
    monkeypatch: pytest.MonkeyPatch, born: str, accepted: bool
) -> None:
    # 22:30 UTC on 14 June is 00:30 on 15 June in Berlin: a child born there just now is not
    # "born in the future" because UTC is still on the 14th; a day later is.
    monkeypatch.setattr(
        "app.scheduling.schemas.utcnow", lambda: datetime(2026, 6, 14, 22, 30, tzinfo=UTC)
    )
    body = {
        "patient_name": "Mia Neumann",
        "patient_birth_date": born,
        "patient_contact": "eltern@example.org",
        "clinical_question": "Herzgeräusch beim Neugeborenen",
    }
    if accepted:
        assert ConsultIn.model_validate(body).patient_birth_date.isoformat() == born
    else:
        with pytest.raises(ValidationError, match="in der Zukunft"):
            ConsultIn.model_validate(body)
