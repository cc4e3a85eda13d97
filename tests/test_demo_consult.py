"""`make run`'s demo consultation: a patient link that works at any hour, printed once."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import anyio
import httpx2
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from app import cli
from app.db import unit_of_work
from app.errors import NotFound
from app.resources import Resources
from app.scheduling import links
from app.scheduling.models import Appointment, AppointmentStatus
from app.seed import DEMO_PATIENT, demo_consult
from app.settings import Settings
from tests.factories import Demo, make_appointment

BERLIN = ZoneInfo("Europe/Berlin")
TOKEN = re.compile(r"/join#([A-Za-z0-9_-]+)")


@pytest.mark.parametrize(
    "local",
    [
        datetime(2026, 12, 6, 3, 0, tzinfo=BERLIN),  # Sunday night, no demo hours at all
        datetime(2026, 12, 31, 23, 50, tzinfo=BERLIN),  # the call runs into the new year
        datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN),  # the hour that happens twice (DST)
    ],
)
async def test_the_demo_link_opens_the_waiting_room_at_any_hour(
    app: Starlette,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    local: datetime,
) -> None:
    now = local.astimezone(ZoneInfo("UTC"))
    async with unit_of_work(sessions) as session:
        made = await demo_consult(session, settings=settings, now=now)
    assert made.specialist_email == demo.specialist.email
    assert made.link.valid_from <= now < made.link.valid_until

    resources: Resources = app.state.resources
    token = made.link.join_url.split("#", 1)[1]
    redeemed = await links.redeem(
        sessions,
        kind=links.JOIN_LINK,
        settings=settings,
        throttle=resources.throttle,
        token=token,
        ip="127.0.0.1",
        now=now.replace(second=30),
    )
    assert redeemed.summary.specialist_name == demo.specialist.display_name
    async with sessions() as session:
        appointment = await session.get(Appointment, made.appointment_id)
    assert appointment is not None
    assert appointment.status is AppointmentStatus.BOOKED
    assert appointment.patient_name == DEMO_PATIENT
    assert appointment.specialist_id == demo.specialist.id
    assert appointment.gp_id == demo.gp.id


async def test_make_run_prints_a_working_link_and_a_second_run_reuses_the_consultation(
    client: httpx2.AsyncClient,
    demo: Demo,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("KONSIL_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("KONSIL_BASE_URL", "http://127.0.0.1:8000")

    assert await anyio.to_thread.run_sync(cli.main, ["demo-consult"]) == 0
    first = capsys.readouterr().out
    assert "schulz@klinikum.example / konsil-demo-2026" in first
    assert "lehmann@praxis-spremberg.example" in first
    assert await anyio.to_thread.run_sync(cli.main, ["demo-consult"]) == 0
    second = capsys.readouterr().out

    def number(out: str) -> str:
        found = re.search(r"Demo consultation (\d+)", out)
        assert found, out
        return found.group(1)

    assert number(first) == number(second)
    old, new = TOKEN.findall(first)[0], TOKEN.findall(second)[0]
    # Only the newest link works: the link is shown once, the command issues it afresh.
    refused = await client.post("/api/v1/patient/session", json={"token": old})
    assert refused.status_code == 404, refused.text
    assert refused.json()["error"]["code"] == "link_invalid"
    joined = await client.post("/api/v1/patient/session", json={"token": new})
    assert joined.status_code == 200, joined.text
    assert joined.json()["appointment_id"] == int(number(first))
    assert joined.json()["specialist_name"] == demo.specialist.display_name


async def test_the_demo_consultation_needs_the_demo_accounts_and_never_runs_in_production(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with unit_of_work(sessions) as session:
        with pytest.raises(NotFound):
            await demo_consult(session, settings=settings, now=datetime.now(BERLIN))
    monkeypatch.setenv("KONSIL_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("KONSIL_ENVIRONMENT", "production")
    monkeypatch.setenv("KONSIL_SECRET_KEY", "a-production-secret-of-at-least-32-characters")
    monkeypatch.setenv("KONSIL_COOKIE_SECURE", "true")
    assert await anyio.to_thread.run_sync(cli.main, ["demo-consult"]) == 2
    assert "refusing" in capsys.readouterr().err


async def test_the_demo_consultation_starts_beside_a_booking_of_the_same_minute(
    demo: Demo, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """A booked slot of the demo specialist starts at 10:00:00, the demo at that moment too."""
    now = datetime(2026, 12, 7, 10, 0, tzinfo=BERLIN).astimezone(ZoneInfo("UTC"))
    booked = await make_appointment(sessions, demo, starts_at=now)
    async with unit_of_work(sessions) as session:
        made = await demo_consult(session, settings=settings, now=now)
    assert made.appointment_id != booked.id
    async with sessions() as session:
        appointment = await session.get(Appointment, made.appointment_id)
    assert appointment is not None
    assert appointment.starts_at == now + timedelta(seconds=1)
