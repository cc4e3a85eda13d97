"""Real processes for the fault tests: Konsil instances behind HAProxy, a private Redis and a
PostgreSQL database of their own, all on 127.0.0.1.

Everything a ``Cluster`` starts is stopped when its block ends, also when the test fails; each
child process also gets SIGKILL from the kernel if the test process itself dies
(``PR_SET_PDEATHSIG``), so a killed pytest leaves nothing behind. Every wait has a bound.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx2
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db import create_engine, session_factory
from app.settings import Settings
from tests.conftest import create_schema
from tests.factories import Demo, seed
from tests.live import ROOT, free_port
from tests.services import PG_ADMIN_DSN, require, require_postgres
from tests.waiting import until

START_TIMEOUT = 60.0
# SIGTERM: drain + websockets closed + lifespan shutdown; more means it hangs.
STOP_TIMEOUT = 40.0
LOG_TAIL = 3000
# Like deploy/compose.yaml (5 s there): /readyz 503 this long before the server stops. The
# proxy checks every 0.5 s (Caddy in deploy/: 2 s), so 2 s moves new connections in time.
DRAIN_SECONDS = 2
UVICORN_ARGS = (
    "--ws",
    "websockets-sansio",
    "--loop",
    "uvloop",
    "--ws-per-message-deflate",
    "false",
    "--timeout-graceful-shutdown",
    "20",
)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(
    command: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Starts ``command`` with its output in ``log``; it is killed if this process dies.

    Called on the event loop's thread on purpose: the kernel sends the death signal when the
    *thread* that forked ends, and a worker thread of ``asyncio.to_thread`` may end any time.
    """
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )


async def wait_exit(process: subprocess.Popen[bytes], limit: float) -> int:
    """The exit status, or SIGKILL after ``limit`` seconds (then raises: a hang is a finding)."""
    deadline = time.monotonic() + limit
    while process.poll() is None:
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise TimeoutError(f"process {process.pid} did not exit within {limit} s")
        await asyncio.sleep(0.05)
    return process.returncode


def reap(process: subprocess.Popen[bytes] | None) -> None:
    """Stops a process we started, whatever state it is in (cleanup path: never raises)."""
    if process is None or process.poll() is not None:
        return
    with suppress(OSError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-LOG_TAIL:]
    except OSError:
        return ""


# --- Redis ---------------------------------------------------------------------------------


@dataclass
class RedisServer:
    """A redis-server of the test's own on a free port: stopping it disturbs nobody else."""

    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        require(binary is not None, "redis-server")
        assert binary is not None
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no"]
        self.process = spawn(command, self.workdir / f"redis-{self.port}.log")
        await until(self._answers, 10, "private redis-server starts")

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(
                f"redis-server exited: {tail(self.workdir / f'redis-{self.port}.log')}"
            )
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    async def stop(self) -> None:
        """Stops the server process (SIGTERM; nothing is saved: ``--save ""``)."""
        assert self.process is not None
        self.process.terminate()
        await wait_exit(self.process, 10)


# --- Konsil instances ----------------------------------------------------------------------


