"""Single sign-on against a real OpenID provider (``tests/oidc/provider.mjs``, started per test).

The app runs in the test (ASGI client at ``BASE_URL``); the provider is a real Node.js server
on loopback that Konsil reaches over HTTP for discovery, keys and tokens. The test plays the
browser: it follows Konsil's redirect to the provider, logs in there with a real HTTP client
and brings the provider's answer back to Konsil's callback.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx2
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from app.accounts.models import Role, User
from app.audit.models import AuditEvent
from app.db import unit_of_work
from app.seed import DEMO_PASSWORD
from app.settings import Settings
from tests.conftest import BASE_URL
from tests.factories import Demo
from tests.oidc_provider import (
    Provider,
    ProviderConfig,
    log_in_at_provider,
    path_and_query,
    query,
    run_provider,
)

pytestmark = pytest.mark.oidc


@pytest.fixture
def mint() -> dict[str, object]:
    """Misbehaviour asked of the provider (tests/oidc/provider.mjs), none by default."""
    return {}


@pytest.fixture
def provider_config(mint: dict[str, object]) -> ProviderConfig:
    config = ProviderConfig(konsil_urls=[BASE_URL], mint=dict(mint))
    # The demo data's first practice: every test has a fresh database, so its id is 1.
    config.accounts["neu-gp"]["claims"]["practice"] = "1"
    return config


@pytest.fixture
def provider(tmp_path: Path, provider_config: ProviderConfig) -> Iterator[Provider]:
    with run_provider(tmp_path, provider_config) as running:
        yield running


@pytest.fixture
def sso_settings() -> dict[str, object]:
    """Per-test changes to the SSO settings (provisioning, required acr, ...)."""
    return {}


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], provider: Provider, sso_settings: dict[str, object]
) -> Settings:
    return make_settings(**provider.settings(**sso_settings))


@pytest.fixture
async def idp() -> AsyncIterator[httpx2.AsyncClient]:
    """The browser's side at the provider (its own cookies)."""
    async with httpx2.AsyncClient(timeout=10) as client:
        yield client


async def start(client: httpx2.AsyncClient, next_url: str | None = None) -> str:
    """Presses the login page's button: Konsil's redirect to the provider."""
    path = "/auth/oidc/login" + (f"?{urlencode({'next': next_url})}" if next_url else "")
    response = await client.get(path)
    assert response.status_code == 303, response.text
    return response.headers["location"]


async def sign_in(
    client: httpx2.AsyncClient,
    idp: httpx2.AsyncClient,
    account: str,
    *,
    tamper: Callable[[str], str] | None = None,
    next_url: str | None = None,
) -> httpx2.Response:
    """The whole login: Konsil -> provider (log in as ``account``) -> Konsil's callback."""
    authorization = await start(client, next_url)
    back = await log_in_at_provider(
        idp, tamper(authorization) if tamper else authorization, account=account
    )
    return await client.get(path_and_query(back))


async def audit_rows(sessions: async_sessionmaker[AsyncSession], action: str) -> list[AuditEvent]:
    async with sessions() as session:
        query_ = select(AuditEvent).where(col(AuditEvent.action) == action)
        return list((await session.execute(query_.order_by(col(AuditEvent.id)))).scalars())


async def failure_reasons(sessions: async_sessionmaker[AsyncSession]) -> list[Any]:
    return [row.detail["reason"] for row in await audit_rows(sessions, "sso.login.failure")]


async def user_by_email(sessions: async_sessionmaker[AsyncSession], email: str) -> User | None:
    async with sessions() as session:
        found = await session.execute(select(User).where(col(User.email) == email))
        return found.scalar_one_or_none()


def logged_in(response: httpx2.Response) -> bool:
    return "konsil_staff" in response.cookies


# --- the login ---------------------------------------------------------------------------------


