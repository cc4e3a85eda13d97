"""Who calls ``/fhir/R4``: a staff session (the pages' cookie) or a system client with a SMART
Backend Services access token (``Authorization: Bearer``); the doctors' registration of their
clients and the admin's list (docs/fhir.md, "Authentication"). The token endpoint is
``app.fhir.token``."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from app.accounts.models import Role, SessionKind
from app.accounts.service import Principal
from app.accounts.web import require_recent_auth, require_staff
from app.api import api_route, parse_json, path_id, respond
from app.audit import service as audit
from app.db import unit_of_work
from app.errors import Forbidden
from app.fhir import clients, smart
from app.fhir.outcome import FhirError
from app.fhir.schemas import FhirClientIn, FhirClientOut
from app.resources import db, settings
from app.tokens import derived_key

PREFIX = "/fhir/R4"
TOKEN_PATH = "/oauth/token"  # noqa: S105 - a path, not a secret
# What each method does, in SMART v2's letters; GET is "r" on an instance, "s" on a type.
_METHOD_ACTION = {"POST": "c", "PUT": "u", "PATCH": "u", "DELETE": "d"}


def issuer(request: Request) -> str:
    """The server's base URL: the access tokens' issuer, the assertions' audience's prefix."""
    return settings(request).base_url.rstrip("/")


def token_key(request: Request) -> bytes:
    return derived_key(settings(request).secret_key.get_secret_value(), b"konsil fhir tokens")


def needed(request: Request) -> tuple[str, str]:
    """The resource type the path names and the SMART v2 action (a letter of ``cruds``) the
    request needs a scope for: ``$book`` creates, ``PATCH`` updates, ``GET`` of an instance
    (or an instance's operation) reads, ``GET`` of a type searches."""
    parts = request.url.path[len(PREFIX) :].strip("/").split("/")
    if request.method in ("GET", "HEAD"):
        return parts[0], "r" if len(parts) > 1 else "s"
    return parts[0], _METHOD_ACTION.get(request.method, "u")


async def caller(
    request: Request, *roles: Role, also: tuple[str, ...] = (), scoped: bool = True
) -> Principal:
    """The staff member behind a FHIR request: the system client's account or the signed-in
    staff member (CSRF checked as on the JSON API). A client's token scopes are checked for
    the type and action of the path and method (``needed``) and read of the types in ``also``
    that the answer carries too; without ``scoped`` the route checks them (``require_scope``)."""
    header = request.headers.get("authorization")
    if header is None:
        return await require_staff(request, *roles)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _invalid_token("Erwartet wird Authorization: Bearer <Zugriffstoken>.")
    try:
        grant = smart.read_token(
            token_key(request), token.strip(), issuer=issuer(request), now=int(time.time())
        )
    except smart.Refused as exc:
        raise _invalid_token(str(exc)) from None
    async with db(request)() as session:
        found = await clients.usable(session, grant.client_id)
    if found is None:
        raise _invalid_token("Der Client oder sein Konto ist nicht mehr aktiv.")
    request.scope.setdefault("state", {})[_GRANTED] = grant.scope
    if scoped:
        require_scope(request, needed(request), *((kind, "r") for kind in also))
    client, account = found
    who = Principal(
        kind=SessionKind.STAFF,
        session_id=f"fhir-client:{client.id}",
        csrf_token="",
        user_id=account.id,
        role=account.role,
        display_name=account.display_name,
        fhir_client=client.id,
    )
    if roles and who.role not in roles:
        raise Forbidden()
    return who


_GRANTED = "fhir_granted_scope"


def granted(request: Request) -> str | None:
    """The scopes of the request's access token (after ``caller``), None for a staff session."""
    scope = request.scope.get("state", {}).get(_GRANTED)
    return scope if isinstance(scope, str) else None


def require_scope(request: Request, *wanted: tuple[str, str]) -> None:
    """403 unless the request's access token allows each (resource type, action) wanted (the
    action a letter of SMART v2's ``cruds``); a staff session's access is its role's alone."""
    scope = granted(request)
    if scope is None:
        return
    lacking = [
        smart.scope_names(kind, act) for kind, act in wanted if not smart.permits(scope, kind, act)
    ]
    if lacking:
        v2, v1 = (" ".join(names) for names in zip(*lacking, strict=True))
        raise FhirError(
            403,
            f"Das Zugriffstoken reicht dafür nicht: es fehlt der Scope {v2} (SMART v1: {v1}).",
            code="forbidden",
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{v2}"'},
        )


def _invalid_token(message: str) -> FhirError:
    return FhirError(
        401, message, code="login", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
    )


# --- registration: the doctor's own systems; the admin lists and deactivates ----------------


async def register_client(request: Request) -> Response:
    """A GP or specialist registers a system that acts as them (never as anyone else)."""
    who = await require_staff(request, *clients.ACTING_ROLES)
    require_recent_auth(request, who)
    body = await parse_json(request, FhirClientIn)
    assert who.user_id is not None
    async with unit_of_work(db(request)) as session:
        client = await clients.register(session, owner_id=who.user_id, data=body)
        audit.record(
            session,
            action="fhir_client.registered",
            actor_kind="staff",
            actor_id=who.user_id,
            target=client.id,
            account=client.account_id,
        )
    return respond(FhirClientOut.model_validate(client), status=201)


async def own_clients(request: Request) -> Response:
    who = await require_staff(request, *clients.ACTING_ROLES)
    async with db(request)() as session:
        found = await clients.all_clients(session)
    return respond([FhirClientOut.model_validate(c) for c in found if c.account_id == who.user_id])


async def list_clients(request: Request) -> Response:
    await require_staff(request, Role.ADMIN)
    async with db(request)() as session:
        found = await clients.all_clients(session)
    return respond([FhirClientOut.model_validate(c) for c in found])


async def deactivate_client(request: Request) -> Response:
    who = await require_staff(request, Role.ADMIN)
    require_recent_auth(request, who)
    client_db_id = path_id(request)
    async with unit_of_work(db(request)) as session:
        client = await clients.deactivate(session, client_db_id)
        audit.record(
            session,
            action="fhir_client.deactivated",
            actor_kind="staff",
            actor_id=who.user_id,
            target=client.id,
        )
    return respond(FhirClientOut.model_validate(client))


routes: list[BaseRoute] = [
    api_route(
        "/api/v1/account/fhir-clients",
        register_client,
        method="POST",
        summary="Register a FHIR system client that acts as the signed-in GP or specialist "
        "(SMART Backend Services): its public keys and scopes",
        tags=["account"],
        body=FhirClientIn,
        response=FhirClientOut,
        status=201,
        errors=[401, 403, 409],
    ),
    api_route(
        "/api/v1/account/fhir-clients",
        own_clients,
        summary="The FHIR system clients that act as the signed-in GP or specialist",
        tags=["account"],
        response=FhirClientOut,
        many=True,
        errors=[401, 403],
    ),
    api_route(
        "/api/v1/admin/fhir-clients",
        list_clients,
        summary="List the registered FHIR system clients",
        tags=["admin"],
        response=FhirClientOut,
        many=True,
        errors=[401, 403],
    ),
    api_route(
        "/api/v1/admin/fhir-clients/{id:int}/deactivate",
        deactivate_client,
        method="POST",
        summary="Deactivate a FHIR system client: it gets no token, and its tokens stop working",
        tags=["admin"],
        response=FhirClientOut,
        errors=[401, 403, 404],
    ),
]
