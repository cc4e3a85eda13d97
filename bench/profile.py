"""``python -m bench.profile``: where the relay's CPU goes, sampled with py-spy under load.

Starts one server (Konsil with the memory broker, or the baseline) with the production flags,
drives the relay scenario of ``bench.load`` (100 rooms, candidates both ways) at one rate, or
with ``--scenario setup`` its call setups (50 rooms in a closed loop: offer + 10 candidates,
answer + 10 candidates), and
samples the server with py-spy during the measured window only (connection setup and warm-up
are not in it): first a flame graph (SVG), then the same length again as collapsed stacks,
which this script sorts into the parts of the relay path and prints as a table.

py-spy samples only while the server's thread runs (idle time in the event loop's wait is
left out), so the shares are shares of the server's CPU. ``--nonblocking`` keeps py-spy from
pausing the server for each sample.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.__main__ import (
    PROD_FLAGS,
    RELAY_ROOMS,
    ROOT,
    SETUP_ROOMS,
    Bench,
    konsil_env,
    server,
)
from bench.seed import seed

IO_WRITE = "socket write (transport.write: the send system call, loopback TCP)"
IO_LOOP = "event loop, native (epoll, socket reads, uvloop callbacks)"
WS = "websocket framing and ASGI (uvicorn, websockets, starlette)"
LOOP = "tasks and wake-ups (asyncio, anyio)"
ROOM = "room rules (check, partners, outgoing model)"
OUTBOX = "outbox and writer task"
ENVELOPE = "envelope: stamp and dump to JSON"
# A sample whose innermost Python frame is one of these spends its time in native code below
# it: the send system call, or uvloop's own loop (epoll, recv, protocol callbacks in C).
LEAVES: list[tuple[str, str, str]] = [
    ("WebSocketsSansIOProtocol.send", "websockets_sansio_impl.py", IO_WRITE),
    ("Runner.run", "asyncio/runners.py", IO_LOOP),
]
# Otherwise the innermost frame that matches one of these, from the leaf to the root; frames
# of asyncio and anyio only when nothing else matched (an Event.set in the outbox is the
# outbox's).
PARTS: list[tuple[str, str, str]] = [
    ("", "prometheus_client", "metrics (prometheus counters)"),
    ("TokenBucket.take", "signaling/connection.py", "token bucket"),
    ("encode", "signaling/messages.py", "server message to JSON (per recipient)"),
    ("stamped_json", "signaling/wire.py", ENVELOPE),
    ("Replicas.publish", "signaling/replicas.py", ENVELOPE),
    ("parse", "signaling/wire.py", "envelope: parse and validate again (room listener)"),
    ("parsed", "signaling/envelope.py", "broker hand-off (room listener)"),
    ("", "app/broker/", "broker hand-off (room listener)"),
    ("Replicas._on_message", "signaling/replicas.py", "broker hand-off (room listener)"),
    ("_handle", "signaling/endpoint.py", "client message: parse and validate (pydantic)"),
    ("", "signaling/session.py", ROOM),
    ("", "signaling/wire.py", ROOM),
    ("Hub.relay", "signaling/hub.py", ROOM),
    ("_dispatch", "signaling/endpoint.py", ROOM),
    ("Replicas._apply", "signaling/replicas.py", ROOM),
    ("Replicas._deliver", "signaling/replicas.py", OUTBOX),
    ("", "signaling/connection.py", OUTBOX),
    ("_writer", "signaling/endpoint.py", OUTBOX),
    ("_reader", "signaling/endpoint.py", "reader loop (size check, activity)"),
    ("_activity", "signaling/endpoint.py", "reader loop (size check, activity)"),
    ("", "starlette/", WS),
    ("", "uvicorn/", WS),
    ("", "websockets/", WS),
]
LAST: list[tuple[str, str, str]] = [
    ("", "anyio/", LOOP),
    ("", "asyncio/", LOOP),
    ("", "threading.py", "other threads (database)"),
]
# The baseline's own lines (json.loads / dumps and the relay loop).
BASELINE_PARTS: list[tuple[str, str, str]] = [
    ("", "json/", "JSON parse and dump"),
    ("", "bench/baseline.py", "relay loop"),
]


def frame_parts(frame: str) -> tuple[str, str]:
    """``"name (path/file.py:12)"`` -> (name, path)."""
    name, _, where = frame.partition(" (")
    return name, where.rsplit(":", 1)[0]


def matches(frame: str, rule: tuple[str, str, str]) -> bool:
    name, path = frame_parts(frame)
    return rule[1] in path and (not rule[0] or name == rule[0])


def classify(stack: list[str], parts: list[tuple[str, str, str]]) -> str:
    if stack:
        for rule in LEAVES:
            if matches(stack[-1], rule):
                return rule[2]
    for rules in (parts, LAST):
        for frame in reversed(stack):
            for rule in rules:
                if matches(frame, rule):
                    return rule[2]
    return "other"


def tally(
    raw: Path,
    parts: list[tuple[str, str, str]],
    keep: Callable[[list[str]], bool] = lambda frames: True,
) -> Counter[str]:
    """The samples of a py-spy record in raw format (one stack and its count a line) sorted
    into ``parts`` by ``classify``; stacks that ``keep`` refuses are left out."""
    shares: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if stack and keep(frames):
            shares[classify(frames, parts)] += int(count)
    return shares


def print_shares(shares: Counter[str], columns: str, per: float, decimals: int) -> None:
    """A Markdown table of ``shares``, largest first: each part's share of the samples and that
    share of ``per`` (µs), under the header ``columns``."""
    total = sum(shares.values())
    print(columns)
    print("|---|---:|---:|")
    for part, count in shares.most_common():
        share = count / total if total else 0
        print(f"| {part} | {share:.1%} | {share * per:.{decimals}f} |")


def py_spy(pid: int, seconds: int, fmt: str, out: Path, rate: int) -> None:
    # Relative paths: py-spy writes its command line into the SVG's title.
    spy = os.path.relpath(Path(sys.executable).with_name("py-spy"), ROOT)
    command = [spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", str(rate)]
    command += ["--nonblocking", "--format", fmt, "-o", os.path.relpath(out, ROOT)]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=seconds + 60)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--target", choices=["konsil", "baseline"], default="konsil")
    parser.add_argument("--scenario", choices=["relay", "setup"], default="relay")
    parser.add_argument("--rate", type=int, default=5000, help="msg/s offered (default 5000)")
    parser.add_argument("--seconds", type=int, default=15, help="length of each sample")
    parser.add_argument("--sample-rate", type=int, default=400, help="py-spy samples/s")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "profiles")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    setup = args.scenario == "setup"
    name = f"setup-{args.target}" if setup else f"relay-{args.target}-{args.rate}"
    with tempfile.TemporaryDirectory(prefix="konsil-profile-") as scratch:
        workdir = Path(scratch)
        bench = Bench(workdir, quick=False)
        seeded, env = None, {}
        if args.target == "konsil":
            db = workdir / "konsil.db"
            seeded = seed(f"sqlite+aiosqlite:///{db}", RELAY_ROOMS + SETUP_ROOMS)
            env = konsil_env(db, "memory://")
        with server(args.target, workdir, env, PROD_FLAGS) as (process, url):
            window = workdir / "window"
            sc: dict[str, Any] = bench.scenario(
                args.scenario, args.target, [url], [process.pid], seeded
            )
            if setup:
                sc["rooms"] = sc["rooms"][RELAY_ROOMS:]
            sc.update(
                rates=[args.rate],
                warmup=2,
                duration=2 * args.seconds + 4,
                window_file=str(window),
            )
            path = workdir / "scenario.json"
            path.write_text(json.dumps(sc))
            generator = subprocess.Popen(
                [sys.executable, "-m", "bench.load", str(path)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                deadline = time.monotonic() + 120
                while not window.exists():
                    if generator.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"load generator failed: {generator.stderr}")
                    time.sleep(0.1)
                svg, raw = args.out / f"{name}.svg", workdir / f"{name}.raw"
                py_spy(process.pid, args.seconds, "flamegraph", svg, args.sample_rate)
                py_spy(process.pid, args.seconds, "raw", raw, args.sample_rate)
                out, err = generator.communicate(timeout=120)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    generator.kill()
            if generator.returncode != 0:
                raise RuntimeError(f"load generator failed:\n{err[-3000:]}")
            baseline = args.target == "baseline"
            shares = tally(raw, BASELINE_PARTS + PARTS if baseline else PARTS)
            total = sum(shares.values())
            (args.out / f"{name}.collapsed.txt").write_text(raw.read_text())
    if setup:
        # 22 relayed messages per setup (offer, answer, 20 candidates).
        result = json.loads(out)
        cpu_us = result["cpu_ms_per_setup"] * 1000 / 22
        print(f"{args.target}, call setups: {result['setups_per_s']:,.1f}/s,")
        print(f"{result['cpu_ms_per_setup']:.2f} ms CPU per setup ({cpu_us:.1f} µs per message);")
        print(f"{total:,} samples; flame graph {svg.name}")
    else:
        result = json.loads(out)["relay"][0]
        cpu_us = result["cpu_us_per_msg"]
        print(f"{args.target}, {args.rate:,} msg/s offered: {result['achieved']:,.0f} msg/s,")
        print(f"{cpu_us:.1f} µs CPU per relayed message, p50 {result['p50_ms']:.2f} ms, ")
        print(f"p99 {result['p99_ms']:.2f} ms; {total:,} samples; flame graph {svg.name}")
    print()
    columns = "| part of the relay path | share of server CPU | µs per relayed message |"
    print_shares(shares, columns, cpu_us, 1)


if __name__ == "__main__":
    main()
