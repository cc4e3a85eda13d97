"""``/fhir/R4``: the plumbing (errors as OperationOutcome, 405, unknown types), metadata and
the directory (HealthcareService, Practitioner, PractitionerRole, Schedule)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.api import MAX_JSON_BYTES, MAX_JSON_DEPTH, nesting_exceeds, read_limited
from app.errors import KonsilError
from app.fhir import directory
from app.fhir import resources as build
from app.fhir.auth import TOKEN_PATH, caller
from app.fhir.capability import capability_statement
from app.fhir.outcome import FhirError, error_response, fhir_response, from_domain
from app.fhir.search import Params, is_strict, parse_params, reference_id, row_id, token_code
from app.resources import db, settings

# What a FHIR write may be sent as.
FHIR_JSON = ("application/fhir+json", "application/json")

PREFIX = "/fhir/R4"
Handler = Callable[[Request], Awaitable[Response]]
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
PUBLISHED = date(2026, 12, 6).isoformat()


def base_url(request: Request) -> str:
    return settings(request).base_url.rstrip("/") + PREFIX


def resource(methods: dict[str, Handler]) -> Handler:
    """One path's handlers by method: every error, a method the path does not serve (405
    with ``Allow``) included, is answered as an OperationOutcome."""

    async def endpoint(request: Request) -> Response:
        handler = methods.get("GET" if request.method == "HEAD" else request.method)
        try:
            if handler is None:
                allow = ", ".join(sorted(methods))
                raise FhirError(405, f"Erlaubt: {allow}.")
            return await handler(request)
        except FhirError as exc:
            headers = {"Allow": ", ".join(sorted(methods))} if exc.status == 405 else None
            return error_response(exc, exc.headers or headers)
        except KonsilError as exc:
            retry = exc.detail.get("retry_after")
            return error_response(
                from_domain(exc), {"Retry-After": str(retry)} if retry is not None else None
            )

    return endpoint


def params(request: Request, known: Sequence[str]) -> Params:
    return parse_params(
        request.query_params.multi_items(),
        known,
        strict=is_strict(request.headers.get("prefer")),
    )


def bundle(request: Request, entries: Sequence[dict[str, Any]]) -> Response:
    query = request.url.query
    self_url = base_url(request) + request.url.path[len(PREFIX) :] + (f"?{query}" if query else "")
    return fhir_response(build.searchset(entries, base=base_url(request), self_url=self_url))


def required_id(request: Request) -> int:
    """The path's id if it can name a row; else 404 like a row that does not exist."""
    found = row_id(str(request.path_params["id"]))
    if found is None:
        raise FhirError(404, "Diese Ressource gibt es nicht.")
    return found


async def read_json(request: Request, media_types: Sequence[str]) -> Any:
    """The body as JSON, if sent as one of ``media_types`` (else 415); 400 if no JSON."""
    sent = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if sent not in media_types:
        raise FhirError(415, f"Erwartet wird {' oder '.join(media_types)}.")
    body = await read_limited(request, MAX_JSON_BYTES)
    if nesting_exceeds(body, MAX_JSON_DEPTH):
        raise FhirError(400, "Der Inhalt ist zu tief verschachtelt.")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise FhirError(400, "Der Inhalt ist kein gültiges JSON.") from None


# --- metadata and directory ------------------------------------------------------------


async def metadata(request: Request) -> Response:
    base = settings(request).base_url.rstrip("/")
    return fhir_response(
        capability_statement(
            base=base_url(request), token_endpoint=base + TOKEN_PATH, published=PUBLISHED
        )
    )


def _ids(query: Params) -> set[int | None] | None:
    values = [v for raw in query.all("_id") for v in raw.split(",")]
    return {row_id(v) for v in values} if values else None


async def search_services(request: Request) -> Response:
    await caller(request)
    query = params(request, ["_id"])
    ids = _ids(query)
    async with db(request)() as session:
        found = await directory.specialties(session)
    return bundle(
        request, [build.healthcare_service(s) for s in found if ids is None or s.id in ids]
    )


