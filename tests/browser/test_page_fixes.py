"""Pages with realistic data in real Chromium: nothing wider than a 320 px phone on the GP's
booking page and the specialist's availability; "never" in German; a cancelled booking's
status said once; slot buttons of "any specialist" that name the doctor; the connection
check's figures in German number format."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from playwright.async_api import Page, expect

from app.accounts.models import User
from app.db import utcnow
from tests.browser.conftest import Browsing, LiveServer, seeded_live_server
from tests.browser.helpers import appointment_with_link, log_in, wait_for_video
from tests.factories import login
from tests.notify.conftest import MAIL_FROM
from tests.notify.smsd import SECRET, Running, sms_gateway
from tests.notify.smtpd import Server, smtp_server

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

NARROW = {"width": 320, "height": 740}
LONG_NAME = "Maximiliane Alexandra Wilhelmine von Hohenzollern-Sigmaringen-Schwarzenberg"
LONG_EMAIL = (
    "maximiliane.alexandra.wilhelmine.vonhohenzollernsigmaringen@beispiel-provider-lang.example"
)
LONG_QUESTION = (
    "Seit drei Wochen zunehmende Belastungsdyspnoe (NYHA II-III), Unterschenkelödeme beidseits, "
    "NT-proBNP 2.340 pg/ml. Echokardiographie? Ramipril 5 mg, Torasemid 10 mg.\n"
    "https://befunde.beispiel-labor.example/ergebnisse/2026/0123456789abcdef0123456789abcdef"
)
LONG_FILE = "Entlassungsbrief_Kardiologie_Universitaetsklinikum_2026-11-30_final_korrigiert.pdf"
# Elements that reach past the right edge of the viewport (a 320 px phone must not scroll
# sideways), with the page's own scroll width.
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll("body *")]
    .filter((e) => e.getBoundingClientRect().right > width + 0.5)
    .map((e) => `${e.tagName.toLowerCase()}.${e.className} ${e.textContent.trim().slice(0, 40)}`);
  return { scrollWidth: document.documentElement.scrollWidth, wide: wide.slice(0, 10) };
}"""


@pytest.fixture
def gateway() -> Iterator[Running]:
    with sms_gateway() as running:
        yield running


@pytest.fixture
def mail() -> Iterator[Server]:
    with smtp_server() as server:
        yield server


@pytest.fixture
async def live(tmp_path: Path, gateway: Running, mail: Server) -> AsyncIterator[LiveServer]:
    """The server with e-mail and SMS set up, so that a booking lists its messages."""
    async with seeded_live_server(
        tmp_path,
        smtp_url=mail.url(),
        mail_from=MAIL_FROM,
        sms_url=gateway.url(),
        sms_secret=SECRET,
    ) as server:
        yield server


def next_monday(server: LiveServer) -> date:
    """The Monday 8 to 14 days ahead (local): its hours and the reminders a day before them
    lie ahead, whatever the hour and weekday."""
    today = datetime.now(server.settings.tz).date()
    return today + timedelta(days=14 - today.weekday())


@asynccontextmanager
async def staff_client(server: LiveServer, user: User) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=server.url, headers={"Origin": server.url}) as client:
        await login(client, user)
        yield client


async def book_with_long_data(server: LiveServer, gp: httpx2.AsyncClient, slot: int) -> int:
    """A booking as long as real ones get: long name and address, a link in the question,
    invitations by e-mail and SMS; returns its id."""
    specialist = server.demo.specialist.id
    monday = next_monday(server)
    slots = await gp.get(
        "/api/v1/slots",
        params={"specialist": specialist, "from": str(monday), "to": str(monday + timedelta(4))},
    )
    body: dict[str, Any] = {
        "specialist_id": specialist,
        "starts_at": slots.json()[slot]["starts_at"],
        "patient_name": LONG_NAME,
        "patient_birth_date": "1941-03-02",
        "patient_contact": LONG_EMAIL,
        "clinical_question": LONG_QUESTION,
        "urgency": "urgent",
        "invite_by": ["email", "sms"],
        "patient_phone": "0151 23456789",
    }
    booked = await gp.post("/api/v1/appointments", json=body)
    assert booked.status_code == 201, booked.text
    return int(booked.json()["appointment"]["id"])


async def fits(page: Page) -> None:
    measured = await page.evaluate(OVERFLOW)
    assert measured == {"scrollWidth": NARROW["width"], "wide": []}


