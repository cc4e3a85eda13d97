"""Asynchronous ``$book`` (``Prefer: respond-async``): 202 with a status URL, polled to its
result; two at once on one slot end one booked and one 409; only the GP who asked may poll; a
job its process never ended is given up by a poll, and its booking then rolls back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import httpx2
import pytest
from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import select

from app.db import unit_of_work, utcnow
from app.fhir import jobs
from app.retention import service as retention
from app.scheduling.models import Appointment as Booking
from app.settings import Settings
from tests.factories import Demo, login
from tests.fhir.helpers import (
    ASYNC,
    FHIR_JSON,
    assert_outcome,
    free_slots,
    kick_off,
    parameters,
    poll,
)

ClientFactory = Callable[[], httpx2.AsyncClient]


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url)


async def test_an_async_book_is_polled_to_its_appointment(
    client: httpx2.AsyncClient, demo: Demo, settings: Settings
) -> None:
    await login(client, demo.gp)
    slot = (await free_slots(client, settings, demo.specialist))[0]
    status_path = await kick_off(client, slot["id"])
    done = await poll(client, status_path)
    assert done.status_code == 200, done.text
    assert done.headers["cache-control"] == "no-store"
    result = Bundle.model_validate(done.json())
    assert result.type == "batch-response"
    (entry,) = result.entry or []
    assert entry.response is not None
    assert entry.response.status == "201 Created"
    appointment = entry.resource
    assert isinstance(appointment, Appointment)
    assert appointment.status == "booked"
    assert entry.response.location == f"Appointment/{appointment.id}"
    assert "join" not in done.text
    read = await client.get(f"/fhir/R4/Appointment/{appointment.id}")
    assert read.json()["start"] == slot["start"]
    assert (await client.get(status_path)).json() == done.json()  # asked again: the same

    # The same slot again, asynchronously: the kick-off is accepted, its result is the 409.
    second = await poll(client, await kick_off(client, slot["id"]))
    assert assert_outcome(second, 409).issue[0].code == "conflict"


async def test_two_async_books_of_one_slot_one_wins(
    client_factory: ClientFactory, demo: Demo, settings: Settings
) -> None:
    async with client_factory() as first, client_factory() as second:
        await login(first, demo.gp)
        await login(second, demo.other_gp)
        slot = (await free_slots(first, settings, demo.specialist))[2]
        paths = await asyncio.gather(kick_off(first, slot["id"]), kick_off(second, slot["id"]))
        answers = await asyncio.gather(poll(first, paths[0]), poll(second, paths[1]))
    assert sorted(a.status_code for a in answers) == [200, 409]


async def test_the_status_url_is_the_asking_gps_only(
    client_factory: ClientFactory, demo: Demo, settings: Settings
) -> None:
    async with client_factory() as gp, client_factory() as other, client_factory() as nobody:
        await login(gp, demo.gp)
        await login(other, demo.other_gp)
        slot = (await free_slots(gp, settings, demo.specialist))[3]
        path = await kick_off(gp, slot["id"])
        assert (await poll(gp, path)).status_code == 200
        assert_outcome(await other.get(path), 404)
        assert_outcome(await nobody.get(path), 401)
        assert_outcome(await gp.get("/fhir/R4/_jobs/not-a-job-of-anybody-at-all"), 404)
        assert_outcome(await gp.delete(path), 405)
        await login(nobody, demo.specialist)
        assert_outcome(await nobody.get(path), 403)


async def test_what_the_request_breaks_is_refused_at_once(
    client: httpx2.AsyncClient, demo: Demo, settings: Settings
) -> None:
    """Not a job: the kick-off itself answers what is wrong with the request."""
    await login(client, demo.gp)
    slot = (await free_slots(client, settings, demo.specialist))[0]
    unnamed = parameters(f"Slot/{slot['id']}", contained=[])
    response = await client.post("/fhir/R4/Appointment/$book", json=unnamed, headers=ASYNC)
    assert_outcome(response, 400)
    no_question = parameters(f"Slot/{slot['id']}", comment="?")
    response = await client.post("/fhir/R4/Appointment/$book", json=no_question, headers=ASYNC)
    assert_outcome(response, 422)


async def test_a_gp_has_at_most_so_many_jobs_running(
    client_factory: ClientFactory,
    demo: Demo,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """``KONSIL_FHIR_ASYNC_JOBS_PER_GP`` jobs running: one more is 429 with Retry-After, and
    nothing is opened. Ended and overdue jobs do not count; another GP's are their own."""
    limit = settings.fhir_async_jobs_per_gp
    now = utcnow()
    long_ago = now - jobs.DEADLINE - timedelta(seconds=1)
    async with unit_of_work(sessions) as session:
        for _ in range(limit - 1):
            await jobs.open_job(session, owner_id=demo.gp.id or 0, now=now, limit=limit)
        ended, _ = await jobs.open_job(session, owner_id=demo.gp.id or 0, now=now, limit=limit)
        await jobs.finish(session, ended, jobs.Outcome(409, issue_code="conflict"), now=now)
        await jobs.open_job(session, owner_id=demo.gp.id or 0, now=long_ago, limit=limit)
        await jobs.open_job(session, owner_id=demo.gp.id or 0, now=now, limit=limit)
    async with client_factory() as gp, client_factory() as other:
        await login(gp, demo.gp)
        await login(other, demo.other_gp)
        slot = (await free_slots(gp, settings, demo.specialist))[5]
        refused = await gp.post(
            "/fhir/R4/Appointment/$book", json=parameters(f"Slot/{slot['id']}"), headers=ASYNC
        )
        assert assert_outcome(refused, 429).issue[0].code == "throttled"
        assert refused.headers["retry-after"] == "1"
        async with sessions() as session:
            assert await jobs.running(session, owner_id=demo.gp.id or 0, now=now) == limit
        assert (await poll(other, await kick_off(other, slot["id"]))).status_code == 200
        # Without Prefer: respond-async no job is needed.
        second = (await free_slots(gp, settings, demo.specialist))[5]
        booked = await gp.post(
            "/fhir/R4/Appointment/$book",
            json=parameters(f"Slot/{second['id']}"),
            headers={"Content-Type": FHIR_JSON},
        )
        assert booked.status_code == 201, booked.text


