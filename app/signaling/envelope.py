"""Broker channel names and the sequence tracker for messages between server processes.

Every message carries its sender (``o``) and a sequence number per sender and channel (``s``);
the messages themselves are typed in ``wire``. Redis pub/sub delivers at most once, so a
receiver that sees a sequence number jump knows it missed something and makes the clients
renegotiate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from pydantic import TypeAdapter

from app.metrics import BROKER_DROPPED
from app.signaling import wire

T = TypeVar("T")


def room_channel(appointment_id: int) -> str:
    return f"konsil:room:{appointment_id}"


def queue_channel(specialist_id: int) -> str:
    return f"konsil:queue:{specialist_id}"


# GPs' presence counts (``presence.py``): one channel for every specialty.
PRESENCE = "konsil:presence"


def resume_key(resume_hash: str) -> str:
    return f"konsil:resume:{resume_hash}"


def current_key(seat_hash: str) -> str:
    """Names the current participant of one seat of a room (``resume.current_key``)."""
    return f"konsil:current:{seat_hash}"


def ending_key(appointment_id: int, participant_id: str) -> str:
    """Held by the one process that ends a dead process's seat whose record was gone."""
    return f"konsil:ending:{appointment_id}:{participant_id}"


def alive_key(origin: str) -> str:
    """A server process's liveness key (``liveness``), by its origin."""
    return f"konsil:alive:{origin}"


def seats_key(origin: str) -> str:
    """The index of the seats a server process holds (``orphans``): a hash of resume record
    keys, each with its appointment id."""
    return f"konsil:seats:{origin}"


def processes_key(scope: str) -> str:
    """The registry of the server processes of one service (``orphans``): a hash by origin."""
    return f"konsil:processes:{scope}"


def orphans_key(origin: str) -> str:
    """Held by the one process that ends a dead process's seats (``orphans``)."""
    return f"konsil:orphans:{origin}"


async def received(
    raw_messages: AsyncIterator[bytes],
    adapter: TypeAdapter[T],
    label: str,
    known: Callable[[bytes], T | None] | None = None,
) -> AsyncIterator[T]:
    """The messages of a subscription as ``adapter`` types them; a malformed or unknown one is
    counted in ``konsil_broker_messages_dropped_total{channel=label}`` and skipped.

    ``known(raw)``: the message this process itself made and published as exactly these bytes,
    if it still has it (then it is not parsed again); None parses and validates ``raw``."""
    async for raw in raw_messages:
        message = parsed(raw, adapter, label, known)
        if message is not None:
            yield message


def parsed(
    raw: bytes,
    adapter: TypeAdapter[T],
    label: str,
    known: Callable[[bytes], T | None] | None = None,
) -> T | None:
    """One message as ``received`` takes it: None (counted) for a malformed or unknown one."""
    message = known(raw) if known is not None else None
    if message is None:
        message = wire.parse(adapter, raw)
    if message is None:
        BROKER_DROPPED.labels(channel=label).inc()
    return message


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
