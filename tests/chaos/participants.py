"""A participant as a browser page behaves: signalling websocket with reconnect and ``resume``
(docs/protocol.md, "Resume and ICE restart") and, in a call, a real aiortc peer connection.

Media is a small video track (64x48, 10 frames a second) so that forty peers fit on two cores;
each peer counts the frames it receives, which tells whether a pair still has media.
Everything a participant sees that matters for the fault tests is recorded, never asserted
here: the scenario decides what is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import candidate_from_sdp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Origin

from tests.signaling.peers import split_candidates

# Close codes after which a page reconnects and resumes (docs/protocol.md, close codes).
RESUMABLE = {1001, 1006, 1011, 1012, 4408, 4429}
CONNECT_TIMEOUT = 5.0
FPS = 10


class SmallVideo(MediaStreamTrack):
    """64x48 grey frames at ``FPS``: real VP8 over real DTLS-SRTP, cheap to encode."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self._start: float | None = None
        self._count = 0

    async def recv(self) -> av.VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._count += 1
            await asyncio.sleep(max(0.0, self._start + self._count / FPS - time.monotonic()))
        frame = av.VideoFrame(width=64, height=48, format="yuv420p")
        for plane in frame.planes:
            plane.update(bytes([128]) * plane.buffer_size)
        frame.pts = self._count * (90000 // FPS)
        frame.time_base = fractions.Fraction(1, 90000)
        return frame


@dataclass
class Reconnect:
    code: int
    closed_at: float
    joined_at: float | None = None
    resumed: bool | None = None
    instance: str | None = None

    @property
    def seconds(self) -> float | None:
        return None if self.joined_at is None else self.joined_at - self.closed_at


@dataclass
class Participant:
    """One page: ``role`` "patient" or "staff" in the room of ``appointment``."""

    name: str
    ws_url: str
    origin: str
    appointment: int
    role: str
    cookie: str
    media: bool = False
    resume: bool = True
    participant_id: str | None = None
    resume_id: str | None = None
    instance: str | None = None
    instances: list[str] = field(default_factory=list)
    joined: asyncio.Event = field(default_factory=asyncio.Event)
    reconnects: list[Reconnect] = field(default_factory=list)
    closes: list[int] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    peer_left: list[dict[str, Any]] = field(default_factory=list)
    peer_states: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    chats: list[tuple[float, str]] = field(default_factory=list)
    renegotiations: int = 0
    renegotiated_at: list[float] = field(default_factory=list)
    frames: int = 0
    last_frame_at: float | None = None
    stopped_with: int | None = None
    connect_failures: int = 0
    _ws: ClientConnection | None = None
    _pc: RTCPeerConnection | None = None
    _task: asyncio.Task[None] | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _rng: random.Random = field(default_factory=lambda: random.Random(7))

    @property
    def back(self) -> bool:
        """Joined again after its last lost connection (or never lost one)."""
        return not self.reconnects or self.reconnects[-1].joined_at is not None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._pc is not None:
            await self._pc.close()

    async def send(self, **message: Any) -> bool:
        """Sends on the current connection; False while there is none (the page would wait)."""
        if self._ws is None:
            return False
        try:
            await self._ws.send(json.dumps(message))
            return True
        except ConnectionClosed:
            return False

    async def drop(self) -> None:
        """The connection ends abruptly (no close frame): as a network cut looks to the server."""
        if self._ws is not None:
            self._ws.transport.abort()

    # --- the connection loop ------------------------------------------------------------------

    async def _run(self) -> None:
        pending: Reconnect | None = None
        while True:
            try:
                async with connect(
                    f"{self.ws_url}?as={self.role}&appointment={self.appointment}",
                    origin=Origin(self.origin),
                    additional_headers={"Cookie": self.cookie},
                    compression=None,
                    open_timeout=CONNECT_TIMEOUT,
                ) as ws:
                    self._ws = ws
                    response = ws.response
                    self.instance = response.headers.get("X-Konsil-Instance") if response else None
                    self.instances.append(self.instance or "?")
                    join: dict[str, Any] = {"type": "join"}
                    if self.resume_id is not None:
                        join["resume"] = self.resume_id
                    await ws.send(json.dumps(join))
                    async for raw in ws:
                        await self._on(json.loads(raw), pending)
                        if pending is not None and pending.joined_at is not None:
                            pending = None
                code = 1000 if ws.close_code is None else ws.close_code
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd is not None else 1006
            except (OSError, InvalidHandshake, TimeoutError):
                # The proxy has no instance for us right now (502/503) or refused: try again.
                self._ws = None
                self.connect_failures += 1
                if pending is None:
                    self.stopped_with = -2  # never got in
                    return
                if time.monotonic() - pending.closed_at > 60:
                    self.stopped_with = -1
                    return
                await asyncio.sleep(0.2)
                continue
            self._ws = None
            self.closes.append(code)
            if code not in RESUMABLE or not self.resume:
                self.stopped_with = code
                return
            if pending is None:
                pending = Reconnect(code=code, closed_at=time.monotonic())
                self.reconnects.append(pending)
            # A page waits a short random time, so that a restart is not a thundering herd.
            await asyncio.sleep(self._rng.uniform(0.1, 0.5))

    async def _on(self, message: dict[str, Any], pending: Reconnect | None) -> None:
        kind = message["type"]
        if kind == "joined":
            if pending is not None:
                pending.joined_at = time.monotonic()
                pending.resumed = bool(message.get("resumed"))
                pending.instance = self.instance
            self.participant_id = message["participant_id"]
            self.resume_id = message["resume_id"]
            self.joined.set()
        elif kind == "error":
            self.errors.append(message)
        elif kind == "peer_left":
            self.peer_left.append(message)
        elif kind == "peer_state":
            self.peer_states.append((time.monotonic(), message))
        elif kind == "chat":
            self.chats.append((time.monotonic(), message["text"]))
        elif kind == "position":
            self.positions.append(int(message["ahead"]))
        elif kind == "renegotiate":
            # aiortc cannot restart ICE; media over loopback does not need it (it never
            # went through the server). Counted: the server asked as the protocol says.
            self.renegotiations += 1
            self.renegotiated_at.append(time.monotonic())
        elif self.media:
            await self._signal(kind, message)

    # --- media --------------------------------------------------------------------------------

    def _peer_connection(self) -> RTCPeerConnection:
        if self._pc is None:
            self._pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            self._pc.addTrack(SmallVideo())
            self._pc.on("track", self._on_track)
        return self._pc

    def _on_track(self, track: MediaStreamTrack) -> None:
        task = asyncio.ensure_future(self._count_frames(track))
        self._tasks.add(task)

    async def _count_frames(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.frames += 1
                self.last_frame_at = time.monotonic()

    async def _signal(self, kind: str, message: dict[str, Any]) -> None:
        if kind == "peer_joined" and message.get("offer"):
            pc = self._peer_connection()
            await pc.setLocalDescription(await pc.createOffer())
            await self._send_description("offer", message["peer"]["id"])
        elif kind == "offer":
            pc = self._peer_connection()
            await pc.setRemoteDescription(RTCSessionDescription(sdp=message["sdp"], type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            await self._send_description("answer", message["from"])
        elif kind == "answer" and self._pc is not None:
            answer = RTCSessionDescription(sdp=message["sdp"], type="answer")
            await self._pc.setRemoteDescription(answer)
        elif kind == "candidate" and message.get("candidate") and self._pc is not None:
            data = message["candidate"]
            candidate = candidate_from_sdp(data["candidate"].split(":", 1)[1])
            candidate.sdpMid = data["sdpMid"]
            candidate.sdpMLineIndex = data["sdpMLineIndex"]
            await self._pc.addIceCandidate(candidate)

    async def _send_description(self, kind: str, peer: str) -> None:
        assert self._pc is not None
        sdp, candidates = split_candidates(self._pc.localDescription.sdp)
        await self.send(type=kind, to=peer, sdp=sdp)
        for candidate in candidates:
            await self.send(type="candidate", to=peer, candidate=candidate)
        await self.send(type="candidate", to=peer, candidate=None)


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile (``share`` 0.5 = median); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]
