"""The shipped coturn configuration: shared-secret auth, and no relaying into internal networks."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
from aioice import stun
from aioice.turn import UDP_TRANSPORT, TurnClientUdpProtocol

from app.turn import turn_credentials
from tests.ops.coturn import SHIPPED_CONF, Coturn, run_coturn
from tests.services import require_coturn

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# aioice does not know this attribute; a test adds it for the duration of the test.
REQUESTED_ADDRESS_FAMILY = (
    "REQUESTED-ADDRESS-FAMILY",
    (0x0017, "REQUESTED-ADDRESS-FAMILY", stun.pack_unsigned, stun.unpack_unsigned),
)
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
    "::ffff:0:0:0/96",  # IPv4-translated: ::ffff:0:10.0.0.1
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


def test_coturn_config_denies_ipv4_compatible_addresses_but_reads_as_coturn_does() -> None:
    # ::/96 spells IPv4 addresses (::10.0.0.1). Its range must not start at ::, which coturn
    # takes for "no lower bound" (and then denies every IPv4 peer); :: itself coturn refuses.
    ranges = denied_ranges()
    assert all(int(low) != 0 for low, _ in ranges if low.version == 6)
    for address in ["::1", "::0.0.0.2", "::10.0.0.1", "::127.0.0.1", "::255.255.255.255"]:
        assert covered(address + "/128", ranges), address


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


class Ipv6TurnClient(TurnClientUdpProtocol):
    """aioice's TURN client asking for an IPv6 relayed address (RFC 8656 REQUESTED-ADDRESS-FAMILY),
    so that IPv6 peers can be tried; aioice itself only allocates IPv4."""

    async def connect(self) -> tuple[str, int]:
        request = stun.Message(
            message_method=stun.Method.ALLOCATE, message_class=stun.Class.REQUEST
        )
        request.attributes["LIFETIME"] = self.lifetime
        request.attributes["REQUESTED-TRANSPORT"] = UDP_TRANSPORT
        request.attributes["REQUESTED-ADDRESS-FAMILY"] = 0x02 << 24  # IPv6, then 3 bytes RFFU
        response, _ = await self.request_with_retry(request)
        relayed: tuple[str, int] = response.attributes["XOR-RELAYED-ADDRESS"]
        self.relayed_address = relayed
        return relayed


async def allocate(server: Coturn, *, ipv6: bool = False) -> TurnClientUdpProtocol:
    """A TURN allocation with Konsil's credentials, straight from aioice's TURN client."""
    username, credential = turn_credentials(server.secret, 1, 600)
    address = ("127.0.0.1", server.port)
    client = Ipv6TurnClient if ipv6 else TurnClientUdpProtocol
    _, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: client(
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
@pytest.mark.parametrize(
    "peer",
    [
        "::10.0.0.1",  # IPv4-compatible
        "::ffff:0:10.0.0.1",  # IPv4-translated
        "::ffff:10.0.0.1",  # IPv4-mapped
        "::a9fe:a9fe",  # ::169.254.169.254, the cloud metadata address
        "fd00::1",  # unique local
        "fe80::1",  # link local
    ],
)
async def test_coturn_refuses_ipv6_spellings_of_internal_addresses(
    coturn: Coturn, peer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(stun.ATTRIBUTES_BY_NAME, *REQUESTED_ADDRESS_FAMILY)
    turn = await allocate(coturn, ipv6=True)
    try:
        assert turn.relayed_address is not None
        assert ":" in turn.relayed_address[0]  # an IPv6 relay, so the peer's family matches
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
