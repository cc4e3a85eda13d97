"""What a patient sees for links that do not (or not yet) work, and that a patient session
opens exactly one room."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.async_api import expect

from app.db import utcnow
from tests.browser.conftest import PHONE, Browsing
from tests.browser.helpers import appointment_with_link

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PROBE_ROOM = """async (id) => {
  const code = await new Promise((resolve) => {
    const ws = new WebSocket(`ws://${location.host}/ws?as=patient&appointment=${id}`);
    ws.onopen = () => ws.send(JSON.stringify({type: "join"}));
    ws.onclose = (event) => resolve(event.code);
  });
  const ice = await fetch(`/api/v1/rooms/${id}/ice`, {credentials: "same-origin"});
  return {code, ice: ice.status};
}"""


async def test_expired_link_shows_a_clear_page(browsing: Browsing) -> None:
    server = browsing.server
    started = utcnow() - timedelta(hours=3)
    _, token = await appointment_with_link(
        server.sessions, gp=server.demo.gp, specialist=server.demo.specialist, starts_at=started
    )
    page = await browsing.new_page(viewport=PHONE)
    await page.goto(f"/join#{token}")
    await expect(page.get_by_role("heading", name="Dieser Link ist abgelaufen")).to_be_visible()
    await expect(page.locator("[data-problem-text]")).to_contain_text("Hausarztpraxis")
    assert token not in page.url


async def test_early_link_says_when_it_opens_in_berlin_time(browsing: Browsing) -> None:
    server = browsing.server
    starts = (utcnow() + timedelta(days=3)).replace(hour=9, minute=0, second=0, microsecond=0)
    _, token = await appointment_with_link(
        server.sessions, gp=server.demo.gp, specialist=server.demo.specialist, starts_at=starts
    )
    page = await browsing.new_page(viewport=PHONE)
    await page.goto(f"/join#{token}")
    await expect(page.get_by_role("heading", name="noch nicht freigeschaltet")).to_be_visible()
    opens = (starts - timedelta(minutes=30)).astimezone(server.settings.tz)
    await expect(page.locator("[data-problem-when]")).to_contain_text(
        f"{opens:%d.%m.%Y} um {opens:%H:%M} Uhr"
    )


async def test_unknown_link_shows_a_clear_page(browsing: Browsing) -> None:
    page = await browsing.new_page(viewport=PHONE)
    await page.goto("/join#" + "x" * 43)
    await expect(page.get_by_role("heading", name="Dieser Link ist ungültig")).to_be_visible()


async def test_join_without_link_asks_for_the_invitation(browsing: Browsing) -> None:
    page = await browsing.new_page(viewport=PHONE)
    await page.goto("/join")
    await expect(page.get_by_role("heading", name="Einladungslink")).to_be_visible()


async def test_patient_cannot_open_another_patients_room(browsing: Browsing) -> None:
    server = browsing.server
    soon = utcnow() + timedelta(minutes=10)
    own, token = await appointment_with_link(
        server.sessions, gp=server.demo.gp, specialist=server.demo.specialist, starts_at=soon
    )
    other, _ = await appointment_with_link(
        server.sessions,
        gp=server.demo.other_gp,
        specialist=server.demo.other_specialist,
        starts_at=soon,
        patient_name="Max Muster",
    )
    page = await browsing.new_page(viewport=PHONE)
    await page.goto(f"/join#{token}")
    # The consent step appears once the link is redeemed and the session cookie is set.
    await expect(
        page.get_by_label("Ich bin mit der Video-Sprechstunde einverstanden")
    ).to_be_visible()

    refused = await page.evaluate(PROBE_ROOM, other)
    allowed = await page.evaluate(
        "async (id) => (await fetch(`/api/v1/rooms/${id}/ice`)).status", own
    )
    assert refused == {"code": 4403, "ice": 404}
    assert allowed == 200
    staff_page = await page.goto(f"/call/{other}")
    assert staff_page is not None
    assert page.url.startswith(f"{server.url}/login"), "the staff call page needs a staff login"
    await expect(page.locator("body")).not_to_contain_text("Max Muster")
