"""Without KONSIL_SMTP_URL and KONSIL_SMS_URL nothing is planned or sent, and the API says that
e-mail and SMS are not set up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import select

from app.main import create_app
from app.notify.models import OutgoingMessage
from app.settings import Settings
from tests.conftest import create_schema, lifespan_in_own_task, new_client
from tests.factories import Demo, login, seed
from tests.notify.conftest import MAIL_FROM
from tests.notify.smsd import SECRET
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


async def test_booking_page_says_neither_email_nor_sms_is_set_up(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.gp)
    page = (await client.get("/gp")).text
    assert (
        "Der Versand von E-Mail und SMS ist auf diesem Server nicht eingerichtet: Bitte geben "
        "Sie den Link nach der Buchung selbst weiter."
    ) in page
    assert 'name="invite_by"' not in page
    assert 'name="patient_phone"' not in page


@pytest.mark.parametrize(
    ("configured", "offered", "missing", "note"),
    [
        (
            {"smtp_url": "smtp://127.0.0.1:25?starttls=false", "mail_from": MAIL_FROM},
            'value="email"',
            'value="sms"',
            "Der SMS-Versand ist auf diesem Server nicht eingerichtet.",
        ),
        (
            {"sms_url": "webhook+http://127.0.0.1:9/sms", "sms_secret": SECRET},
            'value="sms"',
            'value="email"',
            "Der E-Mail-Versand ist auf diesem Server nicht eingerichtet.",
        ),
    ],
)
async def test_booking_page_offers_what_is_set_up_and_names_what_is_not(
    make_settings: Callable[..., Settings],
    configured: dict[str, str],
    offered: str,
    missing: str,
    note: str,
) -> None:
    settings = make_settings(**configured)
    await create_schema(settings.database_url)
    application = create_app(settings)
    async with lifespan_in_own_task(application), new_client(application) as client:
        demo = await seed(application.state.resources.sessions)
        await login(client, demo.gp)
        page = (await client.get("/gp")).text
    assert f'name="invite_by" {offered}' in page
    assert missing not in page
    assert note in page
    assert "Erinnerungen werden 24 h und 15 min vor dem Termin gesendet." in page
