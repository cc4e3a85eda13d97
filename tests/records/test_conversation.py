"""Declining with a reason and asking back: the specialist declines (a cancellation with its
reason, shown to the GP) or asks the GP for more; the GP answers; the GP's list shows a
question that waits. Only the two of them write; nothing after a cancellation."""

from __future__ import annotations

import httpx2
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from app.audit.models import AuditEvent
from tests.factories import Demo, login
from tests.scheduling.helpers import ClientFactory, book

QUESTION = "Bitte das letzte Langzeit-EKG hochladen; nimmt die Patientin noch Amiodaron?"


async def test_the_specialist_asks_back_and_the_gp_answers(
    client: httpx2.AsyncClient,
    client_factory: ClientFactory,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await login(client, demo.gp)
    appointment_id = (await book(client, demo.specialist))["appointment"]["id"]
    path = f"/api/v1/appointments/{appointment_id}/conversation"
    assert (await client.get(path)).json() == []
    async with client_factory() as specialist, client_factory() as other:
        await login(specialist, demo.specialist)
        asked = await specialist.post(path, json={"body": QUESTION})
        assert asked.status_code == 201, asked.text
        assert asked.json()["author_role"] == "specialist"
        await login(other, demo.other_gp)
        assert (await other.get(path)).status_code == 404
        assert (await other.post(path, json={"body": "x"})).status_code == 404
    shown = (await client.get(f"/api/v1/appointments/{appointment_id}")).json()
    assert shown["question_open_since"] is not None
    listed = (await client.get("/api/v1/appointments")).json()
    assert [a["question_open_since"] is not None for a in listed if a["id"] == appointment_id] == [
        True
    ]
    answered = await client.post(path, json={"body": "EKG hochgeladen. Amiodaron abgesetzt."})
    assert answered.status_code == 201
    assert answered.json()["author_name"] == demo.gp.display_name
    thread = (await client.get(path)).json()
    assert [(m["author_role"], m["body"]) for m in thread] == [
        ("specialist", QUESTION),
        ("gp", "EKG hochgeladen. Amiodaron abgesetzt."),
    ]
    shown = (await client.get(f"/api/v1/appointments/{appointment_id}")).json()
    assert shown["question_open_since"] is None
    assert (await client.post(path, json={"body": "   "})).status_code == 422
    assert (await client.post(path, json={"body": "x" * 4001})).status_code == 422
    async with sessions() as session:
        rows = (
            await session.execute(
                select(AuditEvent).where(col(AuditEvent.action) == "conversation.posted")
            )
        ).scalars()
        details = [str(r.model_dump()) for r in rows]
    assert len(details) == 2
    assert all("Amiodaron" not in d for d in details)  # ids only, never the words


async def test_the_specialist_declines_with_a_reason_the_gp_reads(
    client: httpx2.AsyncClient, client_factory: ClientFactory, demo: Demo
) -> None:
    await login(client, demo.gp)
    appointment_id = (await book(client, demo.specialist))["appointment"]["id"]
    reason = "Fragestellung gehört in die Rhythmologie; bitte dort anfragen."
    async with client_factory() as specialist:
        await login(specialist, demo.specialist)
        declined = await specialist.post(
            f"/api/v1/appointments/{appointment_id}/cancel", json={"reason": reason}
        )
        assert declined.status_code == 200, declined.text
        late = await specialist.post(
            f"/api/v1/appointments/{appointment_id}/conversation", json={"body": "Noch etwas"}
        )
        assert late.status_code == 409
    shown = (await client.get(f"/api/v1/appointments/{appointment_id}")).json()
    assert (shown["status"], shown["cancelled_by"], shown["cancel_reason"]) == (
        "cancelled",
        "specialist",
        reason,
    )
    # The GP cancels without a body, as before: no reason.
    other_id = (await book(client, demo.specialist, slot_index=1))["appointment"]["id"]
    plain = await client.post(f"/api/v1/appointments/{other_id}/cancel")
    assert plain.status_code == 200, plain.text
    assert (plain.json()["cancelled_by"], plain.json()["cancel_reason"]) == ("gp", None)
    too_long = await client.post(
        f"/api/v1/appointments/{appointment_id}/cancel", json={"reason": "x" * 1001}
    )
    assert too_long.status_code == 422
