"""Two senders with their own connection pools on one PostgreSQL database (as two server
processes): each message is claimed, and sent, exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from app.db import create_engine, session_factory
from app.notify.models import Status
from app.notify.sender import Sender
from tests.notify.conftest import Clock, Db, booked, enqueue, sender_for
from tests.notify.smtpd import Inbox, smtp_server

MESSAGES = 24


@pytest.fixture
def database_url(postgres_url: str) -> str:
    return postgres_url


async def test_two_senders_never_send_one_message_twice(db: Db, clock: Clock) -> None:
    jobs = []
    for _ in range(MESSAGES):
        appointment, _ = await booked(db)
        jobs.append(await enqueue(db, clock, appointment))
    other_engine = create_engine(db.settings.database_url)
    try:
        with smtp_server(Inbox(delay=0.005)) as server:
            first = sender_for(db, server.url(), clock)
            second = sender_for(db, server.url(), clock)
            second = Sender(
                session_factory(other_engine), second.settings, second.mail, clock=clock
            )
            done = await asyncio.gather(first.send_all(), second.send_all())
            received = server.inbox.received
    finally:
        await other_engine.dispose()
    assert [len(d) for d in done].count(0) == 0  # both took part
    assert sum(len(d) for d in done) == MESSAGES
    assert set(done[0] + done[1]) == {Status.SENT}
    ids = Counter(r.message["Message-ID"] for r in received)
    assert len(ids) == MESSAGES
    assert max(ids.values()) == 1
    assert ids.keys() == {
        f"<konsil.{j.id}.{j.created_at:%Y%m%d%H%M%S}@klinikum.example>" for j in jobs
    }
