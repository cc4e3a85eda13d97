"""The SMART Backend Services token endpoint (``/oauth/token``) and the SMART configuration
that names it (docs/fhir.md, "SMART Backend Services").

Every assertion's signature check is throttled (``app.throttle``) before it is made: per
address, the attempts that got no token (``login_free_attempts_shared`` free within
``login_window_minutes``, then back-off); per client id, every token request
(``fhir_token_requests_per_client`` free per hour, then at most one per back-off, up to a
token's lifetime). A looping integration or a flood gets 429 with ``Retry-After`` instead of
unlimited signature checks."""

from __future__ import annotations

import hashlib
import json
import time
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from app.accounts.models import User
from app.accounts.web import client_ip
from app.api import read_limited
from app.audit import service as audit
from app.db import unit_of_work, utcnow
from app.errors import TooManyAttempts
from app.fhir import clients, smart
from app.fhir.auth import PREFIX, TOKEN_PATH, issuer, token_key
from app.fhir.clients import FhirClient
from app.resources import broker, db, resources, settings
from app.settings import Settings
from app.throttle import Budget, OnSuccess, Policy, paced_refusals

# One answer for an unknown or inactive client and a signature no key of it makes: the token
# endpoint does not tell which client ids exist.
NOT_ACCEPTED = "Die client_assertion wurde nicht angenommen (Client, Schlüssel oder Signatur)."
MAX_FORM_BYTES = 16_384
CLIENT_WINDOW_SECONDS = 3600


def address_budget(cfg: Settings, ip: str | None) -> Budget:
    """Token requests from one address that got no token (a success gives its attempt back:
    a practice's systems behind one address do not run it down)."""
    policy = Policy(
        "fhir-token-address",
        cfg.login_free_attempts_shared,
        window_seconds=cfg.login_window_minutes * 60,
        max_seconds=cfg.login_max_delay_seconds,
        on_success=OnSuccess.REFUND,
        base_seconds=cfg.login_first_delay_seconds,
    )
    return Budget(policy, ip or "unknown")


def client_budget(cfg: Settings, client_id: str) -> Budget:
    """Every token request naming one client id, successful or not: a token lasts
    ``smart.TOKEN_SECONDS``, so an integration that asks for one per request is slowed, at
    worst, to one per token lifetime."""
    policy = Policy(
        "fhir-token-client",
        cfg.fhir_token_requests_per_client,
        window_seconds=CLIENT_WINDOW_SECONDS,
        max_seconds=smart.TOKEN_SECONDS,
        on_success=OnSuccess.KEEP,
        base_seconds=cfg.login_first_delay_seconds,
    )
    return Budget(policy, client_id)


def _oauth_error(status: int, error: str, description: str) -> Response:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


