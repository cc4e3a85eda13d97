"""The database layer keeps health data out of error messages, and a SQLite connection
force-closed during a query closes without hanging."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import date, timedelta
from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy.exc import IntegrityError

from app.db import _sqlite_connection, create_engine, session_factory, unit_of_work, utcnow
from app.scheduling.models import Appointment
from tests.conftest import create_schema


async def test_db_errors_do_not_echo_statement_parameters(database_url: str) -> None:
    await create_schema(database_url)
    engine = create_engine(database_url)
    start = utcnow()
    try:
        with pytest.raises(IntegrityError) as failure:
            async with unit_of_work(session_factory(engine)) as session:
                session.add(
                    Appointment(
                        specialist_id=424242,  # no such user: the foreign key fails
                        gp_id=424242,
                        starts_at=start,
                        ends_at=start + timedelta(minutes=30),
                        patient_name="Erika Geheim",
                        patient_birth_date=date(1950, 1, 1),
                        patient_contact="erika@example.org",
                        clinical_question="Verdacht auf etwas Vertrauliches",
                    )
                )
        message = str(failure.value)
        assert "Erika Geheim" not in message
        assert "Vertrauliches" not in message
        assert "hidden" in message.lower()
    finally:
        await engine.dispose()


async def test_a_sqlite_connection_stopped_while_busy_closes_at_once(tmp_path: Path) -> None:
    """A query is running when the connection is force-closed (a task cancelled during it at
    shutdown); closing it afterwards must not wait forever for a worker thread that ended."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'k.db'}")
    try:
        async with engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert isinstance(raw, aiosqlite.Connection)
            count = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) SELECT count(*) FROM c"  # noqa: E501
            busy = asyncio.ensure_future(raw.execute(count))
            await asyncio.sleep(0.05)  # the worker thread is in the query
            stopping = raw.stop()
            assert stopping is not None
            with pytest.raises(ValueError, match="Connection closed"):
                await asyncio.wait_for(raw.close(), 10)
            await asyncio.wait({busy}, timeout=10)
            assert busy.done()
            # The worker thread answers the stop once the query is over: while this loop runs
            # (answered after the test, it would fail on the closed loop, in another test).
            await asyncio.wait_for(stopping, 10)
            await conn.invalidate()
    finally:
        await asyncio.wait_for(engine.dispose(), 10)


def test_a_sqlite_connection_collected_after_its_loop_ended_stops_quietly(
    tmp_path: Path,
) -> None:
    """A connection never closed, stopped when its event loop has ended (its __del__ after the
    test or command that opened it): the worker thread ends without an error (aiosqlite made
    the stop's future on the closed loop, and its thread failed answering it)."""
    failures: list[BaseException | None] = []
    hook = threading.excepthook
    threading.excepthook = lambda args: failures.append(args.exc_value)
    raw = _sqlite_connection(str(tmp_path / "k.db"))
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)  # the loop a later get_event_loop() finds, closed
        loop.run_until_complete(raw.__aenter__())
        loop.close()
        assert raw.stop() is None
        raw._thread.join(10)
        assert not raw._thread.is_alive()
    finally:
        asyncio.set_event_loop(None)
        threading.excepthook = hook
    assert failures == []


def test_an_answer_for_a_closed_loop_does_not_fail_the_worker_thread(tmp_path: Path) -> None:
    """A query that ends after its event loop closed (a connection force-closed when a test's
    or a command's loop ended): its answer is dropped, the thread goes on and stops when told,
    without an error in the thread."""
    failures: list[BaseException | None] = []
    hook = threading.excepthook
    threading.excepthook = lambda args: failures.append(args.exc_value)
    raw = _sqlite_connection(str(tmp_path / "k.db"))
    loop = asyncio.new_event_loop()
    try:
        answered, refused = loop.create_future(), loop.create_future()
        loop.close()

        def fails() -> None:
            raise sqlite3.OperationalError("busy")

        raw._tx.put((answered, lambda: 1))
        raw._tx.put((refused, fails))
        raw._tx.put((None, lambda: aiosqlite.core._STOP_RUNNING_SENTINEL))
        raw._thread.start()
        raw._thread.join(10)
        assert not raw._thread.is_alive()
    finally:
        threading.excepthook = hook
    assert failures == []
    assert not answered.done()  # nobody was there to be told
    assert not refused.done()
