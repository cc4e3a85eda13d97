"""The admin's pages in Chromium: create a GP account, reset someone's two-factor sign-in
(confirming it's you again), filter the audit log and download it as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect
from sqlalchemy import update
from sqlmodel import col, select

from app.accounts.models import AuthSession, FactorKind, SecondFactor, User
from app.db import unit_of_work, utcnow
from app.seed import DEMO_PASSWORD
from tests.browser.conftest import Browsing, LiveServer
from tests.browser.helpers import log_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PHONE_390 = {"width": 390, "height": 844}
DESKTOP_1366 = {"width": 1366, "height": 900}


async def give_factor(live: LiveServer, user: User) -> None:
    assert user.id is not None
    async with unit_of_work(live.sessions) as session:
        session.add(
            SecondFactor(
                user_id=user.id, kind=FactorKind.TOTP, label="Telefon", confirmed_at=utcnow()
            )
        )


async def make_reauth_due(live: LiveServer) -> None:
    """The admin's last password entry lies longer back than KONSIL_REAUTH_MINUTES."""
    async with unit_of_work(live.sessions) as session:
        await session.execute(
            update(AuthSession).values(verified_at=utcnow() - timedelta(minutes=30))
        )


async def test_admin_creates_an_account_resets_two_factor_and_exports_the_audit_log(
    browsing: Browsing, tmp_path: Path, screenshot: Callable[[Page, str], Any]
) -> None:
    live = browsing.server
    demo = live.demo
    await give_factor(live, demo.gp)
    page = await browsing.new_page(viewport=PHONE_390)
    await log_in(page, demo.admin)
    await expect(page).to_have_url(f"{live.url}/admin")
    await expect(page.get_by_role("heading", name="Verwaltung", level=1)).to_be_visible()

    # A new GP account.
    await page.get_by_role("link", name="Konten").first.click()
    accounts = page.locator("[data-accounts]")
    await expect(accounts).to_contain_text(demo.gp.display_name)
    create = page.locator("form[data-create]")
    await create.get_by_label("Name", exact=True).fill("Dr. Greta Neumann")
    await create.get_by_label("E-Mail-Adresse").fill("neumann@praxis-spremberg.example")
    await create.get_by_label("Rolle").select_option(label="Hausärztin/Hausarzt")
    await create.get_by_label("Praxis").select_option(
        label="Hausarztpraxis Dr. Lehmann (Spremberg)"
    )
    await create.get_by_label("LANR (freiwillig)").fill("123456 601")
    await create.get_by_label("Erstes Passwort").fill("Willkommen-2026!")
    await create.get_by_role("button", name="Konto anlegen").click()
    await expect(page.locator("[data-notice]")).to_have_text(
        "Konto für Dr. Greta Neumann angelegt."
    )
    new_item = accounts.locator("li", has_text="neumann@praxis-spremberg.example")
    await expect(new_item).to_contain_text("Hausärztin/Hausarzt")
    await expect(new_item).to_contain_text("Zwei-Faktor: nicht eingerichtet")
    await expect(new_item).to_contain_text("LANR 123456601")
    await page.get_by_label("Nach Name oder E-Mail-Adresse suchen").fill("neumann")
    await expect(accounts.locator("li.account")).to_have_count(1)
    await page.get_by_label("Nach Name oder E-Mail-Adresse suchen").fill("")

    # Reset the GP's two-factor sign-in: a warning and a tick first, then the admin's password
    # again (the last one was entered too long ago).
    await make_reauth_due(live)
    gp_item = accounts.locator("li.account", has_text=demo.gp.email)
    await expect(gp_item).to_contain_text("Zwei-Faktor: eingerichtet")
    await gp_item.get_by_role("button", name="Zwei-Faktor zurücksetzen").click()
    confirm = page.locator("#confirm-dialog")
    await expect(confirm).to_contain_text("zurückgerufen")
    await expect(confirm.locator("#confirm-warning")).to_contain_text(
        "Nummer zurück, die Sie schon kennen"
    )
    await screenshot(page, "admin-reset-two-factor-de-390")
    await confirm.get_by_role("button", name="Zwei-Faktor zurücksetzen").click()
    await expect(confirm.get_by_role("alert")).to_have_text(
        "Bitte bestätigen Sie, dass Sie die Person überprüft haben."
    )
    await confirm.get_by_label("Ich habe die Person unter einer bekannten Nummer").check()
    await confirm.get_by_role("button", name="Zwei-Faktor zurücksetzen").click()
    reauth = page.get_by_role("dialog", name="Bitte bestätigen Sie, dass Sie es sind")
    await reauth.get_by_label("Passwort").fill(DEMO_PASSWORD)
    await reauth.get_by_role("button", name="Bestätigen").click()
    await expect(page.locator("[data-notice]")).to_have_text(
        f"Die Zwei-Faktor-Anmeldung von {demo.gp.display_name} wurde zurückgesetzt."
    )
    await expect(gp_item).to_contain_text("Zwei-Faktor: nicht eingerichtet")
    async with live.sessions() as session:
        left = (
            await session.execute(
                select(SecondFactor).where(col(SecondFactor.user_id) == demo.gp.id)
            )
        ).all()
    assert left == []
    await screenshot(page, "admin-accounts-de-390")

    # The audit log, filtered to second-factor events, and the same as CSV.
    await page.get_by_role("link", name="Protokoll").first.click()
    table = page.locator("[data-events]")
    await expect(table.locator("tr").first).to_be_visible()
    await page.get_by_label("Aktion").fill("second_factor")
    await page.get_by_role("button", name="Anzeigen").click()
    await expect(table.locator("tr")).to_have_count(1)
    await expect(table).to_contain_text("second_factor.reset")
    await expect(table).to_contain_text("Konsil Admin")
    await expect(table).to_contain_text(f"target={demo.gp.id}")
    await expect(page).to_have_url(f"{live.url}/admin/audit?action=second_factor")
    await screenshot(page, "admin-audit-de-390")
    async with page.expect_download() as info:
        await page.get_by_role("link", name="CSV herunterladen").click()
    download = await info.value
    assert download.suggested_filename.startswith("konsil-audit-")
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))
    assert [(r["action"], r["actor_id"], r["detail"]) for r in rows] == [
        ("second_factor.reset", str(demo.admin.id), f'{{"target":{demo.gp.id}}}')
    ]
    # The one error is the answer that asked for the password again (403 reauth_required;
    # Chromium logs every 4xx it loads).
    assert browsing.console_errors == [
        "Failed to load resource: the server responded with a status of 403 (Forbidden)"
    ]


