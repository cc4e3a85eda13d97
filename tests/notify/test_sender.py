"""The sender against real SMTP servers (aiosmtpd): what arrives, retries with back-off on 4xx
and dropped connections, permanent failures on 5xx, TLS and login, the lease after a sender
died, links that were replaced, the GP's on-call message once it is no longer news. The clock
is moved, never waited for."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import update
from sqlmodel import col

from app.db import unit_of_work
from app.notify import queue
from app.notify.models import Kind, Recipient, Status
from app.scheduling.models import Appointment, JoinToken
from tests.notify.conftest import (
    MAIL_FROM,
    Clock,
    Db,
    booked,
    enqueue,
    message,
    sealed_link,
    sender_for,
    unclaimed_request,
)
from tests.notify.smtpd import (
    PASSWORD,
    USER,
    Inbox,
    dropping_server,
    implicit_tls_server,
    self_signed,
    smtp_server,
    starttls_server,
)

TEMPORARY = "451 4.3.0 Mailbox temporarily unavailable"


async def test_sender_invitation_arrives_with_headers_both_bodies_and_the_link(
    db: Db, clock: Clock
) -> None:
    appointment, token = await booked(db)
    job = await enqueue(db, clock, appointment)
    with smtp_server() as server:
        assert await sender_for(db, server.url(), clock).send_next() is Status.SENT
        [received] = server.inbox.received
    mail = received.message
    assert received.recipients == ["erika@example.org"]
    assert mail["From"] == MAIL_FROM
    assert mail["To"] == "erika@example.org"
    assert mail["Subject"].startswith("Ihr Video-Termin am ")
    assert mail["Message-ID"].startswith(f"<konsil.{job.id}.")
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail.get_content_type() == "multipart/alternative"
    text, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert text is not None
    assert html is not None
    url = f"http://127.0.0.1:8000/join#{token}"
    assert url in text.get_content()
    assert f'href="{url}"' in html.get_content()
    assert "Praxis" in text.get_content()  # the practice's name
    sent = await message(db, job.id)
    assert sent.status is Status.SENT
    assert sent.attempts == 1
    assert sent.sent_at == clock.now
    assert sent.claim is None


async def test_sender_retries_a_4xx_after_its_back_off_then_sends(db: Db, clock: Clock) -> None:
    appointment, _ = await booked(db)
    job = await enqueue(db, clock, appointment)
    with smtp_server(Inbox(refuse=[TEMPORARY])) as server:
        sender = sender_for(db, server.url(), clock, mail_retry_first_seconds=60)
        assert await sender.send_next() is Status.QUEUED
        waiting = await message(db, job.id)
        assert (waiting.error, waiting.smtp_code) == ("recipient_refused", 451)
        assert (waiting.available_at - clock.now).total_seconds() == 60
        clock.advance(59)
        assert await sender.send_next() is None  # not due yet
        clock.advance(1)
        assert await sender.send_next() is Status.SENT
        assert len(server.inbox.received) == 1
    sent = await message(db, job.id)
    assert sent.attempts == 2
    assert sent.error is None


async def test_sender_backs_off_exponentially_and_fails_after_the_last_attempt(
    db: Db, clock: Clock
) -> None:
    appointment, _ = await booked(db)
    job = await enqueue(db, clock, appointment)
    with smtp_server(Inbox(refuse=[TEMPORARY] * 3)) as server:
        sender = sender_for(
            db, server.url(), clock, mail_retry_first_seconds=60, mail_max_attempts=3
        )
        waits = []
        for _ in range(2):
            assert await sender.send_next() is Status.QUEUED
            due = (await message(db, job.id)).available_at
            waits.append((due - clock.now).total_seconds())
            clock.now = due
        assert await sender.send_next() is Status.FAILED
    assert waits == [60, 120]
    failed = await message(db, job.id)
    assert (failed.status, failed.attempts, failed.smtp_code) == (Status.FAILED, 3, 451)
    assert failed.failed_at == clock.now


async def test_sender_records_a_5xx_as_failed_for_good(db: Db, clock: Clock) -> None:
    appointment, _ = await booked(db)
    job = await enqueue(db, clock, appointment)
    with smtp_server(Inbox(refuse=["550 5.1.1 No such user here"])) as server:
        sender = sender_for(db, server.url(), clock)
        assert await sender.send_next() is Status.FAILED
        clock.advance(24 * 3600)
        assert await sender.send_next() is None  # never tried again
        assert server.inbox.attempts == 1
    failed = await message(db, job.id)
    assert (failed.error, failed.smtp_code, failed.attempts) == ("recipient_refused", 550, 1)


async def test_sender_retries_when_the_server_drops_the_connection(db: Db, clock: Clock) -> None:
    appointment, _ = await booked(db)
    job = await enqueue(db, clock, appointment)
    with dropping_server() as port:
        sender = sender_for(db, f"smtp://127.0.0.1:{port}?starttls=false", clock)
        assert await sender.send_next() is Status.QUEUED
    waiting = await message(db, job.id)
    assert waiting.error == "connection"
    assert waiting.available_at > clock.now
    with smtp_server() as server:
        clock.now = waiting.available_at
        assert await sender_for(db, server.url(), clock).send_next() is Status.SENT
        assert len(server.inbox.received) == 1


async def test_sender_uses_starttls_and_logs_in(db: Db, clock: Clock, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    appointment, _ = await booked(db)
    await enqueue(db, clock, appointment)
    auth = f"{quote(USER, safe='')}:{quote(PASSWORD, safe='')}@"
    with starttls_server(cert, key) as server:
        url = server.url("smtp", query="", auth=auth)
        sender = sender_for(db, url, clock, smtp_ca_file=cert)
        assert await sender.send_next() is Status.SENT
        assert len(server.inbox.received) == 1
        assert server.inbox.logins == 1


async def test_sender_refuses_a_server_certificate_it_cannot_verify(
    db: Db, clock: Clock, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    appointment, _ = await booked(db)
    job = await enqueue(db, clock, appointment)
    with starttls_server(cert, key) as server:
        sender = sender_for(db, server.url("smtp", query=""), clock)  # no CA file
        assert await sender.send_next() is Status.QUEUED
        assert server.inbox.received == []
    assert (await message(db, job.id)).error == "tls"


async def test_sender_uses_implicit_tls(db: Db, clock: Clock, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    appointment, _ = await booked(db)
    await enqueue(db, clock, appointment)
    auth = f"{USER}:{quote(PASSWORD, safe='')}@"
    with implicit_tls_server(cert, key) as server:
        sender = sender_for(db, server.url("smtps", query="", auth=auth), clock, smtp_ca_file=cert)
        assert await sender.send_next() is Status.SENT
        assert len(server.inbox.received) == 1
        assert server.inbox.logins == 1


async def test_sender_takes_over_a_message_whose_sender_died_after_its_lease(
    db: Db, clock: Clock
) -> None:
    appointment, _ = await booked(db)
    job = await enqueue(db, clock, appointment)
    lease = 300
    # A sender claims the message and is killed before it settles it.
    async with unit_of_work(db.sessions) as session:
        claimed = await queue.claim(session, now=clock.now, lease=timedelta(seconds=lease))
    assert claimed is not None
    assert claimed.id == job.id
    with smtp_server() as server:
        sender = sender_for(db, server.url(), clock, mail_lease_seconds=lease)
        clock.advance(lease - 1)
        assert await sender.send_next() is None  # still held
        clock.advance(2)
        assert await sender.send_next() is Status.SENT
        assert len(server.inbox.received) == 1
    sent = await message(db, job.id)
    assert sent.attempts == 2
    # The dead sender's claim cannot overwrite what the second one recorded.
    async with unit_of_work(db.sessions) as session:
        assert not await queue.settle(session, claimed, status=Status.FAILED)
    assert (await message(db, job.id)).status is Status.SENT


async def test_sender_does_not_send_a_link_that_was_replaced(db: Db, clock: Clock) -> None:
    appointment, _ = await booked(db)
    first = await enqueue(db, clock, appointment)
    await revoke_links(db, appointment)
    token = await sealed_link(db, appointment)
    second = await enqueue(db, clock, appointment, Kind.NEW_LINK)
    with smtp_server() as server:
        assert await sender_for(db, server.url(), clock).send_all() == [
            Status.SUPERSEDED,
            Status.SENT,
        ]
        [received] = server.inbox.received
    assert token in str(received.message)
    assert (await message(db, first.id)).error == "link_replaced"
    assert (await message(db, second.id)).status is Status.SENT


async def test_sender_tells_the_gp_a_report_is_ready(db: Db, clock: Clock) -> None:
    appointment, _ = await booked(db)
    await enqueue(db, clock, appointment, Kind.REPORT_READY, recipient=Recipient.GP)
    with smtp_server() as server:
        assert await sender_for(db, server.url(), clock).send_next() is Status.SENT
        [received] = server.inbox.received
    assert received.recipients == [db.demo.gp.email]
    text = received.message.get_body(("plain",))
    assert text is not None
    assert f"http://127.0.0.1:8000/gp/appointments/{appointment.id}" in text.get_content()


async def test_sender_tells_the_gp_of_an_open_request_only(db: Db, clock: Clock) -> None:
    still_open = await unclaimed_request(db, clock)
    taken = await unclaimed_request(db, clock)
    asked_again = await unclaimed_request(db, clock)
    async with unit_of_work(db.sessions) as session:
        # After the listener planned them: a specialist took one, the GP asked again for one.
        await session.execute(
            update(Appointment)
            .where(col(Appointment.id) == taken.id)
            .values(specialist_id=db.demo.specialist.id, claimed_at=clock.now, unclaimed_at=None)
        )
        await session.execute(
            update(Appointment)
            .where(col(Appointment.id) == asked_again.id)
            .values(unclaimed_at=None)
        )
    kind, gp = Kind.ON_CALL_UNCLAIMED, Recipient.GP
    sent = await enqueue(db, clock, still_open, kind, recipient=gp)
    claimed = await enqueue(db, clock, taken, kind, recipient=gp)
    again = await enqueue(db, clock, asked_again, kind, recipient=gp)
    with smtp_server() as server:
        statuses = await sender_for(db, server.url(), clock).send_all()
        [received] = server.inbox.received
    assert sorted(statuses) == sorted([Status.SENT, Status.SUPERSEDED, Status.SUPERSEDED])
    assert received.recipients == [db.demo.gp.email]
    text = received.message.get_body(("plain",))
    assert text is not None
    assert f"http://127.0.0.1:8000/gp/appointments/{still_open.id}" in text.get_content()
    assert (await message(db, sent.id)).status is Status.SENT
    assert (await message(db, claimed.id)).error == "claimed"
    assert (await message(db, again.id)).error == "asked_again"


async def test_sender_writes_in_the_patients_language(db: Db, clock: Clock) -> None:
    appointment, _ = await booked(db, language="en")
    await enqueue(db, clock, appointment, Kind.CANCELLED, language="en")
    with smtp_server() as server:
        assert await sender_for(db, server.url(), clock).send_next() is Status.SENT
        [received] = server.inbox.received
    assert received.message["Subject"].startswith("Your video appointment on ")


async def revoke_links(db: Db, appointment: Appointment) -> None:
    async with unit_of_work(db.sessions) as session:
        await session.execute(
            update(JoinToken)
            .where(col(JoinToken.appointment_id) == appointment.id)
            .values(revoked_at=appointment.created_at, sealed=None)
        )
