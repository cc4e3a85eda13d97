"""The admin's account and practice management (JSON API; docs/api.md, "Accounts and
administration"). Changes to accounts need a recent second factor (``require_recent_auth``);
the second-factor reset is in ``app.accounts.routes_factors``."""

from __future__ import annotations

from sqlmodel import col, select
from starlette.requests import Request
from starlette.responses import Response

from app.accounts import admin
from app.accounts import service as accounts
from app.accounts.models import Practice, Role
from app.accounts.schemas import (
    PracticeIn,
    PracticeOut,
    PracticePatch,
    UserIn,
    UserOut,
    UserPatch,
)
from app.accounts.web import require_recent_auth, require_staff
from app.api import api_route, parse_json, path_id, respond
from app.audit import service as audit
from app.db import unit_of_work
from app.resources import db, resources


async def create_user(request: Request) -> Response:
    who = await require_staff(request, Role.ADMIN)
    require_recent_auth(request, who)
    body = await parse_json(request, UserIn)
    accounts.check_new_password(body.password)
    async with db(request)() as session:
        await admin.check_assignment(
            session, role=body.role, practice_id=body.practice_id, specialty_id=body.specialty_id
        )
    password_hash = await resources(request).passwords.hash(body.password)
    async with unit_of_work(db(request)) as session:
        user = await accounts.create_user(
            session, password_hash=password_hash, **body.model_dump(exclude={"password"})
        )
        audit.record(
            session, action="user.created", actor_kind="staff", actor_id=who.user_id, target=user.id
        )
        (created,) = await admin.users_out(session, [user])
    return respond(created, status=201)


async def list_users(request: Request) -> Response:
    await require_staff(request, Role.ADMIN)
    async with db(request)() as session:
        return respond(await admin.all_users(session))


async def patch_user(request: Request) -> Response:
    who = await require_staff(request, Role.ADMIN)
    require_recent_auth(request, who)
    user_id = path_id(request)
    body = await parse_json(request, UserPatch)
    assert who.user_id is not None
    async with unit_of_work(db(request)) as session:
        user = await admin.update_user(session, actor_id=who.user_id, user_id=user_id, patch=body)
        (changed,) = await admin.users_out(session, [user])
    return respond(changed)


async def create_practice(request: Request) -> Response:
    who = await require_staff(request, Role.ADMIN)
    body = await parse_json(request, PracticeIn)
    assert who.user_id is not None
    async with unit_of_work(db(request)) as session:
        practice = await admin.create_practice(session, actor_id=who.user_id, data=body)
    return respond(PracticeOut.model_validate(practice), status=201)


async def patch_practice(request: Request) -> Response:
    who = await require_staff(request, Role.ADMIN)
    practice_id = path_id(request)
    body = await parse_json(request, PracticePatch)
    assert who.user_id is not None
    async with unit_of_work(db(request)) as session:
        practice = await admin.update_practice(
            session, actor_id=who.user_id, practice_id=practice_id, patch=body
        )
    return respond(PracticeOut.model_validate(practice))


async def list_practices(request: Request) -> Response:
    await require_staff(request)
    async with db(request)() as session:
        rows = (
            (await session.execute(select(Practice).order_by(col(Practice.name)))).scalars().all()
        )
    return respond([PracticeOut.model_validate(p) for p in rows])


routes = [
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
        summary="Change a staff account: name, role, practice, specialty, active (a new role or "
        "deactivation ends its sessions)",
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
        "/api/v1/practices/{id:int}",
        patch_practice,
        method="PATCH",
        summary="Change a practice's name, town or phone number",
        tags=["admin"],
        body=PracticePatch,
        response=PracticeOut,
        errors=[401, 403, 404],
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
