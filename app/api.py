"""JSON API plumbing: parse bodies with pydantic, answer with pydantic, describe it in OpenAPI.

``api_route`` builds an ``ApiRoute``: a Starlette ``Route`` that carries its ``Operation`` (request
and response models, status, errors). ``app.openapi.openapi_document`` walks the routes of the app
that was built, so ``/openapi.json`` describes exactly what is served, from the same models that
validate traffic.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from app import db
from app.errors import (
    InvalidInput,
    KonsilError,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    error_body,
    validation_detail,
)
from app.logging import get_logger
from app.schemas import MAX_ID

M = TypeVar("M", bound=BaseModel)
Endpoint = Callable[[Request], Awaitable[Response]]
log = get_logger("konsil.api")
MAX_JSON_BYTES = 256 * 1024
# No request body of the API nests deeper than a few levels; the parser's recursion would
# otherwise be the limit (a stack of 100,000 ``[`` is 2 bytes per level).
MAX_JSON_DEPTH = 32
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


# Who may call an operation: "staff" (staff session cookie), "patient" (patient session
# cookie), "guest" (an invited guest's session cookie), "participant" (staff or patient),
# "call" (any of the three: what every participant of a call needs), "none" (anybody).
AUTH_KINDS = ("staff", "patient", "guest", "participant", "call", "none")
UNSAFE_METHODS = frozenset({"post", "put", "patch", "delete"})


@dataclass(frozen=True)
class Header:
    """A request header an operation reads: name, description, JSON schema of its value."""

    name: str
    description: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class Operation:
    path: str
    method: str
    summary: str
    tags: tuple[str, ...]
    body: type[BaseModel] | None
    response: type[BaseModel] | None
    many: bool
    status: int
    auth: str
    errors: tuple[int, ...]
    # The success body's media types; more than one where a file is answered as it was stored.
    content_type: tuple[str, ...] = ("application/json",)
    # Query parameters: the model ``parse_query`` validates them with, or (name, description,
    # required) triples of plain strings.
    query: type[BaseModel] | tuple[tuple[str, str, bool], ...] = field(default=())
    # A second success status answered without a body (e.g. logout: 204, or 200 with a URL).
    empty_status: int | None = None
    headers: tuple[Header, ...] = field(default=())
    # A multipart/form-data upload: (field name, accepted media types) of its single file.
    upload: tuple[str, tuple[str, ...]] | None = None
    # Whether the JSON body may be left out (its fields all have defaults then).
    body_required: bool = True


class ApiRoute(Route):
    """A JSON API route and its OpenAPI description."""

    def __init__(self, operation: Operation, endpoint: Endpoint) -> None:
        super().__init__(operation.path, endpoint, methods=[operation.method.upper()])
        self.operation = operation
        self.operations = (operation,)
        self.endpoints = {operation.method.upper(): endpoint}


class ApiResource(Route):
    """The ``ApiRoute``s of one path as one route, so that a method the path does not serve gets
    405 with every method it does serve in ``Allow`` (Starlette answers from the first route
    whose path matches, which would name that route's methods only)."""

    def __init__(self, routes: Sequence[ApiRoute]) -> None:
        endpoints = {m: e for r in routes for m, e in r.endpoints.items()}

        async def dispatch(request: Request) -> Response:
            return await endpoints["GET" if request.method == "HEAD" else request.method](request)

        super().__init__(routes[0].path, dispatch, methods=list(endpoints))
        self.operations = tuple(op for r in routes for op in r.operations)
        self.endpoints = endpoints


def by_path(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    """``routes`` with the ``ApiRoute``s of each path joined into one ``ApiResource`` (at the
    place of the path's first route); other routes unchanged."""
    groups: dict[str, list[ApiRoute]] = {}
    for route in routes:
        if isinstance(route, ApiRoute):
            groups.setdefault(route.path, []).append(route)
    result: list[BaseRoute] = []
    for route in routes:
        if not isinstance(route, ApiRoute):
            result.append(route)
        elif groups[route.path][0] is route:
            group = groups[route.path]
            result.append(route if len(group) == 1 else ApiResource(group))
    return result


def api_route(
    path: str,
    endpoint: Endpoint,
    *,
    method: str = "GET",
    summary: str,
    tags: Sequence[str],
    body: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    many: bool = False,
    status: int = 200,
    auth: str = "staff",
    errors: Sequence[int] = (),
    content_type: str | Sequence[str] = "application/json",
    query: type[BaseModel] | Sequence[tuple[str, str, bool]] = (),
    empty_status: int | None = None,
    headers: Sequence[Header] = (),
    upload: tuple[str, Sequence[str]] | None = None,
    body_required: bool = True,
) -> ApiRoute:
    """A route plus its OpenAPI description. ``query``: the model the query is parsed with, or
    (name, description, required) of plain string parameters. ``auth``: one of ``AUTH_KINDS``.
    Errors every operation of its kind can answer (401/403 with a session, 404/422 with an id
    in the path, 413/422 with a body) are described without being listed."""
    if auth not in AUTH_KINDS:
        raise ValueError(f"unknown auth {auth!r}")
    return ApiRoute(
        Operation(
            path=path,
            method=method.lower(),
            summary=summary,
            tags=tuple(tags),
            body=body,
            response=response,
            many=many,
            status=status,
            auth=auth,
            errors=tuple(errors),
            content_type=(content_type,) if isinstance(content_type, str) else tuple(content_type),
            query=query if isinstance(query, type) else tuple(query),
            empty_status=empty_status,
            headers=tuple(headers),
            upload=(upload[0], tuple(upload[1])) if upload else None,
            body_required=body_required,
        ),
        endpoint,
    )


async def parse_json(request: Request, model: type[M]) -> M:
    """The request body as ``model``; a clear 4xx on anything else."""
    return parse_body(await read_limited(request, MAX_JSON_BYTES), model)


def parse_body(body: bytes, model: type[M]) -> M:
    """A body already read (``read_limited``) as ``model``; a clear 4xx on anything else."""
    if nesting_exceeds(body, MAX_JSON_DEPTH):
        raise InvalidInput("Der Inhalt ist zu tief verschachtelt.")
    try:
        data = json.loads(body or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidInput("Der Inhalt ist kein gültiges JSON.") from None
    return validate(model, data)


def nesting_exceeds(body: bytes, limit: int) -> bool:
    """Whether JSON text opens more than ``limit`` arrays or objects inside each other (brackets
    inside strings do not count). Checked before parsing."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # the usual case, decided without a scan
    depth = 0
    for bracket in re.findall(rb"[\[\]{}]", _JSON_STRING.sub(b"", body)):
        depth += 1 if bracket in (b"[", b"{") else -1
        if depth > limit:
            return True
    return False


def refuse_declared_oversize(request: Request, limit: int, error: Callable[[], Exception]) -> None:
    """Raises ``error()`` at once when the declared Content-Length exceeds ``limit``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise error()


async def limited_chunks(
    request: Request, limit: int, error: Callable[[], Exception]
) -> AsyncGenerator[bytes, None]:
    """The body as it streams in, raising ``error()`` as soon as it passes ``limit`` bytes,
    whatever length was declared (or none), so an oversized body is never held in memory."""
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise error()
        yield chunk


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit``."""

    def too_large() -> Exception:
        return PayloadTooLarge("Die Anfrage ist zu groß.")

    refuse_declared_oversize(request, limit, too_large)
    return b"".join([chunk async for chunk in limited_chunks(request, limit, too_large)])


def validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(fields=validation_detail(exc)) from None


def path_id(request: Request, name: str = "id") -> int:
    """A positive integer path parameter (``{id:int}``): 422 below 1, 404 above the id column's
    range (no row can have it)."""
    value = request.path_params[name]
    if not isinstance(value, int) or value < 1:
        raise InvalidInput(fields=[{"field": name, "message": "ungültige Id"}])
    if value > MAX_ID:
        raise NotFound()
    return value


def parse_query(request: Request, model: type[M]) -> M:
    return validate(model, dict(request.query_params))


def respond(data: BaseModel | Sequence[BaseModel] | None, status: int = 200) -> Response:
    if data is None:
        return Response(status_code=status)
    if isinstance(data, BaseModel):
        return JSONResponse(data.model_dump(mode="json"), status_code=status)
    adapter: TypeAdapter[Any] = TypeAdapter(list[Any])
    return JSONResponse(
        adapter.dump_python([d.model_dump(mode="json") for d in data]), status_code=status
    )


# ---------------------------------------------------------------- errors as JSON


async def konsil_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, KonsilError)
    headers = {}
    if "retry_after" in exc.detail:
        headers["Retry-After"] = str(exc.detail["retry_after"])
    return JSONResponse(
        error_body(exc.code, exc.message, **exc.detail), status_code=exc.status, headers=headers
    )


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationError)
    return JSONResponse(
        error_body(InvalidInput.code, InvalidInput.default_message, fields=validation_detail(exc)),
        status_code=422,
    )


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse(
        error_body("http_" + str(exc.status_code), str(exc.detail)),
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def database_error_handler(request: Request, exc: Exception) -> Response:
    """A database that cannot be reached just now (a restart, a cut connection, no free
    connection in time) is a clear 503 to try again, logged without a traceback; any other
    database error is a server error like the rest (its traceback logged)."""
    if db.unreachable(exc):
        log.warning("database.unreachable", path=request.url.path, error=type(exc).__name__)
        return JSONResponse(
            error_body(
                Unavailable.code,
                "Die Datenbank ist gerade nicht erreichbar. Bitte gleich noch einmal versuchen.",
            ),
            status_code=503,
            headers={"Retry-After": "2"},
        )
    log.error("request.failed", path=request.url.path, exc_info=exc)
    return await server_error_handler(request, exc)


async def server_error_handler(request: Request, exc: Exception) -> Response:
    # The traceback goes to the log (without request bodies); the user gets no stack trace.
    return JSONResponse(
        error_body("internal_error", "Ein interner Fehler ist aufgetreten."), status_code=500
    )


EXCEPTION_HANDLERS = {
    KonsilError: konsil_error_handler,
    DBAPIError: database_error_handler,
    PoolTimeout: database_error_handler,
    ConnectionError: database_error_handler,
    ValidationError: validation_error_handler,
    HTTPException: http_error_handler,
    Exception: server_error_handler,
}
