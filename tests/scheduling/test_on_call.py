"""On-call requests through the API: a GP asks a specialty for a consult now, the patient's link
works at once, every specialist of the specialty sees the request (without the patient's name),
the first to claim it owns it, and nobody taking it in time is marked once for the GP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx2
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from starlette.applications import Starlette

from app.accounts.models import Role, SessionKind
from app.accounts.service import Principal
from app.db import unit_of_work, utcnow
from app.errors import InvalidTransition
from app.events import types as ev
from app.scheduling import on_call, on_call_queue
from app.scheduling.models import Appointment, RoomState, Specialty
from tests.factories import Demo, login

ORIGIN = {"Origin": "http://127.0.0.1:8000"}
ON_CALL = "/api/v1/on-call"
NAME = "Erika Mustermann"


def on_call_body(specialty: Specialty, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "specialty_id": specialty.id,
        "patient_name": NAME,
        "patient_birth_date": "1956-04-12",
        "patient_contact": "erika@example.org",
        "clinical_question": "Neu aufgetretenes Vorhofflimmern im EKG, Patientin in der Praxis.",
        "mode": "practice",
    }
    body.update(overrides)
    return body


async def ask(client: httpx2.AsyncClient, demo: Demo, **overrides: Any) -> dict[str, Any]:
    response = await client.post(
        ON_CALL, json=on_call_body(demo.cardiology, **overrides), headers=ORIGIN
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def open_requests(client: httpx2.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/queue")
    assert response.status_code == 200, response.text
    return list(response.json()["on_call"])


def heard(app: Starlette) -> list[str]:
    """The types of the on-call events delivered from now on."""
    types: list[str] = []

    async def listener(event: ev.DomainEvent) -> None:
        if isinstance(event, ev.OnCallEvent):
            types.append(event.type)

    app.state.resources.events.subscribe("test.on_call", listener)
    return types


async def delivered(types: list[str], count: int) -> list[str]:
    async with asyncio.timeout(10):
        while len(types) < count:  # noqa: ASYNC110 (the dispatcher's listener fills it)
            await asyncio.sleep(0.02)
    return sorted(types)


def token_of(join_url: str) -> str:
    return join_url.split("#", 1)[1]


async def test_on_call_request_is_open_to_the_specialty_with_a_link_valid_now(
    client_factory: Callable[[], httpx2.AsyncClient], demo: Demo
) -> None:
    async with (
        client_factory() as gp,
        client_factory() as cardiologist,
        client_factory() as colleague,
        client_factory() as dermatologist,
        client_factory() as patient,
    ):
        await login(gp, demo.gp)
        await login(cardiologist, demo.specialist)
        await login(colleague, demo.other_specialist)
        await login(dermatologist, demo.dermatologist)
        before = utcnow()
        asked = await ask(gp, demo)
        appointment, link = asked["appointment"], asked["link"]
        assert (appointment["kind"], appointment["specialist_id"]) == ("on_call", None)
        assert (appointment["specialist_name"], appointment["specialty"]) == ("", "Kardiologie")
        assert (appointment["urgency"], appointment["room_state"]) == ("urgent", "scheduled")
        claim_until = datetime.fromisoformat(appointment["claim_until"])
        assert before + timedelta(minutes=10) <= claim_until <= utcnow() + timedelta(minutes=10)
        assert datetime.fromisoformat(link["valid_from"]) <= utcnow()

        # The patient can come in now and wait.
        redeemed = await patient.post(
            "/api/v1/patient/session", json={"token": token_of(link["join_url"])}
        )
        assert redeemed.status_code == 200, redeemed.text

        for specialist in (cardiologist, colleague):
            (entry,) = await open_requests(specialist)
            assert entry["appointment_id"] == appointment["id"]
            assert (entry["urgency"], entry["mode"], entry["gp_name"]) == (
                "urgent",
                "practice",
                demo.gp.display_name,
            )
            assert entry["practice"] == demo.practice.name
            assert entry["clinical_question"].startswith("Neu aufgetretenes Vorhofflimmern")
            assert isinstance(entry["patient_age"], int)
            assert entry["patient_age"] >= 69
        # Not who the patient is, before somebody takes it.
        assert NAME not in (await cardiologist.get("/api/v1/queue")).text
        assert await open_requests(dermatologist) == []
        # Nobody's appointment yet: no specialist can open it.
        found = await cardiologist.get(f"/api/v1/appointments/{appointment['id']}")
        assert found.status_code == 404
        mine = await gp.get(f"/api/v1/appointments/{appointment['id']}")
        assert mine.json()["kind"] == "on_call"


async def test_on_call_claims_at_once_exactly_one_wins(
    app: Starlette, client_factory: Callable[[], httpx2.AsyncClient], demo: Demo
) -> None:
    events = heard(app)
    async with (
        client_factory() as gp,
        client_factory() as cardiologist,
        client_factory() as colleague,
        client_factory() as dermatologist,
    ):
        await login(gp, demo.gp)
        await login(cardiologist, demo.specialist)
        await login(colleague, demo.other_specialist)
        await login(dermatologist, demo.dermatologist)
        appointment = (await ask(gp, demo))["appointment"]
        url = f"{ON_CALL}/{appointment['id']}/claim"

        # A specialist of another specialty, and a GP, cannot take it.
        assert (await dermatologist.post(url, headers=ORIGIN)).status_code == 404
        assert (await gp.post(url, headers=ORIGIN)).status_code == 403

        answers = await asyncio.gather(
            cardiologist.post(url, headers=ORIGIN), colleague.post(url, headers=ORIGIN)
        )
        assert sorted(a.status_code for a in answers) == [200, 409]
        (won,) = [a.json() for a in answers if a.status_code == 200]
        (lost,) = [a.json() for a in answers if a.status_code == 409]
        assert lost["error"]["code"] == "already_claimed"
        winner = won["specialist_id"]
        assert winner in (demo.specialist.id, demo.other_specialist.id)
        assert won["claimed_at"] is not None
        # Gone from both queues' open requests; the winner has it as their own now.
        assert await open_requests(cardiologist) == []
        assert await open_requests(colleague) == []
        owner = cardiologist if winner == demo.specialist.id else colleague
        seen = (await owner.get(f"/api/v1/appointments/{appointment['id']}")).json()
        assert (seen["patient_name"], seen["specialist_id"]) == (NAME, winner)
        by_gp = (await gp.get(f"/api/v1/appointments/{appointment['id']}")).json()
        assert by_gp["specialist_name"] in (
            demo.specialist.display_name,
            demo.other_specialist.display_name,
        )
        # The owner's own retry (a lost answer, a second tab) is answered as a success, once.
        again = await owner.post(url, headers=ORIGIN)
        assert (again.status_code, again.json()["specialist_id"]) == (200, winner)
    assert await delivered(events, 2) == ["on_call.claimed", "on_call.requested"]
    await asyncio.sleep(0.2)  # nothing more comes: the retry recorded no second claim
    assert sorted(events) == ["on_call.claimed", "on_call.requested"]


async def test_on_call_refuses_bad_requests_and_changes_nothing(
    client_factory: Callable[[], httpx2.AsyncClient],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with unit_of_work(sessions) as session:
        empty = Specialty(slug="neurologie", name_de="Neurologie", name_en="Neurology")
        session.add(empty)
    async with client_factory() as gp, client_factory() as cardiologist:
        await login(gp, demo.gp)
        await login(cardiologist, demo.specialist)
        nobody = await gp.post(ON_CALL, json=on_call_body(empty), headers=ORIGIN)
        assert (nobody.status_code, nobody.json()["error"]["code"]) == (409, "no_specialist")
        unknown = await gp.post(
            ON_CALL, json=on_call_body(demo.cardiology, specialty_id=999_999), headers=ORIGIN
        )
        assert unknown.status_code == 404
        short = await gp.post(
            ON_CALL, json=on_call_body(demo.cardiology, clinical_question="?"), headers=ORIGIN
        )
        assert short.status_code == 422
        by_specialist = await cardiologist.post(
            ON_CALL, json=on_call_body(demo.cardiology), headers=ORIGIN
        )
        assert by_specialist.status_code == 403
        for path in (f"{ON_CALL}/{2**31}/claim", f"{ON_CALL}/999999/claim"):
            assert (await cardiologist.post(path, headers=ORIGIN)).status_code == 404
        assert (await gp.post(f"{ON_CALL}/999999/escalate", headers=ORIGIN)).status_code == 404
        assert await open_requests(cardiologist) == []
        assert (await gp.get("/api/v1/appointments")).json() == []


async def test_on_call_nobody_takes_it_the_gp_is_told_once_and_may_ask_again(
    app: Starlette,
    client_factory: Callable[[], httpx2.AsyncClient],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    events = heard(app)
    async with client_factory() as gp, client_factory() as cardiologist:
        await login(gp, demo.gp)
        await login(cardiologist, demo.specialist)
        appointment = (await ask(gp, demo, urgency="routine"))["appointment"]
        claim_until = datetime.fromisoformat(appointment["claim_until"])
        async with unit_of_work(sessions) as session:
            early = await on_call.sweep_unclaimed(session, now=claim_until - timedelta(seconds=1))
        assert early == 0
        later = claim_until + timedelta(seconds=1)
        async with unit_of_work(sessions) as session:
            assert await on_call.sweep_unclaimed(session, now=later) == 1
        async with unit_of_work(sessions) as session:
            assert await on_call.sweep_unclaimed(session, now=later) == 0  # once
        told = (await gp.get(f"/api/v1/appointments/{appointment['id']}")).json()
        assert told["unclaimed_at"] is not None
        # Still open to the specialty, marked as overdue.
        (entry,) = await open_requests(cardiologist)
        assert entry["unclaimed"] is True

        escalate = f"{ON_CALL}/{appointment['id']}/escalate"
        again = await gp.post(escalate, headers=ORIGIN)
        assert again.status_code == 200, again.text
        asked_again = again.json()
        assert (asked_again["urgency"], asked_again["unclaimed_at"]) == ("urgent", None)
        assert datetime.fromisoformat(asked_again["claim_until"]) > claim_until
        (entry,) = await open_requests(cardiologist)
        assert entry["unclaimed"] is False

        claimed = await cardiologist.post(f"{ON_CALL}/{appointment['id']}/claim", headers=ORIGIN)
        assert claimed.status_code == 200
        late = await gp.post(escalate, headers=ORIGIN)
        assert (late.status_code, late.json()["error"]["code"]) == (409, "already_claimed")
    assert await delivered(events, 4) == [
        "on_call.claimed",
        "on_call.escalated",
        "on_call.requested",
        "on_call.unclaimed",
    ]


async def test_on_call_withdrawn_request_cannot_be_taken(
    client_factory: Callable[[], httpx2.AsyncClient], demo: Demo
) -> None:
    async with client_factory() as gp, client_factory() as cardiologist:
        await login(gp, demo.gp)
        await login(cardiologist, demo.specialist)
        appointment = (await ask(gp, demo))["appointment"]
        withdrawn = await gp.post(
            f"/api/v1/appointments/{appointment['id']}/cancel", headers=ORIGIN
        )
        assert withdrawn.status_code == 200, withdrawn.text
        assert await open_requests(cardiologist) == []
        claim = await cardiologist.post(f"{ON_CALL}/{appointment['id']}/claim", headers=ORIGIN)
        assert (claim.status_code, claim.json()["error"]["code"]) == (409, "invalid_transition")
        moved = await gp.post(
            f"/api/v1/appointments/{appointment['id']}/reschedule",
            json={"starts_at": "2030-01-07T10:00:00+01:00"},
            headers=ORIGIN,
        )
        assert moved.status_code == 409


async def test_on_call_request_with_an_idempotency_key_is_made_once(
    client_factory: Callable[[], httpx2.AsyncClient], demo: Demo
) -> None:
    async with client_factory() as gp:
        await login(gp, demo.gp)
        headers = {**ORIGIN, "Idempotency-Key": "on-call-retry-0001"}
        body = on_call_body(demo.cardiology)
        first = await gp.post(ON_CALL, json=body, headers=headers)
        again = await gp.post(ON_CALL, json=body, headers=headers)
        assert (first.status_code, again.status_code) == (201, 201)
        assert again.headers["Idempotent-Replayed"] == "true"
        assert first.json() == again.json()
        assert len((await gp.get("/api/v1/appointments")).json()) == 1


async def test_on_call_request_past_its_planned_end_is_stale(
    client_factory: Callable[[], httpx2.AsyncClient],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with client_factory() as gp:
        await login(gp, demo.gp)
        appointment = (await ask(gp, demo))["appointment"]
    ends_at = datetime.fromisoformat(appointment["ends_at"])
    assert demo.cardiology.id is not None
    async with sessions() as session:
        listed = await on_call_queue.open_requests(
            session,
            specialty_id=demo.cardiology.id,
            now=ends_at - timedelta(seconds=1),
            tz=ZoneInfo("UTC"),
        )
        stale = await on_call_queue.open_requests(
            session,
            specialty_id=demo.cardiology.id,
            now=ends_at + timedelta(seconds=1),
            tz=ZoneInfo("UTC"),
        )
    assert [e.appointment_id for e in listed] == [appointment["id"]]
    assert stale == []
    cardiologist = Principal(
        kind=SessionKind.STAFF, session_id="s", csrf_token="c", user_id=demo.specialist.id,
        role=Role.SPECIALIST, display_name=demo.specialist.display_name,
    )  # fmt: skip
    with pytest.raises(InvalidTransition, match="abgelaufen"):
        async with unit_of_work(sessions) as session:
            await on_call.claim(
                session,
                who=cardiologist,
                appointment_id=appointment["id"],
                now=ends_at + timedelta(seconds=1),
            )


async def test_on_call_room_waits_for_a_specialist_before_anyone_is_let_in(
    client_factory: Callable[[], httpx2.AsyncClient],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with client_factory() as gp, client_factory() as cardiologist:
        await login(gp, demo.gp)
        await login(cardiologist, demo.specialist)
        appointment = (await ask(gp, demo))["appointment"]
        async with unit_of_work(sessions) as session:  # the patient waits in the room
            await session.execute(
                update(Appointment)
                .where(col(Appointment.id) == appointment["id"])
                .values(room_state=RoomState.WAITING, waiting_since=utcnow())
            )
        admit = f"/api/v1/rooms/{appointment['id']}/admit"
        early = await gp.post(admit, headers=ORIGIN)
        assert (early.status_code, early.json()["error"]["code"]) == (409, "invalid_transition")
        (entry,) = await open_requests(cardiologist)
        assert entry["patient_waiting"] is True
        claimed = await cardiologist.post(f"{ON_CALL}/{appointment['id']}/claim", headers=ORIGIN)
        assert claimed.status_code == 200
        admitted = await cardiologist.post(admit, headers=ORIGIN)
        assert (admitted.status_code, admitted.json()["room_state"]) == (200, "admitted")


async def test_on_call_withdraw_only_while_nobody_has_taken_it(
    client_factory: Callable[[], httpx2.AsyncClient], demo: Demo
) -> None:
    async with client_factory() as gp, client_factory() as cardiologist:
        await login(gp, demo.gp)
        await login(cardiologist, demo.specialist)
        open_one = (await ask(gp, demo))["appointment"]
        withdrawn = await gp.post(f"{ON_CALL}/{open_one['id']}/withdraw", headers=ORIGIN)
        assert withdrawn.status_code == 200, withdrawn.text
        assert (withdrawn.json()["status"], withdrawn.json()["room_state"]) == (
            "cancelled",
            "cancelled",
        )
        again = await gp.post(f"{ON_CALL}/{open_one['id']}/withdraw", headers=ORIGIN)
        assert (again.status_code, again.json()["error"]["code"]) == (409, "invalid_transition")

        taken = (await ask(gp, demo))["appointment"]
        claimed = await cardiologist.post(f"{ON_CALL}/{taken['id']}/claim", headers=ORIGIN)
        assert claimed.status_code == 200
        late = await gp.post(f"{ON_CALL}/{taken['id']}/withdraw", headers=ORIGIN)
        assert (late.status_code, late.json()["error"]["code"]) == (409, "already_claimed")
        still = (await gp.get(f"/api/v1/appointments/{taken['id']}")).json()
        assert (still["status"], still["specialist_id"]) == ("booked", demo.specialist.id)
        by_specialist = await cardiologist.post(f"{ON_CALL}/{taken['id']}/withdraw", headers=ORIGIN)
        assert by_specialist.status_code == 403


async def test_on_call_asked_again_waits_for_its_new_time_limit(
    client_factory: Callable[[], httpx2.AsyncClient],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with client_factory() as gp:
        await login(gp, demo.gp)
        appointment = (await ask(gp, demo))["appointment"]
        first_limit = datetime.fromisoformat(appointment["claim_until"])
        async with unit_of_work(sessions) as session:
            assert await on_call.sweep_unclaimed(session, now=first_limit) == 1
        asked_again = await gp.post(f"{ON_CALL}/{appointment['id']}/escalate", headers=ORIGIN)
        assert asked_again.status_code == 200
    new_limit = datetime.fromisoformat(asked_again.json()["claim_until"])
    async with unit_of_work(sessions) as session:
        assert await on_call.sweep_unclaimed(session, now=new_limit - timedelta(seconds=1)) == 0
    async with unit_of_work(sessions) as session:
        assert await on_call.sweep_unclaimed(session, now=new_limit) == 1


async def test_on_call_stale_request_cannot_be_asked_again_but_can_be_withdrawn(
    client_factory: Callable[[], httpx2.AsyncClient],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with client_factory() as gp:
        await login(gp, demo.gp)
        appointment = (await ask(gp, demo))["appointment"]
        async with unit_of_work(sessions) as session:  # its planned end has passed
            await session.execute(
                update(Appointment)
                .where(col(Appointment.id) == appointment["id"])
                .values(ends_at=utcnow() - timedelta(minutes=1))
            )
        stale = await gp.post(f"{ON_CALL}/{appointment['id']}/escalate", headers=ORIGIN)
        assert stale.status_code == 409
        assert "abgelaufen" in stale.json()["error"]["message"]
        withdrawn = await gp.post(f"{ON_CALL}/{appointment['id']}/withdraw", headers=ORIGIN)
        assert withdrawn.status_code == 200
