"""``python -m bench.login_flood``: what a flood of bogus logins does to everybody else.

One Konsil server (production flags) on SQLite, then on PostgreSQL. A patient and a
specialist are in a call and chat (10 lines a second, each timed from send to receipt); a
logged-in specialist asks for ``/api/v1/auth/me`` (10 a second, timed). First 10 s of that
alone, then 10 s with 200 clients, each from its own loopback address (127.0.1.1–127.0.1.200),
sending logins for unknown accounts as fast as they are answered. Prints p50/p99 and the
slowest sample (with when it was sent, in seconds after the phase began; the flood's process
is started then) of both probes in both phases and what the flood got (401 checked, 429
throttled, 503 busy).

Docs: docs/performance.md, "Login flood". The figures are absolute (the targets in issue 9 are
absolute: chat p99 < 50 ms, logged-in requests p99 < 200 ms during the flood).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx2

from bench.__main__ import ORIGIN, PROD_FLAGS, konsil_env, server
from bench.load import konsil_pair
from bench.seed import seed

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
FLOODERS = 200
PROBE_HZ = 10


# A probe's sample: when it was sent (perf_counter seconds) and how long it took (ms).
Sample = tuple[float, float]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(samples: list[Sample], started: float) -> dict[str, Any]:
    """p50, p99 and the slowest sample with when it was sent, in seconds after ``started``
    (the flood's process is started then): a one-off stall shows where it belongs."""
    values = [ms for _, ms in samples]
    worst = max(samples, key=lambda sample: sample[1], default=None)
    return {
        "p50": percentile(values, 0.5),
        "p99": percentile(values, 0.99),
        "max": worst and worst[1],
        "max_at_s": worst and round(worst[0] - started, 2),
        "n": len(samples),
    }


async def chat_probe(pair: Any, stop: asyncio.Event, out: list[Sample]) -> None:
    """The patient chats; the specialist's side stamps the arrival."""
    patient, specialist = pair.patient.ws, pair.staff.ws

    async def receive() -> None:
        while True:
            message = json.loads(await specialist.recv())
            if message.get("type") == "chat":
                sent = float(message["text"])
                out.append((sent, (time.perf_counter() - sent) * 1000))

    receiver = asyncio.create_task(receive())
    try:
        while not stop.is_set():
            await patient.send(json.dumps({"type": "chat", "text": repr(time.perf_counter())}))
            await asyncio.sleep(1 / PROBE_HZ)
        await asyncio.sleep(0.5)  # the last lines arrive
    finally:
        receiver.cancel()


async def request_probe(
    base: str, cookie: str, stop: asyncio.Event, out: list[Sample], failed: Counter[int]
) -> None:
    async with httpx2.AsyncClient(base_url=base, headers={"Cookie": cookie}) as client:
        while not stop.is_set():
            started = time.perf_counter()
            response = await client.get("/api/v1/auth/me", timeout=60)
            if response.status_code == 200:
                out.append((started, (time.perf_counter() - started) * 1000))
            else:
                failed[response.status_code] += 1
            await asyncio.sleep(1 / PROBE_HZ)


async def flooder(
    base: str, address: str, stop: asyncio.Event, statuses: Counter[int], tls: ssl.SSLContext
) -> None:
    # One TLS context for all 200 clients: building one each (the CA bundle) would stall this
    # process's loop for seconds.
    transport = httpx2.AsyncHTTPTransport(local_address=address, verify=tls)
    async with httpx2.AsyncClient(base_url=base, transport=transport, verify=tls) as client:
        while not stop.is_set():
            body = {"email": f"nobody-{uuid.uuid4().hex[:8]}@example.org", "password": "x" * 12}
            try:
                response = await client.post(
                    "/api/v1/auth/login", json=body, headers={"Origin": ORIGIN}, timeout=60
                )
            except httpx2.HTTPError:
                statuses[0] += 1
                continue
            statuses[response.status_code] += 1
            if response.status_code in (429, 503):
                await asyncio.sleep(0.05)  # a real client waits Retry-After; this one hurries


async def flood(base: str, seconds: float) -> dict[str, int]:
    """The flood, run in a process of its own (``--flood``) so that its clients' CPU does not
    delay the probes' timestamps."""
    stop = asyncio.Event()
    statuses: Counter[int] = Counter()
    tls = ssl.create_default_context()
    tasks = [
        asyncio.create_task(flooder(base, f"127.0.1.{i + 1}", stop, statuses, tls))
        for i in range(FLOODERS)
    ]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    return dict(sorted(statuses.items()))


async def phase(
    base: str, ws_pair: Any, cookie: str, seconds: float, with_flood: bool
) -> dict[str, Any]:
    stop = asyncio.Event()
    chat: list[Sample] = []
    requests: list[Sample] = []
    failed: Counter[int] = Counter()
    flooding = None
    started = time.perf_counter()
    if with_flood:
        flooding = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.login_flood",
            "--flood",
            base,
            "--seconds",
            str(seconds),
            stdout=asyncio.subprocess.PIPE,
        )
        await asyncio.sleep(1.0)  # its 200 clients are under way
    tasks = [
        asyncio.create_task(chat_probe(ws_pair, stop, chat)),
        asyncio.create_task(request_probe(base, cookie, stop, requests, failed)),
    ]
    await asyncio.sleep(seconds - 2.0 if with_flood else seconds)
    stop.set()
    await asyncio.gather(*tasks)
    logins: dict[str, int] = {}
    if flooding is not None:
        out, _ = await flooding.communicate()
        logins = json.loads(out)
    return {
        "chat_ms": summary(chat, started),
        "request_ms": {**summary(requests, started), "failed": dict(failed)},
        "logins": logins,
        "logins_per_s": round(sum(logins.values()) / seconds, 1),
    }


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    name = f"konsil_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def run_one(database_url: str, workdir: Path, seconds: float) -> dict[str, Any]:
    seeded = await asyncio.to_thread(seed, database_url, 1)
    env = konsil_env(workdir / "unused.db", "memory://")
    env["KONSIL_DATABASE_URL"] = database_url
    env["KONSIL_LOG_LEVEL"] = "WARNING"
    with server("konsil", workdir, env, PROD_FLAGS) as (_, ws_url):
        base = ws_url.replace("ws://", "http://")
        scenario = {"urls": [ws_url], "origin": ORIGIN, "staff_cookie": seeded.staff_cookie}
        aid, patient_cookie = seeded.rooms[0]
        pair = await konsil_pair(scenario, aid, patient_cookie)
        cookie = f"konsil_staff={seeded.staff_cookie}"
        quiet = await phase(base, pair, cookie, seconds, with_flood=False)
        flooded = await phase(base, pair, cookie, seconds, with_flood=True)
        await pair.patient.ws.close()
        await pair.staff.ws.close()
    return {"quiet": quiet, "flood": flooded}


