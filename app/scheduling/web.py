"""Small HTTP helpers shared by the scheduling routes."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from app.api import respond
from app.errors import InvalidInput


def private(response: Response) -> Response:
    """Health data must not end up in shared or browser caches."""
    response.headers["Cache-Control"] = "no-store"
    return response


def respond_private(data: BaseModel | Sequence[BaseModel] | None, status: int = 200) -> Response:
    return private(respond(data, status))


def path_id(request: Request, name: str = "id") -> int:
    value = request.path_params[name]
    if not isinstance(value, int) or value < 1:
        raise InvalidInput(fields=[{"field": name, "message": "ungültige Id"}])
    return value
