"""Single sign-on in Chromium: the login page's button, the provider's login page, back to Konsil
logged in, and the logout that ends the session at the provider too."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright, expect
from sqlalchemy import update

from app.accounts.models import AuthSession
from app.db import unit_of_work, utcnow
from app.settings import Settings
from tests.browser.conftest import CHROMIUM_ARGS, PHONE, Browsing, LiveServer
from tests.conftest import create_schema
from tests.factories import seed
from tests.live import free_port, live_server
from tests.oidc_provider import PASSWORD, ProviderConfig, run_provider
from tests.services import CHROMIUM, require_chromium

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.oidc]

WIDE = {"width": 1366, "height": 900}
NARROW = {**PHONE, "width": 390}


@pytest.fixture
def sso_settings() -> dict[str, object]:
    """Per-test changes to the single sign-on settings."""
    return {}


@pytest.fixture
async def sso_browsing(tmp_path: Path, sso_settings: dict[str, object]) -> AsyncIterator[Browsing]:
    """A live Konsil with single sign-on configured against a running test provider."""
    require_chromium()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = ProviderConfig(konsil_urls=[url])
    config.accounts["neu-gp"]["claims"]["practice"] = "1"  # the demo data's first practice
    with run_provider(tmp_path, config) as provider:
        settings = Settings(
            environment="test",
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'konsil.db'}",
            base_url=url,
            log_json=False,
            log_level="WARNING",
            # Konsil's own second factor after SSO: tests/accounts/test_oidc.py.
            second_factor_roles=[],
            **provider.settings(**sso_settings),  # type: ignore[arg-type]
        )
        await create_schema(settings.database_url)
        async with live_server(settings, port=port) as server:
            demo = await seed(server.sessions)
            live = LiveServer(url=url, sessions=server.sessions, demo=demo, settings=settings)
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM, args=CHROMIUM_ARGS
                )
                try:
                    yield Browsing(browser=browser, server=live)
                finally:
                    await browser.close()


async def test_sso_button_on_the_login_page_at_phone_and_desktop_width(
    sso_browsing: Browsing, screenshot: Callable[[Page, str], Any]
) -> None:
    for name, viewport in (("login-sso-390", NARROW), ("login-sso-1366", WIDE)):
        page = await sso_browsing.new_page(viewport)
        await page.goto("/login")
        button = page.get_by_role("link", name="Mit Klinik-Konto anmelden")
        await expect(button).to_be_visible()
        box = await button.bounding_box()
        assert box is not None
        # The whole button inside the page, at least a finger tall, as wide as the form.
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= viewport["width"]
        assert box["height"] >= 44
        form_box = await page.locator("#login-form").bounding_box()
        assert form_box is not None
        assert abs(box["width"] - form_box["width"]) < 2
        await screenshot(page, name)
        await page.context.close()
    assert sso_browsing.console_errors == []


async def test_sso_full_browser_flow_to_the_gp_page_and_out_again(
    sso_browsing: Browsing,
) -> None:
    page = await sso_browsing.new_page()
    await page.goto("/gp/appointments")  # not logged in: to the login page, then back here
    await page.get_by_role("link", name="Mit Klinik-Konto anmelden").click()

    # The provider's own login page.
    await expect(page.get_by_role("heading", name="Anmeldung Klinik-Konto (Test)")).to_be_visible()
    assert page.url.startswith(sso_browsing.server.settings.oidc_issuer or "-")
    await page.get_by_label("Benutzername").fill("lehmann")
    await page.get_by_label("Passwort").fill(PASSWORD)
    await page.get_by_role("button", name="Anmelden").click()

    # Back at Konsil, logged in as the GP, on the page asked for.
    await expect(page.get_by_role("heading", name="Meine Buchungen")).to_be_visible()
    assert page.url == f"{sso_browsing.server.url}/gp/appointments"
    await expect(page.get_by_text("Dr. Anna Lehmann")).to_be_visible()
    await page.get_by_role("link", name="Konsil buchen").click()
    await expect(page.get_by_role("heading", name="Konsil buchen")).to_be_visible()

    # Logging out ends the session at the provider too, then back to Konsil's login page.
    await page.get_by_role("button", name="Abmelden").click()
    await expect(page.get_by_role("heading", name="Abmelden beim Test-Anbieter?")).to_be_visible()
    await page.get_by_role("button", name="Ja, abmelden").click()
    await expect(page.get_by_role("heading", name="Anmelden")).to_be_visible()
    assert page.url == f"{sso_browsing.server.url}/login"
    await page.goto("/gp")
    assert page.url.startswith(f"{sso_browsing.server.url}/login")
    assert sso_browsing.csp_violations() == []


async def test_sso_refusal_is_a_clear_page_with_the_way_back(
    sso_browsing: Browsing, screenshot: Callable[[Page, str], Any]
) -> None:
    page = await sso_browsing.new_page(NARROW)
    await page.goto("/login")
    await page.get_by_role("link", name="Mit Klinik-Konto anmelden").click()
    await page.get_by_label("Benutzername").fill("pflege")  # no role for Konsil
    await page.get_by_label("Passwort").fill(PASSWORD)
    await page.get_by_role("button", name="Anmelden").click()
    await expect(
        page.get_by_role("heading", name="Kein Zugang mit diesem Klinik-Konto")
    ).to_be_visible()
    await expect(page.get_by_text("Ihr Klinik-Konto hat keine Rolle in Konsil.")).to_be_visible()
    await screenshot(page, "login-sso-refused-390")
    await page.get_by_role("link", name="Zur Anmeldung").click()
    await expect(page.get_by_role("heading", name="Anmelden")).to_be_visible()
    # (Chromium logs the page's own 403 status; nothing else may go wrong.)
    assert sso_browsing.csp_violations() == []
    assert [e for e in sso_browsing.console_errors if "403" not in e] == []


@pytest.mark.parametrize("sso_settings", [{"oidc_provisioning": "create"}])
async def test_sso_only_account_confirms_at_the_provider_before_a_sensitive_change(
    sso_browsing: Browsing, screenshot: Callable[[Page, str], Any]
) -> None:
    page = await sso_browsing.new_page(NARROW)
    await page.goto("/account")
    await page.get_by_role("link", name="Mit Klinik-Konto anmelden").click()
    await page.get_by_label("Benutzername").fill("neu-gp")  # created by the sign-in: no password
    await page.get_by_label("Passwort").fill(PASSWORD)
    await page.get_by_role("button", name="Anmelden").click()
    await expect(page.get_by_role("heading", name="Zwei-Faktor-Anmeldung")).to_be_visible()
    async with unit_of_work(sso_browsing.server.sessions) as session:
        await session.execute(
            update(AuthSession).values(verified_at=utcnow() - timedelta(minutes=11))
        )

    # A sensitive change asks for a new sign-in at the hospital, not for a password.
    await page.get_by_role("button", name="Authenticator-App einrichten").click()
    dialog = page.get_by_role("dialog", name="Bitte bestätigen Sie, dass Sie es sind")
    await expect(dialog).to_contain_text("erneut mit Ihrem Klinik-Konto an")
    await expect(dialog.get_by_label("Passwort")).to_have_count(0)
    await screenshot(page, "reauth-sso-390")
    await dialog.get_by_role("link", name="Weiter zur Anmeldung bei der Klinik").click()
    # The provider asks again although its session from the sign-in is still open.
    await expect(page.get_by_role("heading", name="Anmeldung Klinik-Konto (Test)")).to_be_visible()
    await page.get_by_label("Benutzername").fill("neu-gp")
    await page.get_by_label("Passwort").fill(PASSWORD)
    await page.get_by_role("button", name="Anmelden").click()

    # Back on the account page; now the change goes through.
    await expect(page.get_by_role("heading", name="Zwei-Faktor-Anmeldung")).to_be_visible()
    assert page.url == f"{sso_browsing.server.url}/account"
    await page.get_by_role("button", name="Authenticator-App einrichten").click()
    await expect(page.get_by_role("img", name="QR-Code für die Authenticator-App")).to_be_visible()
    assert sso_browsing.csp_violations() == []
    # The one error is the answer that asked for the confirmation (403 reauth_required).
    assert [e for e in sso_browsing.console_errors if "403" not in e] == []