@dataclass
class Instance:
    """One ``uvicorn app.main:create_app`` process; restarts on the same port."""

    name: str
    workdir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / f"konsil-{self.name}.log"

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        command = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--no-access-log"]
        self.process = spawn(command + list(UVICORN_ARGS), self.log, {**os.environ, **self.env})

    async def wait_ready(self, limit: float = START_TIMEOUT) -> None:
        async with httpx2.AsyncClient(base_url=self.url, timeout=2) as client:

            async def ready() -> bool:
                if self.process is None or self.process.poll() is not None:
                    raise RuntimeError(f"instance {self.name} exited:\n{tail(self.log)}")
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx2.HTTPError:
                    return False

            await until(ready, limit, f"instance {self.name} ready", step=0.1)

    async def readyz(self) -> tuple[int, dict[str, object]]:
        async with httpx2.AsyncClient(base_url=self.url, timeout=5) as client:
            response = await client.get("/readyz")
            return response.status_code, response.json()

    def sigterm(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()

    async def stopped(self, limit: float = STOP_TIMEOUT) -> int:
        assert self.process is not None
        return await wait_exit(self.process, limit)


# --- HAProxy -------------------------------------------------------------------------------

_HAPROXY = """\
global
    maxconn 4096
    stats socket {socket} mode 600 level admin

defaults
    mode http
    timeout connect 1s
    timeout client 120s
    timeout server 120s
    timeout tunnel 1h
    timeout http-request 10s
    # A refused connection (instance restarting) is retried on the other instance.
    retries 3
    option redispatch 1

frontend konsil
    bind 127.0.0.1:{port}
{binds}    default_backend instances

backend instances
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    # Which instance answered (the websocket handshake too): lets the test count the spread.
    http-response set-header X-Konsil-Instance %[srv_name]
    default-server inter 500ms fall 1 rise 2
{servers}
"""


@dataclass
class Proxy:
    """HAProxy from Debian in front of the instances, health-checking ``/readyz``; it also
    listens on the same port of ``addresses`` (e.g. the root end of a test's veth pair)."""

    workdir: Path
    port: int = field(default_factory=free_port)
    addresses: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def ws_at(self, address: str) -> str:
        """The websocket URL on another of ``addresses``."""
        return f"ws://{address}:{self.port}/ws"

    @property
    def socket_path(self) -> Path:
        return self.workdir / "haproxy.sock"

    async def start(self, instances: list[Instance]) -> None:
        binary = shutil.which("haproxy")
        require(binary is not None, "haproxy (Debian package haproxy)")
        assert binary is not None
        servers = "\n".join(f"    server {i.name} 127.0.0.1:{i.port} check" for i in instances)
        config = self.workdir / "haproxy.cfg"
        binds = "".join(f"    bind {a}:{self.port}\n" for a in self.addresses)
        config.write_text(
            _HAPROXY.format(socket=self.socket_path, port=self.port, binds=binds, servers=servers)
        )
        self.process = spawn([binary, "-db", "-f", str(config)], self.workdir / "haproxy.log")
        for instance in instances:
            await self.wait_state(instance, up=True)

    def _states(self) -> dict[str, str]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(2)
            conn.connect(str(self.socket_path))
            conn.sendall(b"show stat\n")
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        states = {}
        for line in data.decode().splitlines():
            cells = line.split(",")
            if len(cells) > 17 and cells[0] == "instances" and cells[1] != "BACKEND":
                states[cells[1]] = cells[17]
        return states

    async def wait_state(self, instance: Instance, *, up: bool, limit: float = 20) -> None:
        """Until HAProxy's health check sees ``instance`` up (or down)."""

        def seen() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"haproxy exited:\n{tail(self.workdir / 'haproxy.log')}")
            try:
                state = self._states().get(instance.name, "")
            except OSError:
                return False
            return state.startswith("UP") if up else state.startswith(("DOWN", "MAINT"))

        await until(seen, limit, f"proxy sees {instance.name} {'up' if up else 'down'}")


# --- the cluster ---------------------------------------------------------------------------


@dataclass
class Cluster:
    workdir: Path
    database_url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    demo: Demo
    settings: Settings
    redis: RedisServer
    instances: list[Instance]
    proxy: Proxy
    postgres: PrivatePostgres | None = None

    async def restart(self, instance: Instance) -> None:
        """Starts a stopped instance again and waits until the proxy sends it traffic."""
        instance.start()
        await instance.wait_ready()
        await self.proxy.wait_state(instance, up=True)

    def tracebacks(self) -> list[str]:
        """The instances' logged tracebacks (whole log files, every start), one line each:
        the instance, the error, and where in Konsil's code: the two innermost frames outside
        the broker's client, then the innermost of all (``a: ConnectionError at
        app/signaling/endpoint.py in _give_up_seat > app/signaling/seats.py in disconnect >
        app/broker/redis.py in refresh``)."""
        found = []
        for instance in self.instances:
            text = instance.log.read_text(errors="replace") if instance.log.exists() else ""
            for block in text.split("Traceback (most recent call last):")[1:]:
                if block.rstrip().endswith("while handling:"):
                    continue  # the cause of the one that follows, which names it
                lines = block.splitlines()[1:]
                frames = re.findall(r'File "[^"]*/(app/[^"]+)", line \d+, in (\w+)', block)
                error = next((line for line in lines if line and not line[0].isspace()), "?")
                named = [f"{path} in {function}" for path, function in frames]
                logic = [n for n in named if not n.startswith("app/broker/")]
                where = " > ".join(dict.fromkeys([*logic[-2:], *named[-1:]])) or "?"
                found.append(f"{instance.name}: {error} at {where}")
        return found

    def logs(self) -> str:
        parts = [f"--- {i.log.name} ---\n{tail(i.log)}" for i in self.instances]
        parts.append(f"--- haproxy.log ---\n{tail(self.workdir / 'haproxy.log')}")
        return "\n".join(parts)


@asynccontextmanager
async def private_database() -> AsyncIterator[str]:
    """A new PostgreSQL database on the shared server, dropped afterwards."""
    require_postgres()
    name = f"konsil_chaos_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@asynccontextmanager
