"""A late notice through the whole app: the specialist's click, the outbox, the listener in the
lifespan, the sender, a real SMTP server (aiosmtpd), and the GP's list of messages."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, time, timedelta

import httpx2
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import utcnow
from app.settings import Settings
from tests.factories import Demo, login, make_appointment
from tests.notify.conftest import MAIL_FROM
from tests.notify.smtpd import Inbox, Server, smtp_server
from tests.scheduling.helpers import ClientFactory

ORIGIN = {"Origin": "http://127.0.0.1:8000"}


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def smtp(inbox: Inbox) -> Iterator[Server]:
    with smtp_server(inbox) as server:
        yield server


@pytest.fixture
def settings(make_settings: Callable[..., Settings], smtp: Server) -> Settings:
    return make_settings(smtp_url=smtp.url(), mail_from=MAIL_FROM)


def begun_today(settings: Settings) -> datetime:
    """A start ten minutes ago, but never before local midnight: the appointment has begun,
    is not over, and lies on today's local day at any hour."""
    now = utcnow().replace(microsecond=0)
    midnight = datetime.combine(now.astimezone(settings.tz).date(), time(0), settings.tz)
    return max(now - timedelta(minutes=10), midnight + timedelta(seconds=1))


async def test_delays_app_specialist_click_reaches_the_patient_by_mail(
    client: httpx2.AsyncClient,
    client_factory: ClientFactory,
    demo: Demo,
    inbox: Inbox,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    appointment = await make_appointment(
        sessions,
        demo,
        starts_at=begun_today(settings),
        patient_contact="erika@example.org",
        patient_channels="email",
    )
    await login(client, demo.specialist)
    response = await client.put("/api/v1/queue/delay", json={"minutes": 10}, headers=ORIGIN)
    assert response.status_code == 200, response.text
    [received] = await inbox.wait_for(1)
    assert received.recipients == ["erika@example.org"]
    text = received.message.get_body(("plain",))
    assert text is not None
    assert "etwa 10 Minuten" in text.get_content()
    async with client_factory() as gp:
        await login(gp, demo.gp)
        listed = (await gp.get(f"/api/v1/appointments/{appointment.id}/messages")).json()
    assert [(m["kind"], m["recipient"]) for m in listed["messages"]] == [("delay", "patient")]
