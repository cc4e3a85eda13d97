"""E-mail through SMTP with aiosmtplib: the server from ``KONSIL_SMTP_URL``, the message built
from a rendered ``Mail``, and what an SMTP error means for another attempt (``classify``)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from app.notify.policy import Failure
from app.notify.render import Mail
from app.settings import Settings

_FALSE = frozenset({"false", "0", "no", "off"})


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to hand mail over."""

    host: str
    port: int
    username: str | None
    password: str | None
    implicit_tls: bool  # smtps://: TLS from the first byte
    starttls: bool  # smtp://: STARTTLS required before anything is sent
    timeout: float = 30.0
    ca_file: Path | None = None


def parse_url(url: str, *, timeout: float = 30.0, ca_file: Path | None = None) -> SmtpConfig:
    """``smtp://user:pass@host:587`` (STARTTLS; ``?starttls=false`` for a local relay only) or
    ``smtps://user:pass@host:465`` (implicit TLS); user and password percent-encoded."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("an SMTP URL looks like smtp://user:password@host:587")
    implicit = parts.scheme == "smtps"
    query = parse_qs(parts.query)
    starttls = not implicit and query.get("starttls", ["true"])[-1].lower() not in _FALSE
    return SmtpConfig(
        host=parts.hostname,
        port=parts.port or (465 if implicit else 587),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        implicit_tls=implicit,
        starttls=starttls,
        timeout=timeout,
        ca_file=ca_file,
    )


def config_from(settings: Settings) -> SmtpConfig | None:
    if settings.smtp_url is None:
        return None
    return parse_url(
        settings.smtp_url.get_secret_value(),
        timeout=settings.smtp_timeout_seconds,
        ca_file=settings.smtp_ca_file,
    )


def build(mail: Mail, *, sender: str, to: str, message_id: str, date: datetime) -> EmailMessage:
    """A multipart/alternative message: plain text first, then HTML."""
    message = EmailMessage()
    message["Subject"] = mail.subject
    message["From"] = sender
    message["To"] = to
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    # RFC 3834: an automatic message; vacation responders should not answer it.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    return message


def message_id(number: int, created_at: datetime, sender: str) -> str:
    """The same Message-ID for every attempt of one message, so that a copy sent twice (a
    process died after the server took it) can be recognised as one."""
    domain = Address(addr_spec=parseaddr(sender)[1]).domain
    return f"<konsil.{number}.{created_at:%Y%m%d%H%M%S}@{domain}>"


class Transport(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class SmtpTransport:
    """Sends each message over a new connection (messages are few; no pool to keep alive)."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._tls = ssl.create_default_context(
            cafile=str(config.ca_file) if config.ca_file else None
        )

    async def send(self, message: EmailMessage) -> None:
        c = self.config
        await aiosmtplib.send(
            message,
            hostname=c.host,
            port=c.port,
            username=c.username,
            password=c.password,
            use_tls=c.implicit_tls,
            start_tls=c.starttls if not c.implicit_tls else False,
            timeout=c.timeout,
            tls_context=self._tls,
        )


def classify(exc: BaseException) -> Failure:
    """5xx answers are permanent (an address that does not exist stays so); 4xx answers, lost
    connections and timeouts are temporary. A refused login or TLS is the operator's to fix:
    temporary, so the messages go out once it is fixed (within the attempts)."""
    match exc:
        case aiosmtplib.SMTPRecipientsRefused(recipients=[first, *_]):
            return _answer(first.code, "recipient_refused")
        case aiosmtplib.SMTPRecipientRefused():
            return _answer(exc.code, "recipient_refused")
        case aiosmtplib.SMTPAuthenticationError():
            return Failure(permanent=False, error="auth_failed", smtp_code=exc.code)
        case aiosmtplib.SMTPSenderRefused():
            return _answer(exc.code, "sender_refused")
        case aiosmtplib.SMTPResponseException():
            return _answer(exc.code, "refused")
        case ssl.SSLError() | aiosmtplib.SMTPNotSupported():
            return Failure(permanent=False, error="tls")
        case TimeoutError():
            return Failure(permanent=False, error="timeout")
        case OSError():  # refused, reset, dropped (SMTPServerDisconnected, SMTPConnectError)
            return Failure(permanent=False, error="connection")
        case _:
            return Failure(permanent=False, error="error")


def _answer(code: int, error: str) -> Failure:
    return Failure(permanent=500 <= code < 600, error=error, smtp_code=code)
