"""The OpenAPI 3.1 document of the JSON API, from the ``Operation``s of an app's routes
(``app.api.api_route``): ``/openapi.json`` describes exactly what is served, from the same models
that validate traffic."""

from __future__ import annotations

import re
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute

from app.api import UNSAFE_METHODS, ApiResource, ApiRoute, Header, Operation
from app.schemas import MAX_ID


def openapi_document(routes: Sequence[BaseRoute], title: str = "Konsil") -> dict[str, Any]:
    """OpenAPI 3.1 for the ``ApiRoute``s and ``ApiResource``s among ``routes`` (an app's
    ``routes``)."""
    operations = [
        op for r in routes if isinstance(r, ApiRoute | ApiResource) for op in r.operations
    ]
    bodies = {op.body for op in operations if op.body}
    queries = {op.query for op in operations if isinstance(op.query, type)}
    models = bodies | queries | {op.response for op in operations if op.response}
    ordered = sorted(models, key=lambda m: m.__name__)
    refs, schema = models_json_schema(
        [(m, "serialization" if m not in bodies | queries else "validation") for m in ordered],
        ref_template="#/components/schemas/{model}",
    )
    defs: dict[str, Any] = schema.get("$defs", {})
    query_schemas = {m: defs.pop(m.__name__) for m in queries}
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", op.path)
        paths.setdefault(path, {})[op.method] = _operation(op, refs, bodies, query_schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1", "description": _DESCRIPTION},
        "paths": paths,
        "components": {
            "schemas": {**defs, "Error": _ERROR_SCHEMA},
            "securitySchemes": _SECURITY_SCHEMES,
        },
    }


