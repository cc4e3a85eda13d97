"""Without KONSIL_SMTP_URL and KONSIL_SMS_URL nothing is planned or sent, and the API says that
e-mail and SMS are not set up."""

from __future__ import annotations

from typing import Any

import httpx2
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import select

from app.notify.models import OutgoingMessage
from tests.factories import Demo, login
from tests.scheduling.helpers import book, booking_body, free_slots


async def test_without_smtp_and_sms_the_choices_are_refused_and_nothing_is_queued(
    client: httpx2.AsyncClient, demo: Demo, app: Any, sessions: async_sessionmaker[AsyncSession]
) -> None:
    assert app.state.resources.notify is None
    assert "notify" not in app.state.resources.events.listeners
    await login(client, demo.gp)
    slot = (await free_slots(client, demo.specialist))[0]
    refused = await client.post(
        "/api/v1/appointments",
        json=booking_body(demo.specialist, slot["starts_at"], invite_by=["email"]),
    )
    assert refused.status_code == 422
    [field] = refused.json()["error"]["detail"]["fields"]
    assert field == {
        "field": "invite_by",
        "message": "Der E-Mail-Versand ist auf diesem Server nicht eingerichtet.",
    }
    refused = await client.post(
        "/api/v1/appointments",
        json=booking_body(
            demo.specialist, slot["starts_at"], invite_by=["sms"], patient_phone="0151 23456789"
        ),
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["detail"]["fields"] == [
        {
            "field": "invite_by",
            "message": "Der SMS-Versand ist auf diesem Server nicht eingerichtet.",
        }
    ]
    booking = await book(client, demo.specialist)
    appointment_id = booking["appointment"]["id"]
    assert (await client.post(f"/api/v1/appointments/{appointment_id}/cancel")).status_code == 200
    await app.state.resources.events.deliver_due()
    listed = await client.get(f"/api/v1/appointments/{appointment_id}/messages")
    assert listed.json() == {
        "email_configured": False,
        "sms_configured": False,
        "patient_email": None,
        "patient_phone": None,
        "messages": [],
    }
    async with sessions() as session:
        assert (await session.execute(select(OutgoingMessage))).first() is None
