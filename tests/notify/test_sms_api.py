"""SMS through the whole app: booking with the SMS choice and a mobile number (refused in German
when it cannot work), the listener, the sender in the lifespan, a real SMS gateway, the GP's
delivery status with SMS rows and reminders, and "send again"."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx2
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.settings import Settings
from tests.factories import Demo, login
from tests.notify.conftest import MAIL_FROM, MOBILE
from tests.notify.smsd import SECRET, Gateway, Running, sms_gateway
from tests.notify.smtpd import Server, smtp_server
from tests.notify.test_api import messages, open_window, wait_settled
from tests.scheduling.helpers import ClientFactory, book, booking_body, free_slots, token_of

SMS: dict[str, Any] = {"invite_by": ["sms"], "patient_phone": "0151 2345 6789"}


@pytest.fixture
def answers() -> list[int]:
    return []


@pytest.fixture
def gateway(answers: list[int]) -> Iterator[Running]:
    with sms_gateway(Gateway(answers=answers)) as running:
        yield running


@pytest.fixture
def mail() -> Iterator[Server]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def settings(make_settings: Callable[..., Settings], gateway: Running, mail: Server) -> Settings:
    return make_settings(
        sms_url=gateway.url(), sms_secret=SECRET, smtp_url=mail.url(), mail_from=MAIL_FROM
    )


@pytest.fixture
async def gp(client: httpx2.AsyncClient, demo: Demo) -> httpx2.AsyncClient:
    await login(client, demo.gp)
    return client


def days_ahead(days: int) -> date:
    """A day whose slots all start more than 24 h from now, wherever the clock stands (the
    first free slot may be minutes away, with no reminder still ahead of it)."""
    return datetime.now(UTC).date() + timedelta(days=days)


def link_in(text: str) -> str:
    return next(word for word in text.split() if "/join#" in word)


async def test_booking_with_sms_sends_the_invitation_whose_link_works(
    gp: httpx2.AsyncClient,
    demo: Demo,
    gateway: Running,
    sessions: async_sessionmaker[AsyncSession],
    client_factory: ClientFactory,
) -> None:
    booking = await book(gp, demo.specialist, first=days_ahead(3), **SMS)
    appointment = booking["appointment"]
    assert (appointment["invite_by"], appointment["patient_phone"]) == (["sms"], MOBILE)
    [received] = await gateway.gateway.wait_for(1)
    assert received.json["to"] == MOBILE
    url = link_in(received.json["text"])
    assert url == booking["link"]["join_url"]
    await open_window(sessions, appointment["id"])
    async with client_factory() as patient:
        opened = await patient.post("/api/v1/patient/session", json={"token": token_of(url)})
        assert opened.status_code == 200, opened.text
    [sent, *planned] = await wait_settled(gp, appointment["id"], 1)
    assert (sent["kind"], sent["channel"], sent["status"]) == ("invitation", "sms", "sent")
    listed = await messages(gp, appointment["id"])
    assert (listed["sms_configured"], listed["patient_phone"]) == (True, MOBILE)
    assert listed["patient_email"] is None  # e-mail was not chosen
    # The reminders wait for their time, 24 h and 15 min before.
    starts_at = datetime.fromisoformat(appointment["starts_at"])
    assert sorted(reminder["reminder_minutes"] for reminder in planned) == [15, 1440]
    for reminder in planned:
        assert (reminder["kind"], reminder["channel"], reminder["status"]) == (
            "reminder",
            "sms",
            "queued",
        )
        minutes = reminder["reminder_minutes"]
        due = datetime.fromisoformat(reminder["next_attempt_at"])
        assert due == starts_at - timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (
            {"invite_by": ["sms"]},
            "patient_phone",
            "Für den Versand per SMS bitte eine Mobilnummer angeben.",
        ),
        (
            {"invite_by": ["sms"], "patient_phone": "  "},
            "patient_phone",
            "Für den Versand per SMS bitte eine Mobilnummer angeben.",
        ),
        (
            {"invite_by": ["sms"], "patient_phone": "0151 123"},
            "patient_phone",
            "Die Mobilnummer ist ungültig. Bitte mit Vorwahl angeben, z. B. 0151 23456789 oder "
            "+49 151 23456789.",
        ),
        (
            {"invite_by": ["sms"], "patient_phone": "030 1234567"},
            "patient_phone",
            "Das ist keine Mobilnummer: SMS können nur an ein Handy gesendet werden.",
        ),
        (
            {"invite_by": ["sms", "fax"], "patient_phone": MOBILE},
            "invite_by.1",
            None,
        ),
    ],
)
async def test_booking_refuses_an_sms_choice_that_cannot_work(
    gp: httpx2.AsyncClient,
    demo: Demo,
    body: dict[str, Any],
    field: str,
    message: str | None,
) -> None:
    slot = (await free_slots(gp, demo.specialist))[0]
    refused = await gp.post(
        "/api/v1/appointments", json=booking_body(demo.specialist, slot["starts_at"], **body)
    )
    assert refused.status_code == 422, refused.text
    fields = refused.json()["error"]["detail"]["fields"]
    assert [f["field"] for f in fields] == [field]
    if message is not None:
        assert fields[0]["message"] == message
    listed = await gp.get("/api/v1/appointments")
    assert listed.json() == []  # nothing was booked


async def test_booking_keeps_an_international_mobile_number_in_e164(
    gp: httpx2.AsyncClient, demo: Demo, gateway: Running
) -> None:
    booking = await book(gp, demo.specialist, invite_by=["sms"], patient_phone="0043 664 1234567")
    assert booking["appointment"]["patient_phone"] == "+436641234567"
    [received] = await gateway.gateway.wait_for(1)
    assert received.json["to"] == "+436641234567"


async def test_a_mobile_number_without_sms_is_not_stored(
    gp: httpx2.AsyncClient, demo: Demo, gateway: Running
) -> None:
    # Typed in, then "by SMS" unticked: kept only to send by SMS, so not kept at all (and not
    # checked either: it would not be used).
    booking = await book(gp, demo.specialist, invite_by=[], patient_phone="0151 123")
    assert booking["appointment"]["patient_phone"] is None
    listed = await gp.get(f"/api/v1/appointments/{booking['appointment']['id']}")
    assert listed.json()["patient_phone"] is None


@pytest.mark.parametrize("answers", [[400]])
async def test_a_refused_sms_is_shown_failed_and_can_be_sent_again(
    gp: httpx2.AsyncClient, demo: Demo, gateway: Running
) -> None:
    booking = await book(gp, demo.specialist, **SMS)
    appointment_id = booking["appointment"]["id"]
    [failed, *_] = await wait_settled(gp, appointment_id, 1)
    assert (failed["channel"], failed["status"]) == ("sms", "failed")
    assert (failed["error"], failed["http_status"], failed["smtp_code"]) == (
        "sms_refused",
        400,
        None,
    )
    again = await gp.post(f"/api/v1/appointments/{appointment_id}/messages/{failed['id']}/resend")
    assert again.status_code == 201, again.text
    assert (again.json()["channel"], again.json()["resend_of"]) == ("sms", failed["id"])
    [received] = await gateway.gateway.wait_for(1)
    assert link_in(received.json["text"]) == booking["link"]["join_url"]
    settled = await wait_settled(gp, appointment_id, 2)
    assert [m["status"] for m in settled if m["kind"] == "invitation"] == ["failed", "sent"]


async def test_email_and_sms_both_carry_the_invitation_and_the_cancellation(
    gp: httpx2.AsyncClient, demo: Demo, gateway: Running, mail: Server
) -> None:
    booking = await book(
        gp, demo.specialist, first=days_ahead(3), invite_by=["email", "sms"], patient_phone=MOBILE
    )
    appointment_id = booking["appointment"]["id"]
    assert booking["appointment"]["invite_by"] == ["email", "sms"]
    await gateway.gateway.wait_for(1)
    await mail.inbox.wait_for(1)
    assert (await gp.post(f"/api/v1/appointments/{appointment_id}/cancel")).status_code == 200
    received = await gateway.gateway.wait_for(2)
    assert "abgesagt" in received[1].json["text"]
    cancelled = await mail.inbox.wait_for(2)
    assert "abgesagt" in cancelled[1].message["Subject"]
    found = await wait_settled(gp, appointment_id, 4)
    sent = sorted((m["kind"], m["channel"]) for m in found if m["status"] == "sent")
    assert sent == [
        ("cancelled", "email"),
        ("cancelled", "sms"),
        ("invitation", "email"),
        ("invitation", "sms"),
    ]
    reminders = [m for m in found if m["kind"] == "reminder"]
    assert reminders
    assert {(m["status"], m["error"]) for m in reminders} == {("superseded", "cancelled")}
