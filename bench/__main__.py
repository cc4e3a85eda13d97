"""``python -m bench``: runs every scenario against Konsil and the baseline and prints the table.

Servers are uvicorn subprocesses on 127.0.0.1 with the production flags (deploy/Dockerfile);
the load generator is another process (bench/load.py). Everything stops by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import postgres
from bench.seed import Seeded, seed

ROOT = Path(__file__).resolve().parents[1]
ORIGIN = "http://bench.local"
REDIS_URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
PROD_FLAGS = ["--ws", "websockets-sansio", "--loop", "uvloop", "--ws-per-message-deflate", "false"]
# uvicorn's websocket implementations that ``--ws`` may compare with the production one (the
# idle step and ``bench.memtrace``); wsproto needs the ``wsproto`` package, not in the lock.
WS_IMPLEMENTATIONS = ("websockets-sansio", "websockets", "wsproto")


def with_ws(flags: list[str], ws: str) -> list[str]:
    """``flags`` with uvicorn's websocket implementation ``ws`` instead of theirs."""
    at = flags.index("--ws") + 1
    return [*flags[:at], ws, *flags[at + 1 :]]


def has_wsproto() -> bool:
    try:
        import wsproto  # noqa: F401
    except ImportError:
        return False
    return True


RELAY_ROOMS, SETUP_ROOMS = 100, 50
STEPS = ("single", "two", "idle", "flags")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(
    target: str, workdir: Path, env: dict[str, str], flags: list[str], app: str | None = None
) -> Iterator[Any]:
    port = free_port()
    if app is None:
        app = "app.main:create_app" if target == "konsil" else "bench.baseline:create_app"
    command = [sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--no-access-log", "--ws-max-size", "65536", *flags]
    log = (workdir / f"{target}-{port}.log").open("wb")
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 120  # a busy shared machine starts it slowly
        while True:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{target} server did not start, see {log.name}")
            time.sleep(0.1)
        yield process, f"ws://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def konsil_env(db: Path, broker: str) -> dict[str, str]:
    return {
        "KONSIL_ENVIRONMENT": "development",
        "KONSIL_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "KONSIL_BROKER_URL": broker,
        "KONSIL_ALLOWED_ORIGINS": json.dumps([ORIGIN]),
        # The load generator drives few connections hard; per-connection limits are raised so
        # the benchmark measures the relay, not the rate limiter's refusals (its cost stays).
        "KONSIL_WS_RATE_PER_SECOND": "100000",
        "KONSIL_WS_RATE_BURST": "100000",
        "KONSIL_WS_SEND_QUEUE": "4096",
        # One specialist session holds the staff side of every room (100 websockets); the
        # per-session count is still checked on each connection.
        "KONSIL_WS_MAX_PER_SESSION": "1000",
        "KONSIL_LOG_JSON": "true",
        "KONSIL_LOG_LEVEL": "INFO",
    }


def load(scenario: dict[str, Any], workdir: Path) -> dict[str, Any]:
    path = workdir / f"scenario-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(scenario))
    done = subprocess.run(
        [sys.executable, "-m", "bench.load", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    path.with_suffix(".err").write_text(done.stderr)  # kept with the logs (BENCH_KEEP)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


class Bench:
    def __init__(self, workdir: Path, quick: bool) -> None:
        self.workdir = workdir
        self.warmup, self.duration = (1, 2) if quick else (2, 6)
        self.rates = [1000, 5000, 10000]
        self.levels = [200, 500, 1000] if quick else [1000, 5000, 10000]
        self.dbs = 0

    def database(self) -> tuple[Path, Any]:
        """A fresh SQLite database, seeded: for ONE Konsil process (SQLite's setup)."""
        self.dbs += 1
        db = self.workdir / f"konsil-{self.dbs}.db"
        return db, self.seeded(f"sqlite+aiosqlite:///{db}")

    def seeded(self, url: str) -> Seeded:
        # Every idle connection is a patient who joined their own waiting room, so the memory
        # figure includes the room, its subscription and the participant, not only the socket.
        idle_rooms = max(self.levels)
        rooms = RELAY_ROOMS + SETUP_ROOMS
        return seed(url, rooms + idle_rooms, staff_rooms=rooms)

    def scenario(
        self, kind: str, target: str, urls: list[str], pids: list[int], seeded: Any, **extra: Any
    ) -> dict[str, Any]:
        rooms = seeded.rooms if seeded else [(900_000 + i, "") for i in range(250)]
        return {
            "kind": kind,
            "target": target,
            "urls": urls,
            "pids": pids,
            "origin": ORIGIN,
            "staff_cookie": seeded.staff_cookie if seeded else "",
            "rooms": rooms,
            "rates": self.rates,
            "levels": self.levels,
            "warmup": self.warmup,
            "duration": self.duration,
            "relay_rooms": RELAY_ROOMS,
            "setup_rooms": SETUP_ROOMS,
            **extra,
        }

    def traffic(
        self,
        target: str,
        instances: int,
        flags: list[str] = PROD_FLAGS,
        rates: list[int] | None = None,
        deflate: bool = False,
    ) -> dict[str, Any]:
        """Relay latency/CPU at each rate, then call setups, on fresh servers.

        Several Konsil processes share a PostgreSQL database and Redis, as in production (SQLite
        is the one-process setup: see ``bench.postgres``); one process runs on SQLite."""
        seeded: Seeded | None = None
        env: dict[str, str] = {}
        with contextlib.ExitStack() as stack:
            if target == "konsil" and instances > 1:
                database_url = stack.enter_context(postgres.database())
                seeded = self.seeded(database_url)
                env = konsil_env(self.workdir / "unused.db", REDIS_URL)
                env["KONSIL_DATABASE_URL"] = database_url
            elif target == "konsil":
                db, seeded = self.database()
                env = konsil_env(db, "memory://")
            elif instances > 1:
                env = {"BENCH_REDIS_URL": REDIS_URL}
            servers = [
                stack.enter_context(server(target, self.workdir, env, flags))
                for _ in range(instances)
            ]
            urls = [url for _, url in servers]
            pids = [process.pid for process, _ in servers]
            relay_sc = self.scenario("relay", target, urls, pids, seeded, deflate=deflate)
            if rates:
                relay_sc["rates"] = rates
            result = load(relay_sc, self.workdir)
            if rates is None:
                setup_sc = self.scenario("setup", target, urls, pids, seeded)
                setup_sc["rooms"] = setup_sc["rooms"][RELAY_ROOMS:]
                setup_sc["setup_rooms"] = relay_sc["setup_rooms"]
                result.update(load(setup_sc, self.workdir))
        return result

    def idle(self, target: str, flags: list[str] = PROD_FLAGS) -> dict[str, Any]:
        seeded, env = None, {}
        if target == "konsil":
            db, seeded = self.database()
            env = konsil_env(db, "memory://")
        with server(target, self.workdir, env, flags) as (process, url):
            sc = self.scenario("idle", target, [url], [process.pid], seeded)
            if seeded:
                sc["rooms"] = seeded.rooms[RELAY_ROOMS + SETUP_ROOMS :]
            return load(sc, self.workdir)


# ------------------------------------------------------------------------------ output


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "n/a"


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def row(name: str, konsil: float | None, base: float | None, digits: int = 1) -> str:
    return f"| {name} | {fmt(konsil, digits)} | {fmt(base, digits)} | {ratio(konsil, base)} |"


def traffic_rows(label: str, k: dict[str, Any], b: dict[str, Any]) -> list[str]:
    lines = []
    for kr, br in zip(k["relay"], b["relay"], strict=True):
        at = f"{label}, {kr['offered']:,} msg/s offered"
        lines.append(row(f"{at}: achieved msg/s", kr["achieved"], br["achieved"], 0))
        lines.append(
            row(f"{at}: CPU µs per relayed msg", kr["cpu_us_per_msg"], br["cpu_us_per_msg"])
        )
        lines.append(row(f"{at}: p50 latency ms", kr["p50_ms"], br["p50_ms"], 2))
        lines.append(row(f"{at}: p99 latency ms", kr["p99_ms"], br["p99_ms"], 2))
        if kr["lost"] or br["lost"]:
            lines.append(row(f"{at}: not delivered in window", kr["lost"], br["lost"], 0))
        if kr.get("closed") or br.get("closed"):
            lines.append(
                row(f"{at}: connections the server closed, so far", kr["closed"], br["closed"], 0)
            )
    lines.append(
        row(
            f"{label}: call setups/s (offer+answer+10+10 candidates)",
            k["setups_per_s"],
            b["setups_per_s"],
        )
    )
    lines.append(
        row(f"{label}: CPU ms per call setup", k["cpu_ms_per_setup"], b["cpu_ms_per_setup"], 2)
    )
    return lines


def idle_rows(k: dict[str, Any], b: dict[str, Any]) -> list[str]:
    lines = []
    by_level = {x["connections"]: x for x in b["idle"]}
    for kl in k["idle"]:
        bl = by_level.get(kl["connections"], {})
        name = f"memory per idle authenticated connection @ {kl['connections']:,}, KiB"
        if "error" in kl or "error" in bl:
            lines.append(f"| {name} | {kl.get('error', '')} | {bl.get('error', '')} | n/a |")
            continue
        lines.append(row(name, kl["bytes_per_conn"] / 1024, bl["bytes_per_conn"] / 1024))
        at = f"{kl['connections']:,}"
        cpu_name = f"server CPU per idle connection opened (to {at}), ms"
        lines.append(row(cpu_name, kl.get("cpu_ms_per_conn"), bl.get("cpu_ms_per_conn"), 2))
    return lines


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    return (
        f"{os.cpu_count()} CPUs ({model}), {mem:,} MiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short smoke run (~1 minute)")
    parser.add_argument("--no-flags", action="store_true", help="skip the server-flag comparison")
    parser.add_argument("--no-idle", action="store_true", help="skip the idle-connection memory")
    parser.add_argument(
        "--ws",
        choices=WS_IMPLEMENTATIONS,
        default="websockets-sansio",
        help="uvicorn's websocket implementation for the idle step (both servers)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=STEPS,
        help="run only this step (repeatable): single = one instance, two = two instances "
        "(PostgreSQL + Redis), idle = idle connections, flags = server flags",
    )
    args = parser.parse_args()
    steps = set(args.only or STEPS)
    if args.no_flags:
        steps.discard("flags")
    if args.no_idle:
        steps.discard("idle")
    if "two" in steps and (reason := postgres.unreachable()):
        parser.error(
            f"the two-instance step needs PostgreSQL at {postgres.ADMIN_DSN} ({reason}); "
            "set BENCH_POSTGRES, or leave the step out (--only single --only idle ...)"
        )
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it
    started = time.monotonic()
    keep = os.environ.get("BENCH_KEEP")  # a directory to keep server logs in
    with tempfile.TemporaryDirectory(prefix="konsil-bench-") as scratch:
        tmp = keep or scratch
        bench = Bench(Path(tmp), args.quick)
        step = lambda text: print(f"[{time.monotonic() - started:5.0f}s] {text}", flush=True)  # noqa: E731
        k1 = b1 = k2 = b2 = None
        if "single" in steps:
            step("single instance: Konsil (memory broker)")
            k1 = bench.traffic("konsil", 1)
            step("single instance: baseline")
            b1 = bench.traffic("baseline", 1)
        if "two" in steps:
            step("two instances through Redis: Konsil (PostgreSQL)")
            k2 = bench.traffic("konsil", 2)
            step("two instances through Redis: baseline")
            b2 = bench.traffic("baseline", 2)
        ki: dict[str, Any] = {"idle": []}
        bi: dict[str, Any] = {"idle": []}
        if "idle" in steps:
            idle_flags = with_ws(PROD_FLAGS, args.ws)
            step(f"idle connections: Konsil (--ws {args.ws})")
            ki = bench.idle("konsil", idle_flags)
            step(f"idle connections: baseline (--ws {args.ws})")
            bi = bench.idle("baseline", idle_flags)
        flags: list[tuple[str, dict[str, Any]]] = []
        if "flags" in steps:
            variants = {
                "websockets-sansio + uvloop (default)": (PROD_FLAGS, False),
                "websockets (legacy) + uvloop": (
                    ["--ws", "websockets", "--loop", "uvloop", "--ws-per-message-deflate", "false"],
                    False,
                ),
                "websockets-sansio + asyncio loop": (
                    [
                        "--ws",
                        "websockets-sansio",
                        "--loop",
                        "asyncio",
                        "--ws-per-message-deflate",
                        "false",
                    ],
                    False,
                ),
                "websockets-sansio + uvloop + permessage-deflate": (
                    [
                        "--ws",
                        "websockets-sansio",
                        "--loop",
                        "uvloop",
                        "--ws-per-message-deflate",
                        "true",
                    ],
                    True,
                ),
            }
            if has_wsproto():
                variants["wsproto + uvloop"] = (with_ws(PROD_FLAGS, "wsproto"), False)
            for name, (variant, deflate) in variants.items():
                step(f"server flags: {name}")
                flags.append((name, bench.traffic("konsil", 1, variant, [2000], deflate)))
    print_report(k1, b1, k2, b2, ki, bi, flags, time.monotonic() - started, args.ws)


def print_report(
    k1: dict[str, Any] | None,
    b1: dict[str, Any] | None,
    k2: dict[str, Any] | None,
    b2: dict[str, Any] | None,
    ki: dict[str, Any],
    bi: dict[str, Any],
    flags: list[tuple[str, dict[str, Any]]],
    seconds: float,
    ws: str = "websockets-sansio",
) -> None:
    print()
    print(f"Machine: {machine()}")
    print("Servers: uvicorn " + " ".join(PROD_FLAGS) + "; load generator in its own process.")
    if ki["idle"] and ws != "websockets-sansio":
        print(f"Idle step: --ws {ws}")
    print()
    print("| measurement | Konsil | baseline | Konsil/baseline |")
    print("|---|---:|---:|---:|")
    lines = idle_rows(ki, bi)
    if k2 is not None and b2 is not None:
        lines = traffic_rows("2 instances via Redis", k2, b2) + lines
    if k1 is not None and b1 is not None:
        lines = traffic_rows("1 instance", k1, b1) + lines
    for line in lines:
        print(line)
    if flags:
        print()
        print("Server flags (Konsil, 1 instance, 2,000 msg/s offered):")
        print()
        print("| flags | CPU µs per relayed msg | p50 ms | p99 ms |")
        print("|---|---:|---:|---:|")
        for name, result in flags:
            r = result["relay"][0]
            print(
                f"| {name} | {fmt(r['cpu_us_per_msg'])} | {fmt(r['p50_ms'], 2)} | "
                f"{fmt(r['p99_ms'], 2)} |"
            )
    print()
    print(f"Total time: {seconds:.0f} s")


if __name__ == "__main__":
    main()
