"""Access to the real services tests use: PostgreSQL and Redis on 127.0.0.1, Chromium, coturn.

Outside CI a missing service skips the tests that need it; with ``CI`` set it is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest

PG_ADMIN_DSN = os.environ.get("KONSIL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("KONSIL_TEST_REDIS", "redis://127.0.0.1:6379/0")
CHROMIUM = "/usr/bin/chromium"


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require(available: bool, what: str) -> None:
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required when CI is set, but it is not available")
    pytest.skip(f"{what} is not available on this machine")


def require_postgres() -> None:
    require(port_open("127.0.0.1", 5432), "PostgreSQL on 127.0.0.1:5432")


def require_redis() -> None:
    require(port_open("127.0.0.1", 6379), "Redis on 127.0.0.1:6379")


def require_chromium() -> None:
    require(os.path.exists(CHROMIUM), f"Chromium at {CHROMIUM}")


def require_coturn() -> None:
    require(shutil.which("turnserver") is not None, "coturn's turnserver")