async def test_admin_pages_in_english_on_a_desktop(
    browsing: Browsing, screenshot: Callable[[Page, str], Any]
) -> None:
    live = browsing.server
    page = await browsing.new_page(viewport=DESKTOP_1366)
    await log_in(page, live.demo.admin)
    await page.goto("/admin?lang=en")
    await expect(page.get_by_role("heading", name="Administration", level=1)).to_be_visible()
    await screenshot(page, "admin-overview-en-1366")
    await page.get_by_role("link", name="Accounts").first.click()
    await expect(page.locator("[data-accounts]")).to_contain_text("Two-factor: not set up")
    await screenshot(page, "admin-accounts-en-1366")

    # A phone number typed the usual German way is stored and shown in E.164; a wrong one is
    # refused with a message the page translates.
    await page.get_by_role("link", name="Practices").first.click()
    item = page.locator("[data-practices-list] li", has_text="Landarztpraxis Forst")
    await item.get_by_role("button", name="Edit").click()
    dialog = page.locator("#practice-dialog")
    await dialog.get_by_label("Phone number").fill("12")
    await dialog.get_by_role("button", name="Save").click()
    await expect(dialog.get_by_role("alert")).to_contain_text("The phone number is not valid.")
    await dialog.get_by_label("Phone number").fill("03562 98 76 54")
    await dialog.get_by_role("button", name="Save").click()
    await expect(item).to_contain_text("+493562987654")
    await screenshot(page, "admin-practices-en-1366")

    # Move a specialist to another specialty.
    await page.get_by_role("link", name="Specialties").first.click()
    specialist = live.demo.other_specialist
    await page.get_by_label(f"Specialty of {specialist.display_name}").select_option(
        label="Dermatology"
    )
    row = page.locator(
        ".nested > li", has=page.get_by_label(f"Specialty of {specialist.display_name}")
    )
    await row.get_by_role("button", name="Save").click()
    dermatology = page.locator(
        "[data-specialties-list] > li", has=page.get_by_role("heading", name="Dermatology")
    )
    await expect(dermatology).to_contain_text(specialist.display_name)
    await screenshot(page, "admin-specialties-en-1366")
    await page.get_by_role("link", name="Audit log").first.click()
    await expect(page.locator("[data-events]")).to_contain_text("user.specialty_changed")
    await screenshot(page, "admin-audit-en-1366")
    # The one error is the refused phone number (422; Chromium logs every 4xx it loads).
    assert browsing.console_errors == [
        "Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"
    ]


async def test_admin_gives_a_practice_its_bsnr(browsing: Browsing) -> None:
    """A BSNR typed with spaces is stored as nine digits; a wrong one is refused in the
    dialog with the server's words, and the practice keeps what it had."""
    live = browsing.server
    page = await browsing.new_page(viewport=PHONE_390)
    await log_in(page, live.demo.admin)
    await page.goto(f"{live.url}/admin/practices")
    item = page.locator("[data-practices-list] li", has_text=live.demo.practice.name)
    await item.get_by_role("button", name="Bearbeiten").click()
    dialog = page.locator("#practice-dialog")
    await dialog.get_by_label("BSNR (freiwillig)").fill("72-12")
    await dialog.get_by_role("button", name="Speichern").click()
    await expect(dialog.get_by_role("alert")).to_contain_text("neun Ziffern")
    await dialog.get_by_label("BSNR (freiwillig)").fill("72 123 4500")
    await dialog.get_by_role("button", name="Speichern").click()
    await expect(item).to_contain_text("BSNR 721234500")
    assert browsing.csp_violations() == []
