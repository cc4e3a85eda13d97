"""A whole consultation on a real server process logs nothing that names the patient or the
appointment's request details: no query string (uvicorn logs every websocket handshake even
with --no-access-log), no name, contact, question, chat text, token or cookie."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import httpx2
import pytest
import websockets
from websockets.typing import Origin

from app.db import create_engine, session_factory, utcnow
from app.seed import DEMO_PASSWORD
from app.settings import Settings
from tests.conftest import create_schema
from tests.factories import make_appointment, patient_token, seed
from tests.live import run_server_async

pytestmark = pytest.mark.e2e

NAME = "Henrietta Quellenbach"
CONTACT = "henrietta.quellenbach@example.org"
QUESTION = "Verdacht auf Zyxomatose"
CHAT = "Ich heiße Henrietta und mir ist schwindelig"


async def expect(ws: websockets.ClientConnection, kind: str, **fields: object) -> dict[str, object]:
    """The next message of type ``kind`` (with ``fields``), skipping others."""
    while True:
        message: dict[str, object] = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if message["type"] == kind and fields.items() <= message.items():
            return message


async def test_a_consultation_leaves_no_personal_detail_in_the_server_log(tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'konsil.db'}"
    await create_schema(database_url)
    engine = create_engine(database_url)
    try:
        sessions = session_factory(engine)
        demo = await seed(sessions)
        appointment = await make_appointment(
            sessions,
            demo,
            starts_at=utcnow() + timedelta(minutes=5),
            patient_name=NAME,
            patient_contact=CONTACT,
            clinical_question=QUESTION,
        )
        settings = Settings(environment="test", database_url=database_url)
        token = await patient_token(sessions, settings, appointment)
    finally:
        await engine.dispose()
    assert appointment.id is not None

    async with run_server_async(tmp_path, "--ws", "websockets-sansio", log_level="INFO") as server:
        origin = Origin(server.url)
        async with httpx2.AsyncClient(base_url=server.url) as staff:
            login = await staff.post(
                "/api/v1/auth/login",
                json={"email": demo.specialist.email, "password": DEMO_PASSWORD},
            )
            assert login.status_code == 200
            staff.headers["X-CSRF-Token"] = login.json()["csrf_token"]
            staff_cookie = f"konsil_staff={staff.cookies['konsil_staff']}"
            base = f"ws://127.0.0.1:{server.port}/ws?appointment={appointment.id}"
            async with (
                websockets.connect(
                    base + "&as=patient",
                    additional_headers={"Cookie": f"konsil_patient={token}"},
                    origin=origin,
                ) as patient,
                websockets.connect(
                    base + "&as=staff", additional_headers={"Cookie": staff_cookie}, origin=origin
                ) as specialist,
            ):
                await patient.send(json.dumps({"type": "join"}))
                await expect(patient, "joined")
                await specialist.send(json.dumps({"type": "join"}))
                await expect(specialist, "joined")
                admitted = await staff.post(f"/api/v1/rooms/{appointment.id}/admit")
                assert admitted.status_code == 200, admitted.text
                await expect(patient, "room_state", state="admitted")
                await patient.send(json.dumps({"type": "chat", "text": CHAT}))
                assert (await expect(specialist, "chat"))["text"] == CHAT
                await specialist.send(json.dumps({"type": "leave"}))
                await patient.send(json.dumps({"type": "leave"}))
            ended = await staff.post(f"/api/v1/rooms/{appointment.id}/end")
            assert ended.status_code == 200, ended.text
        server.terminate()
        await asyncio.to_thread(server.process.wait, 15)

    log = server.log.read_text(errors="replace")
    assert '"WebSocket /ws" [accepted]' in log  # the handshake is logged, without its query
    for forbidden in [
        NAME,
        CONTACT,
        QUESTION,
        "Henrietta",
        CHAT,
        token,
        "appointment=",
        "as=patient",
    ]:
        assert forbidden not in log, forbidden
    assert staff_cookie.split("=", 1)[1] not in log
