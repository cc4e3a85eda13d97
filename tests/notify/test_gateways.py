"""The pure parts of SMS: which gateway KONSIL_SMS_URL names, the request each builds, what an
answer or an error means, and the settings that refuse a gateway set up wrong."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
from pydantic import ValidationError

from app.notify import gateways, sms
from app.notify.policy import Failure
from app.settings import Settings

NOW = datetime(2026, 12, 14, 12, 0, tzinfo=UTC)
SECRET = "s" * 32
MESSAGE = gateways.Sms(to="+4915123456789", text="Ihr Video-Termin", id="konsil.7.20261214110000")


def test_parse_webhook_keeps_path_and_query_and_allows_http_only_to_loopback() -> None:
    hook = gateways.parse("webhook+https://sms.klinikum.example/konsil?team=a", SECRET)
    assert hook == gateways.Webhook("https://sms.klinikum.example/konsil?team=a", SECRET)
    assert gateways.parse("webhook+http://127.0.0.1:8025/sms", SECRET).url.startswith("http://")
    assert gateways.parse("webhook+http://localhost/sms", SECRET).url == "http://localhost/sms"
    with pytest.raises(ValueError, match="loopback"):
        gateways.parse("webhook+http://sms.klinikum.example/konsil", SECRET)


def test_parse_sipgate_takes_the_extension_from_the_url_and_the_token_from_the_secret() -> None:
    found = gateways.parse(
        "sipgate+https://api.sipgate.com/v2/sessions/sms?sms_id=s3", "token-ABC:p4ss:w"
    )
    assert found == gateways.Sipgate(
        "https://api.sipgate.com/v2/sessions/sms", "s3", "token-ABC", "p4ss:w"
    )
    default = gateways.parse("sipgate+https://api.sipgate.com/v2/sessions/sms", "a:b")
    assert isinstance(default, gateways.Sipgate)
    assert default.sms_id == "s0"


@pytest.mark.parametrize(
    ("url", "secret", "message"),
    [
        ("https://sms.example/x", SECRET, "must look like"),
        ("twilio+https://api.example/x", SECRET, "must look like"),
        ("webhook+ftp://sms.example/x", SECRET, "must look like"),
        ("webhook+https:///x", SECRET, "must look like"),
        ("webhook+https://sms.example:99999/x", SECRET, "the port must be a number"),
        ("webhook+https://sms.example/x", None, "KONSIL_SMS_SECRET is required"),
        ("webhook+https://sms.example/x", "short", "at least 32"),
        ("sipgate+https://api.sipgate.com/v2/sessions/sms", "no-colon", "<token id>:<token>"),
    ],
)
def test_parse_refuses_what_cannot_work(url: str, secret: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        gateways.parse(url, secret)


def test_webhook_request_is_json_signed_over_timestamp_and_body() -> None:
    hook = gateways.Webhook("https://sms.klinikum.example/konsil", SECRET)
    request = hook.request(MESSAGE, now=NOW)
    assert json.loads(request.body) == {
        "id": MESSAGE.id,
        "to": MESSAGE.to,
        "text": MESSAGE.text,
    }
    timestamp = request.headers["X-Konsil-Timestamp"]
    assert timestamp == str(int(NOW.timestamp()))
    mac = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256)
    assert request.headers["X-Konsil-Signature"] == f"sha256={mac.hexdigest()}"
    assert request.headers["Idempotency-Key"] == MESSAGE.id
    # The same SMS a minute later: another timestamp, so another signature.
    later = hook.request(MESSAGE, now=NOW.replace(minute=1))
    assert later.body == request.body
    assert later.headers["X-Konsil-Signature"] != request.headers["X-Konsil-Signature"]


def test_webhook_body_keeps_umlauts_as_utf8() -> None:
    hook = gateways.Webhook("https://sms.example/x", SECRET)
    request = hook.request(gateways.Sms("+4915123456789", "Grüße", "k.1.2"), now=NOW)
    assert "Grüße".encode() in request.body


def test_sipgate_request_has_its_fields_and_basic_login() -> None:
    gate = gateways.Sipgate("https://api.sipgate.com/v2/sessions/sms", "s0", "token-ABC", "t0k")
    request = gate.request(MESSAGE, now=NOW)
    assert json.loads(request.body) == {
        "smsId": "s0",
        "recipient": MESSAGE.to,
        "message": MESSAGE.text,
    }
    login = base64.b64decode(request.headers["Authorization"].removeprefix("Basic ")).decode()
    assert login == "token-ABC:t0k"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (sms.GatewayRefused(400), Failure(True, "sms_refused", http_status=400)),
        (sms.GatewayRefused(401), Failure(True, "sms_refused", http_status=401)),
        (sms.GatewayRefused(402), Failure(True, "sms_refused", http_status=402)),
        (sms.GatewayRefused(408), Failure(False, "sms_refused", http_status=408)),
        (sms.GatewayRefused(429), Failure(False, "sms_refused", http_status=429)),
        (sms.GatewayRefused(500), Failure(False, "sms_gateway_error", http_status=500)),
        (sms.GatewayRefused(503), Failure(False, "sms_gateway_error", http_status=503)),
        (sms.GatewayRefused(301), Failure(False, "sms_gateway_error", http_status=301)),
        (httpx2.ReadTimeout("slow"), Failure(False, "timeout")),
        (httpx2.ConnectTimeout("slow"), Failure(False, "timeout")),
        (httpx2.ConnectError("refused"), Failure(False, "connection")),
        (httpx2.RemoteProtocolError("dropped"), Failure(False, "connection")),
        (ssl.SSLCertVerificationError("self-signed"), Failure(False, "tls")),
        (ConnectionResetError(), Failure(False, "connection")),
        (ValueError("odd"), Failure(False, "error")),
    ],
)
def test_classify_gateway_answers_and_errors(exc: Exception, expected: Failure) -> None:
    assert sms.classify(exc) == expected


def settings(**values: Any) -> Settings:
    return Settings(environment="test", **values)


def test_settings_sms_unset_is_not_configured_and_a_lone_secret_is_refused() -> None:
    assert not settings().sms_configured
    assert not settings(sms_url="", sms_secret="").sms_configured
    with pytest.raises(ValidationError, match="KONSIL_SMS_SECRET is set but KONSIL_SMS_URL"):
        settings(sms_secret=SECRET)


def test_settings_refuse_a_gateway_set_up_wrong() -> None:
    assert settings(sms_url="webhook+https://sms.example/x", sms_secret=SECRET).sms_configured
    with pytest.raises(ValidationError, match="KONSIL_SMS_SECRET is required"):
        settings(sms_url="webhook+https://sms.example/x")
    with pytest.raises(ValidationError, match="loopback"):
        settings(sms_url="webhook+http://sms.example/x", sms_secret=SECRET)
    with pytest.raises(ValidationError, match="KONSIL_SMS_CA_FILE"):
        settings(
            sms_url="webhook+https://sms.example/x", sms_secret=SECRET, sms_ca_file="/nonexistent"
        )


def test_settings_reminders_in_units_longest_first_or_none() -> None:
    assert settings().reminders == [24 * 60, 15]
    assert settings(reminders=["15m", "2d", 90, "24h", "90min"]).reminders == [2880, 1440, 90, 15]
    assert settings(reminders=[]).reminders == []
    for wrong in (["15s"], ["0m"], ["15d"], [True], ["soon"]):
        with pytest.raises(ValidationError, match="KONSIL_REMINDERS"):
            settings(reminders=wrong)


def test_settings_reminders_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KONSIL_REMINDERS", '["24h", "15m", 60]')
    assert Settings().reminders == [1440, 60, 15]
