"""JSON API plumbing: parse bodies with pydantic, answer with pydantic, describe it in OpenAPI.

``api_route`` builds an ``ApiRoute``: a Starlette ``Route`` that carries its ``Operation`` (request
and response models, status, errors). ``openapi_document`` walks the routes of the app that was
built, so ``/openapi.json`` describes exactly what is served, from the same models that validate
traffic.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from app.errors import (
    InvalidInput,
    KonsilError,
    NotFound,
    PayloadTooLarge,
    error_body,
    validation_detail,
)
from app.schemas import MAX_ID

M = TypeVar("M", bound=BaseModel)
Endpoint = Callable[[Request], Awaitable[Response]]
MAX_JSON_BYTES = 256 * 1024
# No request body of the API nests deeper than a few levels; the parser's recursion would
# otherwise be the limit (a stack of 100,000 ``[`` is 2 bytes per level).
MAX_JSON_DEPTH = 32
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


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
    content_type: str = "application/json"
    query: tuple[tuple[str, str, bool], ...] = field(default=())
    # A second success status answered without a body (e.g. logout: 204, or 200 with a URL).
    empty_status: int | None = None


class ApiRoute(Route):
    """A JSON API route and its OpenAPI description."""

    def __init__(self, operation: Operation, endpoint: Endpoint) -> None:
        super().__init__(operation.path, endpoint, methods=[operation.method.upper()])
        self.operation = operation


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
    content_type: str = "application/json",
    query: Sequence[tuple[str, str, bool]] = (),
    empty_status: int | None = None,
) -> ApiRoute:
    """A route plus its OpenAPI description. ``query``: (name, description, required)."""
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
            content_type=content_type,
            query=tuple(query),
            empty_status=empty_status,
        ),
        endpoint,
    )


async def parse_json(request: Request, model: type[M]) -> M:
    """The request body as ``model``; a clear 4xx on anything else."""
    body = await read_limited(request, MAX_JSON_BYTES)
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


def openapi_document(routes: Sequence[BaseRoute], title: str = "Konsil") -> dict[str, Any]:
    """OpenAPI 3.1 for the ``ApiRoute``s among ``routes`` (an app's ``routes``)."""
    operations = [r.operation for r in routes if isinstance(r, ApiRoute)]
    bodies = {op.body for op in operations if op.body}
    models = bodies | {op.response for op in operations if op.response}
    ordered = sorted(models, key=lambda m: m.__name__)
    refs, schema = models_json_schema(
        [(m, "validation" if m in bodies else "serialization") for m in ordered],
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", op.path)
        paths.setdefault(path, {})[op.method] = _operation(op, refs, bodies)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1", "description": _DESCRIPTION},
        "paths": paths,
        "components": {
            "schemas": {**schema.get("$defs", {}), "Error": _ERROR_SCHEMA},
            "securitySchemes": {
                "staffSession": {"type": "apiKey", "in": "cookie", "name": "konsil_staff"},
                "patientSession": {"type": "apiKey", "in": "cookie", "name": "konsil_patient"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
            },
        },
    }


def _operation(op: Operation, refs: dict[Any, Any], bodies: set[type[BaseModel]]) -> dict[str, Any]:
    result: dict[str, Any] = {"summary": op.summary, "tags": list(op.tags)}
    params = [_path_param(p) for p in _path_params(op.path)]
    params += [
        {"name": n, "in": "query", "required": req, "description": d, "schema": {"type": "string"}}
        for n, d, req in op.query
    ]
    if params:
        result["parameters"] = params
    if op.body is not None:
        mode = "validation"
        result["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[(op.body, mode)]}},
        }
    success: dict[str, Any] = {"description": "OK"}
    if op.response is not None:
        ref = refs[(op.response, "validation" if op.response in bodies else "serialization")]
        success["content"] = {
            op.content_type: {"schema": {"type": "array", "items": ref} if op.many else ref}
        }
    elif op.content_type != "application/json":
        success["content"] = {op.content_type: {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(op.status): success}
    if op.empty_status is not None:
        responses[str(op.empty_status)] = {"description": "No content"}
    for code in sorted({*op.errors, 422} if op.body else set(op.errors)):
        responses[str(code)] = {
            "description": "Error",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    result["responses"] = responses
    if op.auth == "staff":
        result["security"] = [{"staffSession": [], "csrf": []}]
    elif op.auth == "patient":
        result["security"] = [{"patientSession": [], "csrf": []}]
    return result


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _path_param(spec: str) -> dict[str, Any]:
    name, _, kind = spec.partition(":")
    schema = {"type": "integer"} if kind == "int" else {"type": "string"}
    return {"name": name, "in": "path", "required": True, "schema": schema}


_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "examples": ["slot_taken"]},
                "message": {"type": "string"},
                "detail": {"type": "object"},
            },
        }
    },
}

_DESCRIPTION = (
    "Konsil's JSON API. Staff authenticate with the session cookie set by "
    "POST /api/v1/auth/login and send the session's CSRF token (from GET /api/v1/auth/me) in "
    "the X-CSRF-Token header on every state-changing request. Patients authenticate by "
    "redeeming their join link at POST /api/v1/patient/session. Errors are JSON objects "
    '{"error": {"code", "message", "detail"}}.'
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


async def server_error_handler(request: Request, exc: Exception) -> Response:
    # The traceback goes to the log (without request bodies); the user gets no stack trace.
    return JSONResponse(
        error_body("internal_error", "Ein interner Fehler ist aufgetreten."), status_code=500
    )


EXCEPTION_HANDLERS = {
    KonsilError: konsil_error_handler,
    ValidationError: validation_error_handler,
    HTTPException: http_error_handler,
    Exception: server_error_handler,
}
