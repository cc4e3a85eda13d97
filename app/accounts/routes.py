"""Login, logout and who-am-I (JSON API). The admin's account management is in
``app.accounts.routes_admin``."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.accounts import factors
from app.accounts import service as accounts
from app.accounts.models import FactorKind, Role, SessionKind, SessionStage, User
from app.accounts.web import (
    check_origin,
    clear_session_cookie,
    client_ip,
    device_cookie_name,
    principal,
    require_signing_in,
    set_device_cookie,
    set_session_cookie,
)
from app.api import api_route, parse_json, respond
from app.audit import service as audit
from app.db import unit_of_work, utcnow
from app.errors import NotAuthenticated
from app.resources import db, resources
from app.schemas import Out, Schema


class LoginIn(Schema):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1024)


class MeOut(Out):
    id: int
    email: str
    display_name: str
    role: Role
    practice_id: int | None
    specialty_id: int | None
    csrf_token: str
    # "full"; after the password only: "second_factor" (send a code) or "enrol" (set one up).
    stage: SessionStage
    # The idle timeout in minutes: the page warns before it ends the session.
    idle_minutes: int
    # At stage "second_factor": which kinds the account has (the page offers those).
    second_factors: list[FactorKind]


async def login(request: Request) -> Response:
    check_origin(request)
    body = await parse_json(request, LoginIn)
    res = resources(request)
    result = await accounts.login(
        res.sessions,
        settings=res.settings,
        throttle=res.throttle,
        passwords=res.passwords,
        email=body.email,
        password=body.password,
        ip=client_ip(request),
        devices=request.cookies.get(device_cookie_name(res.settings)),
        user_agent=request.headers.get("user-agent", ""),
    )
    response = JSONResponse(await me_out(request, result.new_session.principal))
    set_session_cookie(request, response, result.new_session)
    set_device_cookie(request, response, result.device_token)
    return response


class LogoutOut(Out):
    # Where the browser goes next to end the session at the hospital's OpenID provider too.
    logout_url: str


async def logout(request: Request) -> Response:
    """Ends the session. A single sign-on session also ends at the provider (RP-initiated
    logout): the answer is then 200 with the provider's logout URL instead of 204. Works at
    every stage of the sign-in (someone may give up at the second factor)."""
    who = await require_signing_in(request, *SessionStage)
    async with unit_of_work(db(request)) as session:
        await accounts.end_session(session, session_id=who.session_id)
        audit.record(session, action="logout", actor_kind="staff", actor_id=who.user_id)
    res = resources(request)
    logout_url = None
    if res.oidc is not None and who.oidc_issuer is not None:
        logout_url = await res.oidc.end_session_url(
            post_logout_redirect_uri=res.settings.base_url.rstrip("/") + "/login"
        )
    response: Response = (
        Response(status_code=204)
        if logout_url is None
        else respond(LogoutOut(logout_url=logout_url))
    )
    clear_session_cookie(request, response, SessionKind.STAFF)
    return response


class SessionStatusOut(Out):
    idle_seconds_left: int


async def session_status(request: Request) -> Response:
    """How long the session has before its idle end; asking does not count as activity (pages
    in other tabs and calls keep the session alive, and a page asks before it warns)."""
    who = await principal(request, SessionKind.STAFF, signing_in=True, activity=False)
    if who is None or who.last_seen_at is None:
        raise NotAuthenticated()
    idle = timedelta(minutes=resources(request).settings.session_idle_minutes)
    left = (who.last_seen_at + idle - utcnow()).total_seconds()
    return respond(SessionStatusOut(idle_seconds_left=max(0, int(left))))


async def me(request: Request) -> Response:
    who = await principal(request, SessionKind.STAFF, signing_in=True)
    if who is None:
        raise NotAuthenticated()
    return JSONResponse(await me_out(request, who))


async def me_out(request: Request, who: accounts.Principal) -> dict[str, object]:
    """The one shape of "who am I" (login, /auth/me, finishing the second factor)."""
    async with db(request)() as session:
        user = await session.get(User, who.user_id)
        kinds = (
            sorted({f.kind for f in await factors.confirmed(session, who.user_id)})
            if who.stage is SessionStage.SECOND_FACTOR and who.user_id is not None
            else []
        )
    assert user is not None
    assert user.id is not None
    out = MeOut(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        role=user.role,
        practice_id=user.practice_id,
        specialty_id=user.specialty_id,
        csrf_token=who.csrf_token,
        stage=who.stage,
        second_factors=kinds,
        idle_minutes=resources(request).settings.session_idle_minutes,
    )
    return out.model_dump(mode="json")


routes = [
    api_route(
        "/api/v1/auth/login",
        login,
        method="POST",
        summary="Log in (staff)",
        tags=["auth"],
        body=LoginIn,
        response=MeOut,
        auth="none",
        errors=[401, 403, 429],
    ),
    api_route(
        "/api/v1/auth/logout",
        logout,
        method="POST",
        summary="Log out and end the session (after single sign-on: 200 with the provider's "
        "logout URL, else 204)",
        tags=["auth"],
        response=LogoutOut,
        empty_status=204,
        errors=[401, 403],
    ),
    api_route(
        "/api/v1/auth/session",
        session_status,
        summary="Seconds before the idle end (asking does not count as activity)",
        tags=["auth"],
        response=SessionStatusOut,
        errors=[401],
    ),
    api_route(
        "/api/v1/auth/me",
        me,
        summary="The logged-in staff member and the CSRF token",
        tags=["auth"],
        response=MeOut,
        errors=[401],
    ),
]
