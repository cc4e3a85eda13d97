"""Presence JSON API: the specialist's own toggle, and the counts per specialty."""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from app.accounts.models import Role
from app.accounts.web import require_staff
from app.api import api_route, parse_json, respond
from app.db import unit_of_work, utcnow
from app.presence import service
from app.presence.schemas import PresenceIn, PresenceOut, SpecialtyPresence
from app.resources import db, settings


def _idle(request: Request) -> timedelta:
    return timedelta(minutes=settings(request).session_idle_minutes)


async def own_presence(request: Request) -> Response:
    who = await require_staff(request, Role.SPECIALIST)
    async with db(request)() as session:
        return respond(await service.own(session, who=who, now=utcnow(), idle=_idle(request)))


async def set_presence(request: Request) -> Response:
    who = await require_staff(request, Role.SPECIALIST)
    body = await parse_json(request, PresenceIn)
    async with unit_of_work(db(request)) as session:
        found = await service.set_presence(
            session, who=who, chosen=body.status, now=utcnow(), idle=_idle(request)
        )
    return respond(found)


async def specialties_presence(request: Request) -> Response:
    await require_staff(request, Role.GP, Role.SPECIALIST, Role.ADMIN)
    async with db(request)() as session:
        found = await service.by_specialty(session, now=utcnow(), idle=_idle(request))
    return respond(found)


routes: list[BaseRoute] = [
    api_route(
        "/api/v1/presence",
        own_presence,
        summary="Your own presence now (specialist): on duty, in a consultation or away",
        tags=["presence"],
        response=PresenceOut,
        errors=[401, 403],
    ),
    api_route(
        "/api/v1/presence",
        set_presence,
        method="PUT",
        summary="Set your presence (specialist): on duty or away; in a consultation follows "
        "from the rooms",
        tags=["presence"],
        body=PresenceIn,
        response=PresenceOut,
        errors=[401, 403, 422],
    ),
    api_route(
        "/api/v1/specialties/presence",
        specialties_presence,
        summary="How many specialists of each specialty are on duty and in a consultation now "
        "(counts only)",
        tags=["presence"],
        response=SpecialtyPresence,
        many=True,
        errors=[401],
    ),
]
