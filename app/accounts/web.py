"""Authentication at the edge: session cookies, CSRF and Origin checks, role checks.

Routes and the websocket endpoint call these; services never see a request.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from app.accounts import devices
from app.accounts import service as accounts
from app.accounts.models import Role, SessionKind
from app.accounts.service import NewSession, Principal
from app.db import utcnow
from app.errors import CsrfFailed, Forbidden, NotAuthenticated
from app.resources import db, settings
from app.tokens import same

COOKIE = {SessionKind.STAFF: "konsil_staff", SessionKind.PATIENT: "konsil_patient"}
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOGIN_PATH = "/api/v1/auth/login"


def client_ip(conn: HTTPConnection) -> str | None:
    # Behind the reverse proxy uvicorn's --proxy-headers fills in the real client address.
    return conn.client.host if conn.client else None


async def principal(conn: HTTPConnection, kind: SessionKind) -> Principal | None:
    """The principal of this connection's session cookie of ``kind``, if any (cached)."""
    cache_key = f"principal_{kind.value}"
    if cache_key in conn.scope.setdefault("state", {}):
        cached: Principal | None = conn.scope["state"][cache_key]
        return cached
    token = conn.cookies.get(COOKIE[kind])
    found = None
    if token:
        async with db(conn)() as session:
            found = await accounts.resolve(session, token=token, kind=kind)
    conn.scope["state"][cache_key] = found
    return found


async def require_staff(request: Request, *roles: Role) -> Principal:
    """The logged-in staff member, with CSRF and Origin checked on state-changing requests."""
    who = await principal(request, SessionKind.STAFF)
    if who is None:
        raise NotAuthenticated()
    if roles and who.role not in roles:
        raise Forbidden()
    await check_csrf(request, who)
    return who


async def require_patient(request: Request) -> Principal:
    who = await principal(request, SessionKind.PATIENT)
    if who is None:
        raise NotAuthenticated("Bitte öffnen Sie den Link aus Ihrer Einladung erneut.")
    await check_csrf(request, who)
    return who


def check_origin(conn: HTTPConnection) -> None:
    """Browsers send Origin on cross-site requests and websockets; it must be ours."""
    origin = conn.headers.get("origin")
    if origin is not None and origin.rstrip("/") not in settings(conn).origins:
        raise Forbidden("Anfragen von dieser Herkunft sind nicht erlaubt.")


async def check_csrf(request: Request, who: Principal) -> None:
    if request.method in SAFE_METHODS:
        return
    check_origin(request)
    # Header only: reading a form field would parse (and spool) an unbounded body before the
    # token is known to be right.
    sent = request.headers.get(CSRF_HEADER)
    if sent is None or not same(sent, who.csrf_token):
        raise CsrfFailed()


def set_session_cookie(request: HTTPConnection, response: Response, new: NewSession) -> None:
    cfg = settings(request)
    ttl = cfg.session_ttl_minutes if new.principal.is_staff else cfg.patient_session_ttl_minutes
    response.set_cookie(
        COOKIE[new.principal.kind],
        new.token,
        max_age=ttl * 60,
        path="/",
        secure=cfg.cookie_secure,
        httponly=True,
        samesite="lax",
    )


def set_device_cookie(request: HTTPConnection, response: Response, token: str) -> None:
    """Adds this login's token to the browser's known-devices cookie (``app.accounts.devices``),
    sent back only to the login."""
    response.set_cookie(
        devices.COOKIE,
        devices.remember(request.cookies.get(devices.COOKIE), token, utcnow()),
        max_age=int(devices.LIFETIME.total_seconds()),
        path=LOGIN_PATH,
        secure=settings(request).cookie_secure,
        httponly=True,
        samesite="strict",
    )


def clear_session_cookie(request: HTTPConnection, response: Response, kind: SessionKind) -> None:
    response.delete_cookie(
        COOKIE[kind],
        path="/",
        secure=settings(request).cookie_secure,
        httponly=True,
        samesite="lax",
    )
