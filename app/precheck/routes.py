"""``POST /api/v1/precheck/offer``: the browser's offer in, the echo peer's answer out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from app.accounts.models import SessionKind
from app.accounts.service import Principal
from app.accounts.web import check_csrf, principal
from app.api import api_route, parse_json, respond
from app.errors import NotAuthenticated
from app.precheck.echo import EchoRegistry, echo_registry
from app.resources import Resources, resources
from app.schemas import Out, Schema
from app.turn import ice_servers

MAX_SDP_CHARS = 32 * 1024


class SessionDescription(Schema):
    """A WebRTC session description as ``RTCPeerConnection.localDescription`` gives it."""

    sdp: str = Field(min_length=1, max_length=MAX_SDP_CHARS)
    type: Literal["offer"]


class Answer(Out):
    sdp: str
    type: Literal["answer"]


@asynccontextmanager
async def precheck_lifespan(res: Resources) -> AsyncIterator[None]:
    """Owns the echo peers; every one of them is closed at shutdown."""
    async with echo_registry(
        tasks=res.tasks,
        max_concurrent=res.settings.echo_max_concurrent,
        max_seconds=res.settings.echo_max_seconds,
    ) as registry:
        res.echo = registry
        try:
            yield
        finally:
            res.echo = None


def echo_peers(request: Request) -> EchoRegistry:
    registry = resources(request).echo
    assert registry is not None, "precheck lifespan has not run"
    return registry


async def patient_or_staff(request: Request) -> Principal:
    who = await principal(request, SessionKind.PATIENT) or await principal(
        request, SessionKind.STAFF
    )
    if who is None:
        raise NotAuthenticated("Bitte öffnen Sie den Link aus Ihrer Einladung erneut.")
    await check_csrf(request, who)
    return who


async def offer(request: Request) -> Response:
    who = await patient_or_staff(request)
    body = await parse_json(request, SessionDescription)
    res = resources(request)
    answer = await echo_peers(request).answer(
        key=f"{who.kind.value}:{who.session_id}",
        sdp=body.sdp,
        ice_servers=ice_servers(res.settings, who.appointment_id or 0),
    )
    return respond(Answer(sdp=answer.sdp, type="answer"))


routes: list[BaseRoute] = [
    api_route(
        "/api/v1/precheck/offer",
        offer,
        method="POST",
        summary="Connection check: answer the browser's WebRTC offer with an echo peer",
        tags=["precheck"],
        body=SessionDescription,
        response=Answer,
        auth="participant",
        errors=[401, 403, 413, 503],
    )
]
