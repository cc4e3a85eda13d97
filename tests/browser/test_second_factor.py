"""Two-factor sign-in in Chromium: compulsory set-up with an authenticator app, recovery codes,
a passkey on Chromium's virtual authenticator (CDP WebAuthn), signing in with either, and the
idle warning."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
from playwright.async_api import Page, Response, expect
from sqlalchemy import update

from app.accounts.models import AuthSession
from app.db import unit_of_work, utcnow
from app.seed import DEMO_PASSWORD
from app.settings import Settings
from tests.browser.conftest import PHONE, Browsing, LiveServer
from tests.conftest import create_schema
from tests.factories import seed
from tests.live import free_port, live_server

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveServer]:
    # WebAuthn refuses IP addresses as relying party: the pages are served as "localhost".
    port = free_port()
    url = f"http://localhost:{port}"
    settings = Settings(
        environment="test",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'konsil.db'}",
        base_url=url,
        log_json=False,
        log_level="WARNING",
        second_factor_roles=None,  # the default: every staff role
        session_idle_minutes=30,
    )
    await create_schema(settings.database_url)
    async with live_server(settings, port=port) as server:
        demo = await seed(server.sessions)
        yield LiveServer(url=url, sessions=server.sessions, demo=demo, settings=settings)


async def password_step(page: Page, email: str) -> None:
    await page.goto("/login?next=%2Fgp")
    await page.get_by_label("E-Mail-Adresse").fill(email)
    await page.get_by_label("Passwort").fill(DEMO_PASSWORD)
    await page.get_by_role("button", name="Anmelden").click()


async def test_set_up_an_app_and_a_passkey_then_sign_in_with_each(
    browsing: Browsing, screenshot: Callable[[Page, str], Any]
) -> None:
    gp = browsing.server.demo.gp
    page = await browsing.new_page(viewport=PHONE)
    refused: list[str] = []  # the failed loads, should the console show more than expected

    def failed(response: Response) -> None:
        if response.status >= 400:
            refused.append(f"{response.status} {response.url}")

    page.on("response", failed)
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )

    # The first sign-in leads to the compulsory set-up.
    await password_step(page, gp.email)
    await page.wait_for_url(re.compile(r"/account\?next="))
    await expect(page.get_by_text("Ihre Klinik verlangt einen zweiten Faktor")).to_be_visible()
    await page.get_by_role("button", name="Authenticator-App einrichten").click()
    await expect(page.get_by_role("img", name="QR-Code für die Authenticator-App")).to_be_visible()
    await screenshot(page, "account-totp-setup-phone")
    secret = (await page.locator("#totp-secret").inner_text()).replace(" ", "")
    enrolled_at = utcnow()
    await page.get_by_label("6-stelliger Code aus der App").fill(pyotp.TOTP(secret).at(enrolled_at))
    await page.get_by_role("button", name="Bestätigen").click()
    codes = page.locator("#recovery-codes li")
    await expect(codes).to_have_count(10)
    await screenshot(page, "account-recovery-codes-phone")
    await page.get_by_role("link", name="Weiter").click()
    await page.wait_for_url(re.compile(r"/gp$"))

    # A passkey on the virtual authenticator.
    page.on("dialog", lambda dialog: dialog.accept("Laptop"))
    await page.goto("/account")
    await page.get_by_role("button", name="Passkey oder Sicherheitsschlüssel hinzufügen").click()
    await expect(page.locator("#factor-list")).to_contain_text("Laptop")
    await expect(page.locator("#factor-list li")).to_have_count(2)
    await expect(page.locator("#session-list li")).to_have_count(1)
    assert browsing.console_errors == []

    # Sign in again with the passkey ...
    await page.get_by_role("button", name="Abmelden").first.click()
    await page.wait_for_url(re.compile(r"/login"))
    await password_step(page, gp.email)
    await expect(page.get_by_role("heading", name="Anmeldung bestätigen")).to_be_visible()
    await page.get_by_role("button", name="Passkey verwenden").click()
    await page.wait_for_url(re.compile(r"/gp$"))
    # The page's own reads finish first: one still on its way when the session ends is
    # answered 401, which Chromium logs like any failed load.
    await page.wait_for_load_state("networkidle")

    # ... and with the app: a wrong code first, then the next one.
    await page.get_by_role("button", name="Abmelden").first.click()
    await page.wait_for_url(re.compile(r"/login"))
    await password_step(page, gp.email)
    await page.get_by_label("Code", exact=True).fill("000000")
    await page.get_by_role("button", name="Bestätigen").click()
    await expect(page.locator("#code-error")).to_contain_text("Code")
    # A code of a later step than the enrolment's: the next step's while that is still ahead
    # (the server accepts one step of drift), else the current one (a slow run may be minutes
    # past the enrolment, where the next step's code has gone stale).
    next_code = pyotp.TOTP(secret).at(max(utcnow(), enrolled_at + timedelta(seconds=30)))
    await page.get_by_label("Code", exact=True).fill(next_code)
    await page.get_by_role("button", name="Bestätigen").click()
    await page.wait_for_url(re.compile(r"/gp$"))
    # The one error is the wrong code's answer (Chromium logs every 4xx it loads).
    assert browsing.console_errors == [
        "Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    ], refused


async def idle_on_the_server(live: LiveServer, minutes: float) -> None:
    async with unit_of_work(live.sessions) as session:
        await session.execute(
            update(AuthSession).values(last_seen_at=utcnow() - timedelta(minutes=minutes))
        )


async def test_the_page_warns_before_the_idle_timeout_and_then_signs_out(
    browsing: Browsing, screenshot: Callable[[Page, str], Any]
) -> None:
    specialist = browsing.server.demo.specialist
    page = await browsing.new_page()
    await page.clock.install()
    await password_step(page, specialist.email)
    await page.wait_for_url(re.compile(r"/account\?next="))
    # The page's own requests count as activity: let them finish before the clocks move.
    await page.wait_for_load_state("networkidle")

    # Activity elsewhere (another tab, a call) keeps the session: the page asks before warning.
    await page.clock.fast_forward("28:05")
    await page.wait_for_timeout(500)
    await expect(page.get_by_role("alertdialog")).to_have_count(0)

    await idle_on_the_server(browsing.server, 28.2)
    await page.clock.fast_forward("28:05")
    warning = page.get_by_role("alertdialog")
    await expect(warning).to_contain_text("abgemeldet")
    await screenshot(page, "idle-warning")
    await warning.get_by_role("button", name="Angemeldet bleiben").click()
    await expect(warning).to_be_hidden()

    await idle_on_the_server(browsing.server, 31)
    await page.clock.fast_forward("29:00")
    await page.wait_for_url(re.compile(r"/login\?reason=idle"))
    await expect(page.get_by_role("alert")).to_contain_text("abgemeldet")
