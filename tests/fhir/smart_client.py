"""A SMART Backend Services client in tests: its signed assertions, its token requests and
its registration by the doctor it acts as."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx2
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from app.settings import Settings

TOKEN_URL = "/oauth/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
BOOKING_SCOPES = ["system/Slot.read", "system/Schedule.read", "system/Appointment.write",
                  "system/Appointment.read"]  # fmt: skip


def assertion(
    key: RSAKey | ECKey,
    client_id: str,
    audience: str,
    *,
    expires_in: int = 240,
    **changes: Any,
) -> str:
    """A signed client assertion; ``changes`` replace claims (None leaves one out)."""
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "exp": now + expires_in,
        "jti": uuid.uuid4().hex,
        **changes,
    }
    claims = {name: value for name, value in claims.items() if value is not None}
    alg = "RS384" if isinstance(key, RSAKey) else "ES384"
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=[alg])


async def ask_token(
    client: httpx2.AsyncClient, signed: str, scope: str = " ".join(BOOKING_SCOPES)
) -> httpx2.Response:
    return await client.post(
        TOKEN_URL,
        data={
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": signed,
        },
    )


async def register(
    doctor: httpx2.AsyncClient, keys: list[dict[str, Any]], scopes: list[str] = BOOKING_SCOPES
) -> dict[str, Any]:
    """Registered by the signed-in doctor, for their own account."""
    response = await doctor.post(
        "/api/v1/account/fhir-clients",
        json={
            "name": "Praxis-System Lehmann",
            "scopes": scopes,
            "jwks": {"keys": keys},
        },
    )
    assert response.status_code == 201, response.text
    registered: dict[str, Any] = response.json()
    return registered


async def authorized(
    system: httpx2.AsyncClient,
    doctor: httpx2.AsyncClient,
    key: RSAKey | ECKey,
    settings: Settings,
    scopes: list[str] = BOOKING_SCOPES,
) -> dict[str, Any]:
    """Registers a client with ``scopes`` by the signed-in ``doctor`` and gives ``system`` a
    token for all of them; answers the registration."""
    registered = await register(doctor, [key.as_dict(private=False)], scopes)
    audience = settings.base_url.rstrip("/") + TOKEN_URL
    answer = await ask_token(
        system, assertion(key, registered["client_id"], audience), scope=" ".join(scopes)
    )
    assert answer.status_code == 200, answer.text
    system.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
    return registered
