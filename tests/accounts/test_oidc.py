"""Single sign-on against a real OpenID provider (``tests/oidc/provider.mjs``, started per test).

The app runs in the test (ASGI client at ``BASE_URL``); the provider is a real Node.js server
on loopback that Konsil reaches over HTTP for discovery, keys and tokens. The test plays the
browser: it follows Konsil's redirect to the provider, logs in there with a real HTTP client
and brings the provider's answer back to Konsil's callback.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import httpx2
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select
from starlette.applications import Starlette

from app.accounts.models import AuthSession, Role, User
from app.audit.models import AuditEvent
from app.db import unit_of_work, utcnow
from app.main import create_app
from app.seed import DEMO_PASSWORD
from app.settings import Settings
from tests.conftest import BASE_URL, create_schema, lifespan_in_own_task
from tests.factories import Demo, login, seed
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
    assert "Path=/;" in cookie
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


# --- the flow cookie and the throttle ------------------------------------------------------------


def flow_cookie(response: httpx2.Response) -> str:
    header = next(c for c in response.headers.get_list("set-cookie") if "konsil_oidc=" in c)
    return header.split(";", 1)[0].split("=", 1)[1]


async def test_sso_flow_cookie_is_new_for_every_start_and_deleted_at_the_callback(
    client: httpx2.AsyncClient, idp: httpx2.AsyncClient, provider: Provider, demo: Demo
) -> None:
    first = await client.get("/auth/oidc/login")
    second = await client.get("/auth/oidc/login")
    assert flow_cookie(first) != flow_cookie(second)
    # The first flow's callback now comes with the second flow's cookie: refused.
    back = await log_in_at_provider(idp, first.headers["location"], account="lehmann")
    refused = await client.get(path_and_query(back))
    assert refused.status_code == 400
    assert flow_cookie(refused) == '""'  # deleted, also after a failure
    assert "konsil_oidc" not in client.cookies

    done = await sign_in(client, idp, "lehmann")
    assert done.status_code == 303
    assert 'konsil_oidc=""' in done.headers["set-cookie"]
    assert "konsil_oidc" not in client.cookies


async def test_sso_flow_cookie_over_https_has_the_host_prefix(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    https = "https://konsil.example"
    config = ProviderConfig(konsil_urls=[https])
    with run_provider(tmp_path, config) as running:
        cfg = make_settings(cookie_secure=True, base_url=https, **running.settings())
        await create_schema(cfg.database_url)
        application = create_app(cfg)
        async with lifespan_in_own_task(application):
            await seed(application.state.resources.sessions)
            transport = httpx2.ASGITransport(app=application, client=("198.51.100.7", 40000))
            async with (
                httpx2.AsyncClient(transport=transport, base_url=https) as browser,
                httpx2.AsyncClient(timeout=10) as at_provider,
            ):
                started = await browser.get("/auth/oidc/login")
                cookie = next(
                    c
                    for c in started.headers.get_list("set-cookie")
                    if c.startswith("__Host-konsil_oidc=")
                )
                assert "Secure" in cookie
                assert "Path=/;" in cookie
                assert "Domain" not in cookie
                back = await log_in_at_provider(
                    at_provider, started.headers["location"], account="lehmann"
                )
                done = await browser.get(path_and_query(back))
                assert done.status_code == 303, done.text
                assert "__Host-konsil_staff" in browser.cookies
                assert "__Host-konsil_oidc" not in browser.cookies


@pytest.mark.parametrize("sso_settings", [{"login_free_attempts_shared": 3}])
async def test_sso_starts_and_stray_callbacks_from_one_address_are_throttled(
    client: httpx2.AsyncClient,
    client_factory: Callable[[], httpx2.AsyncClient],
    app: Starlette,
    provider: Provider,
    demo: Demo,
) -> None:
    starts = [(await client.get("/auth/oidc/login")).status_code for _ in range(4)]
    assert starts == [303, 303, 303, 429]
    refused = await client.get("/auth/oidc/login")
    assert refused.status_code == 429
    assert "text/html" in refused.headers["content-type"]
    assert "Zu viele Anmeldungen" in refused.text
    assert int(refused.headers["retry-after"]) > 0
    # Callbacks that belong to no sign-in of this browser cost the same.
    stray = await client.get(f"/auth/oidc/callback?{urlencode({'state': 'x' * 43, 'code': 'y'})}")
    assert stray.status_code == 429
    # Another address is not affected.
    transport = httpx2.ASGITransport(app=app, client=("192.0.2.80", 40000))
    async with httpx2.AsyncClient(transport=transport, base_url=BASE_URL) as elsewhere:
        assert (await elsewhere.get("/auth/oidc/login")).status_code == 303


@pytest.mark.parametrize("sso_settings", [{"login_free_attempts_shared": 3}])
async def test_completed_sso_sign_ins_do_not_use_up_the_address(
    client_factory: Callable[[], httpx2.AsyncClient], provider: Provider, demo: Demo
) -> None:
    # A morning at the hospital: many people behind one address sign in, one after the other.
    for _ in range(6):
        async with client_factory() as browser, httpx2.AsyncClient(timeout=10) as at_provider:
            response = await sign_in(browser, at_provider, "lehmann")
            assert response.status_code == 303, response.text
            assert response.headers["location"] == "/gp"


# --- re-authentication at the provider -------------------------------------------------------


async def reauth_due(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(AuthSession).values(verified_at=utcnow() - timedelta(minutes=11))
        )


async def sso_only_gp(client: httpx2.AsyncClient, idp: httpx2.AsyncClient) -> None:
    """Signs in as a GP created by the provider (no password, no second factor of its own),
    whose last confirmation is older than the re-auth window."""
    response = await sign_in(client, idp, "neu-gp")
    assert response.headers["location"] == "/gp"
    client.headers["X-CSRF-Token"] = (await client.get("/api/v1/auth/me")).json()["csrf_token"]


@pytest.mark.parametrize("sso_settings", [{"oidc_provisioning": "create"}])
async def test_sso_only_account_confirms_a_sensitive_action_at_the_provider(
    client: httpx2.AsyncClient,
    idp: httpx2.AsyncClient,
    provider: Provider,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await sso_only_gp(client, idp)
    await reauth_due(sessions)
    stale = await client.post("/api/v1/account/second-factors/totp")
    assert stale.json()["error"]["code"] == "reauth_required"
    # No password, no second factor: the API says where to confirm.
    answer = await client.post("/api/v1/auth/reauth", json={})
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "reauth_at_provider"
    assert answer.json()["error"]["detail"]["url"] == "/auth/oidc/reauth"

    started = await client.get("/auth/oidc/reauth?next=%2Faccount")
    assert started.status_code == 303
    params = query(started.headers["location"])
    assert (params["prompt"], params["max_age"]) == ("login", "0")
    # The provider asks again although its session from the sign-in is still open.
    back = await log_in_at_provider(idp, started.headers["location"], account="neu-gp")
    done = await client.get(path_and_query(back))
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/account"

    fresh = await client.post("/api/v1/account/second-factors/totp")
    assert fresh.status_code == 201, fresh.text
    rows = await audit_rows(sessions, "reauth.success")
    assert [r.detail for r in rows] == [{"how": "sso"}]


@pytest.mark.parametrize("sso_settings", [{"oidc_provisioning": "create"}])
async def test_the_provider_asks_again_even_with_its_session_open(
    client: httpx2.AsyncClient, idp: httpx2.AsyncClient, provider: Provider, demo: Demo
) -> None:
    await sso_only_gp(client, idp)
    # A plain login with the provider's session open goes straight back, without a form ...
    plain = await client.get("/auth/oidc/login")
    without_form = await at_provider(idp, plain.headers["location"])
    assert isinstance(without_form, str)
    assert without_form.startswith(f"{BASE_URL}/auth/oidc/callback?")
    # ... the re-authentication shows the provider's login form again.
    started = await client.get("/auth/oidc/reauth")
    asked = await at_provider(idp, started.headers["location"])
    assert isinstance(asked, httpx2.Response)
    assert asked.url.path.startswith("/interaction/")
    assert 'name="password"' in asked.text


async def at_provider(idp: httpx2.AsyncClient, url: str) -> str | httpx2.Response:
    """Follows the provider's redirects: the URL that leaves it, or the page it stops at."""
    provider = urlsplit(url).netloc
    for _ in range(10):
        if urlsplit(url).netloc != provider:
            return url
        response = await idp.get(url)
        if response.status_code not in (302, 303):
            return response
        url = urljoin(url, response.headers["location"])
    raise AssertionError("redirect loop at the provider")


