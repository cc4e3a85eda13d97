"""Slow and hostile clients beside live calls: a reader that stops reading, a client flooding
messages, one sending an oversized frame and one sending garbage, all at once, through the
proxy, while consultations go on. Each is closed with its own code (4408, 4429, 1009) or told
``invalid_message``; the others' signalling latency is measured with chat lines before and
during, and nobody else is disturbed."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from app.errors import WS_MESSAGE_TOO_BIG, WS_RATE_LIMITED, WS_SLOW_CONSUMER
from tests.chaos.calls import Scene, frames_now, media_again, staff_cookie, start_consultations
from tests.chaos.harness import Cluster, cluster, until
from tests.chaos.participants import percentile
from tests.chaos.report import write_section
from tests.factories import make_appointment, patient_token
from tests.signaling.wsclient import raw_websocket

pytestmark = [pytest.mark.chaos, pytest.mark.postgres]

CONSULTATIONS = 6
PROBES = 60  # chat lines per consultation and phase, one every PROBE_GAP
PROBE_GAP = 0.05
WAIT = 30.0
# An offer as large as the protocol allows, a burst of them within the rate limit's burst,
# then one every OFFER_GAP (within its rate).
SDP = "v=0\r\n" + "a=x-fill:" + "f" * 59_000 + "\r\n"
OFFER_BURST = 150
OFFER_GAP = 0.04


async def test_slow_and_hostile_clients_do_not_hold_up_the_others(tmp_path: Path) -> None:
    async with cluster(tmp_path) as konsil:
        scene = Scene()
        try:
            await start_consultations(konsil, scene, CONSULTATIONS)
            quiet, quiet_lost = await probe(scene, "quiet")
            before = frames_now(scene)
            async with (
                room(konsil, sluggish=True) as slow,
                room(konsil) as flooder,
                room(konsil) as oversized,
                room(konsil) as garbage,
            ):
                busy_task = asyncio.create_task(probe(scene, "busy"))
                codes = await asyncio.gather(
                    stop_reading(konsil, slow),
                    flood(flooder),
                    send_oversized(oversized),
                    send_garbage(garbage),
                )
                busy, busy_lost = await busy_task
            kept = await media_again(scene, before, limit=WAIT)
            gone = [(p.name, m) for p in scene.everybody for m in p.peer_left]
            closes = [(p.name, p.closes) for p in scene.everybody if p.closes]
        finally:
            await scene.close()

    slow_code, flood_code, oversized_code, garbage_answer = codes
    write_section(
        "hostile",
        [
            f"- Load: {CONSULTATIONS} consultations (aiortc pairs, video both ways) through "
            f"HAProxy; each specialist sends its patient {PROBES} chat lines "
            f"{PROBE_GAP * 1000:.0f} ms apart, once quiet and once while the clients below act.",
            "- Injected at once, each in a room of its own: a patient that stops reading (4 KiB "
            "receive buffer) while its specialist sends it offers of 59 KB until the server "
            "gives it up; a patient sending 600 `media_state` at once; one sending a 100 KB "
            "frame; one sending text that is not JSON.",
            f"- Closed with: slow reader {slow_code} (when it read again), flooder {flood_code}, "
            f"oversized frame {oversized_code}; garbage answered `{garbage_answer}`.",
            f"- The others' chat latency: quiet p50 {ms(percentile(quiet, 0.5))}, p99 "
            f"{ms(percentile(quiet, 0.99))}; during p50 {ms(percentile(busy, 0.5))}, p99 "
            f"{ms(percentile(busy, 0.99))}; lines lost {quiet_lost} and {busy_lost}.",
            f"- Consultations with media afterwards: {len(kept)} of {CONSULTATIONS}; "
            f"participants shown as gone: {len(gone)}; their connections closed: {len(closes)}.",
        ],
    )
    assert (slow_code, flood_code, oversized_code) == (
        WS_SLOW_CONSUMER,
        WS_RATE_LIMITED,
        WS_MESSAGE_TOO_BIG,
    )
    assert garbage_answer == "invalid_message"
    assert (quiet_lost, busy_lost) == (0, 0)
    assert len(kept) == CONSULTATIONS
    assert gone == []
    assert closes == []


def ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.1f} ms"


async def probe(scene: Scene, phase: str) -> tuple[list[float], int]:
    """Every specialist sends its patient chat lines; their latencies and how many were lost."""
    sent: dict[str, float] = {}

    async def lines(n: int) -> None:
        specialist = scene.consultations[n].specialist
        for k in range(PROBES):
            text = f"{phase}-{n}-{k}"
            sent[text] = time.monotonic()
            assert await specialist.send(type="chat", text=text)
            await asyncio.sleep(PROBE_GAP)

    await asyncio.gather(*(lines(n) for n in range(len(scene.consultations))))

    def received() -> dict[str, float]:
        return {text: at for c in scene.consultations for at, text in c.patient.chats}

    with suppress(TimeoutError):  # (what did not arrive is counted as lost)
        await until(lambda: sent.keys() <= received().keys(), 10, "chat lines delivered")
    got = received()
    return [got[t] - at for t, at in sent.items() if t in got], len(sent.keys() - got.keys())


class Hostile:
    """A raw websocket of a patient in a room of its own, joined; and its room's details."""

    def __init__(self, ws: ClientConnection, appointment: int, participant_id: str) -> None:
        self.ws = ws
        self.appointment = appointment
        self.participant_id = participant_id

    async def until(self, kind: str) -> dict[str, Any]:
        async with asyncio.timeout(WAIT):
            while True:
                message: dict[str, Any] = json.loads(await self.ws.recv())
                if message["type"] == kind:
                    return message

    async def close_code(self) -> int | None:
        """Reads everything left; the code of the close frame that ended it (None: none)."""
        async with asyncio.timeout(WAIT):
            try:
                while True:
                    await self.ws.recv()
            except ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd is not None else None