def _operation(
    op: Operation,
    refs: dict[Any, Any],
    bodies: set[type[BaseModel]],
    query_schemas: dict[type[BaseModel], dict[str, Any]],
) -> dict[str, Any]:
    result: dict[str, Any] = {"summary": op.summary, "tags": list(op.tags)}
    path_params = [_path_param(p) for p in _path_params(op.path)]
    params = path_params + _query_params(op, query_schemas) + [_header_param(h) for h in op.headers]
    if params:
        result["parameters"] = params
    if op.body is not None:
        result["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
        }
    elif op.upload is not None:
        result["requestBody"] = _upload_body(*op.upload)
    responses: dict[str, Any] = {str(op.status): _success(op, refs, bodies)}
    if op.empty_status is not None:
        responses[str(op.empty_status)] = {"description": HTTPStatus(op.empty_status).phrase}
    for code in sorted(_errors(op, path_params)):
        responses[str(code)] = {
            "description": HTTPStatus(code).phrase,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    result["responses"] = responses
    result["security"] = _security(op)
    return result


def _success(op: Operation, refs: dict[Any, Any], bodies: set[type[BaseModel]]) -> dict[str, Any]:
    success: dict[str, Any] = {"description": HTTPStatus(op.status).phrase}
    if op.response is not None:
        ref = refs[(op.response, "validation" if op.response in bodies else "serialization")]
        schema = {"type": "array", "items": ref} if op.many else ref
        success["content"] = {t: {"schema": schema} for t in op.content_type}
    elif op.content_type != ("application/json",):
        success["content"] = {t: {"schema": _file_schema(t)} for t in op.content_type}
    elif op.status != 204:
        success["content"] = {"application/json": {"schema": {"type": "object"}}}
    return success


def _file_schema(media_type: str) -> dict[str, Any]:
    if media_type.startswith("text/"):
        return {"type": "string"}
    return {"type": "string", "format": "binary"}


def _errors(op: Operation, path_params: list[dict[str, Any]]) -> set[int]:
    """The declared errors plus those every operation of its kind can answer."""
    errors = set(op.errors)
    if op.auth != "none":
        errors.add(401)  # no session, or one that ended
        if op.auth in ("staff", "patient") or op.method in UNSAFE_METHODS:
            # role, sign-in not finished, CSRF token or Origin; a guest's session
            errors.add(403)
    if path_params:
        errors.add(404)  # nothing with that id (also: ids beyond the id columns' range)
    if any(p["schema"]["type"] == "integer" for p in path_params):
        errors.add(422)  # id below 1
    if op.body is not None or op.upload is not None:
        errors |= {413, 422}
    if isinstance(op.query, type) or op.headers:
        errors.add(422)
    return errors


def _security(op: Operation) -> list[dict[str, list[str]]]:
    """Who may call: the session cookie(s), with the CSRF header on state-changing methods;
    an empty list where no session is needed."""
    schemes = {
        "staff": ["staffSession"],
        "patient": ["patientSession"],
        "guest": ["guestSession"],
        "participant": ["staffSession", "patientSession"],
        "call": ["staffSession", "patientSession", "guestSession"],
        "none": [],
    }[op.auth]
    csrf = ["csrf"] if op.method in UNSAFE_METHODS else []
    return [{name: [] for name in [scheme, *csrf]} for scheme in schemes]


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _path_param(spec: str) -> dict[str, Any]:
    name, _, kind = spec.partition(":")
    schema: dict[str, Any] = (
        {"type": "integer", "minimum": 1, "maximum": MAX_ID}
        if kind == "int"
        else {"type": "string", "minLength": 1}
    )
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query_params(
    op: Operation, query_schemas: dict[type[BaseModel], dict[str, Any]]
) -> list[dict[str, Any]]:
    if not isinstance(op.query, type):
        plain = {"type": "string"}
        return [
            {"name": n, "in": "query", "required": r, "description": d, "schema": plain}
            for n, d, r in op.query
        ]
    model = query_schemas[op.query]
    required = set(model.get("required", []))
    params = []
    for name, prop in model.get("properties", {}).items():
        description = prop.pop("description", None)
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": _without_null(prop),
        }
        if description:
            param["description"] = description
        params.append(param)
    return params


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional query parameter is absent, never ``null``: the ``null`` branch goes."""
    branches = [b for b in schema.get("anyOf", []) if b.get("type") != "null"]
    if len(branches) != 1:
        return schema
    rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
    return {**rest, **branches[0]}


def _header_param(header: Header) -> dict[str, Any]:
    return {
        "name": header.name,
        "in": "header",
        "required": False,
        "description": header.description,
        "schema": header.schema,
    }


def _upload_body(name: str, media_types: tuple[str, ...]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [name],
                    "properties": {name: {"type": "string", "format": "binary"}},
                },
                "encoding": {name: {"contentType": ", ".join(media_types)}},
            }
        },
    }


_SECURITY_SCHEMES = {
    "staffSession": {
        "type": "apiKey",
        "in": "cookie",
        "name": "konsil_staff",
        "description": "Set by POST /api/v1/auth/login (named __Host-konsil_staff over HTTPS).",
    },
    "patientSession": {
        "type": "apiKey",
        "in": "cookie",
        "name": "konsil_patient",
        "description": "Set by POST /api/v1/patient/session (__Host-konsil_patient over HTTPS).",
    },
    "guestSession": {
        "type": "apiKey",
        "in": "cookie",
        "name": "konsil_guest",
        "description": "Set by POST /api/v1/guest/session (__Host-konsil_guest over HTTPS): "
        "an invited guest (interpreter, carer), who may take part in one call and nothing else.",
    },
    "csrf": {
        "type": "apiKey",
        "in": "header",
        "name": "X-CSRF-Token",
        "description": "The session's CSRF token (csrf_token of GET /api/v1/auth/me or "
        "/api/v1/patient/me or /api/v1/guest/me), on state-changing requests only.",
    },
}

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
    "the X-CSRF-Token header on every state-changing request (POST, PUT, PATCH, DELETE). "
    "Patients authenticate by redeeming their join link at POST /api/v1/patient/session, "
    "invited guests (interpreters, carers) theirs at POST /api/v1/guest/session. "
    'Errors are JSON objects {"error": {"code", "message", "detail"}}. Ids are integers from 1 '
    f"to {MAX_ID}. Every GET operation answers HEAD too (the same status and headers, no "
    "body). Other methods, OPTIONS included, get 405 with the path's methods in Allow: the "
    "API serves its own pages only and answers no cross-origin (CORS) requests."
)
