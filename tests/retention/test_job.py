"""The retention job in the app: the lifespan's task runs it periodically, one process per
period; pages and the API stay whole when an appointment's rows are gone; the operator's
command prints the counts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import anyio
import httpx2
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from starlette.applications import Starlette

from app import cli
from app.db import utcnow
from app.metrics import REGISTRY
from app.retention import job, service
from app.scheduling.models import Appointment
from app.settings import Settings
from tests.conftest import create_schema, lifespan_in_own_task
from tests.factories import Demo, login, seed
from tests.retention.helpers import consultation, rows_of
from tests.waiting import until

DAY = timedelta(days=1)


def runs(outcome: str) -> float:
    value = REGISTRY.get_sample_value("konsil_retention_runs_total", {"outcome": outcome})
    return value or 0.0


def deleted(kind: str) -> float:
    value = REGISTRY.get_sample_value("konsil_retention_deleted_total", {"kind": kind})
    return value or 0.0


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # A round every 0.6 s.
    return make_settings(retention_interval_minutes=0.01)


async def test_the_lifespan_task_deletes_what_is_due(
    app: Starlette, sessions: async_sessionmaker[AsyncSession], demo: Demo
) -> None:
    before = (runs("done"), deleted("appointments"))
    old = await consultation(sessions, demo, ended=utcnow() - 91 * DAY)
    kept = await consultation(sessions, demo, ended=utcnow() - 89 * DAY)

    async def gone() -> bool:
        return not await rows_of(sessions, Appointment, col(Appointment.id) == old.appointment_id)

    await until(gone, 20, "the old appointment deleted")

    assert await rows_of(sessions, Appointment, col(Appointment.id) == kept.appointment_id)

    async def counted() -> bool:  # the round is counted just after its deletions commit
        return runs("done") > before[0]

    await until(counted, 20, "the round counted")
    assert deleted("appointments") >= before[1] + 1


async def test_one_round_per_period_on_a_shared_broker(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()  # an hour between rounds: the task itself stays asleep
    await create_schema(settings.database_url)
    from app.main import create_app

    application = create_app(settings)
    async with lifespan_in_own_task(application):
        res = application.state.resources
        skipped = runs("skipped")
        first = await job.round_(res)
        second = await job.round_(res)  # another process on the same broker, same period
    assert first is not None
    assert set(first) >= set(service.KINDS)
    assert second is None
    assert runs("skipped") == skipped + 1


async def test_a_failing_round_is_logged_and_the_next_one_runs(
    make_settings: Callable[..., Settings],
) -> None:
    # No schema yet: the first rounds fail; once the tables exist, a round succeeds.
    settings = make_settings(retention_interval_minutes=0.005)
    from app.main import create_app

    application = create_app(settings)
    failed, done = runs("failed"), runs("done")
    async with lifespan_in_own_task(application):

        async def failed_once() -> bool:
            return runs("failed") > failed

        async def done_once() -> bool:
            return runs("done") > done

        await until(failed_once, 20, "a round failed")
        await create_schema(settings.database_url)
        await until(done_once, 20, "a round done")


async def test_pages_and_lists_stay_whole_after_retention(
    app: Starlette,
    sessions: async_sessionmaker[AsyncSession],
    demo: Demo,
    client: httpx2.AsyncClient,
    settings: Settings,
) -> None:
    now = utcnow()
    gone = await consultation(sessions, demo, ended=now - 91 * DAY)
    reported = await consultation(sessions, demo, ended=now - 40 * DAY, reported=now - 31 * DAY)
    await service.run(sessions, settings, now=now)
    await login(client, demo.gp)

    since = (now - 100 * DAY).date().isoformat()
    listing = await client.get("/api/v1/appointments", params={"from": since, "limit": 500})
    page = await client.get("/gp/appointments")
    one = await client.get(f"/api/v1/appointments/{gone.appointment_id}")
    report = await client.get(f"/api/v1/appointments/{reported.appointment_id}/report")
    documents = await client.get(f"/api/v1/appointments/{reported.appointment_id}/documents")

    assert listing.status_code == 200
    assert page.status_code == 200
    ids = {a["id"] for a in listing.json()}
    assert reported.appointment_id in ids
    assert gone.appointment_id not in ids
    assert one.status_code == 404
    assert report.status_code == 404
    assert report.json()["error"]["code"] == "records_deleted"
    assert "Aufbewahrungsfrist" in report.json()["error"]["message"]
    assert documents.status_code == 200
    assert documents.json() == []


async def test_the_operator_command_prints_the_counts(
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = make_settings()
    await create_schema(settings.database_url)
    from app.db import create_engine, session_factory

    engine = create_engine(settings.database_url)
    try:
        sessions = session_factory(engine)
        people = await seed(sessions)
        await consultation(sessions, people, ended=utcnow() - 95 * DAY)
    finally:
        await engine.dispose()
    monkeypatch.setenv("KONSIL_DATABASE_URL", settings.database_url)

    code = await anyio.to_thread.run_sync(cli.main, ["retention-run"])

    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert "appointments: 1" in lines
    assert "documents: 1" in lines
