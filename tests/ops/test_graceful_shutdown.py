"""What websocket clients see when a server process is stopped (a real uvicorn process)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
import websockets
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from app.db import create_engine, session_factory, utcnow
from app.settings import Settings
from tests.conftest import create_schema
from tests.factories import make_appointment, patient_token, seed
from tests.live import run_server

pytestmark = pytest.mark.e2e


async def patient_cookie(database_url: str) -> tuple[int, str]:
    """A database with the demo data, one appointment and its patient's session cookie."""
    await create_schema(database_url)
    engine = create_engine(database_url)
    try:
        sessions = session_factory(engine)
        demo = await seed(sessions)
        starts = utcnow() + timedelta(minutes=5)
        appointment = await make_appointment(sessions, demo, starts_at=starts)
        settings = Settings(environment="test", database_url=database_url)
        token = await patient_token(sessions, settings, appointment)
        assert appointment.id is not None
        return appointment.id, token
    finally:
        await engine.dispose()


async def read_until_closed(ws: websockets.ClientConnection) -> None:
    while True:
        await asyncio.wait_for(ws.recv(), 10)


async def test_stopping_a_server_tells_websocket_clients_to_reconnect(tmp_path: Path) -> None:
    appointment_id, token = await patient_cookie(f"sqlite+aiosqlite:///{tmp_path / 'konsil.db'}")
    with run_server(tmp_path, "--ws", "websockets-sansio", shutdown_drain_seconds="0") as server:
        url = f"ws://127.0.0.1:{server.port}/ws?as=patient&appointment={appointment_id}"
        async with websockets.connect(
            url, additional_headers={"Cookie": f"konsil_patient={token}"}, origin=Origin(server.url)
        ) as ws:
            await ws.send(json.dumps({"type": "join"}))
            joined = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert joined["type"] == "joined"
            server.terminate()
            with pytest.raises(ConnectionClosed) as closed:
                await read_until_closed(ws)
        # 1012 "service restart" (uvicorn) or 1001 "going away" (the hub): both mean reconnect.
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code in {1001, 1012}, closed.value.rcvd
        await asyncio.to_thread(server.process.wait, 15)
