"""One session holds at most ``ws_max_per_session`` websockets on a process; more are closed
with 4429 right after the handshake, and a closed one frees its place."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from websockets.exceptions import ConnectionClosed

from app.errors import WS_RATE_LIMITED
from app.settings import Settings
from tests.factories import Demo
from tests.live import Live
from tests.signaling.wsclient import staff_cookie, ws_connect


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(ws_max_per_session=2)


async def test_a_session_gets_a_limited_number_of_websockets(live: Live, demo: Demo) -> None:
    cookie = await staff_cookie(live, demo.specialist)
    other = await staff_cookie(live, demo.other_specialist)
    async with ws_connect(live, "as=staff", cookie) as first:
        assert (await first.expect("queue"))["type"] == "queue"
        async with ws_connect(live, "as=staff", cookie) as second:
            await second.expect("queue")
            async with ws_connect(live, "as=staff", cookie) as third:
                assert await third.closed_with() == WS_RATE_LIMITED
                assert third.ws.close_reason == "too many connections"
            # Another session is not affected.
            async with ws_connect(live, "as=staff", other) as elsewhere:
                await elsewhere.expect("queue")
    # Closed connections give their places back.
    await asyncio.sleep(0.2)
    async with ws_connect(live, "as=staff", cookie) as again:
        await again.expect("queue")


async def test_parallel_handshakes_cannot_exceed_the_cap(live: Live, demo: Demo) -> None:
    cookie = await staff_cookie(live, demo.specialist)

    async def attempt() -> int:
        """0 if served, else the close code."""
        async with ws_connect(live, "as=staff", cookie) as client:
            try:
                assert (await client.recv())["type"] == "queue"
            except ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd is not None else -1
            await asyncio.sleep(0.5)  # hold the place while the others try
            return 0

    results = await asyncio.gather(*(attempt() for _ in range(6)))
    assert sorted(results) == [0, 0] + [WS_RATE_LIMITED] * 4