@asynccontextmanager
async def room(konsil: Cluster, *, sluggish: bool = False) -> AsyncIterator[Hostile]:
    appointment = await make_appointment(konsil.sessions, konsil.demo)
    assert appointment.id is not None
    token = await patient_token(konsil.sessions, konsil.settings, appointment)
    async with raw_websocket(
        konsil.proxy,
        f"as=patient&appointment={appointment.id}",
        f"konsil_patient={token}",
        origin=konsil.proxy.url,
        sluggish=sluggish,
    ) as ws:
        await ws.send(json.dumps({"type": "join"}))
        hostile = Hostile(ws, appointment.id, "")
        hostile.participant_id = (await hostile.until("joined"))["participant_id"]
        yield hostile


async def stop_reading(konsil: Cluster, slow: Hostile) -> int | None:
    """The slow reader's specialist admits it and sends it large offers it never reads; once
    the server has given it up (the specialist sees it reconnecting), it reads again."""
    cookie = await staff_cookie(konsil, konsil.demo.specialist)
    async with connect(
        f"{konsil.proxy.ws}?as=staff&appointment={slow.appointment}",
        origin=Origin(konsil.proxy.url),
        additional_headers=Headers(Cookie=cookie),
        compression=None,
    ) as staff:
        specialist = Hostile(staff, slow.appointment, "")
        await staff.send(json.dumps({"type": "join"}))
        await specialist.until("joined")
        await staff.send(json.dumps({"type": "admit"}))
        await specialist.until("peer_joined")
        offer = json.dumps({"type": "offer", "to": slow.participant_id, "sdp": SDP})
        # The proxy's and the kernel's buffers take megabytes before the server's own send
        # queue fills: a burst, then offers at a pace within the rate limit, until then.
        for _ in range(OFFER_BURST):
            await staff.send(offer)
        given_up = asyncio.create_task(reconnecting(specialist))
        async with asyncio.timeout(WAIT):
            while not given_up.done():
                await staff.send(offer)
                await asyncio.sleep(OFFER_GAP)
        await given_up
    return await slow.close_code()


async def reconnecting(specialist: Hostile) -> None:
    while (await specialist.until("peer_state"))["connection"] != "reconnecting":
        pass


async def flood(flooder: Hostile) -> int | None:
    state = {"muted": False, "camera_off": False, "audio_only": False, "screen_sharing": False}
    frame = json.dumps({"type": "media_state", **state})
    with suppress(ConnectionClosed):  # closed while still sending: the code is read below
        for _ in range(600):
            await flooder.ws.send(frame)
    return await flooder.close_code()


async def send_oversized(oversized: Hostile) -> int | None:
    await oversized.ws.send(json.dumps({"type": "chat", "text": "x" * 100_000}))
    return await oversized.close_code()


async def send_garbage(garbage: Hostile) -> str:
    await garbage.ws.send("this is not json {")
    error = await garbage.until("error")
    return str(error["code"])
