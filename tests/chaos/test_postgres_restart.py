"""PostgreSQL restart during bookings and joins, on a PostgreSQL cluster of the test's own
(``pg_ctl restart -m fast``: every connection of the pool is cut), with hostile clients acting
throughout (``tests/chaos/hostile.py``)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import httpx2
import pytest
from sqlmodel import col, select
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from app.scheduling.models import Appointment
from tests.chaos.calls import patient
from tests.chaos.harness import Cluster, PrivatePostgres, cluster
from tests.chaos.hostile import ANSWERS, Event, Tally, hostile_clients, said
from tests.chaos.report import seconds, write_section
from tests.factories import login, make_appointment
from tests.scheduling.helpers import booking_body, free_slots

pytestmark = [pytest.mark.chaos]

REQUEST_LIMIT = 15.0  # a request still open after this long counts as hanging
LOAD_BEFORE = 3.0
LOAD_AFTER = 10.0
BOOKERS = 3
PACE = 0.2  # seconds between one GP's bookings
# What the hostile clients may get for the restart itself (docs/protocol.md, fault 3 in
# docs/reliability.md), and only from the restart's start until RECOVERY seconds after the
# server was back: a message that needed the database answered `error` `unavailable`, a
# handshake or a join that could not reach it closed 1013 (a join told `unavailable` first),
# and HAProxy's own 503 while `/readyz` (which asks the database) had both instances out (it
# takes them back after two good checks 0.5 s apart).
RESTART_ANSWERS = {"error unavailable", "close 1013", "proxy 503"}
RECOVERY = 5.0
# The restart is short (about 0.3 s here) and the hostile clients need the database only
# at a handshake and a join, which they make once every two seconds or so: from RALLY_LEAD
# seconds before the restart until RALLY seconds after its start they connect and act back
# to back, so that some of their handshakes and joins meet it.
RALLY_LEAD = 0.5
RALLY = 1.0
# Rooms made for each of them before the load (the test's own writes to the database fail
# during the restart), enough for well past it; later ones are made as they go.
HOSTILE_ROOMS = 30


@dataclass
class Outcome:
    what: str
    started: float
    took: float
    result: str


@dataclass
class Measured:
    outcomes: list[Outcome]
    restart_at: float
    back_at: float
    stored: int
    hostile: Tally
    tracebacks: list[str]


# The scenario runs once; the tests below judge its outcome.
_measured: list[Measured] = []


async def measure(tmp_path: Path) -> Measured:
    if _measured:
        return _measured[0]
    async with cluster(tmp_path, postgres=PrivatePostgres()) as konsil:
        outcomes: list[Outcome] = []
        async with httpx2.AsyncClient(
            base_url=konsil.proxy.url,
            headers={"Origin": konsil.proxy.url},
            timeout=REQUEST_LIMIT,
        ) as gp:
            await login(gp, konsil.demo.gp)
            # Enough slots that the bookers are still busy when the server restarts.
            first = date.today() + timedelta(days=1)
            found = await free_slots(gp, konsil.demo.specialist, first, days=60)
            slots = [s["starts_at"] for s in found]
            appointment = await make_appointment(konsil.sessions, konsil.demo)
            assert appointment.id is not None
            appointment_id = appointment.id
            joiner = await patient(konsil, "joiner", appointment_id, media=False)
            stop = asyncio.Event()

            async def book(worker: int) -> None:
                for starts_at in slots[worker::BOOKERS]:
                    if stop.is_set():
                        return
                    body = booking_body(konsil.demo.specialist, starts_at)
                    outcomes.append(await _timed("booking", _post(gp, body)))
                    await asyncio.sleep(PACE)

            async def join() -> None:
                while not stop.is_set():
                    outcomes.append(
                        await _timed("join", _join(konsil, joiner.cookie, appointment_id))
                    )
                    await asyncio.sleep(0.1)

            async with hostile_clients(konsil, ahead=HOSTILE_ROOMS) as hostile:
                tasks = [asyncio.create_task(book(n)) for n in range(BOOKERS)]
                tasks.append(asyncio.create_task(join()))
                await asyncio.sleep(LOAD_BEFORE - RALLY_LEAD)
                hostile.rally(RALLY_LEAD + RALLY)
                await asyncio.sleep(RALLY_LEAD)
                restart_at = time.monotonic()
                await konsil.postgres.restart()  # type: ignore[union-attr]
                back_at = time.monotonic()
                await asyncio.sleep(LOAD_AFTER)
                stop.set()
                await asyncio.wait_for(asyncio.gather(*tasks), REQUEST_LIMIT * 2)
        async with konsil.sessions() as session:
            rows = await session.execute(
                select(Appointment.id).where(
                    col(Appointment.specialist_id) == konsil.demo.specialist.id
                )
            )
            stored = len(rows.all())
        tracebacks = konsil.tracebacks()
    _measured.append(Measured(outcomes, restart_at, back_at, stored, hostile, tracebacks))
    return _measured[0]


async def test_postgres_restart_nothing_hangs_or_is_half_written(tmp_path: Path) -> None:
    m = await measure(tmp_path)
    outcomes, restart_at, back_at, stored = m.outcomes, m.restart_at, m.back_at, m.stored
    booked = [o for o in outcomes if o.what == "booking" and o.result == "201"]
    # Requests that overlapped the restart, and what they got.
    during = [o for o in outcomes if o.started + o.took >= restart_at and o.started <= back_at + 1]
    results = Counter(f"{o.what} {o.result}" for o in during)
    hung = [o for o in outcomes if o.took >= REQUEST_LIMIT]
    failures = [o for o in outcomes if o.result not in ("201", "joined")]
    after = sorted(
        o.started + o.took
        for o in outcomes
        if o.started > back_at and o.result in ("201", "joined")
    )
    recovered = after[0] - back_at if after else None
    by_restart = [e for e in m.hostile.events if _restarts(m, e)]
    last = max((e.at - back_at for e in by_restart), default=None)
    write_section(
        "postgres_restart",
        [
            f"- Injected: `pg_ctl restart -m fast` of the cluster's private PostgreSQL after "
            f"{LOAD_BEFORE:.0f} s of load ({BOOKERS} GPs' bookings in a row, one patient joining "
            f"and leaving over and over); it took {back_at - restart_at:.2f} s.",
            f"- Requests: {len(outcomes)}; around the restart: "
            f"{dict(sorted(results.items()))}; failed in all: {len(failures)} "
            f"(`{sorted(Counter(o.result for o in failures).items())}`); hanging (≥ "
            f"{REQUEST_LIMIT:.0f} s): {len(hung)}.",
            f"- First success after the server was back: {seconds(recovered)}.",
            f"- Bookings answered 201: {len(booked)}; appointments stored (plus the one the "
            f"joiner uses): {stored}.",
            "- Hostile clients throughout the load, each a patient in a room of its own through "
            "the proxy, acting every second and reconnecting when closed, and back to back from "
            f"{RALLY_LEAD:g} s before the restart to {RALLY:g} s after its start (a flooder of "
            "600 "
            "`media_state`, a sender of a 100 KB frame, a sender of text that is not JSON on "
            "one connection); what they got:",
            *(f"  - {line}" for line in m.hostile.lines()),
            "- Of that, the restart's answers (from its start until "
            f"{RECOVERY:.0f} s after the server was back): "
            + "; ".join(
                f"{kind} {said(Counter(e.what for e in by_restart if e.kind == kind))}"
                for kind in ANSWERS
            )
            + "; the last "
            + ("–" if last is None else f"{last:+.2f} s")
            + " from the moment `pg_ctl` reported the server back.",
            f"- Tracebacks in the instances' logs: {len(m.tracebacks)}"
            + "".join(f"; {t}" for t in sorted(set(m.tracebacks)))
            + ".",
        ],
    )
    assert hung == []
    assert recovered is not None
    assert stored == len(booked) + 1


async def test_postgres_restart_failures_are_a_clear_503(tmp_path: Path) -> None:
    """What failed around the restart said so clearly: 503 unavailable (to try again), and a
    websocket's close 1013 (try again later)."""
    m = await measure(tmp_path)
    # (A join the server could not seat is told `error` `unavailable`, then closed 1013.)
    clear = ("201", "joined", "503 unavailable", "error unavailable", "closed 1013")
    unclear = [o for o in m.outcomes if o.result not in clear]
    assert unclear == []


