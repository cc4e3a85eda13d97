"""A real SMS gateway for the tests: a Starlette app served by uvicorn in its own thread on a
free port (plain HTTP, or HTTPS with a self-signed certificate). It receives Konsil's webhook
and checks it as docs/deploy.md "SMS" tells a receiver to (HMAC-SHA256 over timestamp and
body, the timestamp at most five minutes old), or sipgate's request with its Basic login; it
answers the statuses it is told to first (one per request), then accepts."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.live import free_port

SECRET = "konsil-test-webhook-secret-0123456789abcdef"
SIPGATE_TOKEN_ID, SIPGATE_TOKEN = "token-STUVW", "s3cret-token"
TOLERANCE_SECONDS = 300
START_TIMEOUT = 10.0


def verify_webhook(secret: str, headers: dict[str, str], body: bytes, now: float) -> str | None:
    """Why a webhook request is refused (None: it is genuine and fresh). The check a receiver
    makes: the signature over ``<timestamp>.<body>``, compared in constant time, and a
    timestamp no more than five minutes from the receiver's clock."""
    timestamp = headers.get("x-konsil-timestamp", "")
    signature = headers.get("x-konsil-signature", "")
    if not timestamp.isdigit() or not signature.startswith("sha256="):
        return "missing"
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest(), signature.removeprefix("sha256=")):
        return "signature"
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        return "stale"
    return None


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


@dataclass
class Gateway:
    """What the gateway checks and answers, and what it received (every request, accepted or
    not); ``refusals`` says why it refused a request it could not trust."""

    provider: str = "webhook"
    secret: str = SECRET
    # Statuses answered first, one per request (after the checks), then 200 (sipgate: 204).
    answers: list[int] = field(default_factory=list)
    # Seconds before answering (a gateway that hangs: the sender's timeout).
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    accepted: list[Received] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        got = Received(request.url.path, dict(request.headers), body)
        with self._changed:
            self.received.append(got)
            self._changed.notify_all()
        if self.delay:
            await asyncio.sleep(self.delay)
        why = self._check(got)
        if why is not None:
            self.refusals.append(why)
            return Response(status_code=401)
        if self.answers:
            return Response(status_code=self.answers.pop(0))
        with self._changed:
            self.accepted.append(got)
            self._changed.notify_all()
        return Response(status_code=204 if self.provider == "sipgate" else 200)

    def _check(self, got: Received) -> str | None:
        if self.provider == "webhook":
            return verify_webhook(self.secret, got.headers, got.body, time.time())
        login = base64.b64encode(f"{SIPGATE_TOKEN_ID}:{SIPGATE_TOKEN}".encode()).decode()
        if got.headers.get("authorization") != f"Basic {login}":
            return "login"
        if set(got.json) != {"smsId", "recipient", "message"}:
            return "body"
        return None

    async def wait_for(self, count: int, seconds: float = 20.0) -> list[Received]:
        """The accepted SMS once there are ``count`` (or fails after ``seconds``)."""

        def wait() -> bool:
            with self._changed:
                return self._changed.wait_for(lambda: len(self.accepted) >= count, seconds)

        assert await asyncio.to_thread(wait), f"{len(self.accepted)} of {count} SMS arrived"
        return list(self.accepted)


@dataclass
class Running:
    port: int
    gateway: Gateway
    scheme: str = "http"

    def url(self, path: str = "/sms", query: str = "") -> str:
        """The ``KONSIL_SMS_URL`` that reaches this gateway."""
        provider = self.gateway.provider
        suffix = f"?{query}" if query else ""
        return f"{provider}+{self.scheme}://127.0.0.1:{self.port}{path}{suffix}"


@contextmanager
def sms_gateway(
    gateway: Gateway | None = None, *, tls: tuple[Path, Path] | None = None
) -> Iterator[Running]:
    """Serves ``gateway`` until the block ends; with ``tls`` (certificate, key) over HTTPS."""
    gateway = gateway or Gateway()
    app = Starlette(routes=[Route("/{path:path}", gateway.handle, methods=["POST"])])
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        ssl_certfile=str(tls[0]) if tls else None,
        ssl_keyfile=str(tls[1]) if tls else None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"sms-gateway-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test SMS gateway did not start")
        time.sleep(0.01)
    try:
        yield Running(port, gateway, "https" if tls else "http")
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT)
