"""Rooms JSON API: the specialist's queue and late notice, admit / send back / end / no-show /
transfer, ICE servers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from app.accounts.models import Role, SessionKind
from app.accounts.web import principal, require_staff
from app.api import api_route, parse_json, path_id, respond
from app.db import unit_of_work, utcnow
from app.errors import NotAuthenticated, NotFound, NotYourRoom, RoomClosed
from app.resources import db, settings
from app.rooms import delay
from app.rooms import service as rooms
from app.rooms.schemas import DelayIn, DelayOut, IceOut, QueueOut, RoomOut, TransferIn
from app.rooms.state import Action, is_closed
from app.scheduling import guests
from app.scheduling.models import Appointment
from app.turn import ice_servers

ROOM_ERRORS = [401, 403, 404, 409]  # 403: a participant the action is not for


async def queue(request: Request) -> Response:
    who = await require_staff(request, Role.SPECIALIST)
    assert who.user_id is not None
    async with db(request)() as session:
        snapshot = await rooms.queue(
            session, specialist_id=who.user_id, tz=settings(request).tz, now=utcnow()
        )
    return respond(snapshot)


async def set_delay(request: Request) -> Response:
    who = await require_staff(request, Role.SPECIALIST)
    body = await parse_json(request, DelayIn)
    async with unit_of_work(db(request)) as session:
        notice = await delay.set_delay(
            session,
            who=who,
            minutes=body.minutes,
            note=body.note,
            now=utcnow(),
            tz=settings(request).tz,
        )
    return respond(notice)


async def clear_delay(request: Request) -> Response:
    who = await require_staff(request, Role.SPECIALIST)
    async with unit_of_work(db(request)) as session:
        await delay.clear_delay(session, who=who, now=utcnow(), tz=settings(request).tz)
    return Response(status_code=204)


def _room_out(appointment: Appointment) -> RoomOut:
    assert appointment.id is not None
    return RoomOut(
        appointment_id=appointment.id,
        room_state=appointment.room_state,
        specialist_id=appointment.specialist_id,
        waiting_since=appointment.waiting_since,
        admitted_at=appointment.admitted_at,
        ended_at=appointment.ended_at,
    )


@contextmanager
def _hidden_unless_yours() -> Iterator[None]:
    """Someone else's room answers like one that does not exist, so ids cannot be probed
    (as for appointments; the websocket keeps its documented 4403)."""
    try:
        yield
    except NotYourRoom:
        raise NotFound("Diesen Termin gibt es nicht.") from None


async def _act(request: Request, action: Action) -> Response:
    who = await require_staff(request, Role.SPECIALIST, Role.GP)
    appointment_id = path_id(request, "appointment_id")
    with _hidden_unless_yours():
        async with unit_of_work(db(request)) as session:
            if action is Action.NO_SHOW:
                appointment = await rooms.no_show(
                    session, appointment_id=appointment_id, who=who, now=utcnow()
                )
            else:
                appointment = await rooms.act(
                    session, appointment_id=appointment_id, action=action, who=who, now=utcnow()
                )
    return respond(_room_out(appointment))


async def admit(request: Request) -> Response:
    return await _act(request, Action.ADMIT)


async def end(request: Request) -> Response:
    return await _act(request, Action.END)


async def send_back(request: Request) -> Response:
    return await _act(request, Action.SEND_BACK)


async def no_show(request: Request) -> Response:
    return await _act(request, Action.NO_SHOW)


async def transfer(request: Request) -> Response:
    who = await require_staff(request, Role.SPECIALIST)
    body = await parse_json(request, TransferIn)
    with _hidden_unless_yours():
        async with unit_of_work(db(request)) as session:
            appointment = await rooms.transfer(
                session,
                appointment_id=path_id(request, "appointment_id"),
                who=who,
                to_specialist_id=body.specialist_id,
            )
    return respond(_room_out(appointment))


async def ice(request: Request) -> Response:
    """For participants only: staff cookie first, then the patient's, then a guest's (one
    browser may hold several, e.g. a GP with the patient at the practice)."""
    appointment_id = path_id(request, "appointment_id")
    candidates = [
        await principal(request, SessionKind.STAFF),
        await principal(request, SessionKind.PATIENT),
        await principal(request, SessionKind.GUEST),
    ]
    present = [who for who in candidates if who is not None]
    if not present:
        raise NotAuthenticated()
    async with db(request)() as session:
        appointment = await rooms.load(session, appointment_id)
        # A guest session whose invitation was revoked meanwhile gets no relay credentials.
        invited = [
            who.session_id
            for who in present
            if who.is_guest and await guests.of_session(session, who.session_id) is not None
        ]
    for who in present:
        try:
            rooms.actor_for(appointment, who)
        except NotYourRoom:
            continue
        if who.is_guest and who.session_id not in invited:
            continue
        if is_closed(appointment.room_state):
            raise RoomClosed()  # no relay credentials for a consultation that is over
        cfg = settings(request)
        servers = ice_servers(cfg, appointment_id)
        return respond(IceOut(iceServers=servers, ttl=cfg.turn_ttl_seconds))
    raise NotFound("Diesen Termin gibt es nicht.")  # someone else's room: as if unknown


_ROOM = "/api/v1/rooms/{appointment_id:int}"

routes: list[BaseRoute] = [
    api_route(
        "/api/v1/queue",
        queue,
        summary="The specialist's day in local time and who is waiting now",
        tags=["rooms"],
        response=QueueOut,
        errors=[401, 403],
    ),
    api_route(
        "/api/v1/queue/delay",
        set_delay,
        method="PUT",
        summary="Tell today's waiting patients that you are running late (about N minutes, "
        "a short note, or both)",
        tags=["rooms"],
        body=DelayIn,
        response=DelayOut,
        errors=[401, 403, 422],
    ),
    api_route(
        "/api/v1/queue/delay",
        clear_delay,
        method="DELETE",
        summary="Withdraw today's late notice (on time again)",
        tags=["rooms"],
        status=204,
        errors=[401, 403],
    ),
    api_route(
        f"{_ROOM}/admit",
        admit,
        method="POST",
        summary="Admit the waiting patient (specialist or booking GP)",
        tags=["rooms"],
        response=RoomOut,
        errors=ROOM_ERRORS,
    ),
    api_route(
        f"{_ROOM}/send-back",
        send_back,
        method="POST",
        summary="Send the patient from the call back to the waiting room (specialist); "
        "admit again as before",
        tags=["rooms"],
        response=RoomOut,
        errors=ROOM_ERRORS,
    ),
    api_route(
        f"{_ROOM}/end",
        end,
        method="POST",
        summary="End the consultation (specialist); everybody is disconnected with 4410",
        tags=["rooms"],
        response=RoomOut,
        errors=ROOM_ERRORS,
    ),
    api_route(
        f"{_ROOM}/no-show",
        no_show,
        method="POST",
        summary="Mark that the patient did not come (specialist, once the slot has begun)",
        tags=["rooms"],
        response=RoomOut,
        errors=[*ROOM_ERRORS, 422],
    ),
    api_route(
        f"{_ROOM}/transfer",
        transfer,
        method="POST",
        summary="Hand over to a specialist of the same specialty, before the call only",
        tags=["rooms"],
        body=TransferIn,
        response=RoomOut,
        errors=ROOM_ERRORS,
    ),
    api_route(
        f"{_ROOM}/ice",
        ice,
        summary="ICE servers (STUN, TURN with time-limited credentials) for a participant",
        tags=["rooms"],
        response=IceOut,
        auth="call",
        errors=[401, 404, 409],
    ),
]
