"""An on-call request across two real server processes on PostgreSQL and Redis: both
specialists of the specialty see it arrive live, both take it at the same moment, exactly one
gets it and the other sees it disappear."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from app.db import create_engine, session_factory
from tests.conftest import create_schema
from tests.factories import Demo, login, seed
from tests.live import run_server_async
from tests.scheduling.test_on_call import on_call_body
from tests.services import REDIS_URL, require_redis
from tests.signaling.wsclient import LOGIN_TIMEOUT, Client, staff_cookie, ws_connect

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
async def demo_pg(postgres_url: str) -> AsyncIterator[Demo]:
    await create_schema(postgres_url)
    engine = create_engine(postgres_url)
    try:
        yield await seed(session_factory(engine))
    finally:
        await engine.dispose()


async def queue_with(dashboard: Client, *, open_requests: int) -> dict[str, Any]:
    """The next ``queue`` snapshot with ``open_requests`` on-call requests in it."""
    while True:
        snapshot = await dashboard.expect("queue")
        if len(snapshot["on_call"]) == open_requests:
            return snapshot


async def test_on_call_claimed_at_once_on_two_processes_exactly_one_gets_it(
    tmp_path: Path, postgres_url: str, demo_pg: Demo
) -> None:
    require_redis()
    demo = demo_pg
    env = {"database_url": postgres_url, "broker_url": REDIS_URL}
    async with (
        run_server_async(tmp_path, **env) as first,
        run_server_async(tmp_path, **env) as second,
    ):
        cookies = [
            await staff_cookie(first, demo.specialist),
            await staff_cookie(second, demo.other_specialist),
        ]
        async with (
            ws_connect(first, "as=staff", cookies[0], origin=first.url) as one,
            ws_connect(second, "as=staff", cookies[1], origin=second.url) as two,
        ):
            await queue_with(one, open_requests=0)
            await queue_with(two, open_requests=0)
            async with httpx2.AsyncClient(
                base_url=first.url, headers={"Origin": first.url}, timeout=LOGIN_TIMEOUT
            ) as gp:
                await login(gp, demo.gp)
                asked = await gp.post("/api/v1/on-call", json=on_call_body(demo.cardiology))
                assert asked.status_code == 201, asked.text
            appointment_id = asked.json()["appointment"]["id"]
            # Live on both processes (the request was made through the first).
            for dashboard in (one, two):
                (entry,) = (await queue_with(dashboard, open_requests=1))["on_call"]
                assert entry["appointment_id"] == appointment_id

            async with (
                httpx2.AsyncClient(
                    base_url=first.url, headers={"Origin": first.url}, timeout=LOGIN_TIMEOUT
                ) as a,
                httpx2.AsyncClient(
                    base_url=second.url, headers={"Origin": second.url}, timeout=LOGIN_TIMEOUT
                ) as b,
            ):
                await login(a, demo.specialist)
                await login(b, demo.other_specialist)
                url = f"/api/v1/on-call/{appointment_id}/claim"
                answers = await asyncio.gather(a.post(url), b.post(url))
            assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
            (lost,) = [a for a in answers if a.status_code == 409]
            assert lost.json()["error"]["code"] == "already_claimed"
            # Gone from both queues' open requests.
            await queue_with(one, open_requests=0)
            await queue_with(two, open_requests=0)
