"""Real SMTP servers for the tests (aiosmtpd, each in its own thread on a free port): one that
keeps what it receives, one that answers 4xx a few times, one that refuses with 5xx, one with
STARTTLS and a login, one with implicit TLS, and a TCP server that drops every connection."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.live import free_port

USER, PASSWORD = "konsil", "s3cret:with@odd/chars"


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps every message; ``refuse`` answers RCPT with the given
    replies first (one per attempt), then accepts."""

    refuse: list[str] = field(default_factory=list)
    # Seconds the server takes to accept a message (so that senders overlap).
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    attempts: int = 0
    logins: int = 0
    _changed: threading.Condition = field(default_factory=threading.Condition)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        self.attempts += 1
        if self.refuse:
            return self.refuse.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        await asyncio.sleep(self.delay)
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        with self._changed:
            self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), parsed))
            self._changed.notify_all()
        return "250 Message accepted"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == USER.encode()
            and data.password == PASSWORD.encode()
        )
        self.logins += ok
        return AuthResult(success=ok)

    async def wait_for(self, count: int, seconds: float = 20.0) -> list[Received]:
        """Until ``count`` messages arrived (or fails after ``seconds``)."""

        def wait() -> bool:
            with self._changed:
                return self._changed.wait_for(lambda: len(self.received) >= count, seconds)

        assert await asyncio.to_thread(wait), f"{len(self.received)} of {count} messages"
        return list(self.received)


@dataclass(frozen=True)
class Server:
    port: int
    inbox: Inbox

    def url(self, scheme: str = "smtp", query: str = "?starttls=false", auth: str = "") -> str:
        return f"{scheme}://{auth}127.0.0.1:{self.port}{query}"


@contextmanager
def smtp_server(inbox: Inbox | None = None, **smtp_options: Any) -> Iterator[Server]:
    """An aiosmtpd server on a free port; ``smtp_options`` go to aiosmtpd's SMTP (TLS, auth)."""
    inbox = inbox or Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **smtp_options)
    controller.start()
    try:
        yield Server(port, inbox)
    finally:
        controller.stop()


@contextmanager
def starttls_server(cert: Path, key: Path) -> Iterator[Server]:
    """STARTTLS required, and a login (only over TLS)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    with smtp_server(
        inbox,
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=inbox.authenticate,
    ) as server:
        yield server


@contextmanager
def implicit_tls_server(cert: Path, key: Path) -> Iterator[Server]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        ssl_context=context,
        server_hostname="127.0.0.1",
        authenticator=inbox.authenticate,
        # aiosmtpd counts only STARTTLS as TLS (and warns about AUTH required without it):
        # this connection is TLS from the first byte; the test checks the login happened.
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield Server(port, inbox)
    finally:
        controller.stop()


@contextmanager
def dropping_server() -> Iterator[int]:
    """A TCP server that accepts and closes at once, as a crashing mail server would."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (PEM files); the certificate is its own CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "konsil test smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp.crt", directory / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
