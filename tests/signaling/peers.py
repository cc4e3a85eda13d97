"""A real aiortc peer driven by Konsil's signalling protocol (used by the end-to-end tests).

Candidates are stripped from the SDP and trickled as ``candidate`` messages, so the call only
connects if candidates really flow through the server.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack, VideoStreamTrack
from aiortc.sdp import candidate_from_sdp

from tests.signaling.wsclient import Client


def split_candidates(sdp: str) -> tuple[str, list[dict[str, Any]]]:
    """The SDP without candidate lines, and those candidates as RTCIceCandidateInit dicts."""
    kept, found = [], []
    mid, index = None, -1
    for line in sdp.splitlines():
        if line.startswith("m="):
            index += 1
        elif line.startswith("a=mid:"):
            mid = line[len("a=mid:") :]
        if line.startswith("a=candidate:"):
            found.append({"candidate": line[2:], "sdpMid": mid, "sdpMLineIndex": index})
            continue
        if line.startswith("a=end-of-candidates"):
            continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n", found


class Peer:
    """One participant: websocket client, one RTCPeerConnection, a video track out."""

    def __init__(self, client: Client, *, chat: str | None = None) -> None:
        self.client = client
        self.chat = chat
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTrack(VideoStreamTrack())
        loop = asyncio.get_running_loop()
        self.frame: asyncio.Future[Any] = loop.create_future()
        self.message: asyncio.Future[str] = loop.create_future()
        self.candidates_received = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.pc.on("track", self._on_track)
        self.pc.on("datachannel", self._on_datachannel)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            task = asyncio.ensure_future(self._first_frame(track))
            self._tasks.add(task)

    async def _first_frame(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            frame = await track.recv()
            if not self.frame.done():
                self.frame.set_result(frame)

    def _on_datachannel(self, channel: Any) -> None:
        @channel.on("message")  # type: ignore[untyped-decorator]
        def on_message(text: str) -> None:
            if not self.message.done():
                self.message.set_result(text)

    async def run(self) -> None:
        """Answers signalling until cancelled."""
        while True:
            message = await self.client.recv()
            kind = message["type"]
            if kind == "peer_joined" and message["offer"]:
                await self._offer(message["peer"]["id"])
            elif kind == "offer":
                await self._answer(message)
            elif kind == "answer":
                await self.pc.setRemoteDescription(
                    RTCSessionDescription(sdp=message["sdp"], type="answer")
                )
            elif kind == "candidate" and message["candidate"] is not None:
                await self._add_candidate(message["candidate"])

    async def _offer(self, peer: str) -> None:
        channel = self.pc.createDataChannel("konsil")
        text = self.chat or ""

        @channel.on("open")
        def on_open() -> None:
            channel.send(text)

        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self._send_description("offer", peer)

    async def _answer(self, message: dict[str, Any]) -> None:
        offer = RTCSessionDescription(sdp=message["sdp"], type="offer")
        await self.pc.setRemoteDescription(offer)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self._send_description("answer", message["from"])

    async def _send_description(self, kind: str, peer: str) -> None:
        sdp, candidates = split_candidates(self.pc.localDescription.sdp)
        await self.client.send(type=kind, to=peer, sdp=sdp)
        for candidate in candidates:
            await self.client.send(type="candidate", to=peer, candidate=candidate)
        await self.client.send(type="candidate", to=peer, candidate=None)

    async def _add_candidate(self, data: dict[str, Any]) -> None:
        candidate = candidate_from_sdp(data["candidate"].split(":", 1)[1])
        candidate.sdpMid = data["sdpMid"]
        candidate.sdpMLineIndex = data["sdpMLineIndex"]
        await self.pc.addIceCandidate(candidate)
        self.candidates_received += 1

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()
