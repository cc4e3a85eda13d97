"""A database that cannot be reached for a moment (a restart cut the pool's connections, the
server refuses connections while it starts, no free connection in time) is a clear 503 with
Retry-After, logged without a traceback; any other database error stays a 500. The real
restart is in the chaos suite (tests/chaos/test_postgres_restart.py)."""

from __future__ import annotations

import sqlite3

import httpx2
import pytest
from asyncpg.exceptions import CannotConnectNowError, ConnectionDoesNotExistError
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app import db
from app.scheduling import service
from tests.factories import Demo, login


def wrapped(cause: BaseException, *, invalidated: bool = False) -> DBAPIError:
    return DBAPIError("SELECT 1", {}, cause, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    ("error", "unreachable"),
    [
        (wrapped(ConnectionDoesNotExistError("connection was closed")), True),
        (wrapped(CannotConnectNowError("the database system is starting up")), True),
        (wrapped(RuntimeError("whatever"), invalidated=True), True),
        (PoolTimeout("QueuePool limit reached"), True),
        (ConnectionRefusedError(111, "Connection refused"), True),
        (OperationalError("BEGIN", {}, sqlite3.OperationalError("database is locked")), True),
        (IntegrityError("INSERT", {}, Exception("duplicate key")), False),
        (OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: x")), False),
        (ValueError("not a database error"), False),
    ],
)
def test_what_counts_as_the_database_out_of_reach(error: BaseException, unreachable: bool) -> None:
    assert db.unreachable(error) is unreachable


async def test_a_cut_connection_is_a_503_to_try_again_and_a_bug_stays_a_500(
    client: httpx2.AsyncClient, demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    await login(client, demo.gp)
    failure: list[BaseException] = []

    async def fails(*args: object, **kwargs: object) -> object:
        raise failure[0]

    monkeypatch.setattr(service, "list_bookings", fails)
    failure.append(wrapped(ConnectionDoesNotExistError("connection was closed")))
    answer = await client.get("/api/v1/appointments")
    assert (answer.status_code, answer.json()["error"]["code"]) == (503, "unavailable")
    assert answer.headers["retry-after"] == "2"

    failure[0] = IntegrityError("INSERT", {}, Exception("duplicate key"))
    answer = await client.get("/api/v1/appointments")
    assert (answer.status_code, answer.json()["error"]["code"]) == (500, "internal_error")
