"""The Alembic migrations (what `make run`, compose and systemd apply) build the schema the
models describe, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import bindparam, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.sql.elements import BindParameter, TextClause
from sqlmodel import col

from app.accounts.models import AuthSession, SessionStage
from app.db import UTCDateTime, create_engine, session_factory
from app.events import types as ev
from app.models import metadata
from app.presence.models import Chosen, SpecialistPresence
from app.retention import service as retention
from app.scheduling.models import BOOKED_HAS_SPECIALIST, Appointment, RoomState
from app.settings import Settings
from tests.conftest import create_schema

ROOT = Path(__file__).resolve().parents[1]


def alembic_config(database_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "app" / "migrations"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False  # leave the test run's logging alone
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def booked_at(
    database_url: str, revision: str, at: BindParameter[datetime], *rows: TextClause
) -> None:
    """The database at ``revision`` (0010 or later) with a specialist (1), a GP (2) and their
    booking (1, invitation by e-mail) at ``at``, then ``rows`` (statements using ``:at``)."""
    await asyncio.to_thread(upgrade, database_url, revision)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO staff_user (id, email, display_name, role, password_hash, "
                    "is_active, created_at) VALUES (1, 'a@example.org', 'A', 'specialist', 'x', "
                    "true, :at), (2, 'b@example.org', 'B', 'gp', 'x', true, :at)"
                ).bindparams(at)
            )
            await connection.execute(
                text(
                    "INSERT INTO appointment (id, specialist_id, gp_id, starts_at, ends_at, "
                    "status, patient_name, patient_birth_date, patient_contact, "
                    "clinical_question, urgency, mode, room_state, created_at, "
                    "patient_channels) VALUES (1, 1, 2, :at, :at, 'booked', 'P', :born, "
                    "'p@example.org', 'Q', 'routine', 'home', 'scheduled', :at, 'email')"
                ).bindparams(at, born=date(1950, 1, 1))
            )
            for row in rows:
                await connection.execute(row)
    finally:
        await engine.dispose()


async def refuses_a_booking_without_a_specialist(database_url: str) -> None:
    """Only an on-call request may wait without a specialist (a CHECK since 0015): a booking
    without one is refused. Needs the staff of ``booked_at``."""
    at = bindparam("at", datetime(2026, 3, 2, 11, 0, tzinfo=UTC), type_=UTCDateTime())
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            with pytest.raises(IntegrityError, match=BOOKED_HAS_SPECIALIST):
                await connection.execute(
                    text(
                        "INSERT INTO appointment (id, kind, gp_id, starts_at, ends_at, status, "
                        "patient_name, patient_birth_date, patient_contact, clinical_question, "
                        "urgency, mode, room_state, created_at) VALUES (99, 'booked', 2, :at, "
                        ":at, 'booked', 'P', :born, 'p@example.org', 'Q', 'routine', 'home', "
                        "'scheduled', :at)"
                    ).bindparams(at, born=date(1950, 1, 1))
                )
    finally:
        await engine.dispose()


async def test_migrations_build_the_schema_of_the_models(database_url: str) -> None:
    # env.py runs its own event loop, as it does under `python -m app.cli migrate`.
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(differences)
    finally:
        await engine.dispose()
    assert diff == []


async def test_migrations_run_twice_change_nothing(database_url: str) -> None:
    await asyncio.to_thread(upgrade, database_url)
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            version = await connection.run_sync(
                lambda c: MigrationContext.configure(c).get_current_revision()
            )
    finally:
        await engine.dispose()
    assert version is not None


async def test_migrations_comparison_sees_a_missing_revision(sqlite_url: str) -> None:
    # The check above can fail: stopping one revision short leaves a column out.
    await asyncio.to_thread(upgrade, sqlite_url, "0001")
    engine = create_engine(sqlite_url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(differences)
    finally:
        await engine.dispose()
    assert diff != []


async def test_reported_at_is_filled_from_the_reports_written_before_it(database_url: str) -> None:
    # Before 0004, "has a report" was known only from the report table.
    await asyncio.to_thread(upgrade, database_url, "0003")
    written = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
    stamp = bindparam("at", written, type_=UTCDateTime())
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO staff_user (id, email, display_name, role, password_hash, "
                    "is_active, created_at) VALUES (1, 'a@example.org', 'A', 'specialist', 'x', "
                    "true, :at), (2, 'b@example.org', 'B', 'gp', 'x', true, :at)"
                ).bindparams(stamp)
            )
            for appointment_id in (1, 2):
                await connection.execute(
                    text(
                        "INSERT INTO appointment (id, specialist_id, gp_id, starts_at, ends_at, "
                        "status, patient_name, patient_birth_date, patient_contact, "
                        "clinical_question, urgency, mode, room_state, created_at) VALUES "
                        "(:id, 1, 2, :slot, :slot, 'completed', 'P', :born, '', 'Q', 'routine', "
                        "'home', 'ended', :at)"
                    ).bindparams(
                        stamp,
                        bindparam("slot", written - timedelta(hours=appointment_id), UTCDateTime()),
                        id=appointment_id,
                        born=date(1950, 1, 1),
                    )
                )
            await connection.execute(
                text(
                    "INSERT INTO report (appointment_id, author_id, body, created_at, updated_at) "
                    "VALUES (1, 1, 'R', :at, :at)"
                ).bindparams(stamp)
            )
    finally:
        await engine.dispose()

    await asyncio.to_thread(upgrade, database_url)

    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            query = select(col(Appointment.id), col(Appointment.reported_at))
            rows = await connection.execute(query.order_by(col(Appointment.id)))
            reported = {row.id: row.reported_at for row in rows}
    finally:
        await engine.dispose()
    assert reported == {1: written, 2: None}

    # Back to 0003 with reports pointing at the appointments (SQLite must not rebuild the
    # table under its foreign keys), and up again.
    await asyncio.to_thread(downgrade, database_url, "0003")
    await asyncio.to_thread(upgrade, database_url)


async def test_sessions_of_the_previous_release_survive_0006(database_url: str) -> None:
    # Open sessions at upgrade time stay valid: fully signed in, last seen at the upgrade.
    await asyncio.to_thread(upgrade, database_url, "0005")
    opened = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
    stamp = bindparam("at", opened, type_=UTCDateTime())
    later = bindparam("until", opened + timedelta(hours=12), type_=UTCDateTime())
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO staff_user (id, email, display_name, role, password_hash, "
                    "is_active, created_at) VALUES (1, 'a@example.org', 'A', 'gp', 'x', true, :at)"
                ).bindparams(stamp)
            )
            await connection.execute(
                text(
                    "INSERT INTO auth_session (id, kind, user_id, csrf_token, created_at, "
                    "expires_at) VALUES ('s1', 'staff', 1, 'c', :at, :until)"
                ).bindparams(stamp, later)
            )
    finally:
        await engine.dispose()

    await asyncio.to_thread(upgrade, database_url)

    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    select(
                        col(AuthSession.stage),
                        col(AuthSession.last_seen_at),
                        col(AuthSession.verified_at),
                        col(AuthSession.user_agent),
                    )
                )
            ).one()
    finally:
        await engine.dispose()
    assert row.stage == SessionStage.FULL
    assert row.user_agent == ""
    assert row.last_seen_at > opened
    assert row.verified_at > opened

    await asyncio.to_thread(downgrade, database_url, "0005")
    await asyncio.to_thread(upgrade, database_url)


async def test_oidc_identity_migration_keeps_accounts_and_sessions(database_url: str) -> None:
    # 0007 rebuilds staff_user on SQLite while sessions point at it.
    await asyncio.to_thread(upgrade, database_url, "0005")
    at = bindparam("at", datetime(2026, 3, 2, 11, 0, tzinfo=UTC), type_=UTCDateTime())
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO staff_user (id, email, display_name, role, password_hash, "
                    "is_active, created_at) VALUES (1, 'a@example.org', 'A', 'gp', 'hash', "
                    "true, :at)"
                ).bindparams(at)
            )
            await connection.execute(
                text(
                    "INSERT INTO auth_session (id, kind, user_id, csrf_token, created_at, "
                    "expires_at) VALUES ('s1', 'staff', 1, 'c', :at, :at)"
                ).bindparams(at)
            )
    finally:
        await engine.dispose()

    await asyncio.to_thread(upgrade, database_url)

    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            user = (await connection.execute(text("SELECT * FROM staff_user"))).mappings().one()
            assert (user["password_hash"], user["oidc_issuer"], user["oidc_subject"]) == (
                "hash",
                None,
                None,
            )
            session = (await connection.execute(text("SELECT * FROM auth_session"))).mappings()
            assert [(s["id"], s["user_id"], s["oidc_issuer"]) for s in session] == [("s1", 1, None)]
            # An account without a password, bound to a provider's subject: once only.
            insert_sso_user = text(
                "INSERT INTO staff_user (id, email, display_name, role, is_active, created_at, "
                "oidc_issuer, oidc_subject) VALUES (:id, :email, 'B', 'gp', true, :at, "
                "'https://idp', 'sub-1')"
            ).bindparams(at)
            await connection.execute(insert_sso_user, {"id": 2, "email": "b@example.org"})
        with pytest.raises(IntegrityError):
            async with engine.begin() as connection:
                await connection.execute(insert_sso_user, {"id": 3, "email": "c@example.org"})
    finally:
        await engine.dispose()

    # Down again: the SSO-only account gets a hash that no password matches, and up again.
    await asyncio.to_thread(downgrade, database_url, "0005")
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            hashes = await connection.execute(
                text("SELECT id, password_hash FROM staff_user ORDER BY id")
            )
            assert [tuple(row) for row in hashes] == [(1, "hash"), (2, "!")]
    finally:
        await engine.dispose()
    await asyncio.to_thread(upgrade, database_url)


async def test_migrated_audit_log_lets_only_retention_change_it(database_url: str) -> None:
    # 0008 replaced the append-only triggers of 0001: open to the retention job, closed to
    # every other change; its downgrade closes them again.
    await asyncio.to_thread(upgrade, database_url, "0005")
    old = datetime.now(UTC) - timedelta(days=500)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO audit_event (at, action, actor_kind, ip, detail) VALUES "
                    "(:at, 'login.failure', 'anonymous', '192.0.2.1', '{}')"
                ).bindparams(bindparam("at", old, UTCDateTime()))
            )
    finally:
        await engine.dispose()
    await asyncio.to_thread(upgrade, database_url)

    engine = create_engine(database_url)
    try:
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as connection:
                await connection.execute(text("DELETE FROM audit_event"))
        sessions = session_factory(engine)
        settings = Settings(environment="test", database_url=database_url)
        counts = await retention.run(sessions, settings)
        async with engine.connect() as connection:
            left = (await connection.execute(text("SELECT count(*) FROM audit_event"))).scalar()
    finally:
        await engine.dispose()
    assert counts["audit_events"] == 1
    assert left == 0

    await asyncio.to_thread(downgrade, database_url, "0005")
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO audit_event (at, action, actor_kind, detail) VALUES "
                    "(:at, 'logout', 'staff', '{}')"
                ).bindparams(bindparam("at", old, UTCDateTime()))
            )
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as connection:
                await connection.execute(text("UPDATE audit_event SET ip = NULL"))
    finally:
        await engine.dispose()
    await asyncio.to_thread(upgrade, database_url)


async def test_outgoing_message_migration_goes_down_and_up_again(database_url: str) -> None:
    await asyncio.to_thread(upgrade, database_url)
    await asyncio.to_thread(downgrade, database_url, "0008")
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: sync.dialect.get_table_names(sync))
    finally:
        await engine.dispose()
    assert "outgoing_message" not in tables
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(differences)
    finally:
        await engine.dispose()
    assert diff == []


async def test_sms_migration_keeps_bookings_and_messages_and_goes_down_and_up(
    database_url: str,
) -> None:
    # A booking with an e-mail job, as 0010 left them.
    at = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
    stamp = bindparam("at", at, type_=UTCDateTime())
    await booked_at(
        database_url,
        "0010",
        stamp,
        text(
            "INSERT INTO outgoing_message (appointment_id, idempotency_key, kind, channel, "
            "recipient, language, status, attempts, available_at, created_at) VALUES "
            "(1, 'e1:email:patient', 'invitation', 'email', 'patient', 'de', 'sent', 1, :at, :at)"
        ).bindparams(stamp),
    )

    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            booking = (
                await connection.execute(text("SELECT patient_phone FROM appointment"))
            ).one()
            assert booking.patient_phone is None
            mail = (
                await connection.execute(
                    text("SELECT reminder_minutes, http_status, status FROM outgoing_message")
                )
            ).one()
            assert tuple(mail) == (None, None, "sent")
            # What this release adds: an SMS reminder to a mobile number.
            await connection.execute(
                text("UPDATE appointment SET patient_phone = '+4915123456789'")
            )
            await connection.execute(
                text(
                    "INSERT INTO outgoing_message (appointment_id, idempotency_key, kind, "
                    "channel, recipient, language, status, attempts, available_at, created_at, "
                    "reminder_minutes, http_status) VALUES (1, 'reminder:1:15:sms', "
                    "'reminder', 'sms', 'patient', 'de', 'failed', 1, :at, :at, 15, 400)"
                ).bindparams(stamp)
            )
    finally:
        await engine.dispose()

    # Down: the previous release cannot read SMS or reminder rows, so they go; the e-mail stays.
    await asyncio.to_thread(downgrade, database_url, "0010")
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            keys = (
                await connection.execute(text("SELECT idempotency_key FROM outgoing_message"))
            ).scalars()
            assert list(keys) == ["e1:email:patient"]
    finally:
        await engine.dispose()
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(differences)
    finally:
        await engine.dispose()
    assert diff == []


async def test_late_notice_migration_keeps_bookings_and_goes_down_and_up(
    database_url: str,
) -> None:
    # 0012 adds two tables beside the bookings of 0011, which must stay as they are.
    at = bindparam("at", datetime(2026, 3, 2, 11, 0, tzinfo=UTC), type_=UTCDateTime())
    await booked_at(database_url, "0011", at)

    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO specialist_delay (specialist_id, day, minutes, note, "
                    "updated_at) VALUES (1, :day, 15, 'Notfall', :at)"
                ).bindparams(at, day=date(2026, 3, 2))
            )
            await connection.execute(
                text(
                    "INSERT INTO delay_notice (appointment_id, minutes, count, updated_at) "
                    "VALUES (1, 15, 1, :at)"
                ).bindparams(at)
            )
            await connection.execute(
                text(
                    "INSERT INTO outgoing_message (appointment_id, idempotency_key, kind, "
                    "channel, recipient, language, status, attempts, available_at, created_at) "
                    "VALUES (1, 'd1:1:email:patient', 'delay', 'email', 'patient', 'de', "
                    "'queued', 0, :at, :at), (1, 'e1:email:patient', 'invitation', 'email', "
                    "'patient', 'de', 'sent', 1, :at, :at)"
                ).bindparams(at)
            )
            channels = await connection.execute(text("SELECT patient_channels FROM appointment"))
            assert channels.scalar_one() == "email"
    finally:
        await engine.dispose()

    await asyncio.to_thread(downgrade, database_url, "0011")
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: sync.dialect.get_table_names(sync))
            count = (await connection.execute(text("SELECT count(*) FROM appointment"))).scalar()
            kinds = list(
                (await connection.execute(text("SELECT kind FROM outgoing_message"))).scalars()
            )
    finally:
        await engine.dispose()
    assert "specialist_delay" not in tables
    assert "delay_notice" not in tables
    assert count == 1
    assert kinds == ["invitation"]
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(differences)
    finally:
        await engine.dispose()
    assert diff == []


async def test_guest_migration_keeps_bookings_and_goes_down_and_up(database_url: str) -> None:
    # 0013 adds the guest invitation beside the bookings of 0012; down again, the guest
    # sessions and the guest events go too (the previous release knows neither).
    at = bindparam("at", datetime(2026, 3, 2, 11, 0, tzinfo=UTC), type_=UTCDateTime())
    await booked_at(
        database_url,
        "0012",
        at,
        text(
            "INSERT INTO auth_session (id, kind, appointment_id, csrf_token, created_at, "
            "expires_at, last_seen_at, verified_at, stage, user_agent, ip) VALUES "
            "('p1', 'patient', 1, 'c', :at, :at, :at, :at, 'full', '', '')"
        ).bindparams(at),
    )

    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO guest_invitation (id, appointment_id, token_hash, name, kind, "
                    "valid_from, valid_until, created_at, created_by, session_id, redeemed_at) "
                    "VALUES (1, 1, :hash, 'Ayşe Demir', 'interpreter', :at, :at, :at, 2, 'g1', "
                    ":at)"
                ).bindparams(at, hash="f" * 64)
            )
            await connection.execute(
                text(
                    "INSERT INTO auth_session (id, kind, appointment_id, csrf_token, created_at, "
                    "expires_at, last_seen_at, verified_at, stage, user_agent, ip) VALUES "
                    "('g1', 'guest', 1, 'c', :at, :at, :at, :at, 'full', '', '')"
                ).bindparams(at)
            )
            await connection.execute(
                text(
                    "INSERT INTO outbox_event (event_id, aggregate, type, payload, created_at, "
                    "available_at, attempts) VALUES ('e1', 'appointment:1', 'guest.changed', "
                    "'{}', :at, :at, 0)"
                ).bindparams(at)
            )
    finally:
        await engine.dispose()
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            row = await session.get(AuthSession, "g1")
    finally:
        await engine.dispose()
    assert row is not None
    assert row.kind.value == "guest"

    await asyncio.to_thread(downgrade, database_url, "0012")
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: sync.dialect.get_table_names(sync))
            kinds = list(
                (await connection.execute(text("SELECT kind FROM auth_session"))).scalars()
            )
            events = (await connection.execute(text("SELECT count(*) FROM outbox_event"))).scalar()
            count = (await connection.execute(text("SELECT count(*) FROM appointment"))).scalar()
    finally:
        await engine.dispose()
    assert "guest_invitation" not in tables
    assert kinds == ["patient"]
    assert (events, count) == (0, 1)
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(differences)
    finally:
        await engine.dispose()
    assert diff == []


async def test_presence_migration_keeps_accounts_and_goes_down_and_up(database_url: str) -> None:
    # 0014 adds the specialists' presence toggle beside the accounts and sessions of 0013;
    # down again, the table and its events go (the previous release knows neither).
    await asyncio.to_thread(upgrade, database_url, "0013")
    at = bindparam("at", datetime(2026, 3, 2, 11, 0, tzinfo=UTC), type_=UTCDateTime())
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO staff_user (id, email, display_name, role, password_hash, "
                    "is_active, created_at) VALUES (1, 'a@example.org', 'A', 'specialist', 'x', "
                    "true, :at)"
                ).bindparams(at)
            )
            await connection.execute(
                text(
                    "INSERT INTO auth_session (id, kind, user_id, csrf_token, created_at, "
                    "expires_at, last_seen_at, verified_at, stage, user_agent, ip) VALUES "
                    "('s1', 'staff', 1, 'c', :at, :at, :at, :at, 'full', '', '')"
                ).bindparams(at)
            )
    finally:
        await engine.dispose()

    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO specialist_presence (user_id, status, session_id, updated_at) "
                    "VALUES (1, 'on_duty', 's1', :at)"
                ).bindparams(at)
            )
            await connection.execute(
                text(
                    "INSERT INTO outbox_event (event_id, aggregate, type, payload, created_at, "
                    "available_at, attempts) VALUES ('e1', 'presence:1', 'presence.changed', "
                    "'{}', :at, :at, 0)"
                ).bindparams(at)
            )
    finally:
        await engine.dispose()
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            row = await session.get(SpecialistPresence, 1)
            kept = await session.get(AuthSession, "s1")
    finally:
        await engine.dispose()
    assert row is not None
    assert (row.status, row.session_id) == (Chosen.ON_DUTY, "s1")
    assert kept is not None

    await asyncio.to_thread(downgrade, database_url, "0013")
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: sync.dialect.get_table_names(sync))
            events = (await connection.execute(text("SELECT count(*) FROM outbox_event"))).scalar()
            users = (await connection.execute(text("SELECT count(*) FROM staff_user"))).scalar()
            opened = (await connection.execute(text("SELECT count(*) FROM auth_session"))).scalar()
    finally:
        await engine.dispose()
    assert "specialist_presence" not in tables
    assert (events, users, opened) == (0, 1, 1)
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(differences)
    finally:
        await engine.dispose()
    assert diff == []


async def test_on_call_migration_keeps_bookings_and_goes_down_only_without_open_requests(
    database_url: str,
) -> None:
    # 0015 lets an appointment wait without a specialist (an on-call request); the booking of
    # 0014 and its link stay as they were. Down again only once no request waits for one.
    at = bindparam("at", datetime(2026, 3, 2, 11, 0, tzinfo=UTC), type_=UTCDateTime())
    later = bindparam("later", datetime(2026, 3, 2, 11, 7, 3, tzinfo=UTC), type_=UTCDateTime())
    # Undelivered events written by 0015's release: the room event of the booking carries
    # specialty_id (null), the request's have no specialist; the link event is as 0014 wrote it.
    arrived = ev.RoomStateChanged(
        appointment_id=1, specialist_id=1, previous=RoomState.SCHEDULED, state=RoomState.WAITING
    )
    linked = ev.LinkIssued(appointment_id=1, link_id=1, reason="booked")
    undelivered: list[ev.DomainEvent] = [
        ev.OnCallRequested(appointment_id=2, specialty_id=1, gp_id=2),
        arrived,
        ev.RoomStateChanged(
            appointment_id=2,
            specialist_id=None,
            specialty_id=1,
            previous=RoomState.SCHEDULED,
            state=RoomState.WAITING,
        ),
        ev.AppointmentCancelled(appointment_id=2, specialist_id=None, gp_id=2),
        linked,
    ]
    await booked_at(
        database_url,
        "0014",
        at,
        text(
            "INSERT INTO join_token (id, appointment_id, token_hash, valid_from, valid_until, "
            "created_at) VALUES (1, 1, :hash, :at, :at, :at)"
        ).bindparams(at, hash="e" * 64),
    )
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            booked = (
                await connection.execute(text("SELECT kind, specialist_id FROM appointment"))
            ).one()
            await connection.execute(
                text(
                    "INSERT INTO specialty (id, slug, name_de, name_en) VALUES "
                    "(1, 'kardiologie', 'Kardiologie', 'Cardiology')"
                )
            )
            await connection.execute(
                text(
                    "INSERT INTO appointment (id, kind, specialty_id, gp_id, starts_at, ends_at, "
                    "claim_until, status, patient_name, patient_birth_date, patient_contact, "
                    "clinical_question, urgency, mode, room_state, created_at) VALUES "
                    "(2, 'on_call', 1, 2, :later, :later, :later, 'booked', 'P', :born, "
                    "'p@example.org', 'Q', 'urgent', 'home', 'scheduled', :later)"
                ).bindparams(later, born=date(1950, 1, 1))
            )
            for event in undelivered:
                await connection.execute(
                    text(
                        "INSERT INTO outbox_event (event_id, aggregate, type, payload, "
                        "created_at, available_at, attempts) VALUES (:event_id, :aggregate, "
                        ":type, :payload, :at, :at, 0)"
                    ).bindparams(
                        at,
                        event_id=event.event_id,
                        aggregate=event.aggregate,
                        type=event.type,
                        payload=event.model_dump_json(),
                    )
                )
            await connection.execute(
                text(
                    "INSERT INTO outgoing_message (appointment_id, idempotency_key, kind, "
                    "channel, recipient, language, status, attempts, available_at, created_at) "
                    "VALUES (2, 'u2:email:gp', 'on_call_unclaimed', 'email', 'gp', 'de', "
                    "'queued', 0, :at, :at), (1, 'e1:email:patient', 'invitation', 'email', "
                    "'patient', 'de', 'sent', 1, :at, :at)"
                ).bindparams(at)
            )
    finally:
        await engine.dispose()
    assert tuple(booked) == ("booked", 1)
    await refuses_a_booking_without_a_specialist(database_url)

    with pytest.raises(RuntimeError, match="on-call request"):
        await asyncio.to_thread(downgrade, database_url, "0014")
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE appointment SET specialist_id = 1 WHERE id = 2"))
    finally:
        await engine.dispose()
    await asyncio.to_thread(downgrade, database_url, "0014")
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            specialists = list(
                (
                    await connection.execute(
                        text("SELECT specialist_id FROM appointment ORDER BY id")
                    )
                ).scalars()
            )
            links = (await connection.execute(text("SELECT count(*) FROM join_token"))).scalar()
            events = (
                await connection.execute(
                    text("SELECT event_id, payload FROM outbox_event ORDER BY id")
                )
            ).all()
            kinds = list(
                (await connection.execute(text("SELECT kind FROM outgoing_message"))).scalars()
            )
    finally:
        await engine.dispose()
    assert (specialists, links, kinds) == ([1, 1], 1, ["invitation"])
    # What is left is what 0014's events accept: no specialty_id, a specialist in each.
    assert [(event_id, json.loads(payload)) for event_id, payload in events] == [
        (arrived.event_id, arrived.model_dump(mode="json", exclude={"specialty_id"})),
        (linked.event_id, linked.model_dump(mode="json")),
    ]
    await asyncio.to_thread(upgrade, database_url)
    await refuses_a_booking_without_a_specialist(database_url)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(differences)
    finally:
        await engine.dispose()
    assert diff == []


async def test_models_refuse_a_booking_without_a_specialist(database_url: str) -> None:
    # The schema the tests and `create_all` build holds the same CHECK as the migrations.
    await create_schema(database_url)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO staff_user (id, email, display_name, role, password_hash, "
                    "is_active, created_at) VALUES (2, 'b@example.org', 'B', 'gp', 'x', true, "
                    ":at)"
                ).bindparams(
                    bindparam("at", datetime(2026, 3, 2, 11, 0, tzinfo=UTC), type_=UTCDateTime())
                )
            )
    finally:
        await engine.dispose()
    await refuses_a_booking_without_a_specialist(database_url)


async def test_identity_check_migration_keeps_bookings_and_goes_down_and_up(
    database_url: str,
) -> None:
    # 0021 adds when the specialist confirmed the identity check; the bookings of 0020 stay,
    # unchecked. Down again, the check goes with its column and the booking stays.
    at = bindparam("at", datetime(2026, 11, 3, 9, 0, tzinfo=UTC), type_=UTCDateTime())
    await booked_at(database_url, "0020", at)
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            appointment = await session.get(Appointment, 1)
            assert appointment is not None
            assert appointment.identity_checked_at is None
            appointment.identity_checked_at = at.value
            await session.commit()
        async with session_factory(engine)() as session:
            checked = await session.get(Appointment, 1)
    finally:
        await engine.dispose()
    assert checked is not None
    assert checked.identity_checked_at == at.value

    await asyncio.to_thread(downgrade, database_url, "0020")
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            columns = await connection.run_sync(
                lambda sync: [c["name"] for c in sync.dialect.get_columns(sync, "appointment")]
            )
            count = (await connection.execute(text("SELECT count(*) FROM appointment"))).scalar()
    finally:
        await engine.dispose()
    assert "identity_checked_at" not in columns
    assert count == 1
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(differences)
    finally:
        await engine.dispose()
    assert diff == []


async def test_written_telekonsil_migration_refuses_to_go_down_while_written_requests_exist(
    database_url: str,
) -> None:
    # 0022 changes no table (the kind is a VARCHAR); going below it is refused while a written
    # request exists, which the release before could not read, and allowed without one.
    at = bindparam("at", datetime(2026, 11, 3, 9, 0, tzinfo=UTC), type_=UTCDateTime())
    await booked_at(database_url, "0021", at)
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE appointment SET kind = 'written' WHERE id = 1"))
    finally:
        await engine.dispose()
    with pytest.raises(RuntimeError, match="1 written Telekonsil"):
        await asyncio.to_thread(downgrade, database_url, "0021")

    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE appointment SET kind = 'booked' WHERE id = 1"))
            # What else this release writes: the GP's e-mail about a question back, and events
            # the release before does not know.
            await connection.execute(
                text(
                    "INSERT INTO outgoing_message (appointment_id, idempotency_key, kind, "
                    "channel, recipient, language, status, attempts, available_at, created_at) "
                    "VALUES (1, 'q1:email:gp', 'question_asked', 'email', 'gp', 'de', 'sent', 1, "
                    ":at, :at)"
                ).bindparams(at)
            )
            for number, kind in enumerate(
                ("written.requested", "conversation.question_asked", "guest.changed")
            ):
                await connection.execute(
                    text(
                        "INSERT INTO outbox_event (event_id, aggregate, type, payload, "
                        "created_at, available_at, attempts) VALUES "
                        "(:id, 'appointment:1', :kind, '{}', :at, :at, 0)"
                    ).bindparams(at, id=f"w{number}", kind=kind)
                )
    finally:
        await engine.dispose()
    await asyncio.to_thread(downgrade, database_url, "0021")
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            kinds = (await connection.execute(text("SELECT kind FROM outgoing_message"))).all()
            types = (await connection.execute(text("SELECT type FROM outbox_event"))).all()
    finally:
        await engine.dispose()
    assert kinds == []
    assert [t for (t,) in types] == ["guest.changed"]
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(differences)
            count = (await connection.execute(text("SELECT count(*) FROM appointment"))).scalar()
    finally:
        await engine.dispose()
    assert (diff, count) == ([], 1)
