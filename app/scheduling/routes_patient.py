"""The patient's side: redeem a join link, see the appointment, leave (JSON API)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.accounts import service as accounts
from app.accounts.models import SessionKind
from app.accounts.web import (
    clear_session_cookie,
    require_patient,
)
from app.api import api_route, respond
from app.audit import service as audit
from app.db import unit_of_work
from app.resources import db
from app.scheduling import links
from app.scheduling.routes_redeem import redeem as redeem_as
from app.scheduling.schemas import PatientAppointmentOut, RedeemIn


async def redeem(request: Request) -> Response:
    """Exchanges the token from the link's fragment for a patient session cookie."""
    return await redeem_as(request, links.JOIN_LINK)


async def me(request: Request) -> Response:
    who = await require_patient(request)
    assert who.appointment_id is not None
    async with db(request)() as session:
        summary = await links.patient_summary(
            session, appointment_id=who.appointment_id, csrf_token=who.csrf_token
        )
    return respond(summary)


async def logout(request: Request) -> Response:
    who = await require_patient(request)
    async with unit_of_work(db(request)) as session:
        await accounts.end_session(session, session_id=who.session_id)
        audit.record(
            session,
            action="patient.logout",
            actor_kind="patient",
            appointment_id=who.appointment_id,
        )
    response = Response(status_code=204)
    clear_session_cookie(request, response, SessionKind.PATIENT)
    return response


TAGS = ["patient"]
routes: list[Route] = [
    api_route(
        "/api/v1/patient/session",
        redeem,
        method="POST",
        summary="Redeem a join link: opens the patient session (cookie konsil_patient)",
        tags=TAGS,
        body=RedeemIn,
        response=PatientAppointmentOut,
        auth="none",
        errors=[403, 404, 410, 429],
    ),
    api_route(
        "/api/v1/patient/me",
        me,
        summary="The patient's appointment and CSRF token",
        tags=TAGS,
        response=PatientAppointmentOut,
        auth="patient",
        errors=[401],
    ),
    api_route(
        "/api/v1/patient/logout",
        logout,
        method="POST",
        summary="End the patient session",
        tags=TAGS,
        status=204,
        auth="patient",
        errors=[401, 403],
    ),
]
