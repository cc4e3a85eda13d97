"""Steps people take in the browser, and direct test data for cases the UI cannot create."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from playwright.async_api import Page, expect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts.models import User
from app.seed import DEMO_PASSWORD
from tests.factories import insert_appointment, link_token
from tests.waiting import until

VIDEO_PLAYING = """(selector) => {
  const videos = [...document.querySelectorAll(selector)];
  return videos.length > 0 && videos.every((v) => v.videoWidth > 0 && v.readyState >= 2);
}"""


async def log_in(page: Page, user: User, target: str = "/login") -> None:
    """Logs in through the login form with real typing and clicks."""
    await page.goto(target)
    await page.get_by_label("E-Mail-Adresse").fill(user.email)
    await page.get_by_label("Passwort").fill(DEMO_PASSWORD)
    await page.get_by_role("button", name="Anmelden").click()
    await page.wait_for_url(lambda url: "/login" not in url)


async def wait_for_video(page: Page, selector: str, wait_ms: float = 30_000) -> None:
    """Waits until every video matching ``selector`` shows decoded frames (videoWidth > 0)."""
    await page.wait_for_function(VIDEO_PLAYING, arg=selector, timeout=wait_ms)


async def expect_text(page: Page, selector: str, text: str) -> None:
    await expect(page.locator(selector)).to_contain_text(text)


async def appointment_with_link(
    sessions: async_sessionmaker[AsyncSession],
    *,
    gp: User,
    specialist: User,
    starts_at: datetime,
    patient_name: str = "Erika Mustermann",
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
) -> tuple[int, str]:
    """A booking and its join token, written directly (for past or future windows)."""
    assert gp.id is not None
    assert specialist.id is not None
    appointment = await insert_appointment(
        sessions,
        specialist_id=specialist.id,
        gp_id=gp.id,
        starts_at=starts_at,
        practice_id=gp.practice_id,
        patient_name=patient_name,
        patient_birth_date=datetime(1950, 4, 1, tzinfo=UTC).date(),
        patient_contact="+49 3563 123456",
        clinical_question="Belastungsdyspnoe seit drei Wochen, bitte Einschätzung.",
    )
    assert appointment.id is not None
    token = await link_token(
        sessions,
        appointment,
        valid_from=valid_from or starts_at - timedelta(minutes=30),
        valid_until=valid_until or starts_at + timedelta(minutes=60),
    )
    return appointment.id, token


# A bound for each wait on the page or the server, not a timing assertion.
BOUND_S = 20.0


async def eventually(check: Callable[[], object], what: str) -> None:
    """Waits until ``check()`` holds (what the server or the page did reached the test), within
    the browser tests' one bound."""
    await until(check, BOUND_S, what)
