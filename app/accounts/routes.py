"""Login, logout, who-am-I, and the admin's account management (JSON API)."""

from __future__ import annotations

from pydantic import EmailStr, Field
from sqlmodel import col, select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.accounts import factors
from app.accounts import service as accounts
from app.accounts.models import FactorKind, Practice, Role, SessionKind, SessionStage, User
from app.accounts.web import (
    check_origin,
    clear_session_cookie,
    client_ip,
    device_cookie_name,
    principal,
    require_recent_auth,
    require_signing_in,
    require_staff,
    set_device_cookie,
    set_session_cookie,
)
from app.api import api_route, parse_json, path_id, respond
from app.audit import service as audit
from app.db import unit_of_work
from app.errors import Conflict, NotAuthenticated
from app.resources import db, resources
from app.schemas import Id, Out, Schema


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


class UserIn(Schema):
    email: EmailStr
    password: str = Field(min_length=10, max_length=1024)
    display_name: str = Field(min_length=1, max_length=200)
    role: Role
    practice_id: Id | None = None
    specialty_id: Id | None = None


class UserOut(Out):
    id: int
    email: str
    display_name: str
    role: Role
    practice_id: int | None
    specialty_id: int | None
    is_active: bool


class UserPatch(Schema):
    is_active: bool


class PracticeIn(Schema):
    name: str = Field(min_length=1, max_length=200)
    town: str = Field(min_length=1, max_length=120)


class PracticeOut(Out):
    id: int
    name: str
    town: str


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


async def create_user(request: Request) -> Response:
    who = await require_staff(request, Role.ADMIN)
    require_recent_auth(request, who)
    body = await parse_json(request, UserIn)
    accounts.check_new_password(body.password)
    password_hash = await resources(request).passwords.hash(body.password)
    async with unit_of_work(db(request)) as session:
        user = await accounts.create_user(
            session, password_hash=password_hash, **body.model_dump(exclude={"password"})
        )
        audit.record(
            session, action="user.created", actor_kind="staff", actor_id=who.user_id, target=user.id
        )
    return respond(UserOut.model_validate(user), status=201)


async def list_users(request: Request) -> Response:
    await require_staff(request, Role.ADMIN)
    async with db(request)() as session:
        users = (await session.execute(select(User).order_by(col(User.id)))).scalars().all()
    return respond([UserOut.model_validate(u) for u in users])


async def patch_user(request: Request) -> Response:
    who = await require_staff(request, Role.ADMIN)
    require_recent_auth(request, who)
    user_id = path_id(request)
    body = await parse_json(request, UserPatch)
    if user_id == who.user_id and not body.is_active:
        raise Conflict("Sie können Ihr eigenes Konto nicht deaktivieren.")
    async with unit_of_work(db(request)) as session:
        user = await accounts.set_active(session, user_id=user_id, active=body.is_active)
        audit.record(
            session,
            action="user.activated" if body.is_active else "user.deactivated",
            actor_kind="staff",
            actor_id=who.user_id,
            target=user_id,
        )
    return respond(UserOut.model_validate(user))


async def create_practice(request: Request) -> Response:
    await require_staff(request, Role.ADMIN)
    body = await parse_json(request, PracticeIn)
    async with unit_of_work(db(request)) as session:
        practice = Practice(name=body.name, town=body.town)
        session.add(practice)
        await session.flush()
    return respond(PracticeOut.model_validate(practice), status=201)


async def list_practices(request: Request) -> Response:
    await require_staff(request)
    async with db(request)() as session:
        rows = (
            (await session.execute(select(Practice).order_by(col(Practice.name)))).scalars().all()
        )
    return respond([PracticeOut.model_validate(p) for p in rows])


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
        "/api/v1/auth/me",
        me,
        summary="The logged-in staff member and the CSRF token",
        tags=["auth"],
        response=MeOut,
        errors=[401],
    ),
    api_route(
        "/api/v1/admin/users",
        create_user,
        method="POST",
        summary="Create a staff account",
        tags=["admin"],
        body=UserIn,
        response=UserOut,
        status=201,
        errors=[401, 403, 409],
    ),
    api_route(
        "/api/v1/admin/users",
        list_users,
        summary="List staff accounts",
        tags=["admin"],
        response=UserOut,
        many=True,
        errors=[401, 403],
    ),
    api_route(
        "/api/v1/admin/users/{id:int}",
        patch_user,
        method="PATCH",
        summary="Activate or deactivate a staff account (ends its sessions)",
        tags=["admin"],
        body=UserPatch,
        response=UserOut,
        errors=[401, 403, 404, 409],
    ),
    api_route(
        "/api/v1/practices",
        create_practice,
        method="POST",
        summary="Create a practice",
        tags=["admin"],
        body=PracticeIn,
        response=PracticeOut,
        status=201,
        errors=[401, 403],
    ),
    api_route(
        "/api/v1/practices",
        list_practices,
        summary="List practices",
        tags=["admin"],
        response=PracticeOut,
        many=True,
        errors=[401],
    ),
]
