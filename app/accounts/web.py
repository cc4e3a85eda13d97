"""Authentication at the edge: session cookies, CSRF and Origin checks, role checks.

Routes and the websocket endpoint call these; services never see a request.
"""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from app.accounts import devices
from app.accounts import service as accounts
from app.accounts.models import Role, SessionKind, SessionStage
from app.accounts.service import NewSession, Principal
from app.db import utcnow
from app.errors import (
    CsrfFailed,
    EnrolmentRequired,
    Forbidden,
    NotAuthenticated,
    ReauthRequired,
    SecondFactorRequired,
)
from app.resources import db, settings
from app.settings import Settings
from app.tokens import same

COOKIE = {
    SessionKind.STAFF: "konsil_staff",
    SessionKind.PATIENT: "konsil_patient",
    SessionKind.GUEST: "konsil_guest",
}
GUEST_REFUSED = "Als Gast können Sie nur an der Videosprechstunde teilnehmen."
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOGIN_PATH = "/api/v1/auth/login"


def cookie_name(cfg: Settings, kind: SessionKind) -> str:
    """The session cookie's name: with the ``__Host-`` prefix over HTTPS, so the browser only
    takes it from this host, with Secure and Path=/ and no Domain (no subdomain can set it)."""
    return f"__Host-{COOKIE[kind]}" if cfg.cookie_secure else COOKIE[kind]


def device_cookie_name(cfg: Settings) -> str:
    # Path-bound to the login, so ``__Host-`` is not possible; ``__Secure-`` still is.
    return f"__Secure-{devices.COOKIE}" if cfg.cookie_secure else devices.COOKIE


def client_ip(conn: HTTPConnection) -> str | None:
    # Behind the reverse proxy uvicorn's --proxy-headers fills in the real client address.
    return conn.client.host if conn.client else None


async def principal(
    conn: HTTPConnection, kind: SessionKind, *, signing_in: bool = False, activity: bool = True
) -> Principal | None:
    """The principal of this connection's session cookie of ``kind``, if any (cached).

    Staff sessions that have not finished signing in (second factor, enrolment) count only
    with ``signing_in``. Without ``activity`` the request does not count for the idle timeout
    (the first call of a request decides).
    """
    cache_key = f"principal_{kind.value}"
    state = conn.scope.setdefault("state", {})
    if cache_key not in state:
        token = conn.cookies.get(cookie_name(settings(conn), kind))
        found = None
        if token:
            idle = timedelta(minutes=settings(conn).session_idle_minutes)
            async with db(conn)() as session:
                found = await accounts.resolve(
                    session, token=token, kind=kind, idle=idle, touch_it=activity
                )
        state[cache_key] = found
    who: Principal | None = state[cache_key]
    if who is not None and who.stage is not SessionStage.FULL and not signing_in:
        return None
    return who


async def require_staff(request: Request, *roles: Role) -> Principal:
    """The signed-in staff member, with CSRF and Origin checked on state-changing requests."""
    who = await principal(request, SessionKind.STAFF, signing_in=True)
    if who is None:
        await refuse_guest(request)
        raise NotAuthenticated()
    if who.stage is SessionStage.SECOND_FACTOR:
        raise SecondFactorRequired()
    if who.stage is SessionStage.ENROL:
        raise EnrolmentRequired()
    if roles and who.role not in roles:
        raise Forbidden()
    await check_csrf(request, who)
    return who


async def require_signing_in(request: Request, *stages: SessionStage) -> Principal:
    """A staff session at one of ``stages`` (CSRF checked): the second-factor and enrolment
    endpoints, which a session that has only shown its password may call."""
    who = await principal(request, SessionKind.STAFF, signing_in=True)
    if who is None:
        raise NotAuthenticated()
    if who.stage not in stages:
        raise Forbidden("Dieser Schritt der Anmeldung ist schon erledigt.")
    await check_csrf(request, who)
    return who


def require_recent_auth(request: Request, who: Principal) -> None:
    """Sensitive actions need the password or a second factor shown recently (re-auth)."""
    window = timedelta(minutes=settings(request).reauth_minutes)
    if who.stage is SessionStage.FULL and (
        who.verified_at is None or who.verified_at + window <= utcnow()
    ):
        raise ReauthRequired()


async def require_patient(request: Request) -> Principal:
    who = await principal(request, SessionKind.PATIENT)
    if who is None:
        await refuse_guest(request)
        raise NotAuthenticated("Bitte öffnen Sie den Link aus Ihrer Einladung erneut.")
    await check_csrf(request, who)
    return who


async def require_guest(request: Request) -> Principal:
    """The invited guest of a consultation (interpreter, carer), CSRF checked."""
    who = await principal(request, SessionKind.GUEST)
    if who is None:
        raise NotAuthenticated("Bitte öffnen Sie den Link aus Ihrer Einladung erneut.")
    await check_csrf(request, who)
    return who


async def refuse_guest(conn: HTTPConnection) -> None:
    """A guest session is signed in, but to the call only: everything else is forbidden
    (403), never "please log in" (401)."""
    if conn.cookies.get(cookie_name(settings(conn), SessionKind.GUEST)) is None:
        return
    if await principal(conn, SessionKind.GUEST) is not None:
        raise Forbidden(GUEST_REFUSED)


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
        cookie_name(cfg, new.principal.kind),
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
    name = device_cookie_name(settings(request))
    response.set_cookie(
        name,
        devices.remember(request.cookies.get(name), token, utcnow()),
        max_age=int(devices.LIFETIME.total_seconds()),
        path=LOGIN_PATH,
        secure=settings(request).cookie_secure,
        httponly=True,
        samesite="strict",
    )


def clear_session_cookie(request: HTTPConnection, response: Response, kind: SessionKind) -> None:
    response.delete_cookie(
        cookie_name(settings(request), kind),
        path="/",
        secure=settings(request).cookie_secure,
        httponly=True,
        samesite="lax",
    )
