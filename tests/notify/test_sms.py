"""The sender against a real SMS gateway (uvicorn on a free port): Konsil's signed webhook and
sipgate's format, what arrives, retries with back-off on 5xx, 429 and timeouts, permanent
failures on 4xx, HTTPS with the operator's CA. The clock is moved, never waited for."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx2
import pytest
import structlog

from app.db import utcnow
from app.logging import configure_logging
from app.notify import gateways
from app.notify.models import Channel, Kind, Status
from tests.notify.conftest import MOBILE, Clock, Db, booked, enqueue, message, sms_sender_for
from tests.notify.smsd import (
    SECRET,
    SIPGATE_TOKEN,
    SIPGATE_TOKEN_ID,
    Gateway,
    sms_gateway,
    verify_webhook,
)
from tests.notify.smtpd import self_signed

SMS = Channel.SMS


@contextmanager
def info_logs() -> Iterator[None]:
    """Konsil's log configuration at INFO, into the test's captured stderr, for a block."""
    saved = structlog.get_config()
    configure_logging(json=True, level="INFO")
    try:
        yield
    finally:
        structlog.configure(**saved)


async def test_sms_webhook_carries_the_link_and_the_practice_signed_to_the_e164_number(
    db: Db, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    appointment, token = await booked(db, channels="sms")
    job = await enqueue(db, clock, appointment, channel=SMS)
    with sms_gateway() as gateway, info_logs():
        assert await sms_sender_for(db, gateway.url(), clock).send_next() is Status.SENT
        [received] = gateway.gateway.accepted
    assert gateway.gateway.refusals == []  # signature and timestamp checked by the gateway
    assert received.path == "/sms"
    assert set(received.json) == {"id", "to", "text"}
    assert received.json["to"] == MOBILE
    assert received.json["id"] == received.headers["idempotency-key"]
    assert received.json["id"].startswith(f"konsil.{job.id}.")
    text = received.json["text"]
    assert f"http://127.0.0.1:8000/join#{token}" in text
    assert db.demo.practice.name in text
    assert text.startswith("Ihr Video-Termin ")
    sent = await message(db, job.id)
    assert (sent.status, sent.attempts, sent.sent_at) == (Status.SENT, 1, clock.now)
    logged = capsys.readouterr()
    lines = logged.out + logged.err
    assert '"event": "notify.settled"' in lines  # the log says what happened, by ids and codes
    for secret in (MOBILE, token, text):
        assert secret not in lines


async def test_sms_5xx_is_retried_after_its_back_off_with_the_same_id(db: Db, clock: Clock) -> None:
    appointment, _ = await booked(db, channels="sms")
    job = await enqueue(db, clock, appointment, channel=SMS)
    with sms_gateway(Gateway(answers=[503])) as gateway:
        sender = sms_sender_for(db, gateway.url(), clock, mail_retry_first_seconds=60)
        assert await sender.send_next() is Status.QUEUED
        waiting = await message(db, job.id)
        assert (waiting.error, waiting.http_status) == ("sms_gateway_error", 503)
        assert waiting.available_at - clock.now == timedelta(seconds=60)
        assert await sender.send_next() is None  # not due yet
        clock.advance(60)
        assert await sender.send_next() is Status.SENT
        first, second = gateway.gateway.received
    assert first.json["id"] == second.json["id"]
    sent = await message(db, job.id)
    assert (sent.status, sent.attempts, sent.error, sent.http_status) == (Status.SENT, 2, None, 503)


async def test_sms_4xx_fails_for_good_and_says_so(db: Db, clock: Clock) -> None:
    appointment, _ = await booked(db, channels="sms")
    job = await enqueue(db, clock, appointment, channel=SMS)
    with sms_gateway(Gateway(answers=[400])) as gateway:
        sender = sms_sender_for(db, gateway.url(), clock)
        assert await sender.send_next() is Status.FAILED
        failed_at = clock.now
        clock.advance(24 * 3600)
        assert await sender.send_next() is None
        assert len(gateway.gateway.received) == 1
    failed = await message(db, job.id)
    assert (failed.error, failed.http_status, failed.failed_at) == ("sms_refused", 400, failed_at)


async def test_sms_rate_limit_and_timeout_are_temporary(db: Db, clock: Clock) -> None:
    appointment, _ = await booked(db, channels="sms")
    limited = await enqueue(db, clock, appointment, channel=SMS)
    with sms_gateway(Gateway(answers=[429])) as gateway:
        assert await sms_sender_for(db, gateway.url(), clock).send_next() is Status.QUEUED
    assert ((await message(db, limited.id)).error, (await message(db, limited.id)).http_status) == (
        "sms_refused",
        429,
    )
    clock.advance(3600)
    with sms_gateway(Gateway(delay=2.0)) as gateway:
        sender = sms_sender_for(db, gateway.url(), clock, sms_timeout_seconds=0.3)
        assert await sender.send_next() is Status.QUEUED
    assert (await message(db, limited.id)).error == "timeout"


async def test_sms_gateway_not_listening_is_a_connection_failure(db: Db, clock: Clock) -> None:
    appointment, _ = await booked(db, channels="sms")
    job = await enqueue(db, clock, appointment, channel=SMS)
    with sms_gateway() as gateway:
        url = gateway.url()
    # The gateway is gone: nothing listens on its port any more.
    assert await sms_sender_for(db, url, clock).send_next() is Status.QUEUED
    assert (await message(db, job.id)).error == "connection"


async def test_sms_sipgate_gets_its_format_and_login(db: Db, clock: Clock) -> None:
    appointment, token = await booked(db, channels="sms", language="en")
    await enqueue(db, clock, appointment, channel=SMS, language="en")
    secret = f"{SIPGATE_TOKEN_ID}:{SIPGATE_TOKEN}"
    with sms_gateway(Gateway(provider="sipgate")) as gateway:
        url = gateway.url("/v2/sessions/sms", query="sms_id=s7")
        sender = sms_sender_for(db, url, clock, secret=secret)
        assert await sender.send_next() is Status.SENT
        [received] = gateway.gateway.accepted
    assert gateway.gateway.refusals == []
    assert received.path == "/v2/sessions/sms"
    assert received.json["smsId"] == "s7"
    assert received.json["recipient"] == MOBILE
    assert received.json["message"].startswith("Your video appointment ")
    assert token in received.json["message"]


async def test_sms_sipgate_refused_login_fails_for_good(db: Db, clock: Clock) -> None:
    appointment, _ = await booked(db, channels="sms")
    job = await enqueue(db, clock, appointment, channel=SMS)
    with sms_gateway(Gateway(provider="sipgate")) as gateway:
        url = gateway.url("/v2/sessions/sms")
        sender = sms_sender_for(db, url, clock, secret=f"{SIPGATE_TOKEN_ID}:wrong")
        assert await sender.send_next() is Status.FAILED
    assert gateway.gateway.refusals == ["login"]
    assert ((await message(db, job.id)).error, (await message(db, job.id)).http_status) == (
        "sms_refused",
        401,
    )


async def test_sms_over_https_needs_the_operators_ca(db: Db, clock: Clock, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    appointment, _ = await booked(db, channels="sms")
    job = await enqueue(db, clock, appointment, channel=SMS)
    with sms_gateway(tls=(cert, key)) as gateway:
        assert gateway.url().startswith("webhook+https://127.0.0.1:")
        unknown_ca = sms_sender_for(db, gateway.url(), clock)
        assert await unknown_ca.send_next() is Status.QUEUED
        assert (await message(db, job.id)).error == "tls"
        clock.advance(3600)
        trusted = sms_sender_for(db, gateway.url(), clock, sms_ca_file=cert)
        assert await trusted.send_next() is Status.SENT
        assert len(gateway.gateway.accepted) == 1


async def test_sms_not_chosen_for_the_patient_is_not_sent(db: Db, clock: Clock) -> None:
    appointment, _ = await booked(db, channels="email")
    job = await enqueue(db, clock, appointment, channel=SMS)
    with sms_gateway() as gateway:
        assert await sms_sender_for(db, gateway.url(), clock).send_next() is Status.FAILED
        assert gateway.gateway.received == []
    assert (await message(db, job.id)).error == "no_address"


async def test_sms_without_a_gateway_on_this_server_fails_as_not_configured(
    db: Db, clock: Clock
) -> None:
    appointment, _ = await booked(db, channels="sms")
    job = await enqueue(db, clock, appointment, Kind.CANCELLED, channel=SMS)
    with sms_gateway() as gateway:
        sender = sms_sender_for(db, gateway.url(), clock)
        sender.sms = None
        assert await sender.send_next() is Status.FAILED
    assert (await message(db, job.id)).error == "not_configured"


async def test_webhook_receiver_refuses_a_forged_a_tampered_and_a_replayed_request() -> None:
    hook = gateways.parse("webhook+http://127.0.0.1:9/sms", SECRET)
    sms = gateways.Sms(to=MOBILE, text="Ihr Video-Termin", id="konsil.1.20261214120000")
    with sms_gateway() as gateway:
        async with httpx2.AsyncClient() as client:

            async def post(request: gateways.HttpRequest, **headers: str) -> int:
                url = f"http://127.0.0.1:{gateway.port}/sms"
                sent = await client.post(
                    url, content=request.body, headers={**request.headers, **headers}
                )
                return sent.status_code

            fresh = hook.request(sms, now=utcnow())
            assert await post(fresh) == 200
            tampered = gateways.HttpRequest(
                fresh.url, fresh.headers, fresh.body.replace(b"+49", b"+43")
            )
            assert await post(tampered) == 401
            later = str(int(fresh.headers["X-Konsil-Timestamp"]) + 3600)
            assert await post(fresh, **{"X-Konsil-Timestamp": later}) == 401  # signed with it
            forged = gateways.parse("webhook+http://127.0.0.1:9/sms", "x" * 40)
            assert await post(forged.request(sms, now=utcnow())) == 401
            old = hook.request(sms, now=utcnow() - timedelta(minutes=10))
            assert await post(old) == 401
    assert gateway.gateway.refusals == ["signature", "signature", "signature", "stale"]
    assert len(gateway.gateway.accepted) == 1


def test_verify_webhook_is_the_documented_check() -> None:
    hook = gateways.parse("webhook+https://sms.klinikum.example/konsil", SECRET)
    now = utcnow()
    request = hook.request(gateways.Sms(MOBILE, "Text", "konsil.1.2"), now=now)
    headers = {name.lower(): value for name, value in request.headers.items()}
    assert verify_webhook(SECRET, headers, request.body, now.timestamp()) is None
    assert verify_webhook(SECRET, headers, request.body, now.timestamp() + 301) == "stale"
    assert verify_webhook(SECRET, {}, request.body, now.timestamp()) == "missing"