async def read_service(request: Request) -> Response:
    await caller(request)
    key = str(required_id(request))
    async with db(request)() as session:
        found = await directory.specialty(session, key)
    if found is None:
        raise FhirError(404, "Diesen HealthcareService gibt es nicht.")
    return fhir_response(build.healthcare_service(found))


async def _specialist(request: Request) -> tuple[Any, Any]:
    await caller(request)
    specialist_id = required_id(request)
    async with db(request)() as session:
        found = await directory.specialists(session, ids=[specialist_id])
    if not found:
        raise FhirError(404, "Diese Ressource gibt es nicht.")
    return found[0]


async def read_practitioner(request: Request) -> Response:
    user, _ = await _specialist(request)
    return fhir_response(build.practitioner(user))


async def read_role(request: Request) -> Response:
    user, specialty = await _specialist(request)
    return fhir_response(build.practitioner_role(user, specialty))


async def read_schedule(request: Request) -> Response:
    user, specialty = await _specialist(request)
    return fhir_response(build.schedule(user, specialty))


async def _search_specialists(
    request: Request, known: Sequence[str], *, actor: str | None = None, by_type: str | None = None
) -> list[tuple[Any, Any]]:
    """Active specialists matching ``_id``, an actor/practitioner reference and a specialty
    token (service-type or specialty)."""
    await caller(request)
    query = params(request, known)
    ids = _ids(query)
    if actor is not None:
        for value in query.all(actor):
            refs = {reference_id(v, "Practitioner", "PractitionerRole") for v in value.split(",")}
            ids = refs if ids is None else ids & refs
    async with db(request)() as session:
        specialty_id = None
        if by_type is not None and (code := query.first(by_type)) is not None:
            found = await directory.specialty(session, token_code(code))
            if found is None:
                return []
            specialty_id = found.id
        people = await directory.specialists(session, specialty_id=specialty_id)
    return [(u, s) for u, s in people if ids is None or u.id in ids]


async def search_practitioners(request: Request) -> Response:
    people = await _search_specialists(request, ["_id"])
    return bundle(request, [build.practitioner(u) for u, _ in people])


async def search_roles(request: Request) -> Response:
    people = await _search_specialists(
        request, ["_id", "practitioner", "specialty"], actor="practitioner", by_type="specialty"
    )
    return bundle(request, [build.practitioner_role(u, s) for u, s in people])


async def search_schedules(request: Request) -> Response:
    people = await _search_specialists(
        request, ["_id", "actor", "service-type"], actor="actor", by_type="service-type"
    )
    return bundle(request, [build.schedule(u, s) for u, s in people])


async def unknown(request: Request) -> Response:
    raise FhirError(404, "Diesen Ressourcentyp oder diese Interaktion bietet Konsil nicht an.")


_UNKNOWN: dict[str, Handler] = {m: unknown for m in ALL_METHODS if m != "HEAD"}


def routes_for(booking: list[tuple[str, dict[str, Handler]]]) -> list[BaseRoute]:
    """Every route of ``/fhir/R4``: the directory's, then ``booking``'s, then the catch-all."""
    table: list[tuple[str, dict[str, Handler]]] = [
        ("/metadata", {"GET": metadata}),
        ("/HealthcareService", {"GET": search_services}),
        ("/HealthcareService/{id}", {"GET": read_service}),
        ("/Practitioner", {"GET": search_practitioners}),
        ("/Practitioner/{id}", {"GET": read_practitioner}),
        ("/PractitionerRole", {"GET": search_roles}),
        ("/PractitionerRole/{id}", {"GET": read_role}),
        ("/Schedule", {"GET": search_schedules}),
        ("/Schedule/{id}", {"GET": read_schedule}),
        *booking,
        ("", {}),
        ("/{rest:path}", {}),
    ]
    return [
        Route(PREFIX + path, resource(methods or _UNKNOWN), methods=ALL_METHODS)
        for path, methods in table
    ]
