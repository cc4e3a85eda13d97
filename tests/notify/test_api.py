"""E-mail through the whole app: booking with the e-mail choice, the listener, the sender in the
lifespan, a real SMTP server (aiosmtpd), and the GP's delivery-status API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx2
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from app.db import unit_of_work
from app.events import types as ev
from app.notify.listener import on_event
from app.notify.models import OutgoingMessage
from app.scheduling import on_call
from app.scheduling.models import Appointment, JoinToken
from app.settings import Settings
from tests.factories import Demo, login
from tests.notify.conftest import MAIL_FROM
from tests.notify.smtpd import Inbox, Server, smtp_server
from tests.scheduling.helpers import ClientFactory, book, booking_body, token_of

EMAIL: dict[str, Any] = {"invite_by": ["email"]}


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def smtp(inbox: Inbox) -> Iterator[Server]:
    with smtp_server(inbox) as server:
        yield server


@pytest.fixture
def settings(make_settings: Callable[..., Settings], smtp: Server) -> Settings:
    # The reminders have their own tests (tests/notify/test_reminders.py).
    return make_settings(smtp_url=smtp.url(), mail_from=MAIL_FROM, reminders=[])


@pytest.fixture
async def gp(client: httpx2.AsyncClient, demo: Demo) -> httpx2.AsyncClient:
    await login(client, demo.gp)
    return client


def body(text: Any) -> str:
    part = text.message.get_body(("plain",))
    assert part is not None
    content: str = part.get_content()
    return content


def link_in(text: str) -> str:
    return next(word for word in text.split() if "/join#" in word)


async def messages(client: httpx2.AsyncClient, appointment_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/v1/appointments/{appointment_id}/messages")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def open_window(sessions: async_sessionmaker[AsyncSession], appointment_id: int) -> None:
    now = datetime.now(UTC)
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(JoinToken)
            .where(col(JoinToken.appointment_id) == appointment_id)
            .values(valid_from=now - timedelta(minutes=5), valid_until=now + timedelta(hours=1))
        )


async def test_booking_with_email_sends_the_invitation_whose_link_works(
    gp: httpx2.AsyncClient,
    demo: Demo,
    inbox: Inbox,
    sessions: async_sessionmaker[AsyncSession],
    client_factory: ClientFactory,
) -> None:
    booking = await book(gp, demo.specialist, **EMAIL)
    appointment_id = booking["appointment"]["id"]
    assert booking["appointment"]["invite_by"] == ["email"]
    [received] = await inbox.wait_for(1)
    assert received.recipients == ["erika@example.org"]
    assert received.message["From"] == MAIL_FROM
    url = link_in(body(received))
    assert url == booking["link"]["join_url"]
    await open_window(sessions, appointment_id)
    async with client_factory() as patient:
        opened = await patient.post("/api/v1/patient/session", json={"token": token_of(url)})
        assert opened.status_code == 200, opened.text
    listed = await messages(gp, appointment_id)
    assert listed["email_configured"] is True
    assert listed["patient_email"] == "erika@example.org"
    [sent] = await wait_settled(gp, appointment_id, 1)
    assert (sent["kind"], sent["recipient"], sent["status"]) == ("invitation", "patient", "sent")
    assert sent["sent_at"] is not None


async def test_new_link_reschedule_and_cancel_each_tell_the_patient(
    gp: httpx2.AsyncClient, demo: Demo, inbox: Inbox
) -> None:
    booking = await book(gp, demo.specialist, **EMAIL)
    appointment_id = booking["appointment"]["id"]
    await inbox.wait_for(1)
    reissued = await gp.post(f"/api/v1/appointments/{appointment_id}/link")
    assert reissued.status_code == 201
    received = await inbox.wait_for(2)
    assert link_in(body(received[1])) == reissued.json()["join_url"]
    assert received[1].message["Subject"].startswith("Neuer Link")
    slots = (await gp.get("/api/v1/slots", params={"specialist": demo.specialist.id})).json()
    later = next(s for s in slots if s["starts_at"] != booking["appointment"]["starts_at"])
    moved = await gp.post(
        f"/api/v1/appointments/{appointment_id}/reschedule", json={"starts_at": later["starts_at"]}
    )
    assert moved.status_code == 200, moved.text
    received = await inbox.wait_for(3)
    assert received[2].message["Subject"].startswith("Ihr Video-Termin wurde verlegt")
    assert link_in(body(received[2])) == moved.json()["link"]["join_url"]
    assert (await gp.post(f"/api/v1/appointments/{appointment_id}/cancel")).status_code == 200
    received = await inbox.wait_for(4)
    assert "abgesagt" in received[3].message["Subject"]
    assert "/join#" not in body(received[3])
    kinds = [m["kind"] for m in await wait_settled(gp, appointment_id, 4)]
    assert kinds == ["invitation", "new_link", "rescheduled", "cancelled"]


async def test_booking_without_the_email_choice_sends_nothing(
    gp: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession], app: Any
) -> None:
    booking = await book(gp, demo.specialist)
    appointment_id = booking["appointment"]["id"]
    await app.state.resources.events.deliver_due()
    listed = await messages(gp, appointment_id)
    assert (listed["patient_email"], listed["messages"]) == (None, [])
    async with sessions() as session:
        link = (
            await session.execute(
                select(JoinToken).where(col(JoinToken.appointment_id) == appointment_id)
            )
        ).scalar_one()
    assert link.sealed is None  # only the hash, as without e-mail


async def test_the_gp_is_told_a_report_is_ready_once(
    gp: httpx2.AsyncClient,
    inbox: Inbox,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
    client_factory: ClientFactory,
) -> None:
    booking = await book(gp, demo.specialist)
    appointment_id = booking["appointment"]["id"]
    now = datetime.now(UTC)
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(Appointment)
            .where(col(Appointment.id) == appointment_id)
            .values(starts_at=now - timedelta(minutes=20), ends_at=now + timedelta(minutes=10))
        )
    path = f"/api/v1/appointments/{appointment_id}/report"
    async with client_factory() as specialist:
        await login(specialist, demo.specialist)
        assert (await specialist.put(path, json={"body": "Befund eins"})).status_code == 200
        assert (await specialist.put(path, json={"body": "Befund zwei"})).status_code == 200
    [received] = await inbox.wait_for(1)
    assert received.recipients == [demo.gp.email]
    assert f"/gp/appointments/{appointment_id}" in body(received)
    [ready] = await wait_settled(gp, appointment_id, 1)
    assert (ready["kind"], ready["recipient"]) == ("report_ready", "gp")


async def test_the_gp_is_told_once_when_the_specialist_asks_back(
    gp: httpx2.AsyncClient,
    inbox: Inbox,
    demo: Demo,
    client_factory: ClientFactory,
) -> None:
    booking = await book(gp, demo.specialist)
    appointment_id = booking["appointment"]["id"]
    path = f"/api/v1/appointments/{appointment_id}/conversation"
    async with client_factory() as specialist:
        await login(specialist, demo.specialist)
        for question in ("Bitte das Langzeit-EKG nachreichen.", "Und die Medikation?"):
            assert (await specialist.post(path, json={"body": question})).status_code == 201
    [received] = await inbox.wait_for(1)
    assert received.recipients == [demo.gp.email]
    assert f"/gp/appointments/{appointment_id}" in body(received)
    assert "Langzeit-EKG" not in body(received)
    [asked] = await wait_settled(gp, appointment_id, 1)
    assert (asked["kind"], asked["recipient"], asked["status"]) == (
        "question_asked",
        "gp",
        "sent",
    )
    # Answered, then asked again: one more message (a new question opens it again).
    assert (await gp.post(path, json={"body": "Ist hochgeladen."})).status_code == 201
    async with client_factory() as specialist:
        await login(specialist, demo.specialist)
        assert (await specialist.post(path, json={"body": "Danke, noch eins?"})).status_code == 201
    await inbox.wait_for(2)


async def test_the_gp_is_told_when_the_specialist_declines_but_not_when_the_gp_cancels(
    gp: httpx2.AsyncClient,
    inbox: Inbox,
    demo: Demo,
    client_factory: ClientFactory,
) -> None:
    mine = await book(gp, demo.specialist)
    cancelled = await gp.post(f"/api/v1/appointments/{mine['appointment']['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    booking = await book(gp, demo.specialist)
    appointment_id = booking["appointment"]["id"]
    reason = "Bitte an die Pneumologie richten."
    async with client_factory() as specialist:
        await login(specialist, demo.specialist)
        declined = await specialist.post(
            f"/api/v1/appointments/{appointment_id}/cancel", json={"reason": reason}
        )
        assert declined.status_code == 200, declined.text
    [received] = await inbox.wait_for(1)
    assert received.recipients == [demo.gp.email]
    assert f"/gp/appointments/{appointment_id}" in body(received)
    assert "Pneumologie" not in body(received)  # the reason stays in Konsil
    [told] = await wait_settled(gp, appointment_id, 1)
    assert (told["kind"], told["recipient"], told["status"]) == ("declined", "gp", "sent")
    assert (await messages(gp, mine["appointment"]["id"]))["messages"] == []


async def test_the_gp_is_told_once_that_nobody_took_the_on_call_request(
    gp: httpx2.AsyncClient,
    inbox: Inbox,
    demo: Demo,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    question = "Neu aufgetretenes Vorhofflimmern im EKG, Patientin in der Praxis."
    asked = await gp.post(
        "/api/v1/on-call",
        json={
            "specialty_id": demo.cardiology.id,
            "patient_name": "Erika Mustermann",
            "patient_birth_date": "1956-04-12",
            "patient_contact": "erika@example.org",
            "clinical_question": question,
            "mode": "practice",
        },
        headers={"Origin": "http://127.0.0.1:8000"},
    )
    assert asked.status_code == 201, asked.text
    request = asked.json()["appointment"]
    request_id = request["id"]
    # The sweep's clock moved past the time limit (the app's own sweep runs on the real
    # clock, minutes before it).
    later = datetime.fromisoformat(request["claim_until"]) + timedelta(seconds=1)
    async with unit_of_work(sessions) as session:
        assert await on_call.sweep_unclaimed(session, now=later) == 1
    async with unit_of_work(sessions) as session:
        assert await on_call.sweep_unclaimed(session, now=later) == 0  # marked (and told) once
    [told] = await wait_settled(gp, request_id, 1)
    assert (told["kind"], told["recipient"], told["channel"], told["status"]) == (
        "on_call_unclaimed",
        "gp",
        "email",
        "sent",
    )
    [received] = inbox.received
    assert received.recipients == [demo.gp.email]
    subject = received.message["Subject"]
    assert subject == f"Sofort-Konsil Nr. {request_id}: noch nicht übernommen"
    text = body(received)
    assert f"{settings.base_url.rstrip('/')}/gp/appointments/{request_id}" in text
    html = received.message.get_body(("html",))
    assert html is not None
    whole = " ".join((subject, text, html.get_content()))
    for secret in ("Erika", "Mustermann", "Vorhofflimmern", "Kardiologie", "1956"):
        assert secret not in whole


async def test_an_event_delivered_twice_adds_one_message(
    gp: httpx2.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    demo: Demo,
    settings: Settings,
) -> None:
    booking = await book(gp, demo.specialist, **EMAIL)
    appointment_id = booking["appointment"]["id"]
    event = ev.AppointmentCancelled(
        appointment_id=appointment_id, specialist_id=demo.specialist.id or 0, gp_id=demo.gp.id or 0
    )
    assert await on_event(sessions, event, settings=settings) == 1
    assert await on_event(sessions, event, settings=settings) == 0
    async with sessions() as session:
        rows = (
            (
                await session.execute(
                    select(OutgoingMessage).where(col(OutgoingMessage.kind) == "cancelled")
                )
            )
            .scalars()
            .all()
        )
    assert len(rows) == 1


async def test_a_refused_address_is_shown_failed_and_can_be_sent_again(
    gp: httpx2.AsyncClient, inbox: Inbox, client_factory: ClientFactory, demo: Demo
) -> None:
    inbox.refuse.append("550 5.1.1 No such user")
    booking = await book(gp, demo.specialist, **EMAIL)
    appointment_id = booking["appointment"]["id"]
    [failed] = await wait_settled(gp, appointment_id, 1)
    assert (failed["status"], failed["error"], failed["smtp_code"]) == (
        "failed",
        "recipient_refused",
        550,
    )
    path = f"/api/v1/appointments/{appointment_id}/messages/{failed['id']}/resend"
    resent = await gp.post(path)
    assert resent.status_code == 201, resent.text
    assert resent.json()["resend_of"] == failed["id"]
    [received] = await inbox.wait_for(1)
    assert link_in(body(received)) == booking["link"]["join_url"]
    settled = await wait_settled(gp, appointment_id, 2)
    assert [m["status"] for m in settled] == ["failed", "sent"]
    async with client_factory() as other:
        await login(other, demo.other_gp)
        assert (await other.post(path)).status_code == 404
        response = await other.get(f"/api/v1/appointments/{appointment_id}/messages")
        assert response.status_code == 404
    async with client_factory() as specialist:
        await login(specialist, demo.specialist)
        response = await specialist.get(f"/api/v1/appointments/{appointment_id}/messages")
        assert response.status_code == 403


async def test_email_choice_needs_an_email_address(gp: httpx2.AsyncClient, demo: Demo) -> None:
    slots = (await gp.get("/api/v1/slots", params={"specialist": demo.specialist.id})).json()
    response = await gp.post(
        "/api/v1/appointments",
        json=booking_json(demo, slots[0]["starts_at"], patient_contact="+49 30 1234567", **EMAIL),
    )
    assert response.status_code == 422
    [field] = response.json()["error"]["detail"]["fields"]
    assert field["field"] == "invite_by"
    assert "E-Mail-Adresse" in field["message"]
    unknown = await gp.post(
        "/api/v1/appointments",
        json=booking_json(demo, slots[0]["starts_at"], invite_by=["pigeon"]),
    )
    assert unknown.status_code == 422
    assert (await gp.get("/api/v1/appointments")).json() == []


def booking_json(demo: Demo, starts_at: str, **overrides: Any) -> dict[str, Any]:
    return booking_body(demo.specialist, starts_at, **overrides)


async def wait_settled(
    client: httpx2.AsyncClient, appointment_id: int, count: int
) -> list[dict[str, Any]]:
    """The booking's messages once ``count`` of them are settled (sent, failed, superseded)."""
    with anyio.fail_after(20):
        while True:
            found = (await messages(client, appointment_id))["messages"]
            if sum(m["status"] not in ("queued", "sending") for m in found) >= count:
                return list(found)
            await anyio.sleep(0.02)
