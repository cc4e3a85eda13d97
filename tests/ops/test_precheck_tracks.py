"""The echo peer's audio track (app/precheck/tracks.py), without a peer connection."""

from __future__ import annotations

import av
from aiortc.mediastreams import AudioStreamTrack

from app.precheck.tracks import AudioEcho, first_codec

OFFER = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF {audio}\r\n"
    "a=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n"
)


def test_first_codec_is_the_first_listed_of_its_section() -> None:
    assert first_codec(OFFER.format(audio="111 0"), "audio") == "opus"
    assert first_codec(OFFER.format(audio="0 111"), "audio") == "pcmu"
    assert first_codec(OFFER.format(audio="111 0"), "video") == "vp8"


def test_first_codec_without_the_section_is_none() -> None:
    assert (
        first_codec("v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n", "audio") is None
    )
    assert first_codec("m=audio 9\r\n", "audio") is None


async def test_audio_echo_hands_over_opus_packets_in_sequence() -> None:
    echo = AudioEcho(AudioStreamTrack(), opus=lambda: True)
    try:
        packets = [await echo.recv() for _ in range(3)]
    finally:
        echo.stop()
    assert all(isinstance(p, av.Packet) and bytes(p) for p in packets)
    assert [p.pts for p in packets] == [0, 960, 1920]


async def test_audio_echo_passes_frames_through_without_opus() -> None:
    echo = AudioEcho(AudioStreamTrack(), opus=lambda: False)
    try:
        frame = await echo.recv()
    finally:
        echo.stop()
    assert isinstance(frame, av.AudioFrame)