async def token(request: Request) -> Response:
    """``client_credentials`` with a ``private_key_jwt`` client assertion (SMART Backend
    Services); answers an access token for the granted scopes, or an OAuth error."""
    sent = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if sent != "application/x-www-form-urlencoded":
        return _oauth_error(
            400, "invalid_request", "Erwartet wird application/x-www-form-urlencoded."
        )
    try:
        form = parse_qs(
            (await read_limited(request, MAX_FORM_BYTES)).decode(), strict_parsing=False
        )
    except UnicodeDecodeError:
        return _oauth_error(400, "invalid_request", "Der Inhalt ist kein gültiges Formular.")
    fields = {name: values[0] for name, values in form.items() if len(values) == 1}
    if fields.get("grant_type") != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "Nur grant_type=client_credentials.")
    if fields.get("client_assertion_type") != smart.ASSERTION_TYPE:
        return _oauth_error(
            400, "invalid_request", f"client_assertion_type muss {smart.ASSERTION_TYPE} sein."
        )
    now = int(time.time())
    try:
        client, account = await _checked(request, fields.get("client_assertion", ""), now)
    except smart.Refused as exc:
        return _oauth_error(401, "invalid_client", str(exc))
    except TooManyAttempts as exc:
        return _slow_down(exc)
    client_id = client.client_id
    try:
        scope = smart.grant(fields.get("scope", ""), client.scopes)
    except smart.Refused as exc:
        return _oauth_error(400, "invalid_scope", str(exc))
    access = smart.issue_token(
        token_key(request), issuer=issuer(request), client_id=client_id, scope=scope, now=now
    )
    async with unit_of_work(db(request)) as session:
        await clients.used(session, client.id, utcnow())
        audit.record(
            session,
            action="fhir_client.token",
            actor_kind="fhir_client",
            actor_id=account.id,
            fhir_client=client.id,
        )
    return JSONResponse(
        {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": smart.TOKEN_SECONDS,
            "scope": scope,
        },
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


async def _checked(request: Request, assertion: str, now: int) -> tuple[FhirClient, User]:
    """The client whose valid, unused assertion this is (``smart.Refused`` otherwise), within
    the throttles (``TooManyAttempts``, nothing checked)."""
    cfg, throttle = settings(request), resources(request).throttle
    async with paced_refusals(cfg.login_refusal_pace_seconds):
        from_address = await throttle.reserve([address_budget(cfg, client_ip(request))])
    client_id = smart.unverified_issuer(assertion)  # not a JWT: a failed attempt
    try:
        async with paced_refusals(cfg.login_refusal_pace_seconds):
            of_client = await throttle.reserve([client_budget(cfg, client_id)])
    except TooManyAttempts:
        await from_address.release()  # refused before any check: it did not count
        raise
    found = await _verified(request, assertion, client_id, now)
    await from_address.succeeded()
    await of_client.succeeded()
    return found


async def _verified(
    request: Request, assertion: str, client_id: str, now: int
) -> tuple[FhirClient, User]:
    async with db(request)() as session:
        found = await clients.usable(session, client_id)
    if found is None:
        raise smart.Refused(NOT_ACCEPTED)
    client, _ = found
    checked = smart.check_assertion(
        assertion,
        client_id=client_id,
        keys=smart.public_keys(json.loads(client.jwks)),
        audience=issuer(request) + TOKEN_PATH,
        now=now,
    )
    jti_key = f"fhir-jti:{hashlib.sha256(f'{client_id}:{checked.jti}'.encode()).hexdigest()}"
    remaining = checked.expires_at + smart.LEEWAY_SECONDS - now
    if await broker(request).hold(jti_key, max(1, remaining)) > 0:
        raise smart.Refused("Diese client_assertion (jti) wurde schon verwendet.")
    return found


def _slow_down(refusal: TooManyAttempts) -> Response:
    """429 with ``Retry-After`` and OAuth's ``slow_down`` error (RFC 8628's, registered for
    the token endpoint)."""
    retry = str(refusal.detail.get("retry_after") or 1)
    answer = _oauth_error(
        429, "slow_down", f"Zu viele Token-Anfragen. Bitte nach {retry} Sekunden erneut."
    )
    answer.headers["Retry-After"] = retry
    return answer


async def smart_configuration(request: Request) -> Response:
    """``/fhir/R4/.well-known/smart-configuration``: how a system client gets a token."""
    return JSONResponse(
        {
            "token_endpoint": issuer(request) + TOKEN_PATH,
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": list(smart.SIGNING_ALGS),
            "scopes_supported": [f"system/{t}.read" for t in sorted(smart.RESOURCES)]
            + ["system/Appointment.write", "system/Patient.write"]
            + [f"system/{t}.rs" for t in sorted(smart.RESOURCES)]
            + ["system/Appointment.cu", "system/Patient.c"],
            "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
        }
    )


routes: list[BaseRoute] = [
    Route(TOKEN_PATH, token, methods=["POST"]),
    Route(PREFIX + "/.well-known/smart-configuration", smart_configuration, methods=["GET"]),
]
