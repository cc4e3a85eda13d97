"""On-call requests on the GP's pages and the patient's, in real Chromium: the GP asks a
specialty for a consult now from the booking page, the request's page follows it without a
reload (taken by a specialist; nobody took it, then asked again; withdrawn, then a slot booked
instead), and the patient's waiting room names the specialty while nobody has taken it. axe-core
checks the new states of the pages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from playwright.async_api import Dialog, Page, expect
from sqlalchemy import update
from sqlmodel import col

from app.accounts.models import User
from app.db import unit_of_work
from app.scheduling import on_call
from app.scheduling.models import Appointment
from tests.browser.axe import axe_violations, report
from tests.browser.conftest import Browsing, LiveServer
from tests.browser.helpers import log_in, wait_for_video
from tests.factories import login

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PHONE_390 = {"width": 390, "height": 844}
DESKTOP_1366 = {"width": 1366, "height": 900}
# The request's page reads it again every 5 s: a change shows within a round or two (a bound,
# not a speed test; expect's own default is 5 s).
ROUNDS = 15_000
QUESTION = "Neu aufgetretenes Vorhofflimmern im EKG, Patientin sitzt in der Praxis."


@asynccontextmanager
async def api_as(server: LiveServer, user: User) -> AsyncIterator[httpx2.AsyncClient]:
    """An API client logged in as ``user``."""
    async with httpx2.AsyncClient(base_url=server.url, headers={"Origin": server.url}) as client:
        await login(client, user)
        yield client


async def accept(dialog: Dialog) -> None:
    await dialog.accept()


async def assert_accessible(page: Page, where: str) -> None:
    violations = await axe_violations(page)
    assert violations == [], f"{where} ({page.url}):\n{report(violations)}"


async def ask_now_from_the_booking_page(gp: Page, *, check: bool = False) -> int:
    """The GP's steps: the specialty's offer of a consult now, the booking form (urgent and
    in the practice already chosen), send; the request's page opens. Its id."""
    await gp.goto("/gp?specialty=kardiologie")
    offer = gp.locator("[data-on-call-offer]")
    # Nobody is on duty: said plainly, and asking is still possible.
    await expect(offer.locator("[data-on-call-nobody]")).to_contain_text(
        "Zurzeit ist für Kardiologie niemand im Dienst"
    )
    if check:
        await assert_accessible(gp, "the booking page's offer of a consult now, nobody on duty")
    await offer.get_by_role("button", name="Sofort-Konsil anfragen").click()
    await expect(gp.locator("[data-chosen-slot]")).to_contain_text("Sofort-Konsil · Kardiologie")
    await expect(gp.get_by_role("radio", name="Dringend")).to_be_checked()
    await expect(gp.get_by_role("radio", name="In der Praxis, bei uns")).to_be_checked()
    await gp.get_by_label("Vollständiger Name").fill("Erika Mustermann")
    await gp.get_by_label("Geburtsdatum").fill("1956-04-12")
    await gp.get_by_label("E-Mail oder Handynummer").fill("+49 3562 98765")
    await gp.get_by_role("textbox", name="Fragestellung").fill(QUESTION)
    form = gp.locator("[data-booking-form]")
    await form.get_by_role("button", name="Sofort-Konsil anfragen").click()
    await gp.wait_for_url("**/gp/appointments/*")
    return int(gp.url.rsplit("/", 1)[1])


async def request_now(server: LiveServer) -> dict[str, Any]:
    """An on-call request made by the demo GP through the API: its appointment."""
    body = {
        "specialty_id": server.demo.cardiology.id,
        "patient_name": "Erika Mustermann",
        "patient_birth_date": "1956-04-12",
        "patient_contact": "erika@example.org",
        "clinical_question": QUESTION,
        "mode": "practice",
    }
    async with api_as(server, server.demo.gp) as gp:
        response = await gp.post("/api/v1/on-call", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json()["appointment"])


def local_time(server: LiveServer, value: str) -> str:
    """``value`` (ISO 8601) as the pages show a time: HH:MM on the server's local clock."""
    return datetime.fromisoformat(value).astimezone(server.settings.tz).strftime("%H:%M")


