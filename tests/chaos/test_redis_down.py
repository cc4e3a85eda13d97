"""Redis down for 30 s: the private redis-server of the cluster is stopped while calls run,
and started again on the same port."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from tests.chaos.calls import Scene, frames_now, media_again, patient, start_consultations
from tests.chaos.harness import Cluster, Instance, cluster
from tests.chaos.hostile import ANSWERS, hostile_clients, said
from tests.chaos.report import seconds, write_section
from tests.factories import make_appointment
from tests.waiting import until

pytestmark = [pytest.mark.chaos, pytest.mark.postgres]

CONSULTATIONS = 6
OUTAGE_SECONDS = 30
# The bound: everything recovers within 10 s of Redis returning.
RECOVERY_SECONDS = 10.0
# What the hostile clients may get for the outage itself (docs/protocol.md): their messages
# that must reach the broker answered `unavailable`, a join refused with 1013, the proxy's 503
# while it has taken both instances out.
OUTAGE_ANSWERS = {"error unavailable", "close 1013", "proxy 503"}
MUTED = {"muted": True, "camera_off": False, "audio_only": False, "screen_sharing": False}


async def ready(instance: Instance) -> tuple[int, dict[str, Any]]:
    try:
        status, body = await instance.readyz()
    except httpx2.HTTPError as exc:
        return 0, {"error": type(exc).__name__}
    return status, body


async def try_join(konsil: Cluster, url: str) -> str:
    """A new patient joins (a room nobody is in yet): what it gets, in words."""
    appointment = await make_appointment(konsil.sessions, konsil.demo)
    assert appointment.id is not None
    who = await patient(konsil, "newcomer", appointment.id, media=False)
    try:
        async with connect(
            f"{url}?as=patient&appointment={appointment.id}",
            origin=Origin(konsil.proxy.url),
            additional_headers={"Cookie": who.cookie},
            open_timeout=10,
        ) as ws:
            await ws.send('{"type": "join"}')
            async with asyncio.timeout(15):
                async for raw in ws:
                    message = json.loads(raw)
                    if message["type"] == "joined":
                        return '"joined"'
                    if message["type"] == "error":
                        error = f"error {message['code']}"
                        await ws.wait_closed()
                        return f"{error}, closed {ws.close_code}"
            return "no answer"
    except InvalidStatus as exc:
        return f"HTTP {exc.response.status_code}"
    except ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd else 1006
        reason = exc.rcvd.reason if exc.rcvd else ""
        return f"closed {code} {reason}"
    except (OSError, TimeoutError) as exc:
        return type(exc).__name__


async def test_redis_down_30_seconds(tmp_path: Path) -> None:
    async with cluster(tmp_path) as konsil:
        a, b = konsil.instances
        scene = Scene()
        try:
            await start_consultations(konsil, scene, CONSULTATIONS)
            before = frames_now(scene)
            async with hostile_clients(konsil) as hostile:
                at_outage = hostile.snapshot()
                await konsil.redis.stop()
                stopped_at = time.monotonic()
                reported = await until(
                    lambda: _both_report_broker_down(a, b), 10, "/readyz reports the broker down"
                )
                readyz_down = await ready(a)
                await konsil.proxy.wait_state(a, up=False)
                await konsil.proxy.wait_state(b, up=False)
                join_direct = await try_join(konsil, a.url.replace("http", "ws") + "/ws")
                join_proxy = await try_join(konsil, konsil.proxy.ws)
                # Each patient changes its media state while the signalling between the
                # instances is cut (each pair spans both instances: see the spread).
                for c in scene.consultations:
                    await c.patient.send(type="media_state", **MUTED)
                await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped_at)))
                during = frames_now(scene)
                kept_during = [
                    c
                    for c in scene.consultations
                    if all(during[p.name] > before[p.name] + 5 for p in c.sides)
                ]
                closes_during = sum(len(p.closes) for p in scene.everybody)
                unavailable = sum(
                    1 for p in scene.everybody for e in p.errors if e["code"] == "unavailable"
                )
                heard_before = {
                    c.specialist.name: len(c.specialist.peer_states) for c in scene.consultations
                }

                in_outage = hostile.since(at_outage)
                await konsil.redis.start()
                back_at = time.monotonic()
                ready_again = await until(lambda: _both_ready(a, b), 30, "/readyz ready again")
                await konsil.proxy.wait_state(a, up=True)
                await konsil.proxy.wait_state(b, up=True)
                proxy_again = time.monotonic() - back_at
                join_after = await _join_until_seated(konsil, limit=30)
                join_again = time.monotonic() - back_at
                # The refused change again, now the broker is back: every specialist hears it.
                for c in scene.consultations:
                    await c.patient.send(type="media_state", **MUTED)
                await until(
                    lambda: all(
                        any(
                            m["muted"]
                            for _, m in c.specialist.peer_states[heard_before[c.specialist.name] :]
                        )
                        for c in scene.consultations
                    ),
                    30,
                    "specialists hear the patients again",
                )
                signalling_again = time.monotonic() - back_at
            after = frames_now(scene)
            kept = await media_again(scene, after, limit=20)
            spread = {p.name: p.instance for p in scene.everybody}
            gone = [(p.name, m) for p in scene.everybody for m in p.peer_left]
            renegotiations = sum(p.renegotiations for p in scene.everybody)
        finally:
            await scene.close()
        tracebacks = konsil.tracebacks()
    got = {what for counts in hostile.got.values() for what in counts}

    write_section(
        "redis_down",
        [
            f"- Injected: the cluster's private redis-server stopped (SIGTERM) for "
            f'{OUTAGE_SECONDS} s, then started again on the same port (empty: `--save ""`).',
            f"- Load: {CONSULTATIONS} consultations, each patient on one instance and its "
            f"specialist on the other.",
            f"- `/readyz` reported it after {seconds(reported)}: {readyz_down[0]} "
            f"`{json.dumps(readyz_down[1])}`; HAProxy then took both instances out.",
            f"- Calls with media throughout the outage: {len(kept_during)} of {CONSULTATIONS}; "
            f"websockets closed during the outage: {closes_during}; a `media_state` sent "
            f"meanwhile was answered `error` `unavailable` {unavailable} times "
            f"(of {CONSULTATIONS}).",
            f"- A new patient's join during the outage: directly at an instance `{join_direct}`; "
            f"through the proxy `{join_proxy}`.",
            f"- After Redis returned: `/readyz` 200 on both after {seconds(ready_again)}, the "
            f"proxy sent traffic again after {seconds(proxy_again)}, a new join was seated "
            f"after {seconds(join_again)} (`{join_after}`), every specialist heard its "
            f"patient's next `media_state` after {seconds(signalling_again)}; "
            f"`renegotiate` sent: {renegotiations}.",
            f"- Calls with media after the outage: {len(kept)} of {CONSULTATIONS}; participants "
            f"shown as gone: {len(gone)}.",
            "- Hostile clients from the outage until every specialist heard its patient again, "
            "each a patient in a room of its own through the proxy, acting every second and "
            "reconnecting when closed (a flooder of 600 `media_state`, a sender of a 100 KB "
            "frame, a sender of text that is not JSON on one connection); what they got:",
            *(f"  - {line}" for line in hostile.lines()),
            "- Of that, during the outage: "
            + "; ".join(f"{kind} {said(got)}" for kind, got in in_outage.items())
            + ".",
            f"- Tracebacks in the instances' logs: {len(tracebacks)}"
            + "".join(f"; {t}" for t in sorted(set(tracebacks)))
            + ".",
        ],
    )
    assert len(set(spread.values())) == 2
    assert len(kept_during) == CONSULTATIONS
    assert len(kept) == CONSULTATIONS
    assert closes_during == 0
    assert unavailable == CONSULTATIONS
    assert join_direct == "error unavailable, closed 1013"
    assert join_proxy == "HTTP 503"
    assert '"joined"' in join_after
    assert signalling_again < RECOVERY_SECONDS
    assert gone == []
    assert hostile.unexpected(OUTAGE_ANSWERS) == {}
    assert set(ANSWERS.values()) <= got
    # Each acted during the outage: the garbage on its open connection was answered as
    # always; the others, closed for what they did, were refused by the proxy at least once.
    assert in_outage["garbage"]["error invalid_message"] > 0
    assert all(in_outage[kind]["proxy 503"] > 0 for kind in ("flooder", "oversized frame"))
    assert tracebacks == []


async def _join_until_seated(konsil: Cluster, limit: float) -> str:
    deadline = time.monotonic() + limit
    while True:
        answer = await try_join(konsil, konsil.proxy.ws)
        if '"joined"' in answer or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.2)


async def _both_report_broker_down(a: Instance, b: Instance) -> bool:
    answers = [await ready(a), await ready(b)]
    return all(
        status == 503 and body.get("checks", {}).get("broker") == "down" for status, body in answers
    )


async def _both_ready(a: Instance, b: Instance) -> bool:
    answers = [await ready(a), await ready(b)]
    return all(status == 200 for status, _ in answers)