async def test_sso_login_request_carries_state_nonce_and_pkce(
    client: httpx2.AsyncClient, provider: Provider, demo: Demo
) -> None:
    response = await client.get("/auth/oidc/login")
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith(provider.issuer + "/auth?")
    params = query(location)
    assert params["response_type"] == "code"
    assert params["client_id"] == "konsil"
    assert params["redirect_uri"] == f"{BASE_URL}/auth/oidc/callback"
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43  # base64url of a SHA-256
    assert len(params["state"]) >= 32
    assert len(params["nonce"]) >= 32
    assert params["state"] != params["nonce"]
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("konsil_oidc=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/auth/oidc/" in cookie
    # The verifier and nonce stay on the server: neither is in the cookie.
    assert params["nonce"] not in cookie


async def test_sso_binds_an_admins_account_by_verified_email_then_by_subject(
    client: httpx2.AsyncClient,
    client_factory: Callable[[], httpx2.AsyncClient],
    idp: httpx2.AsyncClient,
    provider: Provider,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    response = await sign_in(client, idp, "lehmann")
    assert response.status_code == 303
    assert response.headers["location"] == "/gp"
    assert logged_in(response)
    me = await client.get("/api/v1/auth/me")
    assert me.status_code == 200
    assert me.json()["id"] == demo.gp.id
    assert me.json()["role"] == "gp"
    gp = await user_by_email(sessions, demo.gp.email)
    assert gp is not None
    assert (gp.oidc_issuer, gp.oidc_subject) == (provider.issuer, "lehmann")
    # The GP's page opens with the session.
    assert (await client.get("/gp")).status_code == 200

    # The second time (another browser) the subject finds the account.
    async with client_factory() as second, httpx2.AsyncClient(timeout=10) as idp2:
        again = await sign_in(second, idp2, "lehmann")
        assert again.status_code == 303
        assert (await second.get("/api/v1/auth/me")).json()["id"] == demo.gp.id
    rows = await audit_rows(sessions, "sso.login.success")
    assert [(r.actor_id, r.detail) for r in rows] == [
        (demo.gp.id, {"how": "bind"}),
        (demo.gp.id, {"how": "login"}),
    ]


async def test_sso_login_returns_to_the_page_asked_for(
    client: httpx2.AsyncClient, idp: httpx2.AsyncClient, provider: Provider, demo: Demo
) -> None:
    response = await sign_in(client, idp, "lehmann", next_url="/gp/appointments")
    assert response.headers["location"] == "/gp/appointments"


async def test_sso_login_never_redirects_to_another_site(
    client: httpx2.AsyncClient, idp: httpx2.AsyncClient, provider: Provider, demo: Demo
) -> None:
    response = await sign_in(client, idp, "lehmann", next_url="//evil.example/")
    assert response.headers["location"] == "/gp"


# --- bad callbacks -----------------------------------------------------------------------------


async def test_sso_callback_with_an_unknown_state_is_refused(
    client: httpx2.AsyncClient,
    idp: httpx2.AsyncClient,
    provider: Provider,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    authorization = await start(client)
    back = await log_in_at_provider(idp, authorization, account="lehmann")
    params = query(back)
    forged = f"/auth/oidc/callback?{urlencode({**params, 'state': 'x' * 43})}"
    response = await client.get(forged)
    assert response.status_code == 400
    assert "text/html" in response.headers["content-type"]
    assert "Anmeldung mit dem Klinik-Konto fehlgeschlagen" in response.text
    assert not logged_in(response)
    assert await failure_reasons(sessions) == ["state"]


async def test_sso_callback_in_another_browser_is_refused(
    client: httpx2.AsyncClient,
    client_factory: Callable[[], httpx2.AsyncClient],
    idp: httpx2.AsyncClient,
    provider: Provider,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # Login CSRF: an attacker's own login link must not log a victim's browser in.
    authorization = await start(client)
    back = await log_in_at_provider(idp, authorization, account="lehmann")
    async with client_factory() as victim:
        response = await victim.get(path_and_query(back))
    assert response.status_code == 400
    assert not logged_in(response)
    assert await failure_reasons(sessions) == ["browser"]


async def test_sso_callback_replayed_is_refused(
    client: httpx2.AsyncClient,
    idp: httpx2.AsyncClient,
    provider: Provider,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    authorization = await start(client)
    back = await log_in_at_provider(idp, authorization, account="lehmann")
    assert (await client.get(path_and_query(back))).status_code == 303
    replay = await client.get(path_and_query(back))
    assert replay.status_code == 400
    assert await failure_reasons(sessions) == ["state"]


async def test_sso_replayed_code_is_refused_by_the_provider(
    client: httpx2.AsyncClient,
    idp: httpx2.AsyncClient,
    provider: Provider,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    first = await log_in_at_provider(idp, await start(client), account="lehmann")
    assert (await client.get(path_and_query(first))).status_code == 303
    # A used code slipped into a fresh login of the same browser: the provider refuses it.
    fresh = query(await log_in_at_provider(idp, await start(client), account="lehmann"))
    replayed = {**fresh, "code": query(first)["code"]}
    client.cookies.delete("konsil_staff")
    response = await client.get(f"/auth/oidc/callback?{urlencode(replayed)}")
    assert response.status_code == 400
    assert "Anmeldecode" in response.text
    assert not logged_in(response)
    assert await failure_reasons(sessions) == ["code_rejected"]


async def test_sso_nonce_mismatch_is_refused(
    client: httpx2.AsyncClient,
    idp: httpx2.AsyncClient,
    provider: Provider,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    def other_nonce(url: str) -> str:
        parts = urlsplit(url)
        params = {**query(url), "nonce": "a-nonce-konsil-never-issued-0123456789"}
        return urlunsplit(parts._replace(query=urlencode(params)))

    response = await sign_in(client, idp, "lehmann", tamper=other_nonce)
    assert response.status_code == 400
    assert not logged_in(response)
    assert await failure_reasons(sessions) == ["id_token_nonce"]


async def test_sso_cancelled_at_the_provider_is_a_clear_page(
    client: httpx2.AsyncClient,
    idp: httpx2.AsyncClient,
    provider: Provider,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    back = await log_in_at_provider(idp, await start(client), account="", cancel=True)
    assert query(back)["error"] == "access_denied"
    response = await client.get(path_and_query(back))
    assert response.status_code == 400
    assert "abgebrochen oder abgelehnt" in response.text
    assert await failure_reasons(sessions) == ["provider_error"]


@pytest.mark.parametrize(
    ("mint", "reason"),
    [
        ({"audience": "another-application"}, "id_token_aud"),
        ({"expiredSeconds": 3600}, "id_token_expired"),
    ],
    ids=["wrong-audience", "expired"],
)
async def test_sso_id_token_for_another_audience_or_expired_is_refused(
    reason: str,
    idp: httpx2.AsyncClient,
    client: httpx2.AsyncClient,
    provider: Provider,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # The provider signs these with its real key: only the claims are wrong.
    response = await sign_in(client, idp, "lehmann")
    assert response.status_code == 400
    assert "nicht überprüft werden" in response.text
    assert not logged_in(response)
    assert await failure_reasons(sessions) == [reason]
    assert (await client.get("/api/v1/auth/me")).status_code == 401


# --- who gets in -------------------------------------------------------------------------------


async def test_sso_unmapped_role_is_refused(
    client: httpx2.AsyncClient,
    idp: httpx2.AsyncClient,
    provider: Provider,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    response = await sign_in(client, idp, "pflege")
    assert response.status_code == 403
    assert "keine Rolle in Konsil" in response.text
    assert not logged_in(response)
    assert await failure_reasons(sessions) == ["role"]


async def test_sso_deactivated_account_is_refused(
    client: httpx2.AsyncClient,
    idp: httpx2.AsyncClient,
    provider: Provider,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with unit_of_work(sessions) as session:
        gp = await session.get(User, demo.gp.id)
        assert gp is not None
        gp.is_active = False
    response = await sign_in(client, idp, "lehmann")
    assert response.status_code == 403
    assert "deaktiviert" in response.text
    assert not logged_in(response)
    assert await failure_reasons(sessions) == ["inactive"]


async def test_sso_unverified_email_binds_no_account(
    client: httpx2.AsyncClient,
    idp: httpx2.AsyncClient,
    provider: Provider,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # "unbestaetigt" claims the address of a real specialist, unverified.
    response = await sign_in(client, idp, "unbestaetigt")
    assert response.status_code == 403
    specialist = await user_by_email(sessions, demo.other_specialist.email)
    assert specialist is not None
    assert specialist.oidc_subject is None
    assert await failure_reasons(sessions) == ["email_unverified"]


async def test_sso_without_provisioning_refuses_unknown_people(
    client: httpx2.AsyncClient,
    idp: httpx2.AsyncClient,
    provider: Provider,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    response = await sign_in(client, idp, "neu-kardio")
    assert response.status_code == 403
    assert "kein Konsil-Konto" in response.text
    assert await user_by_email(sessions, "weiss@klinikum.example") is None
    assert await failure_reasons(sessions) == ["no_account"]


@pytest.mark.parametrize("sso_settings", [{"oidc_provisioning": "create"}])
async def test_sso_provisioning_creates_a_specialist_from_claims(
    client: httpx2.AsyncClient,
    idp: httpx2.AsyncClient,
    provider: Provider,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    response = await sign_in(client, idp, "neu-kardio")
    assert response.status_code == 303
    assert response.headers["location"] == "/specialist"
    created = await user_by_email(sessions, "weiss@klinikum.example")
    assert created is not None
    assert created.role is Role.SPECIALIST
    assert created.specialty_id == demo.cardiology.id
    assert created.display_name == "Dr. Felix Weiß"
    assert created.password_hash is None
    assert (created.oidc_issuer, created.oidc_subject) == (provider.issuer, "neu-kardio")


@pytest.mark.parametrize("sso_settings", [{"oidc_provisioning": "create"}])
async def test_sso_provisioned_account_has_no_password_login(
    client: httpx2.AsyncClient,
    client_factory: Callable[[], httpx2.AsyncClient],
    idp: httpx2.AsyncClient,
    provider: Provider,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    response = await sign_in(client, idp, "neu-gp")
    assert response.headers["location"] == "/gp"
    created = await user_by_email(sessions, "neu@praxis-cottbus.example")
    assert created is not None
    assert created.practice_id == demo.practice.id
    async with client_factory() as other:
        for password in ("", DEMO_PASSWORD, "x" * 12):
            answer = await other.post(
                "/api/v1/auth/login",
                json={"email": "neu@praxis-cottbus.example", "password": password or "-"},
            )
            assert answer.status_code == 401
            assert answer.json()["error"]["code"] == "invalid_credentials"


@pytest.mark.parametrize("sso_settings", [{"oidc_provisioning": "create"}])
async def test_sso_provisioning_refuses_a_specialist_without_specialty(
    client: httpx2.AsyncClient,
    idp: httpx2.AsyncClient,
    provider: Provider,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    response = await sign_in(client, idp, "neu-ohne-fach")
    assert response.status_code == 403
    assert "kein bekanntes Fachgebiet" in response.text
    assert await user_by_email(sessions, "ohne-fach@klinikum.example") is None
    assert await failure_reasons(sessions) == ["specialty"]


@pytest.mark.parametrize("sso_settings", [{"oidc_required_acr": ["urn:konsil:test:mfa"]}])
async def test_sso_required_acr_refuses_a_login_without_second_factor(
    client: httpx2.AsyncClient,
    client_factory: Callable[[], httpx2.AsyncClient],
    idp: httpx2.AsyncClient,
    provider: Provider,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    assert query(await start(client))["acr_values"] == "urn:konsil:test:mfa"
    refused = await sign_in(client, idp, "lehmann")  # password only at the provider
    assert refused.status_code == 403
    assert "zweiten Faktor" in refused.text
    async with client_factory() as other, httpx2.AsyncClient(timeout=10) as idp2:
        allowed = await sign_in(other, idp2, "schulz")  # password and one-time code
        assert allowed.status_code == 303
    assert await failure_reasons(sessions) == ["assurance"]


@pytest.mark.parametrize("sso_settings", [{"oidc_required_amr": ["otp", "hwk"]}])
async def test_sso_required_amr_needs_one_of_the_methods(
    client: httpx2.AsyncClient,
    client_factory: Callable[[], httpx2.AsyncClient],
    idp: httpx2.AsyncClient,
    provider: Provider,
    demo: Demo,
) -> None:
    assert (await sign_in(client, idp, "lehmann")).status_code == 403
    async with client_factory() as other, httpx2.AsyncClient(timeout=10) as idp2:
        assert (await sign_in(other, idp2, "schulz")).status_code == 303


# --- logout, the login page, audit ---------------------------------------------------------------


async def test_sso_logout_ends_the_session_at_the_provider_too(
    client: httpx2.AsyncClient, idp: httpx2.AsyncClient, provider: Provider, demo: Demo
) -> None:
    await sign_in(client, idp, "lehmann")
    csrf = (await client.get("/api/v1/auth/me")).json()["csrf_token"]
    response = await client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 200
    logout_url = response.json()["logout_url"]
    assert logout_url.startswith(provider.issuer + "/session/end?")
    assert query(logout_url) == {
        "client_id": "konsil",
        "post_logout_redirect_uri": f"{BASE_URL}/login",
    }
    assert (await client.get("/api/v1/auth/me")).status_code == 401
    # At the provider: the confirmation, then back to Konsil's login page.
    page = await idp.get(logout_url)
    assert page.status_code == 200
    form = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page.text))
    action = re.search(r'action="([^"]+)"', page.text)
    assert action is not None
    done = await idp.post(action.group(1), data={**form, "logout": "yes"})
    assert done.status_code in (302, 303)
    assert done.headers["location"] == f"{BASE_URL}/login"


async def test_password_logout_stays_local(
    client: httpx2.AsyncClient, provider: Provider, demo: Demo
) -> None:
    login = await client.post(
        "/api/v1/auth/login", json={"email": demo.gp.email, "password": DEMO_PASSWORD}
    )
    csrf = login.json()["csrf_token"]
    response = await client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 204


async def test_login_page_shows_the_sso_button(
    client: httpx2.AsyncClient, provider: Provider
) -> None:
    page = await client.get("/login?next=%2Fgp%2Fappointments")
    assert 'href="/auth/oidc/login?next=%2Fgp%2Fappointments"' in page.text
    assert "Mit Klinik-Konto anmelden" in page.text
    english = await client.get("/login?lang=en")
    assert "Log in with hospital account" in english.text


@pytest.mark.parametrize("sso_settings", [{"oidc_button_label": "Anmelden mit Klinikum Cottbus"}])
async def test_login_page_shows_the_operators_button_label(
    client: httpx2.AsyncClient, provider: Provider
) -> None:
    assert "Anmelden mit Klinikum Cottbus" in (await client.get("/login")).text


async def test_sso_audit_rows_hold_no_personal_data(
    client: httpx2.AsyncClient,
    client_factory: Callable[[], httpx2.AsyncClient],
    idp: httpx2.AsyncClient,
    provider: Provider,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await sign_in(client, idp, "lehmann")
    async with client_factory() as other, httpx2.AsyncClient(timeout=10) as idp2:
        await sign_in(other, idp2, "pflege")
    async with sessions() as session:
        rows = (await session.execute(select(AuditEvent))).scalars().all()
    text = repr([(r.action, r.subject, r.ip, r.detail) for r in rows])
    for personal in ("lehmann", "pflege", "Paula", "Lehmann", "@"):
        assert personal not in text


async def test_sso_provider_unreachable_is_a_clear_page(
    client: httpx2.AsyncClient, provider: Provider, sessions: async_sessionmaker[AsyncSession]
) -> None:
    provider.process.terminate()
    provider.process.wait(10)
    response = await client.get("/auth/oidc/login")
    assert response.status_code == 503
    assert "nicht erreichbar" in response.text
    assert "konsil_oidc" not in response.cookies
    assert await failure_reasons(sessions) == ["provider_unreachable"]


# --- Konsil's own second factor after single sign-on ----------------------------------------


@pytest.mark.parametrize("sso_settings", [{"second_factor_roles": None}])
async def test_sso_without_the_providers_mfa_still_needs_konsils_second_factor(
    client: httpx2.AsyncClient, idp: httpx2.AsyncClient, provider: Provider, demo: Demo
) -> None:
    response = await sign_in(client, idp, "lehmann", next_url="/gp/appointments")
    assert response.status_code == 303
    # The role requires a second factor and the provider did not vouch for one: set it up.
    assert response.headers["location"] == "/account?next=%2Fgp%2Fappointments"
    me = (await client.get("/api/v1/auth/me")).json()
    assert me["stage"] == "enrol"
    assert (await client.get("/api/v1/appointments")).status_code == 403


@pytest.mark.parametrize(
    "sso_settings", [{"second_factor_roles": None, "oidc_required_amr": ["otp", "hwk"]}]
)
async def test_sso_with_the_providers_mfa_is_fully_signed_in(
    client: httpx2.AsyncClient, idp: httpx2.AsyncClient, provider: Provider, demo: Demo
) -> None:
    response = await sign_in(client, idp, "schulz")  # password and one-time code there
    assert response.status_code == 303
    assert response.headers["location"] == "/specialist"
    assert (await client.get("/api/v1/auth/me")).json()["stage"] == "full"