async def cluster(
    workdir: Path,
    count: int = 2,
    postgres: PrivatePostgres | None = None,
    proxy_addresses: tuple[str, ...] = (),
    **settings: str,
) -> AsyncIterator[Cluster]:
    """``count`` Konsil instances on one new PostgreSQL database (demo data) and a private
    Redis, behind HAProxy; ``settings`` are extra KONSIL_* values (``ws_resume_seconds="15"``).
    With ``postgres`` the database lives in that private server (started here) instead.
    ``proxy_addresses``: more local addresses the proxy listens on, besides 127.0.0.1."""
    async with AsyncExitStack() as stack:
        if postgres is None:
            database_url = await stack.enter_async_context(private_database())
        else:
            stack.callback(postgres.stop)
            await postgres.start()
            database_url = postgres.url
        await create_schema(database_url)
        engine = create_engine(database_url)
        stack.push_async_callback(engine.dispose)
        sessions = session_factory(engine)
        demo = await seed(sessions)

        redis = RedisServer(workdir)
        stack.callback(lambda: reap(redis.process))
        await redis.start()

        proxy = Proxy(workdir, addresses=proxy_addresses)
        env = {
            "KONSIL_ENVIRONMENT": "test",
            "KONSIL_SECOND_FACTOR_ROLES": "[]",
            "KONSIL_LOGIN_REFUSAL_PACE_SECONDS": "0",
            "KONSIL_DATABASE_URL": database_url,
            "KONSIL_BROKER_URL": redis.url,
            # Clients come through the proxy: its address is the pages' origin.
            "KONSIL_BASE_URL": proxy.url,
            "KONSIL_SHUTDOWN_DRAIN_SECONDS": str(DRAIN_SECONDS),
            "KONSIL_LOG_JSON": "false",
            "KONSIL_LOG_LEVEL": "WARNING",
            "KONSIL_LOG_ACCESS": "false",
            # One specialist sits in many of the test's rooms at once.
            "KONSIL_WS_MAX_PER_SESSION": "64",
            **{f"KONSIL_{k.upper()}": v for k, v in settings.items()},
        }
        instances = [Instance(chr(ord("a") + n), workdir, env) for n in range(count)]
        for instance in instances:
            stack.callback(lambda i=instance: reap(i.process))  # type: ignore[misc]
            instance.start()
        await asyncio.gather(*(i.wait_ready() for i in instances))
        stack.callback(lambda: reap(proxy.process))
        await proxy.start(instances)

        the_cluster = Cluster(
            workdir=workdir,
            database_url=database_url,
            engine=engine,
            sessions=sessions,
            demo=demo,
            settings=Settings(environment="test", database_url=database_url),
            redis=redis,
            instances=instances,
            proxy=proxy,
            postgres=postgres,
        )
        try:
            yield the_cluster
        except BaseException:
            print(the_cluster.logs(), file=sys.stderr)
            raise


# --- a private PostgreSQL ------------------------------------------------------------------


def _pg_bin(name: str) -> str | None:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(found[-1]) if found else shutil.which(name)


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (initdb in a new directory, a free port), so
    that restarting it disturbs nobody else. Runs as the ``postgres`` user when we are root
    (PostgreSQL refuses to run as root); its directory is therefore not under pytest's
    private temporary directory, which that user cannot enter, and is removed by ``stop``."""

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="konsil-pg-")))
    port: int = field(default_factory=free_port)

    @property
    def data(self) -> Path:
        return self.workdir / "pgdata"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/konsil"

    def _run(self, *command: str, limit: float = 30) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        with (self.workdir / "postgres-ctl.log").open("ab") as out:
            # stdin/stdout not inherited by the server pg_ctl leaves running.
            subprocess.run(
                prefix + list(command),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=limit,
            )

    def _ctl(self, action: str, *extra: str) -> None:
        pg_ctl = _pg_bin("pg_ctl")
        assert pg_ctl is not None
        options = f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.workdir / "postgres.log")
        self._run(pg_ctl, "-D", str(self.data), "-l", log, "-w", "-o", options, action, *extra)

    async def start(self) -> None:
        initdb = _pg_bin("initdb")
        require(initdb is not None and _pg_bin("pg_ctl") is not None, "PostgreSQL's initdb")
        assert initdb is not None
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres")
        init = [initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"]
        await asyncio.to_thread(self._run, *init, "-E", "UTF8")
        await asyncio.to_thread(self._ctl, "start")
        admin = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres")
        try:
            await admin.execute("CREATE DATABASE konsil")
        finally:
            await admin.close()

    async def restart(self) -> None:
        """``pg_ctl restart -m fast``: every connection is cut, the server is back after."""
        await asyncio.to_thread(self._ctl, "restart", "-m", "fast")

    def stop(self) -> None:
        """Stops the server and removes its directory (cleanup path: never raises)."""
        if (self.data / "postmaster.pid").exists():
            with suppress(subprocess.SubprocessError, OSError):
                self._ctl("stop", "-m", "immediate")
        shutil.rmtree(self.workdir, ignore_errors=True)
