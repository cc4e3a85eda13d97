"""Real uvicorn servers for end-to-end tests, on free loopback ports.

``live_server`` serves ``create_app(settings)`` inside the test's process, so the test can
reach the app's resources. ``run_server`` starts ``uvicorn app.main:create_app --factory`` as a
separate OS process whose settings come from ``KONSIL_*`` environment variables;
``run_server_async`` is the same for async tests (starting and stopping happen off the loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from app.main import create_app
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
# A bound for a hung start, not a speed test: on a busy 2-core machine (CI beside browser
# tests) a server process importing the app has been seen to need more than 20 s.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
LOG_TAIL = 4000


def free_port(*, udp: bool = False) -> int:
    """A free TCP port on 127.0.0.1; with ``udp``, one free for UDP too (coturn listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            if not udp:
                return port
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as datagram:
                try:
                    datagram.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


@dataclass
class Listening:
    """Where a server on 127.0.0.1 listens."""

    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


@dataclass
class Live(Listening):
    """``create_app(settings)`` served by uvicorn in this process."""

    app: Starlette

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        factory: async_sessionmaker[AsyncSession] = self.app.state.resources.sessions
        return factory


@contextlib.asynccontextmanager
async def live_server(
    settings: Settings, *, port: int | None = None, host: str = "127.0.0.1"
) -> AsyncIterator[Live]:
    """Serves ``create_app(settings)`` with uvicorn (websockets-sansio) until the block ends;
    ``host``: another address of this machine (e.g. a test's own veth pair)."""
    app = create_app(settings)
    port = port or free_port()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ws="websockets-sansio",
        log_level="warning",
        ws_per_message_deflate=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield Live(port=port, app=app)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, STOP_TIMEOUT)


@dataclass
class ServerProcess(Listening):
    """``uvicorn app.main:create_app --factory`` in a separate OS process."""

    process: subprocess.Popen[bytes]
    log: Path

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)


def start_server(workdir: Path, *args: str, **env: str) -> ServerProcess:
    """Starts uvicorn; ``env`` holds settings (``database_url="..."`` -> KONSIL_DATABASE_URL).

    Unless given, the database is ``workdir/konsil.db`` and the base URL is the server's own.
    """
    port = free_port()
    log = workdir / f"server-{port}.log"
    environment = {
        **os.environ,
        "KONSIL_ENVIRONMENT": "test",
        "KONSIL_SECOND_FACTOR_ROLES": "[]",
        "KONSIL_LOGIN_REFUSAL_PACE_SECONDS": "0",
        "KONSIL_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'konsil.db'}",
        "KONSIL_BASE_URL": f"http://127.0.0.1:{port}",
        **{f"KONSIL_{k.upper()}": v for k, v in env.items()},
    }
    command = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log", *args]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=out, stderr=out)
    return ServerProcess(port=port, process=process, log=log)


def wait_until_serving(server: ServerProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}")
        with contextlib.suppress(httpx2.HTTPError):
            if httpx2.get(server.url + "/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server did not start within {START_TIMEOUT} s")


def stop_server(server: ServerProcess) -> None:
    """SIGTERM (a clean shutdown closes the broker and database), SIGKILL if that hangs."""
    if server.process.poll() is None:
        server.terminate()
        try:
            server.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            server.process.kill()
    server.process.wait()


def show_log(server: ServerProcess) -> None:
    # Printed while the test fails, so pytest shows it under "Captured stderr".
    text = server.log.read_text(errors="replace")[-LOG_TAIL:]
    print(f"--- {server.log.name} (last {LOG_TAIL} characters) ---\n{text}", file=sys.stderr)


@contextlib.contextmanager
def run_server(workdir: Path, *args: str, **env: str) -> Iterator[ServerProcess]:
    """A serving server process (see ``start_server``); its log is printed if the block fails."""
    server = start_server(workdir, *args, **env)
    try:
        wait_until_serving(server)
        yield server
    except BaseException:
        show_log(server)
        raise
    finally:
        stop_server(server)


@contextlib.asynccontextmanager
async def run_server_async(workdir: Path, *args: str, **env: str) -> AsyncIterator[ServerProcess]:
    """``run_server`` for async tests."""
    server = start_server(workdir, *args, **env)
    try:
        await asyncio.to_thread(wait_until_serving, server)
        yield server
    except BaseException:
        show_log(server)
        raise
    finally:
        await asyncio.to_thread(stop_server, server)
