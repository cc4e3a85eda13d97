"""Scheduling JSON API: bookings and join links; assembles the package's route list."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from app import idempotency, metrics
from app.accounts.models import Role
from app.accounts.web import require_staff
from app.api import (
    MAX_JSON_BYTES,
    Header,
    api_route,
    parse_body,
    parse_json,
    parse_query,
    path_id,
    read_limited,
    respond,
)
from app.db import unit_of_work
from app.errors import Conflict, KonsilError
from app.resources import db, settings
from app.scheduling import on_call, service, written
from app.scheduling.routes_availability import routes as availability_routes
from app.scheduling.routes_guest import routes as guest_routes
from app.scheduling.routes_patient import routes as patient_routes
from app.scheduling.schemas import (
    AppointmentOut,
    AppointmentsQuery,
    BookingIn,
    BookingOut,
    CancelIn,
    LinkOut,
    OnCallIn,
    RescheduleIn,
    WrittenIn,
)
from app.schemas import Out, Schema

STAFF = (Role.GP, Role.SPECIALIST)
REPLAYED_HEADER = "Idempotent-Replayed"
REPLAYED = {REPLAYED_HEADER: "true"}
IDEMPOTENCY_KEY = Header(
    "Idempotency-Key",
    "Makes the booking retry-safe: for 24 hours a repeat with the same key and body gets the "
    "first answer (the same booking and join link, with Idempotent-Replayed: true); the same "
    "key with another body gets 422.",
    {"type": "string", "minLength": 8, "maxLength": 255, "pattern": idempotency.KEY_SHAPE.pattern},
)


async def book(request: Request) -> Response:
    """Books; with an ``Idempotency-Key`` a retry gets the first answer (``app.idempotency``)."""
    who = await require_staff(request, Role.GP)
    body = await parse_json(request, BookingIn)
    cfg = settings(request)

    async def create(session: AsyncSession) -> BookingOut:
        return await service.book(session, settings=cfg, who=who, details=body)

    answer = await created_once(request, f"booking:gp:{who.user_id}", body, create)
    if answer.status_code == 201 and REPLAYED_HEADER not in answer.headers:
        metrics.BOOKINGS.inc()
    return answer


async def request_on_call(request: Request) -> Response:
    """An on-call request; retry-safe with an ``Idempotency-Key`` like a booking."""
    who = await require_staff(request, Role.GP)
    body = await parse_json(request, OnCallIn)
    cfg = settings(request)

    async def create(session: AsyncSession) -> BookingOut:
        return await on_call.request(session, settings=cfg, who=who, details=body)

    return await created_once(request, f"on_call:gp:{who.user_id}", body, create)


async def request_written(request: Request) -> Response:
    """A written Telekonsil; retry-safe with an ``Idempotency-Key`` like a booking."""
    who = await require_staff(request, Role.GP)
    body = await parse_json(request, WrittenIn)
    cfg = settings(request)

    async def create(session: AsyncSession) -> AppointmentOut:
        return await written.request(session, settings=cfg, who=who, details=body)

    return await created_once(request, f"written:gp:{who.user_id}", body, create)


async def claim_written(request: Request) -> Response:
    who = await require_staff(request, Role.SPECIALIST)
    appointment_id = path_id(request)
    async with unit_of_work(db(request)) as session:
        claimed = await written.claim(session, who=who, appointment_id=appointment_id)
    return respond(claimed)


async def created_once(
    request: Request,
    scope: str,
    body: Schema,
    create: Callable[[AsyncSession], Awaitable[Out]],
) -> Response:
    """Runs ``create`` in a unit of work and answers 201; with an ``Idempotency-Key`` the
    answer is kept (in the same unit of work) and a repeat with the same key and body gets it
    again, marked ``Idempotent-Replayed``, instead of creating twice."""
    key = idempotency.request_key(request.headers.get(idempotency.HEADER))
    secret = settings(request).secret_key.get_secret_value()
    once = (
        {
            "secret": secret,
            "scope": scope,
            "key": key,
            "request_hash": idempotency.fingerprint(body.model_dump_json()),
        }
        if key is not None
        else None
    )

    async def replayed() -> Response | None:
        if once is None:
            return None
        async with db(request)() as session:
            found = await idempotency.replay(session, **once)
        if found is None:
            return None
        return JSONResponse(found.body, status_code=found.status, headers=REPLAYED)

    if (earlier := await replayed()) is not None:
        return earlier
    try:
        async with unit_of_work(db(request)) as session:
            answer = (await create(session)).model_dump(mode="json")
            if once is not None:
                await idempotency.remember(session, status=201, body=answer, **once)
    except KonsilError:
        # The same key in a request running at the same time: it created first.
        if (earlier := await replayed()) is not None:
            return earlier
        raise
    except IntegrityError:  # its answer was stored first (the key is unique per scope)
        if (earlier := await replayed()) is not None:
            return earlier
        raise Conflict("Diese Anfrage wird gerade schon bearbeitet.") from None
    return JSONResponse(answer, status_code=201)


async def claim_on_call(request: Request) -> Response:
    who = await require_staff(request, Role.SPECIALIST)
    appointment_id = path_id(request)
    async with unit_of_work(db(request)) as session:
        claimed = await on_call.claim(session, who=who, appointment_id=appointment_id)
    return respond(claimed)


async def withdraw_on_call(request: Request) -> Response:
    who = await require_staff(request, Role.GP)
    appointment_id = path_id(request)
    async with unit_of_work(db(request)) as session:
        withdrawn = await on_call.withdraw(session, who=who, appointment_id=appointment_id)
    return respond(withdrawn)


async def escalate_on_call(request: Request) -> Response:
    who = await require_staff(request, Role.GP)
    appointment_id = path_id(request)
    async with unit_of_work(db(request)) as session:
        asked = await on_call.escalate(
            session, settings=settings(request), who=who, appointment_id=appointment_id
        )
    return respond(asked)


async def list_appointments(request: Request) -> Response:
    who = await require_staff(request, *STAFF)
    query = parse_query(request, AppointmentsQuery)
    async with db(request)() as session:
        found = await service.list_bookings(
            session, settings=settings(request), who=who, query=query
        )
    return respond(found)


async def get_appointment(request: Request) -> Response:
    who = await require_staff(request, *STAFF)
    appointment_id = path_id(request)
    async with db(request)() as session:
        found = await service.booking_detail(session, who=who, appointment_id=appointment_id)
    return respond(found)


async def cancel(request: Request) -> Response:
    who = await require_staff(request, *STAFF)
    appointment_id = path_id(request)
    # The reason is optional, and so is the body.
    raw = await read_limited(request, MAX_JSON_BYTES)
    body = parse_body(raw, CancelIn) if raw.strip() else CancelIn()
    async with unit_of_work(db(request)) as session:
        cancelled = await service.cancel(
            session, who=who, appointment_id=appointment_id, reason=body.reason
        )
    return respond(cancelled)


async def reschedule(request: Request) -> Response:
    who = await require_staff(request, *STAFF)
    appointment_id = path_id(request)
    body = await parse_json(request, RescheduleIn)
    async with unit_of_work(db(request)) as session:
        moved = await service.reschedule(
            session,
            settings=settings(request),
            who=who,
            appointment_id=appointment_id,
            starts_at=body.starts_at,
        )
    return respond(moved)


async def reissue_link(request: Request) -> Response:
    who = await require_staff(request, *STAFF)
    appointment_id = path_id(request)
    async with unit_of_work(db(request)) as session:
        link = await service.reissue_link(
            session, settings=settings(request), who=who, appointment_id=appointment_id
        )
    return respond(link, status=201)


async def revoke_link(request: Request) -> Response:
    who = await require_staff(request, *STAFF)
    appointment_id = path_id(request)
    async with unit_of_work(db(request)) as session:
        await service.revoke_link(session, who=who, appointment_id=appointment_id)
    return Response(status_code=204)


async def calendar_file(request: Request) -> Response:
    who = await require_staff(request, *STAFF)
    appointment_id = path_id(request)
    async with db(request)() as session:
        ics = await service.staff_calendar(
            session, settings=settings(request), who=who, appointment_id=appointment_id
        )
    return Response(
        ics,
        media_type="text/calendar; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="telekonsil-{appointment_id}.ics"'},
    )


TAGS = ["appointments"]
ONE = "/api/v1/appointments/{id:int}"
appointment_routes: list[Route] = [
    api_route(
        "/api/v1/appointments",
        book,
        method="POST",
        summary="Book a free slot (GP); returns the patient's join link once",
        tags=TAGS,
        body=BookingIn,
        response=BookingOut,
        status=201,
        errors=[401, 403, 404, 409],
        headers=[IDEMPOTENCY_KEY],
    ),
    api_route(
        "/api/v1/appointments",
        list_appointments,
        summary="Own bookings (GP) or own appointments (specialist)",
        tags=TAGS,
        response=AppointmentOut,
        many=True,
        errors=[401, 403, 422],
        query=AppointmentsQuery,
    ),
    api_route(
        ONE,
        get_appointment,
        summary="One appointment (its GP or its specialist)",
        tags=TAGS,
        response=AppointmentOut,
        errors=[401, 403, 404],
    ),
    api_route(
        ONE + "/cancel",
        cancel,
        method="POST",
        summary="Cancel (its GP or its specialist, who thereby declines it), optionally with "
        "a reason for the other side: revokes the join link",
        tags=TAGS,
        body=CancelIn,
        body_required=False,
        response=AppointmentOut,
        errors=[401, 403, 404, 409],
    ),
    api_route(
        ONE + "/reschedule",
        reschedule,
        method="POST",
        summary="Move to another free slot (booking GP): new join link, old one revoked",
        tags=TAGS,
        body=RescheduleIn,
        response=BookingOut,
        errors=[401, 403, 404, 409],
    ),
    api_route(
        ONE + "/link",
        reissue_link,
        method="POST",
        summary="Issue a new join link (booking GP); earlier links stop working",
        tags=TAGS,
        response=LinkOut,
        status=201,
        errors=[401, 403, 404, 409],
    ),
    api_route(
        ONE + "/link",
        revoke_link,
        method="DELETE",
        summary="Revoke the join link and end the patient's session",
        tags=TAGS,
        status=204,
        errors=[401, 403, 404],
    ),
    api_route(
        ONE + "/calendar.ics",
        calendar_file,
        summary="iCalendar file for staff calendars (no health data)",
        tags=TAGS,
        content_type="text/calendar",
        errors=[401, 403, 404],
    ),
]

ON_CALL_TAGS = ["on-call"]
on_call_routes: list[Route] = [
    api_route(
        "/api/v1/on-call",
        request_on_call,
        method="POST",
        summary="Ask a specialty for a consult now (GP); returns the patient's join link, "
        "valid at once",
        tags=ON_CALL_TAGS,
        body=OnCallIn,
        response=BookingOut,
        status=201,
        errors=[401, 403, 404, 409],
        headers=[IDEMPOTENCY_KEY],
    ),
    api_route(
        "/api/v1/on-call/{id:int}/claim",
        claim_on_call,
        method="POST",
        summary="Take an open on-call request of one's specialty (specialist); the first wins, "
        "the others get 409 already_claimed",
        tags=ON_CALL_TAGS,
        response=AppointmentOut,
        errors=[401, 403, 404, 409],
    ),
    api_route(
        "/api/v1/on-call/{id:int}/withdraw",
        withdraw_on_call,
        method="POST",
        summary="Withdraw an on-call request nobody has taken yet (requesting GP); once taken "
        "it is cancelled like a booking",
        tags=ON_CALL_TAGS,
        response=AppointmentOut,
        errors=[401, 403, 404, 409],
    ),
    api_route(
        "/api/v1/on-call/{id:int}/escalate",
        escalate_on_call,
        method="POST",
        summary="Ask the specialty again, urgent and with a new time limit (requesting GP)",
        tags=ON_CALL_TAGS,
        response=AppointmentOut,
        errors=[401, 403, 404, 409],
    ),
]

WRITTEN_TAGS = ["written"]
written_routes: list[Route] = [
    api_route(
        "/api/v1/written-requests",
        request_written,
        method="POST",
        summary="Send a written Telekonsil (no video) to a specialty (GP): the first "
        "specialist of it to take it answers with a report",
        tags=WRITTEN_TAGS,
        body=WrittenIn,
        response=AppointmentOut,
        status=201,
        errors=[401, 403, 404, 409],
        headers=[IDEMPOTENCY_KEY],
    ),
    api_route(
        "/api/v1/written-requests/{id:int}/claim",
        claim_written,
        method="POST",
        summary="Take a written Telekonsil of one's specialty (specialist); the first wins, "
        "the others get 409 already_claimed",
        tags=WRITTEN_TAGS,
        response=AppointmentOut,
        errors=[401, 403, 404, 409],
    ),
]

routes: list[BaseRoute] = [
    *availability_routes,
    *appointment_routes,
    *on_call_routes,
    *written_routes,
    *patient_routes,
    *guest_routes,
]
