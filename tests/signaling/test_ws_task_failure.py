"""A connection's tasks fail together: a bug in one of them ends the connection at once (the
client sees 1011 and may reconnect) instead of leaving a socket that is open but deaf or mute."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import WS_INTERNAL_ERROR
from app.signaling import endpoint
from app.signaling.endpoint import Link
from tests.factories import Demo, make_appointment
from tests.live import Live
from tests.signaling.wsclient import staff_cookie, ws_connect


@pytest.mark.parametrize("task", ["_writer", "_in_call"])
async def test_ws_a_failing_task_of_a_connection_ends_the_connection(
    live: Live,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
    task: str,
) -> None:
    appointment = await make_appointment(sessions, demo)
    cookie = await staff_cookie(live, demo.specialist)
    query = f"as=staff&appointment={appointment.id}"
    failed: list[str] = []

    async def broken(link: Link, *_: object) -> None:
        failed.append(task)
        raise RuntimeError("a bug")

    with monkeypatch.context() as patch:
        patch.setattr(endpoint, task, broken)
        async with ws_connect(live, query, cookie) as c:
            assert await c.closed_with() == WS_INTERNAL_ERROR
    assert failed == [task]
    # The server goes on serving.
    async with ws_connect(live, query, cookie) as again:
        await again.send(type="join")
        await again.expect("joined")
