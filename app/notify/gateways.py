"""SMS gateways: which one ``KONSIL_SMS_URL`` names, and the HTTP request each makes of an SMS.
Pure (no I/O, no clock of its own): ``sms.py`` sends what these build.

The URL's scheme is ``<provider>+https``:

- ``webhook+https://sms.klinikum.example/konsil``: Konsil's own format for a gateway the
  operator runs or rents. ``POST`` of ``{"id", "to", "text"}`` as JSON, signed with HMAC-SHA256
  under ``KONSIL_SMS_SECRET`` over ``"<timestamp>.<body>"``; the timestamp (Unix seconds) is in
  ``X-Konsil-Timestamp``, the signature in ``X-Konsil-Signature: sha256=<hex>``, so a receiver
  refuses a forged body and a replayed old one (docs/deploy.md "SMS" shows the check).
- ``sipgate+https://api.sipgate.com/v2/sessions/sms?sms_id=s0``: sipgate's REST API
  (``POST /v2/sessions/sms`` with ``{"smsId", "recipient", "message"}``, HTTP Basic with a
  personal access token: ``KONSIL_SMS_SECRET`` is ``<token id>:<token>``). ``sms_id`` is the
  account's web SMS extension (default ``s0``); it is not sent in the URL.

Plain ``http`` is accepted only to a loopback address (a relay on the same host, tests).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

PROVIDERS = ("webhook", "sipgate")
TIMESTAMP_HEADER = "X-Konsil-Timestamp"
SIGNATURE_HEADER = "X-Konsil-Signature"
MIN_SECRET_LENGTH = 32
SIPGATE_DEFAULT_SMS_ID = "s0"


@dataclass(frozen=True)
class Sms:
    """One SMS: ``to`` in E.164, ``id`` the same for every attempt (a gateway can tell a
    repeat)."""

    to: str
    text: str
    id: str


@dataclass(frozen=True)
class HttpRequest:
    """A ``POST`` to make."""

    url: str
    headers: dict[str, str]
    body: bytes


class Gateway(Protocol):
    @property
    def provider(self) -> str: ...

    def request(self, sms: Sms, *, now: datetime) -> HttpRequest: ...


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The webhook's signature: HMAC-SHA256 over ``<timestamp>.<body>``, hex."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return mac.hexdigest()


def _json(value: dict[str, str]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Webhook:
    url: str
    secret: str
    provider: str = "webhook"

    def request(self, sms: Sms, *, now: datetime) -> HttpRequest:
        body = _json({"id": sms.id, "to": sms.to, "text": sms.text})
        timestamp = str(int(now.timestamp()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: "sha256=" + sign(self.secret, timestamp, body),
            "Idempotency-Key": sms.id,
        }
        return HttpRequest(self.url, headers, body)


@dataclass(frozen=True)
class Sipgate:
    url: str
    sms_id: str
    token_id: str
    token: str
    provider: str = "sipgate"

    def request(self, sms: Sms, *, now: datetime) -> HttpRequest:
        body = _json({"smsId": self.sms_id, "recipient": sms.to, "message": sms.text})
        login = base64.b64encode(f"{self.token_id}:{self.token}".encode()).decode()
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Authorization": f"Basic {login}",
        }
        return HttpRequest(self.url, headers, body)


def parse(url: str, secret: str | None) -> Webhook | Sipgate:
    """The gateway ``url`` names (see the module's docstring); ``ValueError`` with what to fix
    (never quoting the secret)."""
    parts = urlsplit(url)
    provider, _, scheme = parts.scheme.partition("+")
    if provider not in PROVIDERS or scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(
            "KONSIL_SMS_URL must look like webhook+https://host/path or "
            "sipgate+https://api.sipgate.com/v2/sessions/sms?sms_id=s0"
        )
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number or out of range
    except ValueError:
        # Not urllib's message: it quotes what it took for the port (a password with a "/").
        raise ValueError(
            "KONSIL_SMS_URL: the port must be a number from 1 to 65535 "
            "(percent-encode /, ? and # in the user name and password)"
        ) from None
    if scheme == "http" and not _loopback(parts.hostname):
        raise ValueError("KONSIL_SMS_URL: plain http only to a loopback address; use https")
    if not secret:
        raise ValueError("KONSIL_SMS_SECRET is required when KONSIL_SMS_URL is set")
    query = parse_qs(parts.query)
    if provider == "sipgate":
        token_id, colon, token = secret.partition(":")
        if not (token_id and colon and token):
            raise ValueError("KONSIL_SMS_SECRET for sipgate is <token id>:<token>")
        sms_id = query.pop("sms_id", [SIPGATE_DEFAULT_SMS_ID])[-1]
        target = urlunsplit((scheme, parts.netloc, parts.path, urlencode(query, True), ""))
        return Sipgate(target, sms_id, token_id, token)
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"KONSIL_SMS_SECRET must be at least {MIN_SECRET_LENGTH} characters for the webhook"
        )
    return Webhook(urlunsplit((scheme, parts.netloc, parts.path, parts.query, "")), secret)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
