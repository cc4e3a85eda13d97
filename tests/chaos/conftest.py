"""Fault tests (``make chaos``): real processes, a real proxy, real faults (docs/reliability.md)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def loopback_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    # aioice skips 127.0.0.1 when gathering; this host may have nothing else.
    monkeypatch.setattr("aioice.ice.get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