async def test_gp_booking_page_fits_320px_and_says_never_in_german(browsing: Browsing) -> None:
    server = browsing.server
    async with staff_client(server, server.demo.gp) as gp:
        appointment_id = await book_with_long_data(server, gp, 0)
        for name, content in [
            (LONG_FILE, b"%PDF-1.4\n" + b"0" * (1100 * 1024) + b"\n%%EOF\n"),
            ("EKG.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 100),
        ]:
            kind = "application/pdf" if name.endswith(".pdf") else "image/png"
            uploaded = await gp.post(
                f"/api/v1/appointments/{appointment_id}/documents",
                files={"file": (name, content, kind)},
            )
            assert uploaded.status_code == 201, uploaded.text
    page = await browsing.new_page(NARROW)
    await log_in(page, server.demo.gp)
    await page.goto(f"/gp/appointments/{appointment_id}")
    await expect(page.locator("[data-details]")).to_contain_text(LONG_EMAIL)
    await expect(page.locator("[data-details]")).to_contain_text("zuletzt geöffnet: nie")
    await expect(page.locator("[data-documents]")).to_contain_text(LONG_FILE)
    # The size in German digits: 1100 KiB and a few bytes, rounded up.
    await expect(page.locator("[data-documents]")).to_contain_text("(1.101 KB)")
    await expect(page.locator("[data-messages] li").first).to_contain_text("Einladung")
    await expect(page.locator("[data-messages] li")).to_have_count(6)
    await fits(page)
    assert browsing.csp_violations() == []


async def test_cancelled_booking_says_cancelled_once(browsing: Browsing) -> None:
    server = browsing.server
    async with staff_client(server, server.demo.gp) as gp:
        appointment_id = await book_with_long_data(server, gp, 1)
        cancelled = await gp.post(f"/api/v1/appointments/{appointment_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
    for user, path in [
        (server.demo.gp, f"/gp/appointments/{appointment_id}"),
        (server.demo.specialist, f"/specialist/appointments/{appointment_id}"),
    ]:
        page = await browsing.new_page(NARROW)
        await log_in(page, user)
        await page.goto(path)
        status = page.locator("[data-details] dt:text-is('Status') + dd")
        await expect(status).to_have_text("Abgesagt")
        await fits(page)


async def test_availability_fits_320px_with_many_hours_and_exceptions(
    browsing: Browsing,
) -> None:
    server = browsing.server
    monday = next_monday(server)
    async with staff_client(server, server.demo.gp) as gp:
        await book_with_long_data(server, gp, 0)
    async with staff_client(server, server.demo.specialist) as specialist:
        rules = [
            {"weekday": day, "start_time": start, "end_time": end, "slot_minutes": 30}
            for day in range(5)
            for start, end in (("08:00", "12:00"), ("13:00", "16:00"))
        ] + [
            {
                "weekday": 5,
                "start_time": "09:00",
                "end_time": "11:00",
                "slot_minutes": 20,
                "valid_from": str(monday),
                "valid_until": str(monday + timedelta(days=90)),
            }
        ]
        saved = await specialist.put("/api/v1/availability/rules", json={"rules": rules})
        assert saved.status_code == 200, saved.text
        saturday, later = monday + timedelta(days=5), monday + timedelta(days=14)
        for starts, ends, available in [
            (f"{monday}T07:00", f"{monday}T10:00", False),  # over the booking
            (f"{saturday}T13:00", f"{saturday}T17:00", True),
            (f"{later}T00:00", f"{later + timedelta(days=7)}T00:00", False),
        ]:
            added = await specialist.post(
                "/api/v1/availability/exceptions",
                json={
                    "starts_at": starts,
                    "ends_at": ends,
                    "available": available,
                    "slot_minutes": 30,
                },
            )
            assert added.status_code == 201, added.text
    page = await browsing.new_page(NARROW)
    await log_in(page, server.demo.specialist)
    await page.goto("/specialist/availability")
    await expect(page.locator("[data-rules] li.rule")).to_have_count(11)
    await expect(page.locator("[data-exceptions] > li")).to_have_count(3)
    await expect(page.locator("[data-exceptions] .alert.warning")).to_be_visible()
    await fits(page)


async def test_slots_of_any_specialist_name_the_doctor(browsing: Browsing) -> None:
    page = await browsing.new_page(NARROW)
    await log_in(page, browsing.server.demo.gp)
    await page.get_by_label("Fachgebiet").select_option(label="Kardiologie")
    await page.get_by_role("button", name="Nächste Woche").click()
    slots = page.locator("[data-slots] button.slot")
    # Both cardiologists have Monday 08:00: two buttons, each with its doctor's name in sight.
    first_day = page.locator("[data-slots] .day").first
    at_eight = first_day.locator("button.slot", has_text="08:00")
    await expect(at_eight).to_have_count(2)
    names = [await b.locator(".slot-doctor").inner_text() for b in await at_eight.all()]
    assert sorted(names) == ["Dr. Minh Nguyen", "Prof. Dr. Maria Schulz"]
    for button in await at_eight.all():
        await expect(button.locator(".slot-doctor")).to_be_visible()
    await fits(page)

    await page.get_by_label("Fachärztin/Facharzt").select_option(label="Dr. Minh Nguyen")
    await expect(page.get_by_role("button", name="Vorige Woche")).to_be_disabled()
    await page.get_by_role("button", name="Nächste Woche").click()
    await expect(slots.first).to_have_attribute("aria-label", re.compile("Dr. Minh Nguyen$"))
    await expect(page.locator("[data-slots] .slot-doctor")).to_have_count(0)


async def test_connection_check_figures_in_german_number_format(browsing: Browsing) -> None:
    server = browsing.server
    _, token = await appointment_with_link(
        server.sessions,
        gp=server.demo.gp,
        specialist=server.demo.specialist,
        starts_at=utcnow() + timedelta(minutes=10),
    )
    page = await browsing.new_page({"width": 390, "height": 844})
    await page.goto(f"/join#{token}")
    await page.get_by_label("Ich bin mit der Video-Sprechstunde einverstanden").check()
    await page.get_by_role("button", name="Weiter", exact=True).click()
    await wait_for_video(page, "[data-preview]")
    await page.get_by_role("button", name="Weiter ins Wartezimmer").click()
    result = page.locator("[data-check-result]")
    await expect(result).to_be_visible(timeout=40_000)
    # The figures behind "Details": "0,0 %" with a decimal comma; thousands grouped with a dot.
    await result.get_by_text("Details", exact=True).click()
    await expect(result.locator("[data-verdict-figures]")).to_have_text(
        re.compile(
            r"^Verbindungstest: (\d+ ms|–) Laufzeit, \d+,\d % Paketverlust, "
            r"\d{1,3}(\.\d{3})* kbit/s\.$"
        )
    )
