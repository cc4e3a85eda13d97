"""The delivery-status API: a booking's messages, and sending one again (booking GP)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from app.accounts.models import Role
from app.accounts.web import require_staff
from app.api import api_route, path_id, respond
from app.db import unit_of_work, utcnow
from app.notify import service
from app.notify.schemas import MessageOut, MessagesOut
from app.resources import db, resources, settings


async def list_messages(request: Request) -> Response:
    who = await require_staff(request, Role.GP)
    appointment_id = path_id(request)
    async with db(request)() as session:
        found = await service.messages(
            session, settings=settings(request), who=who, appointment_id=appointment_id
        )
    return respond(found)


async def resend(request: Request) -> Response:
    who = await require_staff(request, Role.GP)
    appointment_id = path_id(request)
    message_id = path_id(request, "message_id")
    async with unit_of_work(db(request)) as session:
        message = await service.resend(
            session,
            settings=settings(request),
            who=who,
            appointment_id=appointment_id,
            message_id=message_id,
            now=utcnow(),
        )
    sender = resources(request).notify
    if sender is not None:
        sender.doorbell.ring()
    return respond(message, status=201)


TAGS = ["messages"]
ONE = "/api/v1/appointments/{id:int}/messages"
routes: list[BaseRoute] = [
    api_route(
        ONE,
        list_messages,
        summary="What was sent about a booking, when, and whether it failed (booking GP)",
        tags=TAGS,
        response=MessagesOut,
        errors=[401, 403, 404],
    ),
    api_route(
        ONE + "/{message_id:int}/resend",
        resend,
        method="POST",
        summary="Send a message again (booking GP); a link message carries the current link",
        tags=TAGS,
        response=MessageOut,
        status=201,
        errors=[401, 403, 404, 409],
    ),
]
