"""``python -m bench.memtrace``: where the memory of waiting patients goes, by owner.

A Konsil server (uvicorn with the production flags, as ``Bench.idle`` runs it) is started with
``tracemalloc`` on; on SIGUSR1 it writes a snapshot and a count of the objects the garbage
collector sees, by type. This driver takes one before any patient connects and one after each
level of patients (authenticated, joined, subscribed: as ``bench.load``'s idle scenario), then
prints the Python memory per patient by owner: the innermost Konsil frame that allocated it
(``app/signaling/...``), or, with no Konsil frame on the stack, the library (uvicorn,
websockets, starlette, ...). Also the objects per patient by type (tasks, coroutines, dicts).

Tracing makes the server slower and larger: its RSS is not the figure to quote (``Bench.idle``
is); what it gives is the share of each owner in the Python heap. Only this benchmark installs
the signal handler (``create_app`` below), never the production app.

    .venv/bin/python -m bench.memtrace --levels 300   # ~5 minutes on a busy 2-core machine
    .venv/bin/python -m bench.memtrace --levels 300 --ws wsproto   # another uvicorn websocket
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import pickle
import signal
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

from starlette.applications import Starlette

from bench.__main__ import (
    PROD_FLAGS,
    RELAY_ROOMS,
    SETUP_ROOMS,
    WS_IMPLEMENTATIONS,
    konsil_env,
    server,
    with_ws,
)
from bench.load import open_ws
from bench.procstat import rss_bytes
from bench.seed import seed

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 10
WARMUP = 50
BATCH = 10  # joins at once: a traced server is several times slower


def create_app() -> Starlette:
    """The production app, in a server that dumps its heap on SIGUSR1 (this benchmark only)."""
    from app.main import create_app as konsil

    out = Path(os.environ["BENCH_MEMTRACE_DIR"])
    dumps = 0

    def dump(_signum: int, _frame: FrameType | None) -> None:
        nonlocal dumps
        if not tracemalloc.is_tracing():
            # From the first dump on: what was there before is not in the difference anyway,
            # and an untraced start and warm-up go several times faster.
            tracemalloc.start(FRAMES)
        gc.collect()
        snapshot = tracemalloc.take_snapshot()
        types: Counter[str] = Counter()
        sizes: Counter[str] = Counter()
        for obj in gc.get_objects():
            kind = type(obj)
            name = f"{kind.__module__}.{kind.__qualname__}"
            types[name] += 1
            sizes[name] += sys.getsizeof(obj)
        path = out / f"dump-{dumps}.pickle"
        with path.with_suffix(".tmp").open("wb") as f:
            pickle.dump({"snapshot": snapshot, "types": types, "sizes": sizes}, f)
        path.with_suffix(".tmp").rename(path)
        dumps += 1

    signal.signal(signal.SIGUSR1, dump)
    return konsil()


def owner(trace: tracemalloc.Traceback) -> str:
    """The innermost Konsil frame (file:function line) or the innermost library's name."""
    frames = list(trace)  # oldest first
    for frame in reversed(frames):
        path = frame.filename
        if "/app/" in path and "site-packages" not in path:
            return "app/" + path.split("/app/", 1)[1] + f":{frame.lineno}"
    inner = frames[-1].filename
    if "site-packages/" in inner:
        return "lib " + inner.split("site-packages/", 1)[1].split("/", 1)[0]
    return "stdlib " + Path(inner).name


def library(trace: tracemalloc.Traceback) -> str:
    inner = list(trace)[-1].filename
    if "site-packages/" in inner:
        return inner.split("site-packages/", 1)[1].split("/", 1)[0]
    if "/app/" in inner:
        return "app/" + inner.split("/app/", 1)[1]
    return Path(inner).name


async def joined(ws: Any) -> None:
    # A traced server on a busy machine can take far longer than ``bench.load.until`` waits.
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 600))
        if message["type"] == "error":
            raise RuntimeError(message)
        if message["type"] == "joined":
            return


