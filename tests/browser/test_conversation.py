"""The specialist asks the practice back and declines a request, in Chromium: the GP's list
and page say a question waits, the GP answers on the page, the specialist reads the answer;
a declined request shows the specialist's reason on the GP's page."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Browsing, LiveServer
from tests.browser.helpers import log_in
from tests.browser.test_on_call_gp import PHONE_390, api_as
from tests.browser.test_page_fixes import next_monday

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

QUESTION = "Bitte das letzte Langzeit-EKG hochladen. Nimmt die Patientin noch Amiodaron?"
ANSWER = "Langzeit-EKG ist hochgeladen, Amiodaron seit Mai abgesetzt."
REASON = "Das gehört in die Rhythmologie; bitte dort anfragen."


async def booked(server: LiveServer, slot: int) -> int:
    async with api_as(server, server.demo.gp) as gp:
        monday = next_monday(server)
        slots = await gp.get(
            "/api/v1/slots",
            params={"specialist": server.demo.specialist.id, "from": str(monday),
                    "to": str(monday + timedelta(4))},
        )  # fmt: skip
        body: dict[str, Any] = {
            "specialist_id": server.demo.specialist.id,
            "starts_at": slots.json()[slot]["starts_at"],
            "patient_name": "Erika Mustermann",
            "patient_birth_date": "1956-04-12",
            "patient_contact": "erika@example.org",
            "clinical_question": "Palpitationen seit drei Wochen, bitte Einschätzung.",
        }
        answer = await gp.post("/api/v1/appointments", json=body)
        assert answer.status_code == 201, answer.text
        appointment_id: int = answer.json()["appointment"]["id"]
        return appointment_id


async def test_the_specialist_asks_back_and_the_gp_answers(browsing: Browsing) -> None:
    server = browsing.server
    appointment_id = await booked(server, 0)
    specialist = await browsing.new_page()
    await log_in(specialist, server.demo.specialist)
    await specialist.goto(f"/specialist/appointments/{appointment_id}")
    conversation = specialist.locator("[data-conversation]")
    await expect(conversation).to_contain_text("Noch keine Nachrichten")
    await conversation.get_by_label("Ihre Rückfrage an die Praxis").fill(QUESTION)
    await conversation.get_by_role("button", name="Senden").click()
    await expect(conversation.locator("li.message")).to_have_count(1)
    await expect(conversation).to_contain_text(QUESTION)

    gp = await browsing.new_page(PHONE_390)
    await log_in(gp, server.demo.gp)
    await gp.goto("/gp/appointments")
    item = gp.locator("li", has_text="Erika Mustermann").first
    await expect(item).to_contain_text("Rückfrage der Fachärztin/des Facharztes")
    await gp.goto(f"/gp/appointments/{appointment_id}")
    await expect(gp.locator("[data-notice]")).to_contain_text("Rückfrage gestellt")
    thread = gp.locator("[data-conversation]")
    await expect(thread).to_contain_text(QUESTION)
    await thread.get_by_label("Ihre Antwort").fill(ANSWER)
    await thread.get_by_role("button", name="Senden").click()
    await expect(thread.locator("li.message")).to_have_count(2)
    await gp.goto("/gp/appointments")
    await expect(gp.locator("li", has_text="Erika Mustermann").first).not_to_contain_text(
        "Rückfrage der"
    )

    await specialist.reload()
    await expect(conversation.locator("li.message").nth(1)).to_contain_text(ANSWER)
    assert browsing.csp_violations() == []
    assert browsing.console_errors == []


async def test_the_specialist_declines_and_the_gp_reads_why(browsing: Browsing) -> None:
    server = browsing.server
    appointment_id = await booked(server, 1)
    specialist = await browsing.new_page()
    await log_in(specialist, server.demo.specialist)
    await specialist.goto(f"/specialist/appointments/{appointment_id}")
    decline = specialist.locator("[data-decline]")
    await decline.locator("summary").click()
    await decline.get_by_role("button", name="Ablehnen und Termin absagen").click()
    await expect(specialist.locator("[data-error]")).to_contain_text("Grund")
    await decline.get_by_label("Warum? Die Praxis liest diese Begründung.").fill(REASON)
    await decline.get_by_role("button", name="Ablehnen und Termin absagen").click()
    await expect(specialist.locator("[data-notice]")).to_contain_text("abgelehnt")
    await expect(decline).to_be_hidden()
    await expect(specialist.locator("[data-conversation-form]")).to_be_hidden()

    gp = await browsing.new_page(PHONE_390)
    await log_in(gp, server.demo.gp)
    await gp.goto(f"/gp/appointments/{appointment_id}")
    details = gp.locator("[data-details]")
    await expect(details).to_contain_text(
        f"Von der Fachärztin bzw. dem Facharzt abgelehnt: {REASON}"
    )
    assert browsing.csp_violations() == []
    assert browsing.console_errors == []
