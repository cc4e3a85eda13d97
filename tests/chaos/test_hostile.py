"""Slow and hostile clients beside live calls: a reader that stops reading, a client flooding
messages, one sending an oversized frame and one sending garbage, all at once, through the
proxy, while consultations go on. Each is closed with its own code (4408, 4429, 1009) or told
``invalid_message``; the others' signalling latency is measured with chat lines before and
during, and nobody else is disturbed."""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress
from pathlib import Path

import pytest

from app.errors import WS_MESSAGE_TOO_BIG, WS_RATE_LIMITED, WS_SLOW_CONSUMER
from tests.chaos.calls import Scene, frames_now, media_again, start_consultations
from tests.chaos.harness import cluster
from tests.chaos.hostile import WAIT, flood, room, send_garbage, send_oversized, stop_reading
from tests.chaos.participants import percentile
from tests.chaos.report import write_section
from tests.waiting import until

pytestmark = [pytest.mark.chaos, pytest.mark.postgres]

CONSULTATIONS = 6
PROBES = 60  # chat lines per consultation and phase, one every PROBE_GAP
PROBE_GAP = 0.05


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
