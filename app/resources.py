"""The resources the lifespan owns, and typed accessors for routes and websocket endpoints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from app.settings import Settings

if TYPE_CHECKING:
    from app.accounts.oidc_client import OidcClient
    from app.accounts.passwords import PasswordWorkers
    from app.broker import Broker
    from app.events.dispatcher import Dispatcher
    from app.notify.sender import Sender
    from app.precheck.echo import EchoRegistry
    from app.signaling.hub import Hub
    from app.tasks import Tasks
    from app.throttle import Throttle


@dataclass
class Resources:
    """Everything long-lived. Created and closed by the lifespan in ``app.main``."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    broker: Broker
    # The background tasks, all in the lifespan's task group.
    tasks: Tasks
    # Guessing throttles (logins, join links), shared through the broker.
    throttle: Throttle
    # Password hashing in bounded worker threads, off the event loop.
    passwords: PasswordWorkers
    # Delivers committed domain events to the listeners that packages subscribe at start-up.
    events: Dispatcher
    # Set by the package lifespans while they run (None before and after).
    hub: Hub | None = None
    echo: EchoRegistry | None = None
    # The OpenID provider's client when single sign-on is configured.
    oidc: OidcClient | None = None
    # The e-mail sender when SMTP is configured (app/notify).
    notify: Sender | None = None
    # True once the process is shutting down (SIGTERM): /readyz answers 503.
    draining: bool = False


def resources(conn: HTTPConnection) -> Resources:
    res = conn.app.state.resources
    assert isinstance(res, Resources), "lifespan has not run"
    return res


def settings(conn: HTTPConnection) -> Settings:
    return resources(conn).settings


def db(conn: HTTPConnection) -> async_sessionmaker[AsyncSession]:
    return resources(conn).sessions


def broker(conn: HTTPConnection) -> Broker:
    return resources(conn).broker
