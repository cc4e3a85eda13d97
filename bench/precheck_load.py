"""``python -m bench.precheck_load`` (``make bench-precheck``): concurrent connection checks.

One Konsil process (uvicorn subprocess, production flags, SQLite seeded by ``bench/seed.py``)
pinned to ONE core; the clients (``bench/precheck_client.py``: aiortc peers that run the
browser's check against the echo peer, back to back) and the relay load generator
(``bench/load.py``) in their own processes on the other core. For each level N:

1. N checks run at once for ``--duration`` seconds: server CPU per check (the window's CPU
   seconds spread over the check cycles that fit in it), the check's wall time (start to
   verdict) and its verdicts.
2. The same N checks go on while ``bench/load.py`` relays ``--rate`` msg/s between 100 other
   rooms (patient and specialist, ``candidate`` messages, fresh rooms for every measurement):
   relay p50/p99 for those rooms.

``--repeat`` passes over the levels (3), then per level the medians. The answer: the largest N
(every level below it fitting too) whose median relay p99 stays within ``--p99-limit-ms``
(50 ms) and whose checks all say "good" on this perfect line. ``KONSIL_ECHO_MAX_CONCURRENT`` is
set from it (docs/performance.md, "Concurrent connection checks"). Latency needs a quiet
machine: the N = 0 rows are the relay alone, the baseline of each pass.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.__main__ import PROD_FLAGS, RELAY_ROOMS, ROOT, konsil_env, machine, server
from bench.procstat import cpu_seconds
from bench.seed import Seeded, seed

SERVER_CPU = 0
CLIENT_CPUS = "1"
ENDINGS = ("clear", "cap", "failed")


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` (threads made later inherit it from their maker)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task.name), cpus)


def pinned(command: list[str]) -> list[str]:
    return (
        ["taskset", "-c", CLIENT_CPUS, *command]
        if os.cpu_count() and os.cpu_count() > 1
        else command
    )  # type: ignore[operator]


@contextlib.contextmanager
def clients(
    url: str, cookies: list[str], workdir: Path
) -> Iterator[tuple[list[dict[str, Any]], int | None]]:
    """N checking clients (their pid), running until exit; the list then holds their checks."""
    checks: list[dict[str, Any]] = []
    if not cookies:
        yield checks, None
        return
    path = workdir / f"clients-{time.monotonic_ns()}.json"
    path.write_text(json.dumps({"url": url, "cookies": cookies}))
    command = pinned([sys.executable, "-m", "bench.precheck_client", str(path)])
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    try:
        line = process.stderr.readline()
        if line.strip() != "running":
            raise RuntimeError(f"clients did not start: {line}{process.stderr.read()[-3000:]}")
        yield checks, process.pid
    finally:
        process.terminate()
        out, err = process.communicate(timeout=60)
        if process.returncode != 0 or not out:
            raise RuntimeError(f"clients failed:\n{err[-3000:]}")
        checks += json.loads(out)


def relay(
    url: str, pid: int, seeded: Seeded, rooms: int, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    """``bench/load.py``'s relay on fresh rooms (a room left by both sides is not "waiting")."""
    scenario = {
        "kind": "relay",
        "target": "konsil",
        "urls": [url],
        "pids": [pid],
        "origin": "http://bench.local",
        "staff_cookie": seeded.staff_cookie,
        "rooms": seeded.rooms[rooms : rooms + RELAY_ROOMS],
        "rates": [args.rate],
        "warmup": 2,
        "duration": args.duration,
        "relay_rooms": RELAY_ROOMS,
    }
    path = workdir / f"relay-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(scenario))
    done = subprocess.run(
        pinned([sys.executable, "-m", "bench.load", str(path)]),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)["relay"][0]
    return result


