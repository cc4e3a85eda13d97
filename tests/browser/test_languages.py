"""The patient's pages in the patients' languages, in real Chromium against a real server: the
waiting room in Arabic at 390 px (right to left, nothing overflows; screenshot), a page each
in Turkish, Ukrainian and Polish, and the language switch on "your link is not open yet",
which keeps the link's token (in the fragment only) so that the patient still gets in."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import Page, Request, expect
from sqlmodel import col, update

from app.db import unit_of_work, utcnow
from app.scheduling.models import JoinToken
from app.tokens import token_hash
from tests.browser.conftest import Browsing, LiveServer
from tests.browser.helpers import appointment_with_link, wait_for_video

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PHONE_390 = {"width": 390, "height": 844}
PHONE_320 = {"width": 320, "height": 640}
REDEEM = "/api/v1/patient/session"

# Where the brand and the language menu are in the header; how wide the page is.
SIDES = """() => {
  const box = (selector) => document.querySelector(selector).getBoundingClientRect();
  return {
    brand: box(".brand").left, menu: box("[data-lang-menu]").left,
    width: document.documentElement.scrollWidth,
  };
}"""

# How far an element's text stays from its left and right edges.
TEXT_MARGINS = """(el) => {
  const range = document.createRange();
  range.selectNodeContents(el);
  const text = range.getBoundingClientRect();
  const box = el.getBoundingClientRect();
  return { left: text.left - box.left, right: box.right - text.right };
}"""


SLOTS = itertools.count()


async def link(server: LiveServer, *, opens_in: timedelta = timedelta(0)) -> tuple[str, datetime]:
    """A join token and the start of an appointment about 20 minutes ahead (each a minute
    apart from the last) whose link opens after ``opens_in``."""
    ahead = timedelta(minutes=20 + next(SLOTS))
    starts = utcnow().replace(second=0, microsecond=0) + ahead + opens_in
    _, token = await appointment_with_link(
        server.sessions,
        gp=server.demo.gp,
        specialist=server.demo.specialist,
        starts_at=starts,
        valid_from=utcnow() - timedelta(minutes=5) + opens_in,
    )
    return token, starts


def record_requests(page: Page) -> list[Request]:
    requests: list[Request] = []
    page.on("request", lambda request: requests.append(request))
    return requests


async def choose_language(page: Page, name: str) -> None:
    """Opens the header's language menu and picks the language named ``name`` (in itself)."""
    menu = page.locator("[data-lang-menu]")
    await menu.locator("summary").click()
    async with page.expect_navigation():
        await menu.get_by_role("link", name=name, exact=True).click()


async def test_waiting_room_in_arabic_is_right_to_left_at_390px(
    browsing: Browsing, screenshot: Callable[[Page, str], Any]
) -> None:
    token, starts = await link(browsing.server)
    patient = await browsing.new_page(viewport=PHONE_390)
    requests = record_requests(patient)
    await patient.goto(f"/join#{token}")
    await expect(patient.get_by_label("Ich bin mit der Video-Sprechstunde")).to_be_visible()

    # The link is redeemed: switching now keeps the session and sends the token no more.
    await choose_language(patient, "العربية")
    html = patient.locator("html")
    await expect(html).to_have_attribute("lang", "ar")
    await expect(html).to_have_attribute("dir", "rtl")
    await patient.get_by_label("أوافق على الاستشارة عبر الفيديو").check()
    await patient.get_by_role("button", name="متابعة", exact=True).click()
    await wait_for_video(patient, "[data-preview]")
    await patient.get_by_role("button", name="المتابعة إلى غرفة الانتظار").click()
    await expect(patient.locator("[data-waiting-status]")).to_contain_text(
        "أنتم الآن في غرفة الانتظار", timeout=40_000
    )
    await expect(patient.locator("[data-position]")).to_have_text("دوركم هو التالي.")
    await expect(patient.locator("[data-countdown]")).to_contain_text("يبدأ بعد")
    # The 24-hour clock with Western digits, as in the invitation ("today" or the date first),
    # filled in as a bidi isolate (FSI … PDI).
    at = starts.astimezone(browsing.server.settings.tz)
    await expect(patient.locator("[data-appointment-time]")).to_contain_text(
        f"الساعة \u2068{at:%H:%M}\u2069"
    )

    sides = await patient.evaluate(SIDES)
    assert sides["width"] <= 390, "nothing may overflow an old phone's screen"
    assert sides["brand"] > sides["menu"], "right to left: the brand on the right, menu left"
    # Text starts on the right: the heading's words end at the card's right edge.
    heading = await patient.locator("#waiting-title").evaluate(TEXT_MARGINS)
    assert heading["right"] < 2 < heading["left"]
    redeemed = [r for r in requests if r.method == "POST" and r.url.endswith(REDEEM)]
    assert len(redeemed) == 1, "the token is redeemed once, not again on a switch"
    assert browsing.csp_violations() == []
    await screenshot(patient, "patient-waiting-ar-390")


