"""``python -m bench.precheck_client SCENARIO``: connection checks as the browser runs them.

Run as its own process by ``bench.precheck_load`` with a scenario (JSON path): the server's URL
and N patient cookies. Each of the N workers runs checks back to back against the server's echo
peer until SIGTERM, then the process prints one JSON list with every check's figures.

One check follows ``frontend/static/precheck.js``: the peer connection is made and its
candidates gathered before the clock starts (the browser does that while the camera preview
shows); from the start the offer is posted, and the moment the data channel opens a 1,000-byte
probe goes out every 40 ms (unordered, never retransmitted; the echo sends it back); counters are
read every 250 ms; the check ends when the result is clearly good (≥ 1.5 s, ≥ 20 probes back,
≥ 1 s of echoed media) or at the 3 s cap, with the browser's thresholds.

What the clients send is what Chromium sent in the check (measured 2026-12-06): VP8 640x480 at
20 frames/s, about 250 kbit/s, and Opus audio. The media is encoded once at start-up and the
packets are replayed, and echoed media is counted but not decoded, so that a client costs little
CPU: the benchmark measures the server, and the clients share the machine with it.
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
import statistics
import struct
import sys
import time
from fractions import Fraction
from typing import Any

import aiortc.rtcrtpreceiver
import av
import httpx2
import uvloop
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.stats import (
    RTCInboundRtpStreamStats,
    RTCRemoteInboundRtpStreamStats,
    RTCTransportStats,
)

# The browser's figures (frontend/static/precheck.js).
VIDEO_MAX_RTT_MS, VIDEO_MAX_LOSS_PCT, VIDEO_MIN_KBPS = 400, 5, 250
CHECK_CAP_S, EARLY_VERDICT_S, FINAL_MARGIN_S = 3.0, 1.5, 0.2
MIN_ECHOES, RECENT_ECHOES, MIN_MEDIA_S = 20, 25, 1.0
PROBE_EVERY_S, PROBE_BYTES, PROBE_LOST_AFTER_S, STATS_EVERY_S = 0.04, 1000, 1.0, 0.25

WIDTH, HEIGHT, FPS, VIDEO_KBPS = 640, 480, 20, 250
AUDIO_RATE, AUDIO_FRAME = 48_000, 960  # 20 ms Opus frames
MEDIA_SECONDS = 4


# ------------------------------------------------------------------------------ media


def video_packets() -> list[bytes]:
    """A moving picture, VP8 at the browser's start-up rate; only the first is a key frame."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    codec.bit_rate = VIDEO_KBPS * 1000
    codec.time_base = Fraction(1, FPS)
    codec.gop_size = 10_000
    rate = str(VIDEO_KBPS * 1000)
    codec.options = {
        "deadline": "realtime",
        "cpu-used": "8",
        "lag-in-frames": "0",
        "minrate": rate,  # constant bit rate, as a sender at its start estimate
        "maxrate": rate,
        "bufsize": rate,
    }
    row = bytes((x * 3) % 256 for x in range(WIDTH * 2))
    chroma = bytes([128]) * (WIDTH // 2 * HEIGHT // 2)
    packets: list[bytes] = []
    for n in range(FPS * MEDIA_SECONDS):
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        shift = (n * 7) % WIDTH
        luma = b"".join(row[(shift + y) % WIDTH :][:WIDTH] for y in range(HEIGHT))
        frame.planes[0].update(luma)
        frame.planes[1].update(chroma)
        frame.planes[2].update(chroma)
        frame.pts = n
        frame.time_base = Fraction(1, FPS)
        packets += [bytes(p) for p in codec.encode(frame)]
    packets += [bytes(p) for p in codec.encode(None)]
    return packets


def audio_packets() -> list[bytes]:
    """A 440 Hz tone in 20 ms Opus frames."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate, codec.layout, codec.format = AUDIO_RATE, "stereo", "s16"
    codec.bit_rate = 32_000
    packets: list[bytes] = []
    for n in range(AUDIO_RATE * MEDIA_SECONDS // AUDIO_FRAME):
        frame = av.AudioFrame(format="s16", layout="stereo", samples=AUDIO_FRAME)
        start = n * AUDIO_FRAME
        samples = (
            int(8000 * math.sin(2 * math.pi * 440 * (start + i) / AUDIO_RATE))
            for i in range(AUDIO_FRAME)
        )
        frame.planes[0].update(b"".join(struct.pack("<hh", s, s) for s in samples))
        frame.sample_rate = AUDIO_RATE
        frame.pts = start
        frame.time_base = Fraction(1, AUDIO_RATE)
        packets += [bytes(p) for p in codec.encode(frame)]
    return packets


class ReplayTrack(MediaStreamTrack):
    """Replays encoded packets in real time (aiortc's sender packs them without encoding)."""

    def __init__(self, kind: str, packets: list[bytes], clock: int, ticks: int) -> None:
        super().__init__()
        self.kind = kind
        self.packets, self.clock, self.ticks = packets, clock, ticks
        self.sent = 0
        self.started: float | None = None

    async def recv(self) -> av.Packet:
        if self.started is None:
            self.started = time.monotonic()
        wait = self.started + self.sent * self.ticks / self.clock - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        packet = av.Packet(self.packets[self.sent % len(self.packets)])
        packet.pts = self.sent * self.ticks
        packet.time_base = Fraction(1, self.clock)
        self.sent += 1
        return packet


class Discard:
    """Echoed media is counted (RTP statistics), not decoded: the client measures the line."""

    def decode(self, encoded_frame: object) -> list[object]:
        return []


# ------------------------------------------------------------------------------ one check


class Probes:
    def __init__(self, channel: RTCDataChannel) -> None:
        self.channel = channel
        self.sent: dict[int, float] = {}
        self.rtts: list[float] = []
        self.echoed = 0
        self.seq = 0
        channel.on("message", self.answered)

    async def run(self) -> None:
        while self.channel.readyState == "open":
            self.seq += 1
            self.sent[self.seq] = time.perf_counter()
            self.channel.send(struct.pack(">I", self.seq) + bytes(PROBE_BYTES - 4))
            await asyncio.sleep(PROBE_EVERY_S)

    def answered(self, message: str | bytes) -> None:
        if isinstance(message, bytes) and len(message) >= 4:
            at = self.sent.pop(struct.unpack(">I", message[:4])[0], None)
            if at is not None:
                self.rtts.append(time.perf_counter() - at)
                self.echoed += len(message)

    def lost(self, now: float) -> int:
        return sum(1 for at in self.sent.values() if now - at > PROBE_LOST_AFTER_S)


async def reading(pc: RTCPeerConnection, probes: Probes) -> dict[str, float]:
    """Bytes each way on the line (media, probes, RTCP), RTP packets and their loss."""
    s = {"at": time.perf_counter(), "up": 0.0, "down": 0.0, "packets": 0.0, "lost": 0.0}
    for stat in (await pc.getStats()).values():
        if isinstance(stat, RTCTransportStats):
            s["up"] += stat.bytesSent
            s["down"] += stat.bytesReceived
        elif isinstance(stat, RTCInboundRtpStreamStats):
            s["packets"] += stat.packetsReceived
            s["lost"] += max(stat.packetsLost, 0)
        elif isinstance(stat, RTCRemoteInboundRtpStreamStats):
            s["lost"] += max(stat.packetsLost, 0)
    return s


def summarize(samples: list[dict[str, float]], probes: Probes, now: float) -> dict[str, Any]:
    flowing = [s for s in samples if s["packets"] > 0]
    seconds = flowing[-1]["at"] - flowing[0]["at"] if flowing else 0.0
    first, last = (flowing[0], flowing[-1]) if flowing else ({}, {})
    kbps = (
        min(last["up"] - first["up"], last["down"] - first["down"]) * 8 / 1000 / seconds
        if seconds > 0
        else 0.0
    )
    lost_probes = probes.lost(now)
    lost = (last["lost"] - first["lost"] if flowing else 0) + lost_probes
    packets = (last["packets"] - first["packets"] if flowing else 0) + len(probes.rtts)
    packets += lost
    recent = probes.rtts[-RECENT_ECHOES:]
    rtt_ms = statistics.median(recent) * 1000 if recent else None
    loss_pct = 100 * lost / packets if packets else 0.0
    good = (
        rtt_ms is not None
        and rtt_ms <= VIDEO_MAX_RTT_MS
        and loss_pct <= VIDEO_MAX_LOSS_PCT
        and kbps >= VIDEO_MIN_KBPS
    )
    clear = good and len(recent) >= MIN_ECHOES and seconds >= MIN_MEDIA_S
    return {
        "rtt_ms": rtt_ms,
        "loss_pct": round(loss_pct, 1),
        "kbps": round(kbps),
        "verdict": "good" if good else "weak",
        "clear": clear,
    }


async def until_connected(pc: RTCPeerConnection, seconds: float) -> bool:
    done = asyncio.Event()
    pc.on("connectionstatechange", done.set)
    deadline = time.perf_counter() + seconds
    while pc.connectionState not in ("connected", "failed", "closed"):
        left = deadline - time.perf_counter()
        if left <= 0:
            return False
        done.clear()
        try:
            await asyncio.wait_for(done.wait(), left)
        except TimeoutError:
            return False
    return pc.connectionState == "connected"


async def one_check(
    http: httpx2.AsyncClient, csrf: str, media: dict[str, list[bytes]]
) -> dict[str, Any]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    probes = Probes(pc.createDataChannel("rtt", ordered=False, maxRetransmits=0))
    pc.addTrack(ReplayTrack("audio", media["audio"], AUDIO_RATE, AUDIO_FRAME))
    pc.addTrack(ReplayTrack("video", media["video"], 90_000, 90_000 // FPS))
    probing: asyncio.Task[None] | None = None
    try:
        await pc.setLocalDescription(await pc.createOffer())  # before the click, as the page
        started = time.perf_counter()
        deadline = started + CHECK_CAP_S
        body = {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}
        response = await http.post(
            "/api/v1/precheck/offer", json=body, headers={"X-CSRF-Token": csrf}
        )
        if response.status_code != 200:
            ended = time.perf_counter()
            return {"started": started, "ended": ended, "error": response.status_code}
        answered = time.perf_counter()
        await pc.setRemoteDescription(RTCSessionDescription(**response.json()))
        ok = await until_connected(pc, deadline - FINAL_MARGIN_S - time.perf_counter())
        connected = time.perf_counter()
        samples: list[dict[str, float]] = []
        result: dict[str, Any] = {"verdict": "none", "clear": False}
        ended_by = "failed"
        while ok:
            if probing is None and probes.channel.readyState == "open":
                probing = asyncio.create_task(probes.run())
            samples.append(await reading(pc, probes))
            now = time.perf_counter()
            result = summarize(samples, probes, now)
            if now - started >= EARLY_VERDICT_S and result["clear"]:
                ended_by = "clear"
                break
            wait = min(STATS_EVERY_S, deadline - FINAL_MARGIN_S - now)
            if wait <= 0:
                ended_by = "cap"
                break
            await asyncio.sleep(wait)
        return {
            **result,
            "started": started,
            "ended": time.perf_counter(),
            "answer_ms": (answered - started) * 1000,
            "connect_ms": (connected - started) * 1000,
            "ended_by": ended_by,
        }
    finally:
        if probing is not None:
            probing.cancel()
        await pc.close()


async def worker(
    url: str, cookie: str, media: dict[str, list[bytes]], stop: asyncio.Event
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    cookies = {"konsil_patient": cookie}
    async with httpx2.AsyncClient(base_url=url, cookies=cookies, timeout=30) as http:
        csrf = (await http.get("/api/v1/patient/me")).raise_for_status().json()["csrf_token"]
        while not stop.is_set():
            results.append({**await one_check(http, csrf, media), "worker": cookie[:8]})
    return results


async def run(scenario: dict[str, Any]) -> list[dict[str, Any]]:
    aiortc.rtcrtpreceiver.get_decoder = lambda codec: Discard()
    media = {"video": video_packets(), "audio": audio_packets()}
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    workers = [worker(scenario["url"], cookie, media, stop) for cookie in scenario["cookies"]]
    print("running", file=sys.stderr, flush=True)
    return [check for results in await asyncio.gather(*workers) for check in results]


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        json.dump(uvloop.run(run(json.load(f))), sys.stdout)
