"""Echo peers: aiortc peer connections that send back what they receive, with hard limits.

Each check is one ``RTCPeerConnection`` that echoes the browser's audio and video tracks (audio
handed to the sender already Opus-encoded, see ``tracks.py``) and answers every data-channel
message with the same bytes (the browser times those round trips). The registry caps how many
run at once (a check beyond the cap waits up to a second for a free slot), replaces a session's
previous check, ends every check after ``max_seconds``, and closes a peer as soon as its
connection fails, disconnects or closes, and all of them at shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay

from app.errors import InvalidInput, Unavailable
from app.logging import get_logger
from app.metrics import ECHO_CHECKS
from app.precheck.tracks import AudioEcho, first_codec
from app.tasks import Task, Tasks

log = get_logger("konsil.precheck")
CLOSING_STATES = frozenset({"failed", "closed", "disconnected"})
ALLOWED_MEDIA = frozenset({"audio", "video", "application"})
# How long a check may wait for a free slot when the limit is reached (see _free_slot).
SLOT_WAIT_SECONDS = 1.0
# aiortc's SDP parser signals malformed input with these (including bare asserts).
MALFORMED_SDP = (ValueError, KeyError, TypeError, IndexError, AttributeError, AssertionError)


@dataclass
class EchoPeer:
    """One running check."""

    key: str
    pc: RTCPeerConnection
    relay: MediaRelay = field(default_factory=MediaRelay)
    timeout: Task | None = None


class EchoRegistry:
    """The running echo peers of this process."""

    def __init__(self, *, tasks: Tasks, max_concurrent: int, max_seconds: float) -> None:
        self.tasks = tasks
        self.max_concurrent = max_concurrent
        self.max_seconds = max_seconds
        self.slot_wait = SLOT_WAIT_SECONDS
        self._peers: dict[str, EchoPeer] = {}
        self._freed = anyio.Event()

    def __len__(self) -> int:
        return len(self._peers)

    def peers(self) -> list[RTCPeerConnection]:
        return [peer.pc for peer in self._peers.values()]

    async def answer(
        self, *, key: str, sdp: str, ice_servers: list[dict[str, Any]]
    ) -> RTCSessionDescription:
        """Starts an echo peer for ``key`` (one per session) and returns its SDP answer."""
        check_media(sdp)
        if key in self._peers:
            await self.close(key)  # a reload replaces the previous check
        await self._free_slot()
        peer = EchoPeer(key=key, pc=RTCPeerConnection(configuration(ice_servers)))
        self._register(peer)
        try:
            await peer.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await peer.pc.setLocalDescription(await peer.pc.createAnswer())
        except MALFORMED_SDP as exc:
            await self.close(key)
            log.info("precheck.rejected", reason=type(exc).__name__)
            raise InvalidInput("Das Verbindungsangebot des Browsers ist ungültig.") from None
        except BaseException:
            await self.close(key)
            raise
        log.info("precheck.started", active=len(self._peers))
        return peer.pc.localDescription

    async def _free_slot(self) -> None:
        """Waits up to ``slot_wait`` seconds for a running check to end, else Unavailable.

        A check holds its slot about 1.6 s, so a patient who arrives while the limit is reached
        usually gets the next free slot instead of no verdict; the browser's 3 s cap leaves
        room for that wait and a clear result after it.
        """
        if self.max_concurrent > 0:
            with anyio.move_on_after(self.slot_wait):
                while len(self._peers) >= self.max_concurrent:
                    await self._freed.wait()
                return  # no await between here and _register: the slot stays ours
        raise Unavailable(
            "Der Verbindungstest ist gerade ausgelastet. Bitte gleich noch einmal.",
            retry_after=5,
        )

    def _register(self, peer: EchoPeer) -> None:
        pc = peer.pc
        self._peers[peer.key] = peer
        ECHO_CHECKS.set(len(self._peers))
        peer.timeout = self.tasks.spawn("precheck.timeout", partial(self._time_out, peer))

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            echoed = peer.relay.subscribe(track, buffered=False)
            if track.kind == "audio":
                echoed = AudioEcho(echoed, opus=partial(sends_opus, pc))
            pc.addTrack(echoed)

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            @channel.on("message")
            def on_message(message: str | bytes) -> None:
                channel.send(message)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in CLOSING_STATES:
                await self.close(peer.key, pc)

    async def _time_out(self, peer: EchoPeer) -> None:
        await anyio.sleep(self.max_seconds)
        peer.timeout = None  # this task closes the peer; it must not cancel itself doing so
        await self.close(peer.key, peer.pc)

    async def close(self, key: str, pc: RTCPeerConnection | None = None) -> None:
        """Closes the check of ``key`` (only if it is still ``pc``, when given)."""
        peer = self._peers.get(key)
        if peer is None or (pc is not None and peer.pc is not pc):
            return
        del self._peers[key]
        ECHO_CHECKS.set(len(self._peers))
        self._freed.set()  # wakes the checks waiting for a slot
        self._freed = anyio.Event()
        if peer.timeout is not None:
            peer.timeout.cancel()
        with suppress(Exception):  # closing must not fail the caller; the peer is gone anyway
            await peer.pc.close()
        log.info("precheck.closed", active=len(self._peers))

    async def close_all(self) -> None:
        for key in list(self._peers):
            await self.close(key)


def sends_opus(pc: RTCPeerConnection) -> bool:
    answer = pc.localDescription
    return answer is not None and first_codec(answer.sdp, "audio") == "opus"


def check_media(sdp: str) -> None:
    """At most one audio, one video and one data section: echoing costs a video encoder each."""
    kinds = [line[2:].split(" ", 1)[0] for line in sdp.splitlines() if line.startswith("m=")]
    if not kinds or len(set(kinds)) != len(kinds) or not set(kinds) <= ALLOWED_MEDIA:
        raise InvalidInput("Der Verbindungstest braucht genau eine Ton-, Bild- oder Datenspur.")


def configuration(ice_servers: list[dict[str, Any]]) -> RTCConfiguration:
    # Always explicit: aiortc's default configuration contacts a public STUN server.
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(
                urls=server["urls"],
                username=server.get("username"),
                credential=server.get("credential"),
            )
            for server in ice_servers
        ]
    )


@asynccontextmanager
async def echo_registry(
    *, tasks: Tasks, max_concurrent: int, max_seconds: float
) -> AsyncIterator[EchoRegistry]:
    """A registry whose peers are all closed when the block exits."""
    registry = EchoRegistry(tasks=tasks, max_concurrent=max_concurrent, max_seconds=max_seconds)
    try:
        yield registry
    finally:
        await registry.close_all()
