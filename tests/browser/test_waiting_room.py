"""The waiting room that talks and the knock, in real Chromium against a real server: the
patient's appointment time, countdown (on a fake clock), place in line and the specialist's
late notice at 390 px; the specialist's knock sound (counted where ``play`` is called), the
count in the tab's title, the desktop notification, and silence during a consultation."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import Page, expect

from app.db import utcnow
from app.scheduling.models import Appointment, RoomState
from tests.browser.conftest import Browsing, LiveServer
from tests.browser.helpers import appointment_with_link, log_in, wait_for_video
from tests.factories import make_appointment, patient_token
from tests.live import Listening
from tests.signaling.wsclient import ws_connect

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PHONE_390 = {"width": 390, "height": 844}
NOTE = "Ein Notfall ist dazwischengekommen. Danke für Ihre Geduld!"

# Counts calls of play() on the knock's <audio> (and still plays), and stands in for the
# desktop notifications (a headless browser shows none): permission asked only on a click,
# notifications recorded. The page counts as in the background, where a notification helps.
KNOCK_PROBE = """
(() => {
  window.__plays = 0;
  const play = HTMLMediaElement.prototype.play;
  HTMLMediaElement.prototype.play = function () {
    if (this.matches("[data-knock-sound]")) window.__plays += 1;
    return play.call(this);
  };
  window.__notifications = [];
  window.__permissionAsked = 0;
  class FakeNotification {
    static permission = "default";
    static requestPermission() {
      window.__permissionAsked += 1;
      FakeNotification.permission = "granted";
      return Promise.resolve("granted");
    }
    constructor(title, options) {
      window.__notifications.push({ title, body: options.body, tag: options.tag });
    }
  }
  window.Notification = FakeNotification;
  Object.defineProperty(document, "visibilityState", { get: () => "hidden" });
})();
"""


def local(server: LiveServer, moment: datetime) -> datetime:
    return moment.astimezone(server.settings.tz)


def slot_today(server: LiveServer) -> datetime:
    """A start 20 minutes ahead, or 5 minutes ago late in the evening: always on today's
    local day, which a late notice concerns."""
    now = utcnow().replace(second=0, microsecond=0)
    soon = now + timedelta(minutes=20)
    return (
        soon
        if local(server, soon).date() == local(server, now).date()
        else now - timedelta(minutes=5)
    )


async def enter_waiting_room(page: Page, token: str) -> None:
    """The patient: opens the link, agrees, checks camera and microphone, waits."""
    await page.goto(f"/join#{token}")
    consent = page.get_by_label("Ich bin mit der Video-Sprechstunde einverstanden")
    await consent.check()
    await page.get_by_role("button", name="Weiter", exact=True).click()
    await wait_for_video(page, "[data-preview]")
    await page.get_by_role("button", name="Weiter ins Wartezimmer").click()
    await expect(page.locator("[data-waiting-status]")).to_contain_text(
        "Sie sind im Wartezimmer", timeout=40_000
    )


async def test_waiting_room_shows_the_late_notice_live_at_390px(
    browsing: Browsing, screenshot: Callable[[Page, str], Any]
) -> None:
    server = browsing.server
    starts = slot_today(server)
    _, token = await appointment_with_link(
        server.sessions, gp=server.demo.gp, specialist=server.demo.specialist, starts_at=starts
    )
    patient = await browsing.new_page(viewport=PHONE_390)
    await enter_waiting_room(patient, token)
    await expect(patient.locator("[data-appointment-time]")).to_contain_text(
        f"{local(server, starts):%H:%M} Uhr"
    )
    await expect(patient.locator("[data-position]")).to_have_text("Sie sind als Nächste(r) dran.")

    specialist = await browsing.new_page()
    await log_in(specialist, server.demo.specialist)
    await specialist.goto("/specialist")
    await specialist.get_by_role("button", name="+10 Min. (10 Minuten mehr)", exact=True).click()
    await expect(specialist.locator("[data-delay-current]")).to_contain_text("etwa 10 Minuten")
    name = server.demo.specialist.display_name
    notice = patient.locator("[data-delay]")
    await expect(notice).to_contain_text(f"{name} verspätet sich um etwa 10 Minuten.")
    expected = local(server, starts + timedelta(minutes=10))
    await expect(notice).to_contain_text(f"voraussichtlich gegen {expected:%H:%M} Uhr")
    # The countdown runs to the later time (ten minutes on is still ahead, also late at night).
    countdown = patient.locator("[data-countdown]")
    await expect(countdown).to_have_text(re.compile(r"^Voraussichtlich Beginn in \d+:\d\d$"))

    # One more click adds to it; a note goes with it.
    await specialist.get_by_role("button", name="+5 Min. (5 Minuten mehr)", exact=True).click()
    await expect(notice).to_contain_text("etwa 15 Minuten")
    await specialist.get_by_label("Kurzer Hinweis an die Wartenden").fill(NOTE)
    await specialist.get_by_role("button", name="Hinweis senden").click()
    await expect(notice).to_contain_text(NOTE)
    await expect(notice).to_contain_text("etwa 15 Minuten")
    width = await patient.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "nothing may overflow an old phone's screen"
    await screenshot(patient, "patient-late-notice-de-390")

    await specialist.get_by_role("button", name="Wieder pünktlich").click()
    await expect(notice).to_be_hidden()
    await expect(countdown).not_to_contain_text("Voraussichtlich")
    await expect(patient.locator("[data-position]")).to_have_text("Sie sind als Nächste(r) dran.")
    assert browsing.csp_violations() == []


async def test_waiting_room_estimates_the_wait_from_the_specialists_last_consultations(
    browsing: Browsing,
) -> None:
    """Past the start, with someone ahead, the patient reads about how long it may take: two
    people before her, consultations of about 12 minutes, the specialist free: 24 → 25."""
    server = browsing.server
    now = utcnow()
    for number, length in enumerate((10, 12, 15, 20, 11)):
        ended = now - timedelta(days=2, hours=number)
        await make_appointment(
            server.sessions,
            server.demo,
            starts_at=ended - timedelta(minutes=30),
            room_state=RoomState.ENDED,
            admitted_at=ended - timedelta(minutes=length),
            ended_at=ended,
        )
    starts = now.replace(second=0, microsecond=0) - timedelta(minutes=10)
    for earlier in (starts - timedelta(minutes=2), starts - timedelta(minutes=1)):
        await make_appointment(
            server.sessions,
            server.demo,
            starts_at=earlier,
            room_state=RoomState.WAITING,
            waiting_since=now - timedelta(minutes=5),
        )
    _, token = await appointment_with_link(
        server.sessions, gp=server.demo.gp, specialist=server.demo.specialist, starts_at=starts
    )
    patient = await browsing.new_page(viewport=PHONE_390)
    await enter_waiting_room(patient, token)
    await expect(patient.locator("[data-position]")).to_have_text(
        "2 Personen sind vor Ihnen dran. Voraussichtlich in etwa 25 Minuten."
    )


async def test_waiting_room_note_longer_than_allowed_gets_a_german_message(
    browsing: Browsing,
) -> None:
    server = browsing.server
    specialist = await browsing.new_page()
    await log_in(specialist, server.demo.specialist)
    await specialist.goto("/specialist")
    note = specialist.get_by_label("Kurzer Hinweis an die Wartenden")
    await note.fill("Zeile")
    await note.evaluate("(el) => { el.removeAttribute('maxlength'); el.value = 'x'.repeat(141); }")
    await specialist.get_by_role("button", name="Hinweis senden").click()
    await expect(specialist.locator("[data-error]")).to_contain_text("höchstens 140 Zeichen")
    await expect(specialist.locator("[data-delay-current]")).to_contain_text(
        "keine Verspätung gemeldet"
    )


async def test_waiting_room_counts_down_and_says_when_the_time_has_come(
    browsing: Browsing,
) -> None:
    server = browsing.server
    starts = utcnow().replace(second=0, microsecond=0) + timedelta(minutes=30)
    _, token = await appointment_with_link(
        server.sessions,
        gp=server.demo.gp,
        specialist=server.demo.specialist,
        starts_at=starts,
        valid_from=utcnow() - timedelta(minutes=5),
    )
    patient = await browsing.new_page(viewport=PHONE_390)
    # The page's clock: seven minutes before the appointment, then moved by the test.
    await patient.clock.install(time=starts - timedelta(minutes=7))
    await enter_waiting_room(patient, token)
    countdown = patient.locator("[data-countdown]")
    live = patient.locator("[data-countdown-live]")
    await expect(countdown).to_have_text(re.compile(r"^Beginn in [67]:\d\d$"))

    await patient.clock.pause_at(starts - timedelta(minutes=5, seconds=5))
    await patient.clock.run_for(1000)
    await expect(countdown).to_have_text("Beginn in 5:04")
    await patient.clock.run_for(10_000)
    await expect(countdown).to_have_text("Beginn in 4:54")
    # Announced when the minute changes at a threshold, not every second.
    await expect(live).to_have_text("Ihr Termin beginnt in 5 Minuten.")
    await patient.clock.run_for(30_000)
    await expect(live).to_have_text("Ihr Termin beginnt in 5 Minuten.")

    await patient.clock.pause_at(starts + timedelta(seconds=3))
    await patient.clock.run_for(1000)
    due = "Ihre Termin-Zeit ist da. Die Ärztin bzw. der Arzt holt Sie herein."
    await expect(countdown).to_have_text(due)
    await expect(live).to_have_text(due)


# ---------------------------------------------------------------- the specialist's knock


@asynccontextmanager
async def arrivals(server: LiveServer) -> AsyncIterator[Callable[[], Any]]:
    """``arrive()`` lets one more patient of the demo specialist enter the waiting room (a
    websocket that joins and stays until the end)."""
    listening = Listening(port=int(server.url.rsplit(":", 1)[1]))
    async with AsyncExitStack() as stack:

        async def arrive() -> Appointment:
            appointment = await make_appointment(server.sessions, server.demo)
            token = await patient_token(server.sessions, server.settings, appointment)
            client = await stack.enter_async_context(
                ws_connect(
                    listening,
                    f"as=patient&appointment={appointment.id}",
                    f"konsil_patient={token}",
                    origin=server.url,
                )
            )
            await client.send(type="join")
            await client.expect("joined")
            return appointment

        yield arrive


async def test_knock_sounds_once_for_a_burst_and_never_during_a_consultation(
    browsing: Browsing,
) -> None:
    server = browsing.server
    queue = await browsing.new_page()
    await queue.add_init_script(KNOCK_PROBE)
    await log_in(queue, server.demo.specialist)
    await queue.goto("/specialist")
    await expect(queue.locator("[data-live-status]")).to_contain_text("Live")
    assert await queue.title() == "Warteliste · Konsil"
    # The permission is asked for on the click only.
    assert await queue.evaluate("window.__permissionAsked") == 0
    await queue.get_by_role("button", name="Desktop-Benachrichtigungen erlauben").click()
    assert await queue.evaluate("window.__permissionAsked") == 1
    await expect(
        queue.get_by_role("button", name="Desktop-Benachrichtigungen erlauben")
    ).to_be_hidden()

    # In a consultation (the call page open in another tab): a quiet count, no sound.
    consultation = await make_appointment(
        server.sessions, server.demo, starts_at=utcnow() + timedelta(hours=3)
    )
    call = await queue.context.new_page()
    await call.goto(f"/call/{consultation.id}")
    await expect(queue.locator("[data-knock-status]")).to_contain_text("Kein Ton")
    async with arrivals(server) as arrive:
        await arrive()
        await expect(queue.locator("[data-waiting-count]")).to_have_text("1")
        assert await queue.title() == "(1) Warteliste · Konsil"
        await expect(call.locator("[data-waiting-count]")).to_have_text("1 weitere Person wartet.")
        assert await call.title() == "Video-Sprechstunde · Konsil"
        assert await queue.evaluate("window.__plays") == 0
        assert await queue.evaluate("window.__notifications.length") == 0

        # The consultation is over: the next patients knock, a burst of three once.
        await call.goto("/specialist/availability")
        await expect(queue.locator("[data-knock-status]")).to_contain_text("kurzer Ton")
        for _ in range(3):
            await arrive()
        await expect(queue.locator("[data-waiting-count]")).to_have_text("4")
        assert await queue.title() == "(4) Warteliste · Konsil"
        # The count of four is rendered after the last arrival's snapshot went through the
        # knock check: every snapshot of the burst has had its chance to sound.
        assert await queue.evaluate("window.__plays") == 1
        assert await queue.locator("#queue").get_attribute("data-knocks") == "1"
        notes = await queue.evaluate("window.__notifications")
        # One notification for the burst (how many were counted depends on the snapshot).
        assert len(notes) == 1, notes
        assert notes[0]["title"] == "Konsil: Jemand wartet"
        assert notes[0]["tag"] == "konsil-knock"
        assert notes[0]["body"].startswith("Jetzt im Wartezimmer: ")
        assert "Erika" not in str(notes), "no patient name on a desktop notification"
    assert browsing.csp_violations() == []


async def test_knock_stays_silent_while_a_consultation_runs_on_another_device(
    browsing: Browsing,
) -> None:
    server = browsing.server
    # The server says a consultation of this specialist is going on (say, on a tablet), one
    # booked for yesterday: not in today's list, and still a consultation.
    await make_appointment(
        server.sessions,
        server.demo,
        starts_at=slot_today(server) - timedelta(days=1),
        room_state=RoomState.IN_CALL,
        admitted_at=utcnow() - timedelta(minutes=5),
    )
    queue = await browsing.new_page()
    await queue.add_init_script(KNOCK_PROBE)
    await log_in(queue, server.demo.specialist)
    await queue.goto("/specialist")
    await expect(queue.locator("[data-live-status]")).to_contain_text("Live")
    await expect(queue.locator("[data-knock-status]")).to_contain_text("Kein Ton")
    async with arrivals(server) as arrive:
        await arrive()
        # The snapshot that counts the arrival has been through the knock check already.
        await expect(queue.locator("[data-waiting-count]")).to_have_text("1")
    assert await queue.title() == "(1) Warteliste · Konsil"
    assert await queue.evaluate("window.__plays") == 0
    assert await queue.evaluate("window.__notifications") == []
