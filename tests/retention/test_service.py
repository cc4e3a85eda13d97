"""The retention job against a real database (SQLite and PostgreSQL), with the clock moved:
what is due goes with everything that names its patient, what is not stays untouched."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import anyio
import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from app.accounts.models import AuthSession, SessionKind
from app.audit.models import AuditEvent, AuditPermit
from app.db import create_engine, session_factory, unit_of_work
from app.events.outbox import OutboxEvent
from app.idempotency import IdempotentResponse
from app.models import metadata
from app.records.models import Document, Report
from app.retention import service
from app.rooms.models import SpecialistDelay
from app.scheduling.models import Appointment, GuestInvitation, JoinToken
from app.settings import Settings
from tests.conftest import create_schema
from tests.factories import Demo, seed
from tests.retention.helpers import audit_rows, consultation, everything, rows_of

# Local noon in Berlin, mid-June: far from midnight, New Year and the DST changes.
NOW = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)


async def test_an_appointment_91_days_after_its_consultation_goes_with_all_its_rows(
    db: async_sessionmaker[AsyncSession], people: Demo, retention_settings: Settings
) -> None:
    old = await consultation(db, people, ended=NOW - 91 * DAY, reported=NOW - 90 * DAY)
    recent = await consultation(db, people, ended=NOW - 89 * DAY, reported=NOW - 89 * DAY)

    counts = await service.run(db, retention_settings, now=NOW)

    assert await rows_of(db, Appointment, col(Appointment.id) == old.appointment_id) == []
    for model in (JoinToken, GuestInvitation, AuthSession, Document, Report):
        assert await rows_of(db, model, col(model.appointment_id) == old.appointment_id) == []
    aggregate = f"appointment:{old.appointment_id}"
    assert await rows_of(db, OutboxEvent, col(OutboxEvent.aggregate) == aggregate) == []
    dump = await everything(db)
    for trace in old.traces:
        assert trace not in dump
    # The one 89 days after its consultation is whole (its report went after 30 days).
    for trace in recent.traces[:3]:
        assert trace in dump
    assert len(await rows_of(db, Appointment, col(Appointment.id) == recent.appointment_id)) == 1
    for child in (JoinToken, AuthSession):
        assert len(await rows_of(db, child, col(child.appointment_id) == recent.appointment_id))
    assert counts["appointments"] == 1
    assert counts["links"] == 1
    assert counts["guests"] == 1
    assert counts["sessions"] == 1


async def test_moving_the_clock_two_days_takes_the_next_one(
    db: async_sessionmaker[AsyncSession], people: Demo, retention_settings: Settings
) -> None:
    recent = await consultation(db, people, ended=NOW - 89 * DAY)

    first = await service.run(db, retention_settings, now=NOW)
    kept = await rows_of(db, Appointment, col(Appointment.id) == recent.appointment_id)
    later = await service.run(db, retention_settings, now=NOW + 2 * DAY)

    assert first["appointments"] == 0
    assert len(kept) == 1
    assert later["appointments"] == 1
    assert await rows_of(db, Appointment, col(Appointment.id) == recent.appointment_id) == []


async def test_a_call_that_ran_late_counts_from_its_end(
    db: async_sessionmaker[AsyncSession], people: Demo, retention_settings: Settings
) -> None:
    late = await consultation(db, people, ended=NOW - 91 * DAY)
    async with unit_of_work(db) as session:
        await session.execute(
            update(Appointment)
            .where(col(Appointment.id) == late.appointment_id)
            .values(ended_at=NOW - 89 * DAY)
        )

    counts = await service.run(db, retention_settings, now=NOW)

    assert counts["appointments"] == 0
    assert len(await rows_of(db, Appointment, col(Appointment.id) == late.appointment_id)) == 1


async def test_documents_and_report_go_30_days_after_the_report_the_appointment_stays(
    db: async_sessionmaker[AsyncSession], people: Demo, retention_settings: Settings
) -> None:
    due = await consultation(db, people, ended=NOW - 40 * DAY, reported=NOW - 31 * DAY)
    fresh = await consultation(db, people, ended=NOW - 40 * DAY, reported=NOW - 29 * DAY)
    cancelled = await consultation(db, people, ended=NOW - 20 * DAY, cancelled=NOW - 31 * DAY)
    unreported = await consultation(db, people, ended=NOW - 80 * DAY)

    counts = await service.run(db, retention_settings, now=NOW)

    for gone in (due, cancelled):
        assert (
            await rows_of(db, Document, col(Document.appointment_id) == gone.appointment_id) == []
        )
        assert await rows_of(db, Report, col(Report.appointment_id) == gone.appointment_id) == []
        assert await rows_of(db, Appointment, col(Appointment.id) == gone.appointment_id) != []
    for kept in (fresh, unreported):
        assert await rows_of(db, Document, col(Document.appointment_id) == kept.appointment_id)
    assert await rows_of(db, Report, col(Report.appointment_id) == fresh.appointment_id)
    assert counts["documents"] == 2
    assert counts["reports"] == 1
    assert counts["appointments"] == 0


async def test_records_never_outlive_their_appointment(
    db: async_sessionmaker[AsyncSession],
    people: Demo,
    make_settings: Callable[..., Settings],
    database_url: str,
) -> None:
    settings = make_settings(
        database_url=database_url, retention_metadata_days=60, retention_records_days=90
    )
    old = await consultation(db, people, ended=NOW - 61 * DAY, reported=NOW - 61 * DAY)

    counts = await service.run(db, settings, now=NOW)

    assert counts["appointments"] == 1
    assert counts["reports"] == 1
    assert await rows_of(db, Report, col(Report.appointment_id) == old.appointment_id) == []


async def test_the_audit_log_keeps_ids_only_after_the_period_and_goes_after_its_own(
    db: async_sessionmaker[AsyncSession], people: Demo, retention_settings: Settings
) -> None:
    assert people.gp.id is not None
    async with unit_of_work(db) as session:
        session.add_all(audit_rows(7, at=NOW - 95 * DAY, gp_id=people.gp.id))
        session.add_all(audit_rows(8, at=NOW - 10 * DAY, gp_id=people.gp.id))
        session.add_all(audit_rows(9, at=NOW - 400 * DAY, gp_id=people.gp.id))

    counts = await service.run(db, retention_settings, now=NOW)

    rows = {
        (r.appointment_id, r.action): r
        for r in await rows_of(db, AuditEvent, col(AuditEvent.appointment_id).is_not(None))
    }
    assert {a for a, _ in rows} == {7, 8}  # the ones from 400 days ago are gone
    booked = rows[(7, "appointment.booked")]
    assert booked.detail == {"specialist_id": 3}
    assert booked.actor_id == people.gp.id
    assert booked.reduced_at == NOW
    assert rows[(7, "link.redeemed")].ip is None
    assert rows[(7, "link.redeemed")].at == NOW - 95 * DAY
    # Younger than the metadata period: untouched.
    assert rows[(8, "appointment.booked")].detail["urgency"] == "urgent"
    assert rows[(8, "link.redeemed")].ip == "203.0.113.9"
    logins = await rows_of(db, AuditEvent, col(AuditEvent.action) == "login.failure")
    assert {(r.ip, r.subject) for r in logins} == {(None, None), ("198.51.100.23", "ab" * 32)}
    assert counts["audit_events"] == 3
    assert counts["audit_reduced"] == 3
    # A second run finds nothing left to do.
    assert sum((await service.run(db, retention_settings, now=NOW)).values()) == 0


async def test_the_audit_log_still_refuses_every_other_change(
    db: async_sessionmaker[AsyncSession], people: Demo, retention_settings: Settings
) -> None:
    assert people.gp.id is not None
    async with unit_of_work(db) as session:
        session.add_all(audit_rows(7, at=NOW - 400 * DAY, gp_id=people.gp.id))
    await service.run(db, retention_settings, now=NOW - 300 * DAY)  # reduced, not deleted

    for statement in (delete(AuditEvent), update(AuditEvent).values(ip="192.0.2.1")):
        with pytest.raises(DBAPIError, match="append-only"):
            async with unit_of_work(db) as session:
                await session.execute(statement)
    assert await rows_of(db, AuditPermit) == []
    assert len(await rows_of(db, AuditEvent)) == 3


async def test_sessions_events_and_idempotent_answers_past_their_time_go(
    db: async_sessionmaker[AsyncSession], people: Demo, retention_settings: Settings
) -> None:
    recent = await consultation(db, people, ended=NOW - 10 * DAY)
    async with unit_of_work(db) as session:
        session.add_all(
            [
                IdempotentResponse(
                    scope="booking:gp:1", key_hash="a" * 64, request_hash="b" * 64,
                    status=201, body="x", created_at=NOW - timedelta(hours=25),
                ),
                IdempotentResponse(
                    scope="booking:gp:1", key_hash="c" * 64, request_hash="d" * 64,
                    status=201, body="y", created_at=NOW - timedelta(hours=23),
                ),
            ]
        )  # fmt: skip
        # A staff session that expired 91 days ago, and an old event with no appointment.
        session.add(
            AuthSession(
                id="e" * 64, kind=SessionKind.STAFF, user_id=people.gp.id, csrf_token="f" * 32,
                created_at=NOW - 92 * DAY, expires_at=NOW - 91 * DAY,
            )
        )  # fmt: skip
        session.add(
            OutboxEvent(
                event_id="1" * 32, aggregate="user:1", type="account.deactivated",
                payload="{}", created_at=NOW - 91 * DAY, available_at=NOW - 91 * DAY,
            )
        )  # fmt: skip

    counts = await service.run(db, retention_settings, now=NOW)

    assert [r.key_hash for r in await rows_of(db, IdempotentResponse)] == ["c" * 64]
    assert await rows_of(db, AuthSession, col(AuthSession.id) == "e" * 64) == []
    assert await rows_of(db, OutboxEvent, col(OutboxEvent.aggregate) == "user:1") == []
    # The recent consultation's session and event stay.
    assert await rows_of(db, AuthSession, col(AuthSession.appointment_id) == recent.appointment_id)
    assert await rows_of(
        db, OutboxEvent, col(OutboxEvent.aggregate) == f"appointment:{recent.appointment_id}"
    )
    assert counts["idempotent_responses"] == 1
    assert counts["sessions"] == 1
    assert counts["events"] == 1


async def test_a_late_notice_goes_two_days_after_its_last_change(
    db: async_sessionmaker[AsyncSession], people: Demo, retention_settings: Settings
) -> None:
    assert people.specialist.id is not None
    assert people.other_specialist.id is not None
    note = "Notfall im Haus, Dr. Beispiel"
    async with unit_of_work(db) as session:
        session.add_all(
            [
                SpecialistDelay(
                    specialist_id=people.specialist.id, day=(NOW - 3 * DAY).date(),
                    minutes=20, note=note, updated_at=NOW - 3 * DAY,
                ),
                SpecialistDelay(
                    specialist_id=people.other_specialist.id, day=NOW.date(),
                    minutes=10, note="heute", updated_at=NOW - timedelta(hours=2),
                ),
            ]
        )  # fmt: skip

    counts = await service.run(db, retention_settings, now=NOW)

    kept = await rows_of(db, SpecialistDelay)
    assert [(r.specialist_id, r.note) for r in kept] == [(people.other_specialist.id, "heute")]
    assert counts["late_notices"] == 1
    assert note not in str(await everything(db))


async def test_a_backlog_is_worked_off_in_small_batches(
    db: async_sessionmaker[AsyncSession], people: Demo, retention_settings: Settings
) -> None:
    for i in range(7):
        await consultation(db, people, ended=NOW - (100 + i) * DAY, reported=NOW - 99 * DAY)

    counts = await service.run(db, retention_settings, now=NOW, batch=3)

    assert counts["appointments"] == 7
    assert counts["documents"] == 7
    assert await rows_of(db, Appointment) == []


@pytest.mark.postgres
async def test_two_instances_at_once_delete_everything_once(
    postgres_url: str, make_settings: Callable[..., Settings]
) -> None:
    await create_schema(postgres_url)
    engines = [create_engine(postgres_url), create_engine(postgres_url)]
    try:
        first, second = (session_factory(e) for e in engines)
        people = await seed(first)
        for i in range(40):
            await consultation(first, people, ended=NOW - (91 + i % 5) * DAY)
        settings = make_settings(database_url=postgres_url)
        for engine in engines:  # both connected before they start, so that they overlap
            async with engine.connect():
                pass

        results = await asyncio.gather(
            service.run(first, settings, now=NOW, batch=4),
            service.run(second, settings, now=NOW, batch=4),
        )

        assert sum(r["appointments"] for r in results) == 40
        assert sum(r["documents"] for r in results) == 40
        assert sum(r["audit_reduced"] for r in results) == 120
        assert all(r["appointments"] > 0 for r in results)  # both took part
        assert await rows_of(first, Appointment) == []
    finally:
        for engine in engines:
            await engine.dispose()


def test_every_table_that_refers_to_an_appointment_is_cleared() -> None:
    referring = {
        table.name
        for table in metadata.sorted_tables
        for key in table.foreign_keys
        if key.column.table.name == "appointment"
    }
    assert referring == {model.__tablename__ for _, model in service.CHILDREN}


async def test_no_sqlite_free_page_keeps_a_deleted_document(
    sqlite_url: str, settings: Settings
) -> None:
    await create_schema(sqlite_url)
    engine = create_engine(sqlite_url)
    try:
        sessions = session_factory(engine)
        people = await seed(sessions)
        old = await consultation(sessions, people, ended=NOW - 91 * DAY, tag="FILETRACE")
        await service.run(sessions, settings, now=NOW)
        async with engine.connect() as connection:
            await connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    finally:
        await engine.dispose()
    # Checkpointed: the WAL is empty, everything is in the file.
    data = await anyio.Path(sqlite_url.split("///", 1)[1]).read_bytes()
    assert old.traces[0].encode() not in data
    assert b"befund-FILETRACE" not in data
