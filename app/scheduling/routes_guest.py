"""A consultation's guest (interpreter, carer): staff invite, revoke and admit; the guest
redeems the link and reads its own minimal view (JSON API). See ``app.scheduling.guests``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.accounts.models import Role
from app.accounts.web import (
    require_guest,
    require_staff,
)
from app.api import api_route, parse_json, path_id, respond
from app.db import unit_of_work
from app.errors import NotFound, NotYourRoom
from app.resources import db, settings
from app.scheduling import guests
from app.scheduling.routes_redeem import redeem as redeem_as
from app.scheduling.schemas import (
    GuestIn,
    GuestInvitationOut,
    GuestIssuedOut,
    GuestMeOut,
    RedeemIn,
)

STAFF = (Role.GP, Role.SPECIALIST)


async def issue(request: Request) -> Response:
    who = await require_staff(request, *STAFF)
    appointment_id = path_id(request)
    body = await parse_json(request, GuestIn)
    async with unit_of_work(db(request)) as session:
        issued = await guests.issue(
            session,
            settings=settings(request),
            who=who,
            appointment_id=appointment_id,
            name=body.name,
            kind=body.kind,
        )
    return respond(issued, status=201)


async def show(request: Request) -> Response:
    who = await require_staff(request, *STAFF)
    appointment_id = path_id(request)
    async with db(request)() as session:
        found = await guests.current(session, who=who, appointment_id=appointment_id)
    if found is None:
        return Response(status_code=204)
    return respond(guests.invitation_out(found))


async def revoke(request: Request) -> Response:
    who = await require_staff(request, *STAFF)
    appointment_id = path_id(request)
    async with unit_of_work(db(request)) as session:
        await guests.revoke(session, who=who, appointment_id=appointment_id)
    return Response(status_code=204)


async def admit(request: Request) -> Response:
    who = await require_staff(request, Role.SPECIALIST, Role.GP)
    appointment_id = path_id(request, "appointment_id")
    try:
        async with unit_of_work(db(request)) as session:
            invitation = await guests.admit(session, who=who, appointment_id=appointment_id)
            out = guests.invitation_out(invitation)
    except NotYourRoom:
        raise NotFound("Diesen Termin gibt es nicht.") from None  # as for the room's own calls
    return respond(out)


async def redeem(request: Request) -> Response:
    """Exchanges the token from the guest link's fragment for a guest session cookie."""
    return await redeem_as(request, guests.GUEST_LINK)


async def me(request: Request) -> Response:
    who = await require_guest(request)
    async with db(request)() as session:
        return respond(await guests.me(session, who=who))


ONE = "/api/v1/appointments/{id:int}/guest"
routes: list[Route] = [
    api_route(
        ONE,
        show,
        summary="The appointment's guest invitation (specialist or booking GP); 204: none",
        tags=["guests"],
        response=GuestInvitationOut,
        empty_status=204,
        errors=[401, 403, 404],
    ),
    api_route(
        ONE,
        issue,
        method="POST",
        summary="Invite a guest (interpreter, carer): a single-use link, shown once; an "
        "earlier guest link stops working",
        tags=["guests"],
        body=GuestIn,
        response=GuestIssuedOut,
        status=201,
        errors=[401, 403, 404, 409, 422],
    ),
    api_route(
        ONE,
        revoke,
        method="DELETE",
        summary="Revoke the guest's link and end the guest's session",
        tags=["guests"],
        status=204,
        errors=[401, 403, 404],
    ),
    api_route(
        "/api/v1/rooms/{appointment_id:int}/guest/admit",
        admit,
        method="POST",
        summary="Let the waiting guest into the call (the specialist)",
        tags=["rooms"],
        response=GuestInvitationOut,
        errors=[401, 403, 404, 409],
    ),
    api_route(
        "/api/v1/guest/session",
        redeem,
        method="POST",
        summary="Redeem a guest link: opens the guest session (cookie konsil_guest); the "
        "link is bound to this browser from then on",
        tags=["guest"],
        body=RedeemIn,
        response=GuestMeOut,
        auth="none",
        errors=[403, 404, 409, 410, 429],
    ),
    api_route(
        "/api/v1/guest/me",
        me,
        summary="The guest's appointment (time, specialist, own name) and CSRF token",
        tags=["guest"],
        response=GuestMeOut,
        auth="guest",
        errors=[401, 404],
    ),
]
