"""``POST /api/v1/appointments/{id}/invitation.pdf``: the printed invitation (booking GP).

Konsil keeps only a hash of the join link, so the page that has just been shown the link
(after booking or a new link) sends it back and gets the PDF. The link must be the booking's
current one: a replaced, revoked or expired link prints nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

import anyio
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from app.accounts.models import Practice, Role
from app.accounts.phones import display
from app.accounts.service import Principal
from app.accounts.web import require_staff
from app.api import api_route, parse_json, path_id
from app.audit import service as audit
from app.db import unit_of_work, utcnow
from app.errors import Conflict, Forbidden, InvalidInput
from app.notify.printed import PrintedInvitation, invitation_pdf
from app.resources import db, settings
from app.scheduling import links
from app.scheduling import repository as repo
from app.scheduling.access import is_gp_of, visible_appointment
from app.scheduling.models import AppointmentStatus
from app.schemas import Schema
from app.settings import Settings
from app.tokens import token_hash


class InvitationIn(Schema):
    """The join link as it was shown after booking or issuing a new link."""

    join_url: str = Field(min_length=1, max_length=2000)
    language: Literal["de", "en"] | None = Field(
        default=None, description="The invitation's language; the booking's if not given."
    )


def _not_this_booking() -> InvalidInput:
    message = "Das ist kein Link für Patientinnen und Patienten aus dieser Buchung."
    return InvalidInput(message, fields=[{"field": "join_url", "message": message}])


def _token(settings: Settings, join_url: str) -> str:
    """The token of a Konsil join link, or a 422 for anything else."""
    base, _, token = join_url.partition("#")
    expected = urlsplit(links.join_url(settings, "x").partition("#")[0])
    try:
        given = urlsplit(base)
    except ValueError:  # e.g. an unclosed "[" of an IPv6 host
        raise _not_this_booking() from None
    if (given.netloc, given.path) != (expected.netloc, expected.path) or not (
        links.TOKEN_SHAPE.match(token)
    ):
        raise _not_this_booking()
    return token


async def printed_invitation(
    session: AsyncSession,
    *,
    settings: Settings,
    who: Principal,
    appointment_id: int,
    body: InvitationIn,
    now: datetime,
) -> tuple[PrintedInvitation, str]:
    """What the booking's invitation says, and in which language."""
    appointment = await visible_appointment(session, who=who, appointment_id=appointment_id)
    if not is_gp_of(who, appointment):
        raise Forbidden("Die Einladung druckt nur die buchende Praxis.")
    token = _token(settings, body.join_url)
    link = await repo.link_by_hash(session, token_hash(token))
    if link is None or link.appointment_id != appointment_id:
        raise _not_this_booking()
    if (
        appointment.status != AppointmentStatus.BOOKED
        or link.revoked_at is not None
        or link.valid_until <= now
    ):
        raise Conflict(
            "Dieser Link gilt nicht mehr. Bitte erzeugen Sie in der Buchung einen neuen Link."
        )
    practice = (
        await session.get(Practice, appointment.practice_id) if appointment.practice_id else None
    )
    audit.record_for(session, who, "invitation.printed", appointment_id)
    invitation = PrintedInvitation(
        starts_at=appointment.starts_at.astimezone(settings.tz),
        opens_at=link.valid_from.astimezone(settings.tz),
        join_url=links.join_url(settings, token),
        practice_name=practice.name if practice else None,
        practice_phone=display(practice.phone) if practice and practice.phone else None,
    )
    return invitation, body.language or appointment.patient_language


async def invitation(request: Request) -> Response:
    who = await require_staff(request, Role.GP)
    appointment_id = path_id(request)
    body = await parse_json(request, InvitationIn)
    async with unit_of_work(db(request)) as session:
        invitation, language = await printed_invitation(
            session,
            settings=settings(request),
            who=who,
            appointment_id=appointment_id,
            body=body,
            now=utcnow(),
        )
    # About 0.15 s of layout: not on the event loop, which serves every call of the process.
    pdf = await anyio.to_thread.run_sync(invitation_pdf, invitation, language)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="einladung-{appointment_id}.pdf"',
            "Cache-Control": "no-store",
        },
    )


routes: list[BaseRoute] = [
    api_route(
        "/api/v1/appointments/{id:int}/invitation.pdf",
        invitation,
        method="POST",
        summary="The printed invitation (A4 PDF with QR code) for the current join link "
        "(booking GP); no health data",
        tags=["messages"],
        body=InvitationIn,
        content_type="application/pdf",
        errors=[401, 403, 404, 409],
    ),
]
