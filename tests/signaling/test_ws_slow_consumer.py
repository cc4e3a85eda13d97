"""A client that stops reading: its send queue overflows and it is closed with 4408 — a close
that reaches it once it reads again — while the others in the room carry on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from app.errors import WS_SLOW_CONSUMER
from app.settings import Settings
from tests.factories import Demo, make_appointment, patient_token
from tests.live import live_server
from tests.signaling.test_ws_resume import random_id
from tests.signaling.wsclient import TIMEOUT, raw_websocket, staff_cookie, ws_connect

# An offer as large as the protocol allows: the buffers on the way fill after a few.
SDP = "v=0\r\n" + "a=x-fill:" + "f" * 59_000 + "\r\n"


async def test_ws_a_reader_that_stops_reading_is_closed_with_4408_when_it_reads_again(
    make_settings: Callable[..., Settings],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    cfg = make_settings(ws_send_queue=8)
    appointment = await make_appointment(sessions, demo, appointment_id=random_id())
    cookie = f"konsil_patient={await patient_token(sessions, cfg, appointment)}"
    async with live_server(cfg) as live:
        staff = await staff_cookie(live, demo.specialist)
        query = f"appointment={appointment.id}"
        async with (
            ws_connect(live, f"as=staff&{query}", staff) as specialist,
            raw_websocket(live, f"as=patient&{query}", cookie, sluggish=True) as patient,
        ):
            await specialist.send(type="join")
            await specialist.expect("joined")
            await patient.send('{"type": "join"}')
            patient_id = await joined_id(patient)
            await specialist.send(type="admit")
            await specialist.expect("peer_joined")
            # The patient stops reading; the specialist goes on sending to it.
            for _ in range(120):
                await specialist.send(type="offer", to=patient_id, sdp=SDP)
            # The server gives up on it; the room carries on: the specialist hears the patient
            # is reconnecting.
            async with asyncio.timeout(TIMEOUT):
                while (state := await specialist.recv())["type"] != "peer_state":
                    pass
            assert (state["peer_id"], state["connection"]) == (patient_id, "reconnecting")
            # The patient reads again: what was on its way, then the close.
            code = await read_to_the_end(patient)
    assert code == WS_SLOW_CONSUMER


async def joined_id(ws: ClientConnection) -> str:
    async with asyncio.timeout(TIMEOUT):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == "joined":
                return str(message["participant_id"])


async def read_to_the_end(ws: ClientConnection) -> int | None:
    async with asyncio.timeout(TIMEOUT):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None
