"""Bounded outbox, token bucket and sequence gaps: the pure parts of the I/O layer."""

from __future__ import annotations

from app.errors import WS_NORMAL, WS_SLOW_CONSUMER
from app.signaling import messages as m
from app.signaling.connection import Connection, TokenBucket
from app.signaling.envelope import SequenceTracker


async def test_connection_overflow_closes_only_that_consumer() -> None:
    slow, fast = Connection(limit=8, role="patient"), Connection(limit=8, role="specialist")
    for _ in range(9):
        slow.send(m.PeerLeft(peer_id="p_abcdefgh12"))
        fast.send(m.PeerLeft(peer_id="p_abcdefgh12"))
        await fast.next()
    assert slow.close_code == WS_SLOW_CONSUMER
    assert await slow.next() is None
    assert fast.close_code is None


async def test_connection_delivers_queued_messages_before_closing() -> None:
    conn = Connection(limit=8, role="patient")
    conn.send(m.PeerLeft(peer_id="p_abcdefgh12"))
    conn.close(WS_NORMAL, "bye")
    assert await conn.next() is not None
    assert await conn.next() is None


def test_token_bucket_allows_burst_then_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.5)
    assert not bucket.take(0.5)


def test_sequence_tracker_reports_gaps_per_origin() -> None:
    tracker = SequenceTracker()
    assert not tracker.see("room", "a", 5)  # first sight: no history, no gap
    assert not tracker.see("room", "a", 6)
    assert tracker.see("room", "a", 8)
    assert not tracker.see("room", "b", 1)
