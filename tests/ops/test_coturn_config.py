"""The shipped coturn configuration: shared-secret auth, and no relaying into internal networks."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
from aioice import stun
from aioice.turn import TurnClientUdpProtocol

from app.turn import turn_credentials
from tests.ops.coturn import SHIPPED_CONF, Coturn, run_coturn
from tests.services import require_coturn

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MUST_DENY = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::1/128",
    "::ffff:0:0/96",
    "64:ff9b::/96",
    "2001:db8::/32",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
]


def options(path: Path = SHIPPED_CONF) -> list[tuple[str, str]]:
    result = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            result.append((key.strip(), value.strip()))
    return result


def denied_ranges() -> list[tuple[IPAddress, IPAddress]]:
    ranges = []
    for key, value in options():
        if key == "denied-peer-ip":
            low, _, high = value.partition("-")
            ranges.append((ipaddress.ip_address(low), ipaddress.ip_address(high or low)))
    return ranges


def covered(network: str, ranges: list[tuple[IPAddress, IPAddress]]) -> bool:
    net = ipaddress.ip_network(network)
    first, last = int(net[0]), int(net[-1])
    return any(
        low.version == net.version and int(low) <= first and last <= int(high)
        for low, high in ranges
    )


@pytest.mark.parametrize("network", MUST_DENY)
def test_coturn_config_denies_reserved_range(network: str) -> None:
    assert covered(network, denied_ranges()), f"{network} is not denied"


def test_coturn_config_denies_no_public_address() -> None:
    ranges = denied_ranges()
    for public in ["8.8.8.8", "193.99.144.80", "2a00:1450:4001::1"]:
        assert not covered(public, ranges), public


def test_coturn_config_uses_the_shared_secret_scheme() -> None:
    keys = dict(options())
    assert "use-auth-secret" in keys
    assert "static-auth-secret" in keys
    assert "lt-cred-mech" not in keys
    assert "allow-loopback-peers" not in keys
    for hardening in ["no-multicast-peers", "no-cli", "fingerprint", "no-tcp-relay"]:
        assert hardening in keys, hardening


# --- the same file, applied by a running coturn ---------------------------------------------


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    require_coturn()
    with run_coturn(tmp_path) as server:
        yield server


async def allocate(server: Coturn) -> TurnClientUdpProtocol:
    """A TURN allocation with Konsil's credentials, straight from aioice's TURN client."""
    username, credential = turn_credentials(server.secret, 1, 600)
    address = ("127.0.0.1", server.port)
    _, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(
            address, username=username, password=credential, lifetime=600, channel_refresh_time=500
        ),
        remote_addr=address,
    )
    await protocol.connect()
    return protocol


@pytest.mark.turn
@pytest.mark.e2e
@pytest.mark.parametrize(
    "peer", ["10.1.2.3", "172.20.0.5", "192.168.178.1", "169.254.169.254", "100.64.0.1"]
)
async def test_coturn_refuses_to_relay_to_internal_address(coturn: Coturn, peer: str) -> None:
    # A ChannelBind installs a permission for the peer without sending it anything.
    turn = await allocate(coturn)
    try:
        with pytest.raises(stun.TransactionFailed) as failure:
            await turn.channel_bind(0x4000, (peer, 9))
        assert failure.value.response.error_code == 403
    finally:
        await turn.delete()


@pytest.mark.turn
@pytest.mark.e2e
async def test_coturn_permits_a_public_peer(coturn: Coturn) -> None:
    turn = await allocate(coturn)
    try:
        await turn.channel_bind(0x4000, ("193.99.144.80", 9))
        assert turn.relayed_address is not None
    finally:
        await turn.delete()
