"""The application factory. Nothing runs at import time.

Run with ``uvicorn app.main:create_app --factory``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from app import api
from app.accounts.oidc_client import lifespan as oidc_lifespan
from app.accounts.passwords import PasswordWorkers
from app.accounts.routes import routes as account_routes
from app.accounts.routes_admin import routes as admin_routes
from app.accounts.routes_factors import routes as factor_routes
from app.accounts.shedding import LoginShedding
from app.accounts.sweep import lifespan as idle_sweep_lifespan
from app.api import EXCEPTION_HANDLERS
from app.audit.routes import routes as audit_routes
from app.billing.routes import routes as billing_routes
from app.broker import create_broker
from app.db import create_engine, session_factory
from app.events.dispatcher import Dispatcher, Doorbell
from app.fhir.auth import routes as fhir_auth_routes
from app.fhir.routes_booking import routes as fhir_routes
from app.fhir.token import routes as fhir_token_routes
from app.health import healthz, readyz
from app.logging import configure_logging, get_logger
from app.notify.delays import lifespan as delay_notice_lifespan
from app.notify.listener import lifespan as notify_lifespan
from app.notify.routes import routes as notify_routes
from app.notify.routes_printed import routes as printed_routes
from app.observability import RequestMetricsMiddleware, drain_on_sigterm
from app.observability import routes as ops_routes
from app.openapi import openapi_document
from app.pages.admin import routes as admin_page_routes
from app.pages.errors import exception_handlers as page_exception_handlers
from app.pages.legal import lifespan as legal_lifespan
from app.pages.routes import routes as page_routes
from app.pages.security import SecurityHeadersMiddleware
from app.precheck.routes import precheck_lifespan
from app.precheck.routes import routes as precheck_routes
from app.presence.routes import routes as presence_routes
from app.records.routes import routes as record_routes
from app.records.service import lifespan as records_lifespan
from app.resources import Resources
from app.retention.job import lifespan as retention_lifespan
from app.rooms.routes import routes as room_routes
from app.scheduling.routes import routes as scheduling_routes
from app.scheduling.sweep import lifespan as on_call_sweep_lifespan
from app.settings import Settings
from app.signaling.endpoint import DIRECT as direct_sockets
from app.signaling.endpoint import routes as signaling_routes
from app.signaling.listener import lifespan as signaling_lifespan
from app.tasks import Tasks
from app.throttle import Throttle

log = get_logger("konsil")

# Packages that own long-lived services (hubs, peer registries) add a context manager here;
# the lifespan enters them in order after the core resources and exits them in reverse.
PACKAGE_LIFESPANS: list[Callable[[Resources], AbstractAsyncContextManager[None]]] = [
    drain_on_sigterm,
    legal_lifespan,
    oidc_lifespan,
    records_lifespan,
    precheck_lifespan,
    signaling_lifespan,
    idle_sweep_lifespan,
    on_call_sweep_lifespan,
    retention_lifespan,
    notify_lifespan,
    delay_notice_lifespan,  # after notify_lifespan: it rings that one's sender
]


class Konsil(Starlette):
    """Starlette, with the websockets in ``direct`` served ahead of its middleware, exception
    and routing chain.

    A waiting patient's signalling socket is open for long, and each layer of that chain
    (Starlette's error and exception middlewares, the router, the route's session wrapper and
    its second ``WebSocket``) is a coroutine frame held as long: ~4.5 KiB per patient
    (docs/performance.md, memory per waiting patient). ``direct`` maps a path to an ASGI app
    that needs none of it (``app.signaling.endpoint.asgi``); the same path stays in the
    routes, so everything else that reads the routes sees it. A middleware that is to act on
    those websockets cannot be added to the chain: it must wrap ``direct``'s app."""

    def __init__(self, *, direct: Mapping[str, ASGIApp], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.direct = dict(direct)

    @staticmethod
    def _route_path(scope: Scope) -> str:
        # The path the routes see: without the root path the app is mounted under.
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
            return path[len(root) :]
        return path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A coroutine (one frame the socket holds): servers tell an ASGI 3 app by that.
        if scope["type"] == "websocket":
            direct = self.direct.get(self._route_path(scope))
            if direct is not None:
                scope["app"] = self
                await direct(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> Starlette:
    """Builds the Konsil application for ``settings`` (read from the environment if omitted)."""
    cfg = settings or Settings()
    configure_logging(json=cfg.log_json, level=cfg.log_level)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = create_engine(cfg.database_url)
        broker = create_broker(cfg.broker_url)
        await broker.connect()
        doorbell = Doorbell()
        sessions = session_factory(engine, events_committed=doorbell.ring)
        passwords = PasswordWorkers(workers=cfg.password_workers, queue=cfg.password_queue)
        try:
            # Every background task of the process runs in this one group (``app.tasks``).
            async with anyio.create_task_group() as group:
                res = Resources(
                    settings=cfg,
                    engine=engine,
                    sessions=sessions,
                    broker=broker,
                    tasks=Tasks(group),
                    throttle=Throttle(broker, cfg.secret_key.get_secret_value()),
                    passwords=passwords,
                    events=Dispatcher(sessions, doorbell, sweep_seconds=cfg.outbox_sweep_seconds),
                )
                app.state.resources = res
                try:
                    async with AsyncExitStack() as stack:
                        for package_lifespan in PACKAGE_LIFESPANS:
                            await stack.enter_async_context(package_lifespan(res))
                        # Started once every package has subscribed its listeners; it ends
                        # (its round done) before the packages close.
                        dispatching = res.tasks.spawn("events.dispatcher", res.events.run)
                        log.info("konsil.started", environment=cfg.environment)
                        yield
                        res.draining = True
                        res.events.stop()
                        await dispatching.stop()
                finally:
                    group.cancel_scope.cancel()  # whatever the packages left running
        finally:
            passwords.close()
            await broker.close()
            await engine.dispose()
            log.info("konsil.stopped")

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document(request.app.routes))

    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/openapi.json", openapi),
        *ops_routes,
        *precheck_routes,
        *account_routes,
        *factor_routes,
        *admin_routes,
        *audit_routes,
        *scheduling_routes,
        *record_routes,
        *billing_routes,
        *notify_routes,
        *printed_routes,
        *room_routes,
        *presence_routes,
        *signaling_routes,
        *fhir_auth_routes,
        *fhir_token_routes,
        *fhir_routes,
        *admin_page_routes,
        *page_routes,
    ]
    app = Konsil(
        direct=direct_sockets,
        debug=False,
        routes=api.by_path(routes),
        lifespan=lifespan,
        exception_handlers=page_exception_handlers(EXCEPTION_HANDLERS),
        middleware=[
            Middleware(SecurityHeadersMiddleware, settings=cfg),
            Middleware(LoginShedding),
        ],
    )
    # Outermost, so errors answered by inner middleware are counted too.
    app.add_middleware(RequestMetricsMiddleware, access_log=cfg.log_access)
    return app
