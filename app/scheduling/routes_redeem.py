"""Redeeming a link for a session cookie: the one route of the patient's join link and the
guest's invitation (``app.scheduling.links.redeem``), with the link's kind as a parameter."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app.accounts.web import check_origin, client_ip, principal, set_session_cookie
from app.api import parse_json, respond
from app.resources import resources
from app.scheduling.links import LinkKind
from app.scheduling.links import redeem as redeem_link
from app.scheduling.schemas import RedeemIn


async def redeem(request: Request, kind: LinkKind[Any, Any]) -> Response:
    """Exchanges the token from the link's fragment for a session cookie of the link's kind;
    a browser that opens its own guest link again keeps its cookie."""
    check_origin(request)
    body = await parse_json(request, RedeemIn)
    own = await principal(request, kind.session)
    res = resources(request)
    result = await redeem_link(
        res.sessions,
        kind=kind,
        settings=res.settings,
        throttle=res.throttle,
        token=body.token,
        ip=client_ip(request),
        own_session=own.session_id if own is not None else None,
    )
    response = respond(result.summary)
    if result.new_session is not None:
        set_session_cookie(request, response, result.new_session)
    return response
