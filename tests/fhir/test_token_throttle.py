"""The token endpoint is throttled before any signature check: per address the attempts that
got no token, per client id every token request. Past either budget: 429 ``slow_down`` with
``Retry-After``, no token, and the assertion is not even looked at."""

from __future__ import annotations

from collections.abc import Callable

import httpx2
import pytest
from joserfc.jwk import RSAKey

from app.settings import Settings
from tests.factories import Demo, login
from tests.fhir.smart_client import TOKEN_URL, ask_token, assertion, register

ClientFactory = Callable[[], httpx2.AsyncClient]


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    # Three failures per address, two tokens per client; a throttled one waits a minute.
    return make_settings(
        database_url=database_url,
        login_free_attempts_shared=3,
        fhir_token_requests_per_client=2,
    )


@pytest.fixture(scope="module")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "praxis-2026", "alg": "RS384"})


def assert_slowed(answer: httpx2.Response) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.json()["error"] == "slow_down"
    assert 1 <= int(answer.headers["retry-after"]) <= 60
    assert "access_token" not in answer.json()


async def test_failed_token_requests_of_one_address_are_throttled(
    client_factory: ClientFactory, demo: Demo, settings: Settings, rsa_key: RSAKey
) -> None:
    audience = settings.base_url.rstrip("/") + TOKEN_URL
    async with client_factory() as doctor, client_factory() as system:
        await login(doctor, demo.gp)
        client_id = (await register(doctor, [rsa_key.as_dict(private=False)]))["client_id"]
        # Successes give their attempt back: a practice's systems do not use the budget up.
        for _ in range(2):
            good = await ask_token(system, assertion(rsa_key, client_id, audience))
            assert good.status_code == 200, good.text
        for signed in ("not.a.jwt", assertion(rsa_key, "nobody-at-all", audience), "x.y.z"):
            assert (await ask_token(system, signed)).status_code == 401
        assert_slowed(await ask_token(system, assertion(rsa_key, "nobody-else", audience)))


async def test_token_requests_of_one_client_are_throttled_even_when_they_succeed(
    client_factory: ClientFactory, demo: Demo, settings: Settings, rsa_key: RSAKey
) -> None:
    audience = settings.base_url.rstrip("/") + TOKEN_URL
    async with client_factory() as doctor, client_factory() as system:
        await login(doctor, demo.gp)
        looping = (await register(doctor, [rsa_key.as_dict(private=False)]))["client_id"]
        other = (await register(doctor, [rsa_key.as_dict(private=False)]))["client_id"]
        for _ in range(2):
            good = await ask_token(system, assertion(rsa_key, looping, audience))
            assert good.status_code == 200, good.text
        unused = assertion(rsa_key, looping, audience)
        assert_slowed(await ask_token(system, unused))
        # Another client of the same address has its own budget; the address lost nothing.
        for _ in range(2):
            good = await ask_token(system, assertion(rsa_key, other, audience))
            assert good.status_code == 200, good.text
        assert_slowed(await ask_token(system, unused))  # still waiting, still unchecked
        # The refusals took nothing from the address's budget: its three failures are left.
        for _ in range(3):
            assert (await ask_token(system, "not.a.jwt")).status_code == 401
        assert_slowed(await ask_token(system, "not.a.jwt"))