async def appointment_now(server: LiveServer, appointment_id: int) -> dict[str, Any]:
    async with api_as(server, server.demo.gp) as gp:
        response = await gp.get(f"/api/v1/appointments/{appointment_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def enter_waiting_room(page: Page, join_url: str) -> None:
    await page.goto(join_url)
    await page.get_by_label("Ich bin mit der Video-Sprechstunde einverstanden").check()
    await page.get_by_role("button", name="Weiter", exact=True).click()
    await wait_for_video(page, "[data-preview]")
    await page.get_by_role("button", name="Weiter ins Wartezimmer").click()
    await expect(page.locator("[data-waiting-status]")).to_contain_text(
        "Sie sind im Wartezimmer", timeout=40_000
    )


async def test_on_call_gp_asks_and_sees_the_claim_without_a_reload(
    browsing: Browsing, screenshot: Callable[[Page, str], Any]
) -> None:
    server = browsing.server
    gp = await browsing.new_page(PHONE_390)
    await log_in(gp, server.demo.gp)
    appointment_id = await ask_now_from_the_booking_page(gp, check=True)

    state = gp.locator("[data-on-call-state]")
    await expect(gp.get_by_role("heading", level=1)).to_have_text("Sofort-Konsil · Kardiologie")
    await expect(state).to_contain_text("wartet auf Übernahme")
    await expect(state).to_contain_text("für Kardiologie")
    await expect(gp.locator("[data-on-call-times]")).to_contain_text("Übernimmt sie bis")
    # The patient's link, shown once, right on the request's page.
    join_url = await gp.locator("[data-join-url]").input_value()
    assert "/join#" in join_url
    await expect(gp.locator("[data-booked-summary]")).to_contain_text("Sofort-Konsil · Kardiologie")
    await screenshot(gp, "on-call-gp-waiting-390")
    # Not a booking until a specialist takes it.
    await expect(gp.locator("[data-details]")).to_contain_text("Angefragt · Geplant")

    # The patient waits already; nobody has taken the request, so the page names the specialty.
    patient = await browsing.new_page(PHONE_390)
    await enter_waiting_room(patient, join_url)
    clock = patient.locator("[data-waiting-clock]")
    await expect(clock.locator("[data-appointment-time]")).to_have_text("Kardiologie")
    await expect(clock.locator("[data-countdown]")).to_have_text(
        "Eine Fachärztin oder ein Facharzt für Kardiologie übernimmt gleich und holt Sie hier"
        " ins Gespräch."
    )
    await expect(patient.locator("[data-waiting-summary]")).to_have_text(
        "Ihre Video-Sprechstunde bei einer Fachärztin oder einem Facharzt für Kardiologie."
    )
    await screenshot(patient, "on-call-patient-waiting-390")
    await assert_accessible(patient, "the waiting room of a request nobody has taken yet")

    await gp.evaluate("window.konsilSamePage = true")
    async with api_as(server, server.demo.other_specialist) as cardiologist:
        claimed = await cardiologist.post(f"/api/v1/on-call/{appointment_id}/claim")
    assert claimed.status_code == 200, claimed.text
    name = server.demo.other_specialist.display_name
    await expect(state).to_contain_text(f"Übernommen von {name} um", timeout=ROUNDS)
    assert await gp.evaluate("window.konsilSamePage") is True  # no reload
    await expect(gp.locator("[data-on-call-actions]")).to_be_hidden()
    await expect(gp.locator("[data-details]")).to_contain_text(f"{name} (Kardiologie)")
    await expect(gp.locator("[data-details]")).to_contain_text("Gebucht · ")
    # The waiting patient learns who took it, without a reload.
    await expect(clock.locator("[data-countdown]")).to_have_text(
        f"Ihre Anfrage wurde übernommen: {name} holt Sie gleich hier ins Gespräch."
    )
    await expect(patient.locator("[data-waiting-summary]")).to_contain_text(f"{name} (Kardiologie)")
    await expect(patient.locator("[data-countdown-live]")).to_contain_text(name)

    # The list: what it is, and who took it.
    await gp.goto("/gp/appointments")
    entry = gp.locator("[data-list] li", has_text="Erika Mustermann")
    await expect(entry).to_contain_text(f"Sofort-Konsil · Kardiologie · {name}")
    assert browsing.csp_violations() == []


async def test_on_call_nobody_takes_it_and_the_gp_asks_again(
    browsing: Browsing, screenshot: Callable[[Page, str], Any]
) -> None:
    server = browsing.server
    appointment = await request_now(server)
    gp = await browsing.new_page(DESKTOP_1366)
    await log_in(gp, server.demo.gp, f"/gp/appointments/{appointment['id']}")
    state = gp.locator("[data-on-call-state]")
    await expect(state).to_contain_text("wartet auf Übernahme")
    times = gp.locator("[data-on-call-times]")
    end = local_time(server, appointment["ends_at"])
    # What the server does: tell the GP at claim_until, keep it open until its planned end.
    await expect(times).to_contain_text("erfahren Sie es hier und können erneut anfragen")
    await expect(times).to_contain_text(f"längstens bis {end} Uhr; dann endet sie")
    actions = gp.locator("[data-on-call-actions]")
    await expect(actions.get_by_role("button", name="Erneut anfragen")).to_be_hidden()

    # The time runs out: the sweep marks it (as the server's periodic job would).
    claim_until = datetime.fromisoformat(appointment["claim_until"])
    async with unit_of_work(server.sessions) as session:
        assert await on_call.sweep_unclaimed(session, now=claim_until + timedelta(seconds=1)) == 1
    await expect(state).to_have_text("Noch niemand hat die Anfrage übernommen", timeout=ROUNDS)
    await expect(times).to_contain_text(
        f"für Kardiologie können sie noch bis {end} Uhr übernehmen; dann endet sie"
    )
    for action in ("Erneut anfragen", "Stattdessen Termin buchen", "Anfrage zurückziehen"):
        await expect(actions.get_by_role("button", name=action)).to_be_visible()
    await screenshot(gp, "on-call-gp-unclaimed-1366")
    await assert_accessible(gp, "the request's page: nobody took it, three ways on")

    await gp.get_by_role("button", name="Erneut anfragen").click()
    await expect(gp.locator("[data-notice]")).to_have_text(
        "Die Anfrage ging erneut an Kardiologie."
    )
    await expect(state).to_contain_text("wartet auf Übernahme")
    await expect(actions.get_by_role("button", name="Erneut anfragen")).to_be_hidden()
    asked_again = await appointment_now(server, appointment["id"])
    assert asked_again["unclaimed_at"] is None
    assert datetime.fromisoformat(asked_again["claim_until"]) > claim_until
    # The list says it waits, and for which specialty.
    await gp.goto("/gp/appointments")
    entry = gp.locator("[data-list] li", has_text="Erika Mustermann")
    await expect(entry).to_contain_text("Sofort-Konsil · Kardiologie")
    await expect(entry).to_contain_text("Wartet auf Übernahme")
    assert browsing.console_errors == []


async def test_on_call_withdrawn_then_a_slot_booked_instead_with_the_form_filled_in(
    browsing: Browsing,
) -> None:
    server = browsing.server
    appointment = await request_now(server)
    gp = await browsing.new_page(PHONE_390)
    gp.on("dialog", accept)
    await log_in(gp, server.demo.gp, f"/gp/appointments/{appointment['id']}")
    state = gp.locator("[data-on-call-state]")
    await expect(state).to_contain_text("wartet auf Übernahme")
    await gp.get_by_role("button", name="Anfrage zurückziehen").click()
    await expect(state).to_have_text("Die Anfrage wurde zurückgezogen.")
    assert (await appointment_now(server, appointment["id"]))["status"] == "cancelled"

    await gp.get_by_role("button", name="Stattdessen Termin buchen").click()
    await gp.wait_for_url("**/gp?*")
    await expect(gp.get_by_label("Fachgebiet")).to_have_value("kardiologie")
    await expect(gp.locator("[data-prefilled]")).to_be_visible()
    await expect(gp.locator("#patient_name")).to_have_value("Erika Mustermann")
    await expect(gp.locator("#clinical_question")).to_have_value(QUESTION)
    assert browsing.console_errors == []


async def test_on_call_past_its_planned_end_says_it_has_ended(browsing: Browsing) -> None:
    server = browsing.server
    appointment = await request_now(server)
    ended = datetime.now(UTC) - timedelta(minutes=1)
    async with unit_of_work(server.sessions) as session:  # nobody took it by its planned end
        await session.execute(
            update(Appointment)
            .where(col(Appointment.id) == appointment["id"])
            .values(ends_at=ended, unclaimed_at=ended)
        )
    gp = await browsing.new_page(PHONE_390)
    await log_in(gp, server.demo.gp, f"/gp/appointments/{appointment['id']}")
    await expect(gp.locator("[data-on-call-state]")).to_have_text(
        "Niemand hat die Anfrage rechtzeitig übernommen."
    )
    end = local_time(server, ended.isoformat())
    await expect(gp.locator("[data-on-call-times]")).to_contain_text(
        f"Bis {end} Uhr hat sie niemand übernommen: Die Anfrage ist beendet."
    )
    actions = gp.locator("[data-on-call-actions]")
    # Asking again is refused by the server once it has ended: not offered.
    await expect(actions.get_by_role("button", name="Erneut anfragen")).to_be_hidden()
    for action in ("Stattdessen Termin buchen", "Anfrage zurückziehen"):
        await expect(actions.get_by_role("button", name=action)).to_be_visible()
    assert browsing.console_errors == []