async def main(seconds: float) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="konsil-login-flood-") as tmp:
        workdir = Path(tmp)
        results["sqlite"] = await run_one(
            f"sqlite+aiosqlite:///{workdir / 'konsil.db'}", workdir, seconds
        )
        async with postgres_database() as url:
            results["postgresql"] = await run_one(url, workdir, seconds)
    return results


def report(results: dict[str, Any]) -> str:
    lines = [
        "| database | phase | chat p50 / p99 / max ms | /auth/me p50 / p99 / max ms | "
        "logins/s | login answers |",
        "|---|---|---|---|---|---|",
    ]
    for db, phases in results.items():
        for name, r in phases.items():
            chat, req = r["chat_ms"], r["request_ms"]
            lines.append(
                f"| {db} | {name} | {chat['p50']:.1f} / {chat['p99']:.1f} / {chat['max']:.0f}"
                f" (at {chat['max_at_s']} s) | {req['p50']:.1f} / {req['p99']:.1f} / "
                f"{req['max']:.0f} (at {req['max_at_s']} s) | {r['logins_per_s']} | "
                f"{r['logins'] or '-'} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--flood", metavar="BASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flood:
        print(json.dumps(asyncio.run(flood(args.flood, args.seconds))))
        sys.exit(0)
    outcome = asyncio.run(main(args.seconds))
    print(json.dumps(outcome, indent=2), file=sys.stderr)
    print(report(outcome))
