"""End to end: two aiortc peers call each other through real uvicorn servers.

Once on one in-process server (memory broker), once with the two peers on two uvicorn server
processes (separate OS processes) sharing the test's database and joined by Redis pub/sub.
Timings are never asserted; timeouts are generous.
"""

from __future__ import annotations

import asyncio
import secrets
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.settings import Settings
from tests.factories import Demo, make_appointment, patient_token
from tests.live import Listening, Live, run_server_async
from tests.services import REDIS_URL, require_redis
from tests.signaling.peers import Peer
from tests.signaling.wsclient import staff_cookie, ws_connect

CALL_TIMEOUT = 60.0


@pytest.fixture(autouse=True)
def loopback_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    # aioice skips 127.0.0.1 when gathering; this host may have nothing else.
    monkeypatch.setattr("aioice.ice.get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


async def call(
    patient_server: Listening,
    specialist_server: Listening,
    demo: Demo,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # A random id keeps this room's Redis channel apart from other test runs.
    appointment = await make_appointment(sessions, demo, appointment_id=_random_id())
    query = f"appointment={appointment.id}"
    patient_cookie = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    staff = await staff_cookie(specialist_server, demo.specialist)
    peers: list[Peer] = []
    async with AsyncExitStack() as stack:
        p = await stack.enter_async_context(
            ws_connect(patient_server, f"as=patient&{query}", patient_cookie)
        )
        s = await stack.enter_async_context(
            ws_connect(specialist_server, f"as=staff&{query}", staff)
        )
        try:
            await p.send(type="join")
            await p.expect("joined")
            await s.send(type="join")
            await s.expect("joined")
            patient, specialist = Peer(p), Peer(s, chat="Guten Tag aus der Klinik")
            peers += [patient, specialist]
            tasks = [asyncio.create_task(peer.run()) for peer in peers]
            await s.send(type="admit")
            try:
                frame = await asyncio.wait_for(patient.frame, CALL_TIMEOUT)
                back = await asyncio.wait_for(specialist.frame, CALL_TIMEOUT)
                text = await asyncio.wait_for(patient.message, CALL_TIMEOUT)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            assert frame.width > 0
            assert back.width > 0
            assert text == "Guten Tag aus der Klinik"
            assert patient.candidates_received > 0
            assert specialist.candidates_received > 0
        finally:
            for peer in peers:
                await peer.close()


def _random_id() -> int:
    return 1_000_000 + secrets.randbelow(1_000_000_000)


@pytest.mark.e2e
async def test_e2e_call_through_one_server(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await call(live, live, demo, settings, sessions)


@pytest.mark.e2e
@pytest.mark.redis
async def test_e2e_call_across_two_server_processes_via_redis(
    tmp_path: Path, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    require_redis()
    # Both processes use the test's database and base URL (the peers' Origin).
    shared = {
        "database_url": settings.database_url,
        "base_url": settings.base_url,
        "broker_url": REDIS_URL,
    }
    args = ("--ws", "websockets-sansio", "--ws-per-message-deflate", "false")
    async with (
        run_server_async(tmp_path, *args, **shared) as first,
        run_server_async(tmp_path, *args, **shared) as second,
    ):
        await call(first, second, demo, settings, sessions)