async def test_a_job_never_ended_is_given_up_and_its_late_booking_rolls_back(
    client: httpx2.AsyncClient,
    demo: Demo,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await login(client, demo.gp)
    slot = (await free_slots(client, settings, demo.specialist))[4]
    long_ago = utcnow() - jobs.DEADLINE - timedelta(seconds=1)
    async with unit_of_work(sessions) as session:
        job_id, token = await jobs.open_job(
            session, owner_id=demo.gp.id or 0, now=long_ago, limit=1
        )
    given_up = await client.get(f"/fhir/R4/_jobs/{token}")
    outcome = assert_outcome(given_up, 503)
    assert outcome.issue[0].code == "incomplete"
    assert "nichts gebucht" in (outcome.issue[0].diagnostics or "")

    # The task that was to end it comes late: it cannot end the job, so nothing is booked.
    async with unit_of_work(sessions) as session:
        assert not await jobs.finish(session, job_id, jobs.Outcome(201, 1), now=utcnow())
    async with sessions() as session:
        count = (await session.execute(select(func.count()).select_from(Booking))).scalar_one()
    assert count == 0
    assert_outcome(await client.get(f"/fhir/R4/_jobs/{token}"), 503)  # it stays given up
    assert slot["id"] in [s["id"] for s in await free_slots(client, settings, demo.specialist)]


async def test_jobs_go_after_a_day(
    demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    now = utcnow()
    async with unit_of_work(sessions) as session:
        await jobs.open_job(session, owner_id=demo.gp.id or 0, now=now - jobs.KEEP, limit=1)
        await jobs.open_job(
            session, owner_id=demo.gp.id or 0, now=now - timedelta(hours=1), limit=1
        )
    counts = await retention.run(sessions, settings, now=now)
    assert counts.get("fhir_jobs") == 1
    async with sessions() as session:
        left = (await session.execute(select(jobs.FhirJob))).scalars().all()
    assert len(left) == 1


async def test_an_async_booking_is_the_json_apis_booking(
    client: httpx2.AsyncClient, demo: Demo, settings: Settings
) -> None:
    """The booking service is the JSON API's: an asynchronous booking is found there too."""
    await login(client, demo.gp)
    slot = (await free_slots(client, settings, demo.specialist))[5]
    done = await poll(client, await kick_off(client, slot["id"]))
    appointment_id = int(done.json()["entry"][0]["resource"]["id"])
    listed = await client.get(f"/api/v1/appointments/{appointment_id}")
    assert listed.status_code == 200, listed.text
    assert listed.json()["patient_name"] == "Erika Mustermann"
