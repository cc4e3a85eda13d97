"""SMART Backend Services: a GP registers a system client that acts as them, with its public
key; the client
signs a JWT assertion, gets an access token at /oauth/token and books through /fhir/R4 as the
GP it acts for. Refused: a wrong key, an expired or replayed assertion, another audience, a
scope it was not registered with, a token without the scope a request needs, a token of a
deactivated client."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fhir.resources.R4B.appointment import Appointment
from joserfc.jwk import ECKey, RSAKey

from app.settings import Settings
from tests.factories import Demo, login
from tests.fhir.helpers import FHIR_JSON, assert_outcome, free_slots, parameters
from tests.fhir.smart_client import (
    ASSERTION_TYPE,
    BOOKING_SCOPES,
    TOKEN_URL,
    ask_token,
    assertion,
    register,
)

ClientFactory = Callable[[], httpx2.AsyncClient]


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url)


@pytest.fixture(scope="module")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "praxis-2026", "alg": "RS384"})


@pytest.fixture(scope="module")
def ec_key() -> ECKey:
    return ECKey.generate_key("P-384", parameters={"kid": "praxis-ec", "alg": "ES384"})


def b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def test_a_system_client_books_as_its_gp_with_a_signed_assertion(
    client_factory: ClientFactory,
    demo: Demo,
    settings: Settings,
    rsa_key: RSAKey,
    ec_key: ECKey,
) -> None:
    audience = settings.base_url.rstrip("/") + TOKEN_URL
    async with client_factory() as admin, client_factory() as system:
        await login(admin, demo.gp)
        public = [rsa_key.as_dict(private=False), ec_key.as_dict(private=False)]
        registered = await register(admin, public)
        assert (registered["account_id"], registered["role"]) == (demo.gp.id, "gp")
        client_id = registered["client_id"]
        assert registered["scopes"] == BOOKING_SCOPES

        config = await system.get("/fhir/R4/.well-known/smart-configuration")
        assert config.json()["token_endpoint"] == audience
        assert "private_key_jwt" in config.json()["token_endpoint_auth_methods_supported"]

        answer = await ask_token(system, assertion(rsa_key, client_id, audience))
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "no-store"
        granted = answer.json()
        assert granted["token_type"] == "bearer"
        assert granted["expires_in"] == 300
        assert granted["scope"] == " ".join(BOOKING_SCOPES)
        system.headers["Authorization"] = f"Bearer {granted['access_token']}"

        slot = (await free_slots(system, settings, demo.specialist))[0]
        booked = await system.post(
            "/fhir/R4/Appointment/$book",
            json=parameters(f"Slot/{slot['id']}"),
            headers={"Content-Type": FHIR_JSON},  # no cookie, no CSRF token: the bearer token
        )
        assert booked.status_code == 201, booked.text
        appointment = Appointment.model_validate(booked.json())
        # Booked as the GP the client acts for: the GP sees it in the JSON API.
        await login(admin, demo.gp)
        mine = await admin.get(f"/api/v1/appointments/{appointment.id}")
        assert mine.status_code == 200, mine.text

        # The EC key works too; the directory needs its own scope.
        ec_token = await ask_token(
            system, assertion(ec_key, client_id, audience), scope="system/Slot.read"
        )
        assert ec_token.status_code == 200, ec_token.text
        system.headers["Authorization"] = f"Bearer {ec_token.json()['access_token']}"
        refused = await system.get("/fhir/R4/HealthcareService")
        outcome = assert_outcome(refused, 403)
        assert "system/HealthcareService.read" in (outcome.issue[0].diagnostics or "")
        assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
        write = await system.post(
            "/fhir/R4/Appointment/$book",
            json=parameters(f"Slot/{slot['id']}"),
            headers={"Content-Type": FHIR_JSON},
        )
        assert_outcome(write, 403)


async def test_assertions_that_are_not_the_clients_own_get_no_token(
    client_factory: ClientFactory, demo: Demo, settings: Settings, rsa_key: RSAKey
) -> None:
    audience = settings.base_url.rstrip("/") + TOKEN_URL
    stranger = RSAKey.generate_key(2048, parameters={"kid": "praxis-2026"})  # same kid
    async with client_factory() as admin, client_factory() as system:
        await login(admin, demo.gp)
        client_id = (await register(admin, [rsa_key.as_dict(private=False)]))["client_id"]
        refusals = {  # what the assertion does wrong, and the words that say so
            "nicht angenommen": assertion(stranger, client_id, audience),
            "abgelaufen": assertion(rsa_key, client_id, audience, expires_in=-120),
            "mehr als 300 Sekunden": assertion(rsa_key, client_id, audience, expires_in=3600),
            "aud": assertion(rsa_key, client_id, "https://elsewhere.example/token"),
            "iss und sub": assertion(rsa_key, client_id, audience, sub="someone"),
            "braucht jti": assertion(rsa_key, client_id, audience, jti=None),
            "(Client, Schlüssel oder Signatur)": assertion(rsa_key, "nobody-at-all", audience),
            "kein gültiges JWT": "not.a.jwt",
        }
        for words, signed in refusals.items():
            answer = await ask_token(system, signed)
            assert answer.status_code == 401, (words, answer.text)
            assert answer.json()["error"] == "invalid_client", words
            assert words in answer.json()["error_description"], answer.text

        once = assertion(rsa_key, client_id, audience)
        assert (await ask_token(system, once)).status_code == 200
        replayed = await ask_token(system, once)
        assert replayed.status_code == 401
        assert "jti" in replayed.json()["error_description"]

        scope = await ask_token(
            system, assertion(rsa_key, client_id, audience), scope="system/Practitioner.read"
        )
        assert (scope.status_code, scope.json()["error"]) == (400, "invalid_scope")
        patient_scope = await ask_token(
            system, assertion(rsa_key, client_id, audience), scope="patient/Appointment.read"
        )
        assert patient_scope.json()["error"] == "invalid_scope"
        grant = await system.post(
            TOKEN_URL,
            data={"grant_type": "password", "client_assertion_type": ASSERTION_TYPE},
        )
        assert (grant.status_code, grant.json()["error"]) == (400, "unsupported_grant_type")
        as_json = await system.post(TOKEN_URL, json={"grant_type": "client_credentials"})
        assert (as_json.status_code, as_json.json()["error"]) == (400, "invalid_request")


async def test_a_deactivated_client_loses_its_tokens_at_once(
    client_factory: ClientFactory, demo: Demo, settings: Settings, rsa_key: RSAKey
) -> None:
    audience = settings.base_url.rstrip("/") + TOKEN_URL
    async with client_factory() as admin, client_factory() as system:
        await login(admin, demo.gp)
        registered = await register(admin, [rsa_key.as_dict(private=False)])
        mine = await admin.get("/api/v1/account/fhir-clients")
        assert [c["client_id"] for c in mine.json()] == [registered["client_id"]]
        await login(admin, demo.admin)
        answer = await ask_token(system, assertion(rsa_key, registered["client_id"], audience))
        system.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
        assert (await system.get("/fhir/R4/Appointment")).status_code == 200
        off = await admin.post(f"/api/v1/admin/fhir-clients/{registered['id']}/deactivate")
        assert off.status_code == 200, off.text
        assert off.json()["active"] is False
        gone = await system.get("/fhir/R4/Appointment")
        assert_outcome(gone, 401)
        assert 'error="invalid_token"' in gone.headers["www-authenticate"]
        again = await ask_token(system, assertion(rsa_key, registered["client_id"], audience))
        assert again.status_code == 401
        system.headers["Authorization"] = "Bearer forged.token.value"
        assert_outcome(await system.get("/fhir/R4/Appointment"), 401)
        listed = await admin.get("/api/v1/admin/fhir-clients")
        assert [c["active"] for c in listed.json()] == [False]
        assert "jwks" not in listed.text  # keys are not echoed (they are public, but long)


async def test_registration_refuses_private_keys_weak_keys_and_other_accounts(
    client_factory: ClientFactory, demo: Demo, rsa_key: RSAKey
) -> None:
    """Only a doctor registers, and only for themselves: an admin cannot register a system
    acting as a doctor (it would read that doctor's patients); a field naming another account
    is refused. Private, weak and kid-less keys and unknown scopes are refused."""
    weak = rsa.generate_private_key(65537, 1024).public_key().public_numbers()  # noqa: S505 - refused
    weak_jwk = {"kty": "RSA", "kid": "weak", "n": b64(weak.n), "e": b64(weak.e)}
    public = {"keys": [rsa_key.as_dict(private=False)]}
    cases: list[tuple[dict[str, Any], int]] = [
        ({"jwks": {"keys": [rsa_key.as_dict(private=True)]}}, 422),
        ({"jwks": {"keys": [weak_jwk]}}, 422),
        ({"jwks": {"keys": []}}, 422),
        ({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "x"}]}}, 422),
        ({"jwks": {"keys": [{**rsa_key.as_dict(private=False), "kid": None}]}}, 422),
        ({"jwks": public, "scopes": ["user/*.*"]}, 422),
        ({"jwks": public, "account_id": demo.other_gp.id}, 422),  # someone else: no such field
    ]
    async with client_factory() as admin, client_factory() as gp:
        await login(gp, demo.gp)
        for changes, status in cases:
            body = {"name": "Praxis", "scopes": BOOKING_SCOPES, **changes}
            response = await gp.post("/api/v1/account/fhir-clients", json=body)
            assert response.status_code == status, (changes, response.text)
            assert '"d"' not in response.text
        await login(admin, demo.admin)
        as_admin = await admin.post(
            "/api/v1/account/fhir-clients",
            json={"name": "Praxis", "scopes": BOOKING_SCOPES, "jwks": public},
        )
        assert as_admin.status_code == 403
        assert (await admin.post("/api/v1/admin/fhir-clients", json={})).status_code == 405
        assert (await gp.get("/api/v1/admin/fhir-clients")).status_code == 403
        assert (await admin.get("/api/v1/admin/fhir-clients")).json() == []


async def test_a_changed_role_stops_the_accounts_clients(
    client_factory: ClientFactory, demo: Demo, settings: Settings, rsa_key: RSAKey
) -> None:
    audience = settings.base_url.rstrip("/") + TOKEN_URL
    async with client_factory() as doctor, client_factory() as admin, client_factory() as system:
        await login(doctor, demo.gp)
        registered = await register(doctor, [rsa_key.as_dict(private=False)])
        await login(admin, demo.admin)
        moved = await admin.patch(
            f"/api/v1/admin/users/{demo.gp.id}",
            json={"role": "specialist", "specialty_id": demo.cardiology.id},
        )
        assert moved.status_code == 200, moved.text
        refused = await ask_token(system, assertion(rsa_key, registered["client_id"], audience))
        assert refused.status_code == 401


async def test_a_deeply_nested_assertion_is_refused_not_a_server_error(
    client: httpx2.AsyncClient,
) -> None:
    payload = base64.urlsafe_b64encode(b"[" * 5000).rstrip(b"=").decode()
    answer = await ask_token(client, f"eyJhbGciOiJSUzM4NCJ9.{payload}.c2ln")
    assert (answer.status_code, answer.json()["error"]) == (401, "invalid_client")


async def test_the_letter_needs_the_scopes_of_everything_it_carries(
    client_factory: ClientFactory, demo: Demo, settings: Settings, rsa_key: RSAKey
) -> None:
    """``Composition/<id>/$document`` carries the DiagnosticReport and the ServiceRequest: a
    token with only ``system/Composition.read`` gets none of it."""
    audience = settings.base_url.rstrip("/") + TOKEN_URL
    async with client_factory() as doctor, client_factory() as system:
        await login(doctor, demo.gp)
        registered = await register(
            doctor, [rsa_key.as_dict(private=False)], scopes=["system/Composition.read"]
        )
        answer = await ask_token(
            system,
            assertion(rsa_key, registered["client_id"], audience),
            scope="system/Composition.read",
        )
        system.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
        refused = await system.get("/fhir/R4/Composition/1/$document")
        diagnostics = assert_outcome(refused, 403).issue[0].diagnostics or ""
        assert "system/DiagnosticReport.read" in diagnostics
        assert "system/ServiceRequest.read" in diagnostics
