"""SMS over HTTPS: the gateway from ``KONSIL_SMS_URL`` (``gateways``), the ``POST`` it asks for,
and what an answer or an error means for another attempt (``classify``)."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Protocol

import httpx2

from app.db import utcnow
from app.notify import gateways
from app.notify.gateways import Gateway, Sms
from app.notify.policy import Failure
from app.settings import Settings

# Answers that mean "not now" rather than "never" (RFC 9110 timeout, RFC 6585 rate limit).
_TEMPORARY_4XX = frozenset({408, 425, 429})


class GatewayRefused(Exception):
    """The gateway answered with a status other than 2xx."""

    def __init__(self, status: int) -> None:
        super().__init__(f"SMS gateway answered {status}")
        self.status = status


def gateway_from(settings: Settings) -> Gateway | None:
    if settings.sms_url is None:
        return None
    secret = settings.sms_secret.get_secret_value() if settings.sms_secret else None
    return gateways.parse(settings.sms_url.get_secret_value(), secret)


def message_id(number: int, created_at: datetime) -> str:
    """The same id for every attempt of one message (the gateway's idempotency key)."""
    return f"konsil.{number}.{created_at:%Y%m%d%H%M%S}"


class Transport(Protocol):
    async def send(self, sms: Sms) -> None: ...


class HttpTransport:
    """Posts each SMS over a new connection (messages are few; no pool to keep alive)."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        timeout: float = 15.0,
        ca_file: Path | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.gateway = gateway
        self.timeout = timeout
        self.clock = clock
        self._tls = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)

    async def send(self, sms: Sms) -> None:
        request = self.gateway.request(sms, now=self.clock())
        async with httpx2.AsyncClient(
            timeout=self.timeout, verify=self._tls, follow_redirects=False
        ) as client:
            response = await client.post(request.url, content=request.body, headers=request.headers)
        # The answer's body is not read into any log or row: it may quote the number.
        if not 200 <= response.status_code < 300:
            raise GatewayRefused(response.status_code)


def transport_from(settings: Settings) -> HttpTransport | None:
    gateway = gateway_from(settings)
    if gateway is None:
        return None
    return HttpTransport(
        gateway, timeout=settings.sms_timeout_seconds, ca_file=settings.sms_ca_file
    )


def classify(exc: BaseException) -> Failure:
    """A 4xx answer is permanent (a number the gateway refuses stays refused), except 408, 425
    and 429; a 5xx answer, a timeout and a lost connection are temporary, and so is a refused
    TLS handshake (the operator's to fix: the messages go out once it is fixed)."""
    match exc:
        case GatewayRefused(status=status) if 400 <= status < 500:
            permanent = status not in _TEMPORARY_4XX
            return Failure(permanent=permanent, error="sms_refused", http_status=status)
        case GatewayRefused(status=status):
            return Failure(permanent=False, error="sms_gateway_error", http_status=status)
        case httpx2.TimeoutException():
            return Failure(permanent=False, error="timeout")
        case httpx2.TransportError() | OSError() if _from_tls(exc):
            return Failure(permanent=False, error="tls")
        case httpx2.TransportError() | OSError():
            return Failure(permanent=False, error="connection")
        case _:
            return Failure(permanent=False, error="error")


def _from_tls(exc: BaseException | None) -> bool:
    """Whether ``exc`` is, or was raised from, a TLS error (httpx wraps its transport's)."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, ssl.SSLError):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False
