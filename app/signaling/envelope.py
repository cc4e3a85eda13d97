"""What server processes tell each other on broker channels: JSON envelopes with sequence numbers.

``{"o": <origin process id>, "s": <sequence per origin and channel>, "e": <event>, ...}``.
Redis pub/sub delivers at most once, so a receiver that sees a sequence number jump knows it
missed something and makes the clients renegotiate.
"""

from __future__ import annotations

import json
from typing import Any


def room_channel(appointment_id: int) -> str:
    return f"konsil:room:{appointment_id}"


def queue_channel(specialist_id: int) -> str:
    return f"konsil:queue:{specialist_id}"


def resume_key(resume_hash: str) -> str:
    return f"konsil:resume:{resume_hash}"


def pack(origin: str, seq: int, event: str, **fields: Any) -> bytes:
    return json.dumps({"o": origin, "s": seq, "e": event, **fields}).encode()


def unpack(raw: bytes) -> dict[str, Any] | None:
    """The envelope, or None for anything malformed (never trusted blindly)."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("o"), str):
        return None
    if not isinstance(data.get("s"), int) or not isinstance(data.get("e"), str):
        return None
    return data


class SequenceTracker:
    """Remembers the last sequence number per (channel, origin) and reports gaps."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], int] = {}

    def see(self, channel: str, origin: str, seq: int) -> bool:
        """True if messages from ``origin`` on ``channel`` were lost before this one."""
        key = (channel, origin)
        last = self._last.get(key)
        self._last[key] = seq if last is None else max(last, seq)
        return last is not None and seq > last + 1

    def forget(self, channel: str) -> None:
        for key in [k for k in self._last if k[0] == channel]:
            del self._last[key]
