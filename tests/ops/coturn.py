"""Runs Debian's coturn on 127.0.0.1 for a test, configured from the shipped production file.

The test configuration is ``deploy/coturn/turnserver.conf`` with the listening addresses, ports,
secret and log target replaced, and the loopback denials swapped for ``allow-loopback-peers``
(on a loopback-only machine both relayed peers live on 127.0.0.1). Everything else — the
shared-secret scheme, quotas, the other denied ranges — is the file operators deploy, so coturn
parsing it is part of what the test proves.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.live import free_port

SHIPPED_CONF = Path(__file__).resolve().parents[2] / "deploy" / "coturn" / "turnserver.conf"
OVERRIDDEN = {
    "listening-port",
    "tls-listening-port",
    "listening-ip",
    "relay-ip",
    "external-ip",
    "min-port",
    "max-port",
    "static-auth-secret",
    "log-file",
    "pidfile",
    "userdb",
}
LOOPBACK_DENIALS = {"127.0.0.0-127.255.255.255"}


@dataclass(frozen=True)
class Coturn:
    port: int
    secret: str
    log: Path

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"


def loopback_config(*, port: int, secret: str, workdir: Path) -> str:
    lines = []
    for raw in SHIPPED_CONF.read_text().splitlines():
        key, _, value = raw.strip().partition("=")
        if key in OVERRIDDEN or (key == "denied-peer-ip" and value in LOOPBACK_DENIALS):
            continue
        lines.append(raw)
    relay_low = 50000 + (port % 100) * 100
    lines += [
        "listening-ip=127.0.0.1",
        "relay-ip=127.0.0.1",
        "relay-ip=::1",  # for IPv6 allocations (REQUESTED-ADDRESS-FAMILY), to probe IPv6 peers
        f"listening-port={port}",
        f"min-port={relay_low}",
        f"max-port={relay_low + 99}",
        f"static-auth-secret={secret}",
        "allow-loopback-peers",
        f"pidfile={workdir / 'turnserver.pid'}",
        f"userdb={workdir / 'turndb'}",
        f"log-file={workdir / 'turn.log'}",
    ]
    return "\n".join(lines) + "\n"


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"turnserver exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError("turnserver did not open its port")


@contextlib.contextmanager
def run_coturn(workdir: Path) -> Iterator[Coturn]:
    """coturn on a free loopback port with a fresh secret; terminated (then killed) on exit."""
    port = free_port(udp=True)
    secret = secrets.token_hex(16)
    conf = workdir / "turnserver.conf"
    conf.write_text(loopback_config(port=port, secret=secret, workdir=workdir))
    process = subprocess.Popen(
        ["turnserver", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port, process)
        yield Coturn(port=port, secret=secret, log=workdir / "turn.log")
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
