"""The echo peer's audio track: Opus encoded here, handed to aiortc's sender as packets.

Given an audio *frame*, aiortc's sender encodes it and also computes the RTP audio level (RFC
6465) in pure Python, sample by sample: measured with ``bench.precheck_load``, that loop was
about a quarter of a connection check's server CPU, for a header extension nobody reads here
(the browser's check counts bytes, packets and losses). Given an encoded *packet*, the sender only
packetizes it. So this track runs the same Opus encoder as aiortc's sender would, with the same
settings and in a worker thread as the sender does, and hands over packets: the bytes on the line
are the same Opus stream, without the level extension. Video is echoed as before (aiortc encodes
it; a picture cannot be sent back without decoding and re-encoding it).

Only when Opus was negotiated (every browser offers it first); otherwise the frames go through
unchanged and aiortc encodes them with the negotiated codec.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av
from aiortc import MediaStreamTrack
from aiortc.codecs.opus import OpusEncoder
from av.frame import Frame

OPUS_TIME_BASE = Fraction(1, 48_000)
OPUS_FRAME_SAMPLES = 960  # 20 ms, the encoder's frame size


class AudioEcho(MediaStreamTrack):
    """Sends ``source``'s audio back as Opus packets (if ``opus()`` says Opus was negotiated)."""

    kind = "audio"

    def __init__(self, source: MediaStreamTrack, opus: Callable[[], bool]) -> None:
        super().__init__()
        self.source = source
        self.opus = opus
        self.encoder: OpusEncoder | None = None
        self.decided = False
        self.pending: deque[av.Packet[Any]] = deque()

    async def recv(self) -> Frame | av.Packet[Any]:
        if not self.decided:  # the first call comes after the answer, once media flows
            self.decided = True
            self.encoder = OpusEncoder() if self.opus() else None
        if self.encoder is None:
            return await self.source.recv()
        while not self.pending:
            frame = await self.source.recv()
            if not isinstance(frame, Frame):  # already encoded: nothing to do
                return frame
            loop = asyncio.get_running_loop()
            payloads, timestamp = await loop.run_in_executor(None, self.encoder.encode, frame)
            for i, payload in enumerate(payloads):  # usually one per 20 ms frame
                packet = av.Packet(payload)
                packet.pts = timestamp + i * OPUS_FRAME_SAMPLES
                packet.time_base = OPUS_TIME_BASE
                self.pending.append(packet)
        return self.pending.popleft()

    def stop(self) -> None:
        super().stop()
        self.source.stop()


def first_codec(sdp: str, kind: str) -> str | None:
    """The codec an SDP's first ``kind`` section lists first (the one media is sent with)."""
    lines = sdp.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith(f"m={kind} "):
            continue
        fields = line.split()
        if len(fields) < 4:
            return None
        for attribute in lines[i + 1 :]:
            if attribute.startswith("m="):
                break
            if attribute.startswith(f"a=rtpmap:{fields[3]} "):
                return attribute.split(" ", 1)[1].split("/", 1)[0].lower()
        return None
    return None