async def test_arabic_notice_bar_and_menu_mirror(browsing: Browsing) -> None:
    """The alert's coloured bar sits on the right in Arabic, and the open menu stays on the
    screen at 320 px."""
    patient = await browsing.new_page(viewport=PHONE_320)
    await patient.goto("/join?lang=ar")
    await expect(patient.get_by_role("heading", name="يُرجى فتح رابط الدعوة")).to_be_visible()
    await patient.locator("[data-lang-menu] summary").click()
    options = patient.locator(".lang-options")
    await expect(options).to_be_visible()
    box = await options.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= 320
    assert await patient.evaluate("document.documentElement.scrollWidth") <= 320
    # Escape closes the menu and gives the focus back to its button.
    await patient.keyboard.press("Escape")
    await expect(options).to_be_hidden()
    await expect(patient.locator("[data-lang-menu] summary")).to_be_focused()
    await patient.goto("/login?lang=ar")
    note = patient.locator(".lang-note")
    await expect(note).to_have_attribute("dir", "rtl")
    # The notice's coloured bar is on the inline start: the right in Arabic.
    bars = await note.evaluate(
        "(el) => [getComputedStyle(el).borderRightWidth, getComputedStyle(el).borderLeftWidth]"
    )
    assert bars == ["6px", "0px"]


async def test_patient_pages_in_turkish_ukrainian_and_polish(browsing: Browsing) -> None:
    server = browsing.server
    # Turkish: the consent, with the appointment's summary from the script's catalog.
    patient = await browsing.new_page(viewport=PHONE_390)
    token, _ = await link(server)
    await patient.goto(f"/join?lang=tr#{token}")
    await expect(patient.get_by_role("heading", name="Görüntülü görüşmeniz")).to_be_visible()
    await expect(patient.locator("[data-appointment-summary]")).to_contain_text(
        f"Görüntülü görüşme: {server.demo.specialist.display_name}"
    )
    await expect(patient.get_by_role("button", name="Devam", exact=True)).to_be_visible()

    # Ukrainian: a link that is not open yet says when it opens, in Ukrainian.
    patient = await browsing.new_page(viewport=PHONE_390)
    token, _ = await link(server, opens_in=timedelta(days=2))
    await patient.goto(f"/join?lang=uk#{token}")
    await expect(
        patient.get_by_role("heading", name="Ваше посилання ще не активне")
    ).to_be_visible()
    await expect(patient.locator("[data-problem-when]")).to_contain_text("Посилання стане дійсним")
    await expect(patient.get_by_role("button", name="Спробувати ще раз")).to_be_visible()

    # Polish: a page that the server answers (no script): the error page.
    patient = await browsing.new_page(viewport=PHONE_390)
    await patient.goto("/no-such-page?lang=pl")
    await expect(patient.get_by_role("heading", name="Nie znaleziono strony")).to_be_visible()
    await expect(patient.get_by_role("link", name="Do strony głównej")).to_be_visible()
    assert browsing.csp_violations() == []


async def test_language_switch_on_a_link_not_open_yet_keeps_the_patient_able_to_get_in(
    browsing: Browsing,
) -> None:
    server = browsing.server
    token, _ = await link(server, opens_in=timedelta(hours=3))
    patient = await browsing.new_page(viewport=PHONE_320)
    requests = record_requests(patient)
    await patient.goto(f"/join#{token}")
    await expect(patient.get_by_role("heading", name="noch nicht freigeschaltet")).to_be_visible()
    assert token not in patient.url

    await choose_language(patient, "English")
    await expect(patient.get_by_role("heading", name="Your link is not open yet")).to_be_visible()
    # The new page had the token (in its fragment) and took it out of the address bar again.
    assert patient.url.endswith("/join?lang=en")
    retry = patient.get_by_role("button", name="Try again")
    await expect(retry).to_be_visible()  # shown only while the page holds a token

    # The link opens (the clock moves on): the patient continues on the same page.
    async with unit_of_work(server.sessions) as session:
        await session.execute(
            update(JoinToken)
            .where(col(JoinToken.token_hash) == token_hash(token))
            .values(valid_from=utcnow() - timedelta(minutes=1))
        )
    await retry.click()
    await expect(patient.get_by_label("I agree to the video consultation")).to_be_visible()

    # The token went to the server only in the body of the redemption: never in an address,
    # a Referer or another header (so in no log line).
    redeemed = [r for r in requests if r.method == "POST" and r.url.endswith(REDEEM)]
    assert len(redeemed) == 3  # the first visit, after the switch, after "Try again"
    assert all(token in (r.post_data or "") for r in redeemed)
    for request in requests:
        assert token not in request.url.split("#", 1)[0]
        headers = await request.all_headers()
        assert all(token not in value for value in headers.values()), request.url
    assert browsing.csp_violations() == []


async def test_switch_without_javascript_still_changes_the_language(browsing: Browsing) -> None:
    """The menu is a plain disclosure of links: it works before (or without) the scripts."""
    context = await browsing.browser.new_context(
        base_url=browsing.server.url,
        viewport={"width": 320, "height": 640},
        java_script_enabled=False,
    )
    page = await context.new_page()
    await page.goto("/no-such-page?lang=uk")
    await page.locator("[data-lang-menu] summary").click()
    await page.get_by_role("link", name="Polski", exact=True).click()
    await expect(page.get_by_role("heading", name="Nie znaleziono strony")).to_be_visible()
    await expect(page.locator("html")).to_have_attribute("lang", "pl")
    await context.close()
