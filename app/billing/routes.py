"""The EBM export (a CSV download for the signed-in GP or specialist) and the specialist's
confirmation of the identity check (JSON API; docs/api.md "EBM export")."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from app.accounts.models import Role
from app.accounts.web import require_staff
from app.api import api_route, path_id, respond
from app.billing import export
from app.billing import service as billing
from app.billing.ebm import Quarter
from app.billing.schemas import IdentityCheckOut
from app.db import unit_of_work, utcnow
from app.resources import db, settings


async def ebm_csv(request: Request) -> Response:
    who = await require_staff(request, Role.GP, Role.SPECIALIST)
    quarter = Quarter.parse(request.query_params.get("quarter"))
    tz = settings(request).tz
    async with unit_of_work(db(request)) as session:
        rows = await billing.ebm_rows(session, who=who, quarter=quarter, tz=tz)
    text = export.document(
        rows,
        quarter=quarter,
        side=billing.side_of(who),
        staff_name=who.display_name,
        created=utcnow().astimezone(tz),
    )
    return Response(
        text.encode(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{export.filename(quarter)}"',
            # Patient names: never in a shared or the browser's cache.
            "Cache-Control": "no-store",
        },
    )


async def identity_checked(request: Request) -> Response:
    who = await require_staff(request, Role.SPECIALIST)
    appointment_id = path_id(request)
    async with unit_of_work(db(request)) as session:
        appointment = await billing.check_identity(
            session, who=who, appointment_id=appointment_id, now=utcnow()
        )
        assert appointment.identity_checked_at is not None
        checked = IdentityCheckOut(
            appointment_id=appointment_id, identity_checked_at=appointment.identity_checked_at
        )
    return respond(checked)


routes: list[BaseRoute] = [
    api_route(
        "/api/v1/billing/ebm.csv",
        ebm_csv,
        summary="The billable EBM events of a quarter for the signed-in GP or specialist "
        "(a CSV helper for the practice's billing system, not a billing file)",
        tags=["billing"],
        content_type="text/csv",
        errors=[400],
        query=[("quarter", "The quarter as YYYY-QN, e.g. 2026-Q4 (bounds in local time)", True)],
    ),
    api_route(
        "/api/v1/appointments/{id:int}/identity-checked",
        identity_checked,
        method="POST",
        summary="Confirm that the patient's identity was checked in the video consultation "
        "(the appointment's specialist, once it has begun; idempotent)",
        tags=["billing"],
        response=IdentityCheckOut,
        errors=[409],
    ),
]
