"""Operations: the /metrics endpoint, request metrics and access log, and draining on SIGTERM.

The access log names the route template (``/api/v1/rooms/{appointment_id:int}/ice``), never
query strings, bodies, cookies or headers: nothing in it can be health data or a credential.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import NotAuthenticated
from app.logging import get_logger
from app.metrics import HTTP_ERRORS, PATIENTS_WAITING, REGISTRY
from app.resources import Resources, db, settings
from app.rooms import service as rooms
from app.tokens import same

log = get_logger("konsil.http")

# --- /metrics ------------------------------------------------------------------------------


async def metrics(request: Request) -> Response:
    """Prometheus text format. Behind ``KONSIL_METRICS_TOKEN`` (bearer) when that is set."""
    token = settings(request).metrics_token
    if token is not None:
        scheme, _, sent = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not same(sent.strip(), token.get_secret_value()):
            raise NotAuthenticated("Für /metrics ist ein Bearer-Token nötig.")
    # Read from the database at each scrape: a patient may wait on one instance and be
    # admitted or cancelled through another, so no process can count it by itself.
    async with db(request)() as session:
        PATIENTS_WAITING.set(await rooms.waiting_count(session))
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


routes: list[BaseRoute] = [Route("/metrics", metrics, methods=["GET"])]


# --- request metrics and access log --------------------------------------------------------


class RequestMetricsMiddleware:
    """Counts HTTP error responses by status and writes one access-log line per request.

    Pure ASGI (no BaseHTTPMiddleware) so streaming responses and websockets pass untouched.
    """

    def __init__(self, app: ASGIApp, *, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine of its own around other scopes: a websocket would hold its frame
        # as long as it is open (docs/performance.md, memory per waiting patient).
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        return self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500  # if the app dies before answering, the server answers 500

        async def send_and_observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_observe)
        finally:
            if status >= 400:
                HTTP_ERRORS.labels(status=str(status)).inc()
            if self.access_log:
                log.info(
                    "http.request",
                    method=scope["method"],
                    route=route_template(scope),
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 1),
                )


def route_template(scope: Scope) -> str:
    """The matched route's path template; unmatched paths are not echoed (they may be junk)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "<unmatched>"


# --- draining on SIGTERM -------------------------------------------------------------------

SignalHandler = Callable[[int, FrameType | None], Any] | int | None


@asynccontextmanager
async def drain_on_sigterm(res: Resources) -> AsyncIterator[None]:
    """On SIGTERM: report not-ready at once, keep serving ``shutdown_drain_seconds``, then stop.

    The load balancer sees ``/readyz`` turn 503 and sends new connections to the other instance;
    only then does the server's own SIGTERM handling run (uvicorn: stop accepting, close
    websockets with 1012 "service restart" so clients reconnect elsewhere, wait up to
    ``--timeout-graceful-shutdown`` for requests in flight, then the lifespan shutdown).
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signals can only be handled in the main thread (e.g. in tests)
        return
    loop = asyncio.get_running_loop()
    delay = res.settings.shutdown_drain_seconds
    previous: SignalHandler = signal.getsignal(signal.SIGTERM)

    def pass_on(sig: int) -> None:
        if callable(previous):
            previous(sig, None)
        else:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.raise_signal(sig)

    def start_draining(sig: int) -> None:
        log.info("konsil.draining", seconds=delay)
        loop.call_later(delay, pass_on, sig)

    def on_sigterm(sig: int, frame: FrameType | None) -> None:
        # Runs between any two bytecodes of the main thread, possibly inside a log call that
        # holds the log file's lock: it only sets a flag and hands the rest to the event loop
        # (logging here could wait for that lock forever).
        if res.draining:
            loop.call_soon_threadsafe(pass_on, sig)  # a second SIGTERM: stop now
            return
        res.draining = True
        loop.call_soon_threadsafe(start_draining, sig)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        res.draining = True
        if signal.getsignal(signal.SIGTERM) is on_sigterm:
            signal.signal(signal.SIGTERM, previous)