async def test_postgres_restart_hostile_clients_get_their_own_answers_or_the_restarts(
    tmp_path: Path,
) -> None:
    """The hostile clients got only their own answers (4429, 1009, `invalid_message`), and
    the restart's (RESTART_ANSWERS) only around it; no traceback in the instances' logs."""
    m = await measure(tmp_path)
    got = {what for counts in m.hostile.got.values() for what in counts}
    assert m.hostile.unexpected(excused=lambda e: _restarts(m, e)) == {}
    assert set(ANSWERS.values()) <= got
    # Their handshakes and joins met the restart (they hurry from its start: RALLY).
    assert any(_restarts(m, e) for e in m.hostile.events)
    # Each acted after the restart and got its own answer again.
    after = {e.kind for e in m.hostile.events if e.at > m.back_at and e.what == ANSWERS[e.kind]}
    assert after == set(ANSWERS)
    assert m.tracebacks == []


def _restarts(m: Measured, event: Event) -> bool:
    """Whether ``event`` is the restart's answer: one of RESTART_ANSWERS, got while it ran or
    within RECOVERY seconds after the server was back."""
    return event.what in RESTART_ANSWERS and m.restart_at <= event.at <= m.back_at + RECOVERY


async def _timed(what: str, call: object) -> Outcome:
    started = time.monotonic()
    result = await call  # type: ignore[misc]
    return Outcome(what, started, time.monotonic() - started, str(result))


async def _post(client: httpx2.AsyncClient, body: dict[str, object]) -> str:
    try:
        response = await client.post("/api/v1/appointments", json=body)
    except httpx2.TimeoutException:
        return "timeout"
    except httpx2.HTTPError as exc:
        return type(exc).__name__
    if response.status_code == 201:
        return "201"
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = "?"
    return f"{response.status_code} {code}"


async def _join(konsil: Cluster, cookie: str, appointment_id: int) -> str:
    try:
        async with connect(
            f"{konsil.proxy.ws}?as=patient&appointment={appointment_id}",
            origin=Origin(konsil.proxy.url),
            additional_headers={"Cookie": cookie},
            open_timeout=REQUEST_LIMIT,
            close_timeout=2,
        ) as ws:
            await ws.send('{"type": "join"}')
            async with asyncio.timeout(REQUEST_LIMIT):
                async for raw in ws:
                    message = json.loads(raw)
                    if message["type"] == "joined":
                        await ws.send('{"type": "leave"}')
                        return "joined"
                    if message["type"] == "error":
                        return f"error {message['code']}"
            return f"closed {ws.close_code}"
    except InvalidStatus as exc:
        return f"HTTP {exc.response.status_code}"
    except ConnectionClosed as exc:
        return f"closed {exc.rcvd.code if exc.rcvd else 1006}"
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        return type(exc).__name__
