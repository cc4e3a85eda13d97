"""Rolling restart: two instances behind HAProxy, live calls and waiting patients spread over
both; instance a, then b, gets SIGTERM and is started again, as a deploy does (docs/deploy.md,
"Restarts, upgrades and graceful shutdown")."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.chaos.calls import Scene, frames_now, media_again, start_consultations, start_waiting
from tests.chaos.harness import cluster
from tests.chaos.hostile import ANSWERS, hostile_clients
from tests.chaos.participants import percentile
from tests.chaos.report import seconds, write_section

pytestmark = [pytest.mark.chaos, pytest.mark.postgres]

CONSULTATIONS = int(os.environ.get("KONSIL_CHAOS_CALLS", "20"))
WAITING = 3
# What the hostile clients may get for the restart itself (docs/protocol.md, close codes):
# their connection closed by the instance going down, or, when they connect again, HAProxy's
# own 503: while one instance drains, the other one, busy seating everybody who comes back,
# can miss the proxy's 0.5 s health check on a loaded machine, and the proxy then has no
# instance up for a moment (its log: "Layer7 timeout", "no server available").
RESTART_CODES = {"close 1012", "close 1001"}
RESTART_ANSWERS = RESTART_CODES | {"proxy 503"}


async def test_rolling_restart_keeps_calls_and_places(tmp_path: Path) -> None:
    async with cluster(tmp_path) as konsil:
        scene = Scene()
        try:
            await start_consultations(konsil, scene, CONSULTATIONS)
            await start_waiting(konsil, scene, WAITING)
            spread = Counter(p.instance for p in scene.everybody)
            places = [p.positions[-1] for p in scene.waiting]
            before = frames_now(scene)
            async with hostile_clients(konsil) as hostile:
                started = time.monotonic()
                exits = []
                for instance in konsil.instances:
                    instance.sigterm()
                    exits.append(await instance.stopped())
                    await konsil.restart(instance)
                restart_seconds = time.monotonic() - started
            kept = await media_again(scene, before, limit=30)
            everybody = scene.everybody
            # Everybody who was on a restarted instance came back (bounded wait inside).
            reconnects = [r for p in everybody for r in p.reconnects]
            times = [r.seconds for r in reconnects if r.seconds is not None]
            not_back = [
                p.name for p in everybody if p.reconnects and p.reconnects[-1].joined_at is None
            ]
            not_resumed = [p.name for p in everybody for r in p.reconnects if r.resumed is False]
            gone = [(p.name, m) for p in everybody for m in p.peer_left]
            errors = [(p.name, e) for p in everybody for e in p.errors]
            stopped = [(p.name, p.stopped_with) for p in everybody if p.stopped_with is not None]
            places_after = [p.positions[-1] if p.positions else None for p in scene.waiting]
        finally:
            await scene.close()
        tracebacks = konsil.tracebacks()
    got = {what for counts in hostile.got.values() for what in counts}

    write_section(
        "rolling_restart",
        [
            f"- Injected: SIGTERM to instance a, wait for its exit, start it again, then the same "
            f"for b ({restart_seconds:.1f} s in all); exit statuses {exits}.",
            f"- Load: {CONSULTATIONS} consultations (aiortc pairs, video both ways) and "
            f"{WAITING} waiting patients; connections per instance before: "
            f"{dict(sorted((str(k), v) for k, v in spread.items()))}.",
            f"- Consultations with media again after both restarts: {len(kept)} of "
            f"{CONSULTATIONS}.",
            f"- Reconnects: {len(reconnects)}, all resumed: {not not_resumed}; reconnect "
            f"p50 {seconds(percentile(times, 0.5))}, p95 {seconds(percentile(times, 0.95))}, "
            f"max {seconds(max(times, default=None))}.",
            f"- Participants shown as gone (`peer_left`): {len(gone)}; errors: {len(errors)}; "
            f"did not come back: {len(not_back)}.",
            f"- Waiting patients' places before {places}, after {places_after}.",
            "- Hostile clients throughout both restarts, each a patient in a room of its own "
            "through the proxy, acting every second and reconnecting when closed (a flooder "
            "of 600 `media_state`, a sender of a 100 KB frame, a sender of text that is not "
            "JSON on one connection); what they got:",
            *(f"  - {line}" for line in hostile.lines()),
            f"- Tracebacks in the instances' logs: {len(tracebacks)}.",
        ],
    )
    assert len(kept) == CONSULTATIONS
    assert not_back == []
    assert not_resumed == []
    assert gone == []
    assert errors == []
    assert stopped == []
    assert places_after == places
    assert set(spread) == {"a", "b"}
    assert times
    assert hostile.unexpected(RESTART_ANSWERS) == {}
    assert set(ANSWERS.values()) <= got
    assert got & RESTART_CODES
    assert tracebacks == []