def pct(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None


def level(
    n: int,
    ws_url: str,
    pid: int,
    seeded: Seeded,
    step: int,
    args: argparse.Namespace,
    workdir: Path,
) -> dict[str, Any]:
    """N checks alone, then beside the relay (step: which of the seeded relay room sets)."""
    url = ws_url.replace("ws://", "http://")
    patients = seeded.rooms[RELAY_ROOMS * args.steps :]
    cookies = [cookie for _, cookie in patients[:n]]
    load_before = os.getloadavg()[0]
    with clients(url, cookies, workdir) as (checks, client_pid):
        time.sleep(2 if n else 0)  # every client past its first set-up
        pin(pid, {SERVER_CPU})
        client_cpu0 = cpu_seconds(client_pid) if client_pid else 0.0
        cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        time.sleep(args.duration if n else 0)
        cpu1, t1 = cpu_seconds(pid), time.perf_counter()
        client_cpu = (cpu_seconds(client_pid) - client_cpu0) / (t1 - t0) if client_pid else 0.0
        relayed = relay(ws_url, pid, seeded, step * RELAY_ROOMS, args, workdir)
    window = [c for c in checks if t0 <= c["ended"] < t1]
    # Workers run checks back to back: one cycle (set-up, check, hang-up) per check.
    cycles = []
    for worker in {c["worker"] for c in checks}:
        starts = sorted(c["started"] for c in checks if c["worker"] == worker)
        cycles += [b - a for a, b in itertools.pairwise(starts)]
    cycle = statistics.mean(cycles) if cycles else None
    done = [c for c in window if "error" not in c]
    walls = [(c["ended"] - c["started"]) * 1000 for c in done]
    rtts = [c["rtt_ms"] for c in done if c.get("rtt_ms") is not None]
    return {
        "checks": n,
        "load_avg": load_before,
        "ended": len(window),
        "refused": len(window) - len(done),
        "cpu_core_share": (cpu1 - cpu0) / (t1 - t0) if n else 0.0,
        "cpu_ms_per_check": (cpu1 - cpu0) * cycle / (n * (t1 - t0)) * 1000 if cycle else None,
        "cycle_ms": cycle * 1000 if cycle else None,
        "wall_p50_ms": pct(walls, 0.5),
        "wall_max_ms": max(walls) if walls else None,
        "connect_p50_ms": pct([c["connect_ms"] for c in done], 0.5),
        "rtt_p50_ms": pct(rtts, 0.5),
        "good": sum(1 for c in done if c["verdict"] == "good"),
        "ended_by": {
            k: sum(1 for c in done if c["ended_by"] == k) for k in ("clear", "cap", "failed")
        },
        "kbps_p50": pct([c["kbps"] for c in done], 0.5),
        "relay_p50_ms": relayed["p50_ms"],
        "relay_p99_ms": relayed["p99_ms"],
        "relay_achieved": relayed["achieved"],
        "relay_sent": relayed["sent"] / args.duration,
        "relay_lost": relayed["lost"],
        "relay_core_share": relayed["cpu_s"] / args.duration,
        "client_core_share": client_cpu,
    }


def fmt(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def print_row(r: dict[str, Any]) -> None:
    print(
        f"| {r['checks']} | {fmt(r['cpu_ms_per_check'])} | {fmt(r['cpu_core_share'] * 100)} % "
        f"| {fmt(r['wall_p50_ms'])} / {fmt(r['wall_max_ms'])} | {fmt(r['connect_p50_ms'])} "
        f"| {fmt(r['rtt_p50_ms'], 1)} | {r['good']}/{r['ended'] - r['refused']} "
        f"({r['ended_by']['cap']} cap) | {fmt(r['kbps_p50'])} "
        f"| {fmt(r['relay_p50_ms'], 2)} / {fmt(r['relay_p99_ms'], 2)} "
        f"| {fmt(r['relay_sent'])} / {fmt(r['relay_achieved'])} "
        f"| {fmt(r['relay_core_share'] * 100)} % "
        f"| {fmt(r['client_core_share'] * 100)} % | {r['load_avg']:.1f} |",
        flush=True,
    )


def median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r[key] is not None]
    return statistics.median(values) if values else None


def fits(rows: list[dict[str, Any]], limit_ms: float) -> bool:
    """Median relay p99 within the limit, and every check on this perfect line said "good"."""
    p99 = median(rows, "relay_p99_ms")
    checks = sum(r["ended"] - r["refused"] for r in rows)
    good = sum(r["good"] for r in rows)
    return p99 is not None and p99 <= limit_ms and (rows[0]["checks"] == 0 or good == checks > 0)


def print_summary(results: list[dict[str, Any]], levels: list[int], limit_ms: float) -> None:
    print()
    print("Per level, the median over the repeats (p99 range in brackets):")
    print()
    print(
        "| checks at once | server CPU ms per check | server core used by checks "
        "| check wall p50 ms | good verdicts | relay p99 ms | fits |"
    )
    print("|---:|---:|---:|---:|---:|---:|---|")
    under = None
    for n in levels:
        rows = [r for r in results if r["checks"] == n]
        p99s = [r["relay_p99_ms"] for r in rows if r["relay_p99_ms"] is not None]
        ok = fits(rows, limit_ms)
        if under is None or (ok and under == levels[levels.index(n) - 1]):
            under = n if ok else under
        share = median(rows, "cpu_core_share")
        print(
            f"| {n} | {fmt(median(rows, 'cpu_ms_per_check'))} | {fmt((share or 0) * 100)} % "
            f"| {fmt(median(rows, 'wall_p50_ms'))} "
            f"| {sum(r['good'] for r in rows)}/{sum(r['ended'] - r['refused'] for r in rows)} "
            f"| {fmt(median(rows, 'relay_p99_ms'), 1)} "
            f"({fmt(min(p99s, default=None), 1)}–{fmt(max(p99s, default=None), 1)}) "
            f"| {'yes' if ok else 'no'} |"
        )
    print()
    print(
        f"Largest level (all below it fitting too) with median relay p99 <= {limit_ms:g} ms "
        f"and every check good: {under} concurrent checks on one core."
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.precheck_load", description=__doc__)
    parser.add_argument("--levels", default="0,1,2,3,4,6", help="concurrent checks")
    parser.add_argument("--repeat", type=int, default=3, help="passes over the levels")
    parser.add_argument("--duration", type=float, default=5, help="seconds per measurement")
    parser.add_argument("--rate", type=int, default=1000, help="relay msg/s for other rooms")
    parser.add_argument("--p99-limit-ms", type=float, default=50)
    parser.add_argument("--quick", action="store_true", help="levels 0,1,2,4 once (~1 minute)")
    args = parser.parse_args()
    if args.quick:
        args.levels, args.repeat = "0,1,2,4", 1
    levels = [int(x) for x in args.levels.split(",")]
    args.steps = len(levels) * args.repeat
    keep = os.environ.get("BENCH_KEEP")
    with tempfile.TemporaryDirectory(prefix="konsil-precheck-") as scratch:
        workdir = Path(keep or scratch)
        db = workdir / "precheck.db"
        relay_rooms = RELAY_ROOMS * args.steps
        seeded = seed(f"sqlite+aiosqlite:///{db}", relay_rooms + max(levels), relay_rooms)
        env = {
            **konsil_env(db, "memory://"),
            "KONSIL_ECHO_MAX_CONCURRENT": "1000",  # the benchmark finds the limit
            "KONSIL_LOG_LEVEL": "WARNING",
        }
        print(f"Machine: {machine()}; load average {os.getloadavg()[0]:.1f} at start")
        print(
            f"Konsil: uvicorn {' '.join(PROD_FLAGS)}, pinned to CPU {SERVER_CPU}; clients and "
            f"relay load generator on CPU {CLIENT_CPUS}; relay {args.rate:,} msg/s over "
            f"{RELAY_ROOMS} rooms; {args.duration:g} s per measurement; {args.repeat} passes."
        )
        print()
        print(
            "| checks at once | server CPU ms per check | server core used by checks "
            "| check wall p50 / max ms | connected p50 ms | probe RTT p50 ms "
            "| good verdicts | kbit/s p50 | relay p50 / p99 ms | relay msg/s sent / delivered "
            "| server core in relay phase | clients' core | load avg |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        results = []
        with server("konsil", workdir, env, PROD_FLAGS) as (process, url):
            pin(process.pid, {SERVER_CPU})
            for step, n in enumerate(levels * args.repeat):
                if process.poll() is not None:
                    raise RuntimeError(f"Konsil exited with {process.returncode}, see {workdir}")
                result = level(n, url, process.pid, seeded, step, args, workdir)
                results.append(result)
                print_row(result)
        print_summary(results, levels, args.p99_limit_ms)


if __name__ == "__main__":
    main()