@pytest.mark.parametrize(
    ("sso_settings", "mint"),
    [({"oidc_provisioning": "create"}, {"authTimeAgoSeconds": 3600})],
)
async def test_sso_reauth_without_a_fresh_login_at_the_provider_confirms_nothing(
    client: httpx2.AsyncClient,
    idp: httpx2.AsyncClient,
    provider: Provider,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # The provider says the person last signed in an hour ago (it ignored prompt and max_age).
    await sso_only_gp(client, idp)
    await reauth_due(sessions)
    started = await client.get("/auth/oidc/reauth?next=%2Faccount")
    back = await log_in_at_provider(idp, started.headers["location"], account="neu-gp")
    refused = await client.get(path_and_query(back))
    assert refused.status_code == 400
    assert "Bestätigung mit dem Klinik-Konto fehlgeschlagen" in refused.text
    assert (await client.post("/api/v1/account/second-factors/totp")).status_code == 403
    assert await failure_reasons(sessions) == ["auth_time"]


@pytest.mark.parametrize("sso_settings", [{"oidc_provisioning": "create"}])
async def test_sso_reauth_by_another_person_confirms_nothing(
    client: httpx2.AsyncClient,
    idp: httpx2.AsyncClient,
    provider: Provider,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await sso_only_gp(client, idp)
    await reauth_due(sessions)
    started = await client.get("/auth/oidc/reauth")
    # A colleague signs in at the provider instead (where the first session has ended).
    async with httpx2.AsyncClient(timeout=10) as colleague:
        back = await log_in_at_provider(colleague, started.headers["location"], account="lehmann")
    refused = await client.get(path_and_query(back))
    assert refused.status_code == 403
    assert (await client.post("/api/v1/account/second-factors/totp")).status_code == 403
    assert await failure_reasons(sessions) == ["reauth_identity"]


@pytest.mark.parametrize("sso_settings", [{"oidc_provisioning": "create"}])
async def test_sso_reauth_for_a_session_that_ended_meanwhile_confirms_nothing(
    client: httpx2.AsyncClient,
    idp: httpx2.AsyncClient,
    provider: Provider,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await sso_only_gp(client, idp)
    started = await client.get("/auth/oidc/reauth")
    assert (await client.post("/api/v1/auth/logout")).status_code == 200
    back = await log_in_at_provider(idp, started.headers["location"], account="neu-gp")
    refused = await client.get(path_and_query(back))
    assert refused.status_code == 400
    assert "inzwischen beendet" in refused.text
    assert await failure_reasons(sessions) == ["reauth_session"]


async def test_sso_reauth_of_an_account_not_linked_to_the_provider_is_refused(
    client: httpx2.AsyncClient, provider: Provider, demo: Demo
) -> None:
    await login(client, demo.gp)  # password login, no SSO identity
    response = await client.get("/auth/oidc/reauth")
    assert response.status_code == 409
    assert "nicht mit einem Klinik-Konto verbunden" in response.text
    assert "konsil_oidc" not in response.headers.get("set-cookie", "")
