"""The queue page's knock sound, made here rather than downloaded: ``python -m app.pages.knock``
writes ``frontend/static/knock.wav`` (a test checks the file is what this makes).

Two soft sine tones, a fifth apart, 0.32 s in all, 16 kHz mono 16-bit PCM (about 10 KB):
audible over a ventilator, short enough not to startle, and no sound library needed.
"""

from __future__ import annotations

import io
import math
import struct
import sys
import wave

from app.pages.templating import STATIC

RATE = 16_000
TONES = ((880.0, 0.14), (587.33, 0.18))  # A5, then D5
VOLUME = 0.35
FADE = 0.012  # seconds of fade in and out per tone: no clicks


def _tone(frequency: float, seconds: float) -> list[int]:
    count = int(RATE * seconds)
    fade = int(RATE * FADE)
    samples = []
    for i in range(count):
        envelope = min(1.0, i / fade, (count - i) / fade)
        # A gentle decay after the attack, like a tap on wood rather than a beep.
        decay = math.exp(-3.0 * i / count)
        value = VOLUME * envelope * decay * math.sin(2 * math.pi * frequency * i / RATE)
        samples.append(round(value * 32767))
    return samples


def knock_wav() -> bytes:
    """The WAV file's bytes (always the same)."""
    samples = [s for frequency, seconds in TONES for s in _tone(frequency, seconds)]
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return buffer.getvalue()


def main() -> int:
    (STATIC / "knock.wav").write_bytes(knock_wav())
    return 0


if __name__ == "__main__":
    sys.exit(main())
