"""Waiting rooms under a rush: changes of a specialist's day that come while their patients'
views are read are answered by one more read, not one read each."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Collection
from datetime import timedelta
from typing import Any

from starlette.applications import Starlette

from app.db import utcnow
from app.resources import Resources
from app.rooms.schemas import WaitingView
from app.scheduling.models import RoomState, Urgency
from app.signaling import envelope as env
from app.signaling.connection import Connection
from app.signaling.hub import Hub
from app.signaling.replicas import LocalRoom
from app.signaling.session import Room
from tests.factories import Demo, make_appointment

TIMEOUT = 10.0


async def _told(conn: Connection) -> dict[str, Any]:
    frame = await asyncio.wait_for(conn.next(), TIMEOUT)
    assert frame is not None
    return dict(json.loads(frame))


async def test_waiting_rooms_answer_a_rush_of_changes_with_one_more_read(
    app: Starlette, demo: Demo
) -> None:
    resources: Resources = app.state.resources
    hub = resources.hub
    assert isinstance(hub, Hub)
    specialist = demo.specialist.id
    assert specialist is not None
    appointment = await make_appointment(
        resources.sessions, demo, room_state=RoomState.WAITING, waiting_since=utcnow()
    )
    assert appointment.id is not None
    patient = Connection(limit=64, role="patient")
    await hub.waiting.watch(patient, appointment.id)
    told = await _told(patient)
    assert (told["type"], told["ahead"]) == ("position", 0)

    # From here every read of the views, once done, waits for the test's go.
    reads: asyncio.Queue[asyncio.Event] = asyncio.Queue()
    count = 0
    read_views = hub.waiting._views

    async def gated(appointment_ids: Collection[int]) -> dict[int, WaitingView]:
        nonlocal count
        views = await read_views(appointment_ids)
        count += 1
        go = asyncio.Event()
        reads.put_nowait(go)
        await go.wait()
        return views

    hub.waiting._views = gated  # type: ignore[method-assign]

    # Another listener on the channel tells when all the changes have been delivered.
    heard: list[bytes] = []
    all_heard = asyncio.Event()

    def hear(raw: bytes) -> None:
        heard.append(raw)
        if len(heard) == 20:
            all_heard.set()

    listening = await resources.broker.listen(env.queue_channel(specialist), hear)
    try:
        await hub.queue_changed(specialist, ev=secrets.token_hex(16))
        first = await asyncio.wait_for(reads.get(), TIMEOUT)
        # While the first read waits: an urgent patient arrives ahead, then 19 more changes.
        await make_appointment(
            resources.sessions,
            demo,
            starts_at=utcnow() + timedelta(hours=1),
            room_state=RoomState.WAITING,
            waiting_since=utcnow(),
            urgency=Urgency.URGENT,
        )
        for _ in range(19):
            await hub.queue_changed(specialist, ev=secrets.token_hex(16))
        await asyncio.wait_for(all_heard.wait(), TIMEOUT)
        first.set()  # it read the line before the arrival: nothing new to tell
        second = await asyncio.wait_for(reads.get(), TIMEOUT)
        second.set()
        told = await _told(patient)
    finally:
        hub.waiting._views = read_views  # type: ignore[method-assign]
        await listening.close()

    # Twenty changes: the read they found running and one more, which told the new place.
    assert (told["type"], told["ahead"]) == ("position", 1)
    assert count == 2
    assert not hub.waiting.lines[specialist].refreshing
    await hub.waiting.unwatch(patient)
    assert specialist not in hub.waiting.lines


async def test_a_connection_that_ends_while_a_claim_reads_its_view_is_not_watched(
    app: Starlette, demo: Demo
) -> None:
    # An on-call request is taken: its patient's connection starts to watch the specialist's
    # line, and ends (``Seats.disconnect``) while the view is read. Nothing may stay behind: no
    # watcher of a closed connection, no listener on the specialist's channel.
    resources: Resources = app.state.resources
    hub = resources.hub
    assert isinstance(hub, Hub)
    appointment = await make_appointment(
        resources.sessions, demo, room_state=RoomState.WAITING, waiting_since=utcnow()
    )
    assert appointment.id is not None
    patient = Connection(limit=64, role="patient")
    local = LocalRoom(room=Room(appointment_id=appointment.id, state=RoomState.WAITING))
    local.conns[patient.id] = patient
    read_views = hub.waiting._views
    reading, go = asyncio.Event(), asyncio.Event()

    async def gated(appointment_ids: Collection[int]) -> dict[int, WaitingView]:
        views = await read_views(appointment_ids)
        reading.set()
        await go.wait()
        return views

    hub.waiting._views = gated  # type: ignore[method-assign]
    try:
        claim = asyncio.create_task(hub.waiting.claimed(appointment.id, {appointment.id: local}))
        await asyncio.wait_for(reading.wait(), TIMEOUT)
        await hub.waiting.unwatch(patient)  # as ``Seats.disconnect`` does, then
        local.conns.pop(patient.id)
        go.set()
        await asyncio.wait_for(claim, TIMEOUT)
    finally:
        hub.waiting._views = read_views  # type: ignore[method-assign]
    assert hub.waiting.lines == {}
    assert patient.id not in hub.waiting._by_conn


async def test_a_connection_that_ends_while_its_patient_moves_to_a_colleague_is_not_watched(
    app: Starlette, demo: Demo
) -> None:
    # The patient was transferred to a colleague: their watcher moves to the colleague's line
    # (``_move``), and the connection ends while it does.
    resources: Resources = app.state.resources
    hub = resources.hub
    assert isinstance(hub, Hub)
    first, colleague = demo.specialist.id, demo.other_specialist.id
    assert first is not None
    assert colleague is not None
    appointment = await make_appointment(
        resources.sessions, demo, room_state=RoomState.WAITING, waiting_since=utcnow()
    )
    assert appointment.id is not None
    patient = Connection(limit=64, role="patient")
    await hub.waiting.watch(patient, appointment.id)
    watcher = hub.waiting._by_conn[patient.id]
    view = (await hub.waiting._views([appointment.id]))[appointment.id]
    moved = view.model_copy(update={"specialist_id": colleague})

    lock = hub.waiting._locks[first]
    await lock.acquire()  # the move waits to leave the first line ...
    move = asyncio.create_task(hub.waiting._move(watcher, moved))
    await asyncio.sleep(0.05)
    gone = asyncio.create_task(hub.waiting.unwatch(patient))  # ... while the connection ends
    await asyncio.sleep(0.05)
    lock.release()
    await asyncio.wait_for(asyncio.gather(move, gone), TIMEOUT)
    assert hub.waiting.lines == {}
    assert patient.id not in hub.waiting._by_conn