async def connect_patients(url: str, rooms: list[Any], start: int, stop: int) -> list[Any]:
    sc = {"origin": "http://bench.local"}

    async def one(i: int) -> Any:
        aid, cookie = rooms[i]
        ws = await open_ws(f"{url}/ws?as=patient&appointment={aid}", sc, f"konsil_patient={cookie}")
        await ws.send(json.dumps({"type": "join"}))
        await joined(ws)
        return ws

    opened = []
    for first in range(start, stop, BATCH):
        opened += await asyncio.gather(*(one(i) for i in range(first, min(stop, first + BATCH))))
    return opened


async def close_all(opened: list[Any]) -> None:
    await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)


def take(pid: int, out: Path, n: int) -> dict[str, Any]:
    os.kill(pid, signal.SIGUSR1)
    path = out / f"dump-{n}.pickle"
    deadline = time.monotonic() + 300
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("no heap dump from the server")
        time.sleep(0.2)
    with path.open("rb") as f:
        dumped: dict[str, Any] = pickle.load(f)  # noqa: S301 (our own server's, in our tmp dir)
    return dumped


def report(before: dict[str, Any], after: dict[str, Any], n: int, top: int) -> None:
    stats = after["snapshot"].compare_to(before["snapshot"], "traceback")
    total = sum(s.size_diff for s in stats)
    print(f"\n## {n:,} patients: traced Python heap {total / n / 1024:.1f} KiB per patient\n")
    for title, key in (("owner (innermost Konsil frame)", owner), ("allocated in", library)):
        by: Counter[str] = Counter()
        for s in stats:
            by[key(s.traceback)] += s.size_diff
        print(f"| {title} | KiB per patient |\n|---|---:|")
        for name, size in by.most_common(top):
            print(f"| {name} | {size / n / 1024:.2f} |")
        print()
    print("| objects (gc-tracked) by type | per patient | KiB per patient (getsizeof) |")
    print("|---|---:|---:|")
    grown = after["types"] - before["types"]
    for name, count in grown.most_common(top):
        size = after["sizes"][name] - before["sizes"][name]
        print(f"| {name} | {count / n:.2f} | {size / n / 1024:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memtrace", description=__doc__)
    parser.add_argument("--levels", type=int, nargs="+", default=[1000])
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--ws",
        choices=WS_IMPLEMENTATIONS,
        default="websockets-sansio",
        help="uvicorn's websocket implementation (the production flags have websockets-sansio)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="konsil-memtrace-") as tmp:
        work = Path(tmp)
        db = work / "konsil.db"
        staff = RELAY_ROOMS + SETUP_ROOMS  # the same layout as ``Bench.database``
        total = staff + WARMUP + max(args.levels)
        seeded = seed(f"sqlite+aiosqlite:///{db}", total, staff_rooms=staff)
        rooms = seeded.rooms[staff:]
        env = {**konsil_env(db, "memory://"), "BENCH_MEMTRACE_DIR": str(work)}
        flags = with_ws(PROD_FLAGS, args.ws)
        with server("konsil", work, env, flags, app="bench.memtrace:create_app") as (
            process,
            url,
        ):
            loop = asyncio.new_event_loop()
            # A few patients first, so one-off allocations (caches, metric children) are not
            # counted as if every patient made them.
            opened = loop.run_until_complete(connect_patients(url, rooms, 0, WARMUP))
            time.sleep(2)
            base_rss = rss_bytes(process.pid)
            before = take(process.pid, work, 0)
            for n, level in enumerate(args.levels, 1):
                opened += loop.run_until_complete(
                    connect_patients(url, rooms, len(opened), WARMUP + level)
                )
                time.sleep(3)
                grown = rss_bytes(process.pid) - base_rss
                print(f"\nRSS (traced server) +{grown / level / 1024:.1f} KiB per patient")
                report(before, take(process.pid, work, n), level, args.top)
            loop.run_until_complete(close_all(opened))
            loop.close()


if __name__ == "__main__":
    main()
