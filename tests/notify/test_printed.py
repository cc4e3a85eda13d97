"""The printed invitation: an A4 PDF whose QR code, read back by a real decoder from the
rendered page, is the patient's link; large type, no health data; only for the booking's
current link and only for the booking practice."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx2
import pypdfium2
import pytest
import zxingcpp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from app.accounts.phones import display
from app.audit.models import AuditEvent
from app.notify.printed import PrintedInvitation, invitation_pdf
from tests.factories import Demo, login
from tests.scheduling.helpers import book

BERLIN = ZoneInfo("Europe/Berlin")
CANARY = "Kanarienvogel-Befund Zyxomatose"
PATIENT = "Henrietta Quellenbach"
MM_PER_POINT = 25.4 / 72


def read(pdf: bytes) -> tuple[list[str], str, tuple[float, float], int]:
    """The QR codes found on the rendered first page, its text, its size in mm, page count."""
    document = pypdfium2.PdfDocument(pdf)
    try:
        page = document[0]
        width, height = page.get_size()
        image = page.render(scale=2).to_pil()
        text = page.get_textpage().get_text_range()
        codes = [found.text for found in zxingcpp.read_barcodes(image)]
        return codes, text, (width * MM_PER_POINT, height * MM_PER_POINT), len(document)
    finally:
        document.close()


def sample_invitation() -> PrintedInvitation:
    return PrintedInvitation(
        starts_at=datetime(2026, 12, 8, 14, 30, tzinfo=BERLIN),
        opens_at=datetime(2026, 12, 8, 14, 0, tzinfo=BERLIN),
        join_url="https://konsil.example.de/join#" + "Qx7_k-Z" * 6 + "q",
        practice_name="Hausarztpraxis Łukasz Müller",
        practice_phone="03563 123456",
    )


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize(
    ("language", "when", "phone"),
    [
        ("de", "Dienstag, 8. Dezember 2026 um 14:30 Uhr", "Rufen Sie Ihre Praxis an"),
        ("en", "Tuesday, 8 December 2026 at 14:30", "Call your practice"),
    ],
)
def test_the_page_is_a4_with_a_readable_qr_code_of_the_link(
    language: str, when: str, phone: str
) -> None:
    invitation = sample_invitation()
    url = invitation.join_url
    codes, text, (width, height), pages = read(invitation_pdf(invitation, language))
    assert codes == [url]
    assert pages == 1
    assert (round(width), round(height)) == (210, 297)
    page = flat(text)
    assert when in page
    assert phone in page
    assert "Hausarztpraxis Łukasz Müller: 03563 123456" in page
    assert "14:00" in page  # when the link opens


def test_an_unknown_language_prints_german() -> None:
    invitation = PrintedInvitation(
        starts_at=datetime(2026, 3, 29, 12, 0, tzinfo=BERLIN),
        opens_at=datetime(2026, 3, 29, 11, 30, tzinfo=BERLIN),
        join_url="https://konsil.example.de/join#" + "a" * 43,
    )
    _, text, _, _ = read(invitation_pdf(invitation, "tr"))
    assert "Einladung zur Video-Sprechstunde" in flat(text)
    assert "Wenden Sie sich bitte an Ihre Praxis" in flat(text)


def test_phone_numbers_are_printed_as_people_dial_them() -> None:
    assert display("+493563123456") == "03563 123456"
    assert display("+48221234567") == "+48 22 123 45 67"


async def printed(
    client: httpx2.AsyncClient, appointment_id: int, join_url: str, **extra: Any
) -> httpx2.Response:
    return await client.post(
        f"/api/v1/appointments/{appointment_id}/invitation.pdf",
        json={"join_url": join_url, **extra},
    )


async def test_the_booking_gp_prints_the_current_link_without_health_data(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await login(client, demo.gp)
    booking = await book(
        client,
        demo.specialist,
        patient_name=PATIENT,
        clinical_question=CANARY,
        patient_language="en",
    )
    appointment_id = booking["appointment"]["id"]
    join_url = booking["link"]["join_url"]

    response = await printed(client, appointment_id, join_url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["cache-control"] == "no-store"
    codes, text, _, _ = read(response.content)
    assert codes == [join_url]
    assert "Invitation to a video consultation" in flat(text)  # the booking's language
    for secret in (CANARY, "Zyxomatose", PATIENT, "Quellenbach", "Kardiologie", "Cardiology"):
        assert secret not in text
        assert secret.encode() not in response.content

    german = await printed(client, appointment_id, join_url, language="de")
    assert "Einladung zur Video-Sprechstunde" in flat(read(german.content)[1])

    async with sessions() as session:
        actions = (
            await session.execute(
                select(AuditEvent.action).where(col(AuditEvent.appointment_id) == appointment_id)
            )
        ).scalars()
        assert "invitation.printed" in set(actions)


async def test_a_replaced_or_foreign_link_prints_nothing(
    client: httpx2.AsyncClient, demo: Demo, client_factory: Any
) -> None:
    await login(client, demo.gp)
    first = await book(client, demo.specialist)
    second = await book(client, demo.specialist, slot_index=1)
    appointment_id = first["appointment"]["id"]
    old_url = first["link"]["join_url"]

    # Another booking's link is not this booking's.
    other = await printed(client, appointment_id, second["link"]["join_url"])
    assert other.status_code == 422
    assert "kein Link" in other.json()["error"]["message"]

    for wrong in (
        "https://elsewhere.example/join#" + "a" * 43,
        "kein Link",
        old_url + "x" * 200,
        "https://[x/join#" + "a" * 43,
    ):
        refused = await printed(client, appointment_id, wrong)
        assert refused.status_code == 422, wrong

    reissued = await client.post(f"/api/v1/appointments/{appointment_id}/link")
    assert reissued.status_code == 201
    replaced = await printed(client, appointment_id, old_url)
    assert replaced.status_code == 409
    assert "neuen Link" in replaced.json()["error"]["message"]
    assert (await printed(client, appointment_id, reissued.json()["join_url"])).status_code == 200

    cancelled = await client.post(f"/api/v1/appointments/{appointment_id}/cancel")
    assert cancelled.status_code == 200
    after = await printed(client, appointment_id, reissued.json()["join_url"])
    assert after.status_code == 409

    async with client_factory() as specialist:
        await login(specialist, demo.specialist)
        forbidden = await printed(
            specialist, second["appointment"]["id"], second["link"]["join_url"]
        )
        assert forbidden.status_code == 403
    async with client_factory() as other_gp:
        await login(other_gp, demo.other_gp)
        hidden = await printed(other_gp, second["appointment"]["id"], second["link"]["join_url"])
        assert hidden.status_code in (403, 404)
