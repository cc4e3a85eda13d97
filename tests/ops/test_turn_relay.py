"""A relay-only WebRTC call between two aiortc peers through coturn (Debian's package).

Credentials come from app/turn.py, so this proves coturn accepts Konsil's TURN REST API
credentials and that media and data flow when peer-to-peer paths are forbidden.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
)
from aiortc.mediastreams import VideoStreamTrack
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from av import VideoFrame

from app.turn import turn_credentials
from tests.ops.coturn import Coturn, run_coturn
from tests.services import require_coturn

pytestmark = [pytest.mark.turn, pytest.mark.e2e]
APPOINTMENT_ID = 4711


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    require_coturn()
    with run_coturn(tmp_path) as server:
        yield server


def relay_only(server: Coturn, secret: str | None = None) -> RTCConfiguration:
    username, credential = turn_credentials(secret or server.secret, APPOINTMENT_ID, 600)
    return RTCConfiguration(
        iceServers=[RTCIceServer(urls=server.url, username=username, credential=credential)],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY,
    )


async def connect(caller: RTCPeerConnection, callee: RTCPeerConnection) -> None:
    # aiortc gathers all candidates before returning the description: no trickle needed.
    await caller.setLocalDescription(await caller.createOffer())
    await callee.setRemoteDescription(caller.localDescription)
    await callee.setLocalDescription(await callee.createAnswer())
    await caller.setRemoteDescription(callee.localDescription)


def nominated_local_types(pc: RTCPeerConnection) -> set[str]:
    # aiortc exposes no candidate-pair stats; the nominated pair lives in aioice's connection.
    types = set()
    for transceiver in pc.getTransceivers():
        connection = transceiver.sender.transport.transport.iceGatherer._connection
        types |= {pair.local_candidate.type for pair in connection._nominated.values()}
    return types


async def test_turn_relay_only_call_carries_data_and_video(coturn: Coturn) -> None:
    caller = RTCPeerConnection(relay_only(coturn))
    callee = RTCPeerConnection(relay_only(coturn))
    received: asyncio.Queue[str] = asyncio.Queue()
    tracks: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
    try:
        channel = caller.createDataChannel("chat")
        caller.addTrack(VideoStreamTrack())

        @callee.on("datachannel")
        def on_datachannel(remote: RTCDataChannel) -> None:
            remote.on("message", received.put_nowait)

        callee.on("track", tracks.put_nowait)
        opened = asyncio.Event()
        channel.on("open", opened.set)

        await connect(caller, callee)
        await asyncio.wait_for(opened.wait(), 20)
        channel.send("hallo über TURN")
        assert await asyncio.wait_for(received.get(), 10) == "hallo über TURN"

        track = await asyncio.wait_for(tracks.get(), 10)
        frames = [await asyncio.wait_for(track.recv(), 10) for _ in range(3)]
        assert all(isinstance(frame, VideoFrame) and frame.width > 0 for frame in frames)

        assert nominated_local_types(caller) == {"relay"}
        assert nominated_local_types(callee) == {"relay"}
    finally:
        await caller.close()
        await callee.close()


async def test_turn_rejects_credentials_from_another_secret(coturn: Coturn) -> None:
    pc = RTCPeerConnection(relay_only(coturn, secret="not-the-shared-secret"))
    try:
        pc.createDataChannel("probe")
        await pc.setLocalDescription(await pc.createOffer())
        # No relay allocation, and host candidates are forbidden: nothing to offer.
        assert "typ relay" not in pc.localDescription.sdp
    finally:
        await pc.close()
