"""Database: async engine, session factory and the one unit-of-work helper."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiosqlite
from sqlalchemy import DateTime, event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def create_engine(url: str) -> AsyncEngine:
    """Engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys."""
    # Statement parameters carry health data: keep them out of exception messages and logs.
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url,
            connect_args={"timeout": 30, "async_creator_fn": _sqlite_connection},
            hide_parameters=True,
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=20, hide_parameters=True
    )


class _SQLiteConnection(aiosqlite.Connection):
    """aiosqlite's connection, stopped at most once.

    A task cancelled during a query (at shutdown, say) makes SQLAlchemy force-close the
    connection with ``stop()`` and then close it once more. aiosqlite 0.22 queues a second
    stop behind the first one; its worker thread has ended by then, so whoever awaits that
    second stop waits forever, and with it ``engine.dispose()`` and the shutdown.
    """

    def stop(self) -> asyncio.Future[Any] | None:
        if not self._running:  # stopped already: the worker thread ends by itself
            return None
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            # No loop runs: a connection never closed is collected (``__del__``) after its
            # test or command ended. aiosqlite would make the stop's future on the last loop,
            # closed by now, and its worker thread would fail answering it; nobody awaits
            # the answer, so the thread is stopped without one.
            self._running = False
            self._tx.put_nowait((None, self._close_and_stop))
            return None
        return super().stop()

    def _close_and_stop(self) -> object:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        return aiosqlite.core._STOP_RUNNING_SENTINEL


def _answer(future: asyncio.Future[Any], setter: Callable[..., None], value: object) -> None:
    # Its event loop may have closed: then nobody waits for this answer any more.
    with contextlib.suppress(RuntimeError):
        future.get_loop().call_soon_threadsafe(setter, future, value)


def _worker(tx: Any) -> None:
    """aiosqlite's worker thread, except that an answer for an event loop closed meanwhile
    is dropped instead of failing the thread: a query still running when a command's or a
    test's loop ends (a connection force-closed at shutdown) finishes after it."""
    while True:
        future, function = tx.get()
        try:
            result = function()
        except BaseException as exc:  # to the caller, as aiosqlite does
            if future:
                _answer(future, aiosqlite.core.set_exception, exc)
            continue
        if future:
            _answer(future, aiosqlite.core.set_result, result)
        if result is aiosqlite.core._STOP_RUNNING_SENTINEL:
            break


def _sqlite_connection(database: str, **kwargs: Any) -> aiosqlite.Connection:
    """What ``aiosqlite.connect`` makes (and SQLAlchemy then adapts), as a _SQLiteConnection."""

    def connector() -> sqlite3.Connection:
        raw: sqlite3.Connection = sqlite3.connect(database, **kwargs)
        return raw

    connection = _SQLiteConnection(connector, iter_chunk_size=64)
    # Not started yet (``connect`` starts it). As SQLAlchemy does for aiosqlite's own
    # connections: the thread never holds up an exit.
    connection._thread = threading.Thread(target=_worker, args=(connection._tx,), daemon=True)
    return connection


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


# Session.info keys: set by ``app.events.outbox.record`` when a unit of work wrote events, and
# the callable that tells the event dispatcher after such a commit.
OUTBOX_PENDING = "konsil.outbox_pending"
EVENTS_COMMITTED = "konsil.events_committed"


def session_factory(
    engine: AsyncEngine, *, events_committed: Callable[[], None] | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions for ``engine``; ``events_committed`` is called after a unit of work that wrote
    domain events has committed (the dispatcher's doorbell)."""
    info = {EVENTS_COMMITTED: events_committed} if events_committed is not None else {}
    return async_sessionmaker(engine, expire_on_commit=False, info=info)


@asynccontextmanager
async def unit_of_work(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction: commits once at the end, rolls back on any error. If it recorded domain
    events, the dispatcher hears of it after the commit (never before: a rollback loses them)."""
    async with factory() as session:
        async with session.begin():
            yield session
        if session.info.pop(OUTBOX_PENDING, False):
            ring = session.info.get(EVENTS_COMMITTED)
            if ring is not None:
                ring()


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached just now — a restart cut the
    connection, the server refuses connections while it starts, the pool had none in time, a
    SQLite write lock held too long — rather than a bug or a refused statement: the request
    may be tried again in a moment (``503``)."""
    import asyncpg.exceptions as pg
    from sqlalchemy import exc as sa

    if isinstance(exc, sa.TimeoutError | ConnectionError):
        return True
    if not isinstance(exc, sa.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    seen: BaseException | None = exc.orig
    for _ in range(5):  # the driver's error and what caused it (asyncpg under the adapter)
        if seen is None:
            break
        if isinstance(
            seen,
            ConnectionError
            | TimeoutError
            | pg.PostgresConnectionError
            | pg.CannotConnectNowError
            | pg.AdminShutdownError
            | pg.CrashShutdownError
            | pg.TooManyConnectionsError,
        ):
            return True
        if isinstance(seen, pg.InterfaceError) and "connection" in str(seen).lower():
            return True  # "cannot call ...: connection is closed"
        if isinstance(seen, sqlite3.OperationalError) and "locked" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def enum_column(
    enum_cls: type[Any],
    *,
    nullable: bool = False,
    index: bool = False,
    server_default: str | None = None,
) -> Any:
    """A VARCHAR column holding the enum's values (no native PostgreSQL enum types)."""
    from sqlalchemy import Column
    from sqlalchemy import Enum as SAEnum

    return Column(
        SAEnum(
            enum_cls,
            native_enum=False,
            length=24,
            values_callable=lambda members: [m.value for m in members],
        ),
        nullable=nullable,
        index=index,
        server_default=server_default,
    )


def utc_column(*, nullable: bool = False, index: bool = False) -> Any:
    from sqlalchemy import Column

    return Column(UTCDateTime(), nullable=nullable, index=index)
