"""The baseline: the smallest useful Starlette websocket relay.

``/ws?room=R&peer=P``; every JSON message names a ``to`` peer of the same room and is forwarded
with ``from`` added. No authentication, validation, rate limits or queues. With ``BENCH_REDIS_URL``
set, messages go through Redis pub/sub (one pattern subscription per process), like Konsil's
multi-process mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

ROOMS: dict[str, dict[str, WebSocket]] = {}


async def healthz(request: object) -> PlainTextResponse:
    return PlainTextResponse("ok")


def create_app() -> Starlette:
    redis_url = os.environ.get("BENCH_REDIS_URL")
    state: dict[str, object] = {}

    async def deliver(room: str, to: str, text: str) -> None:
        target = ROOMS.get(room, {}).get(to)
        if target is not None:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await target.send_text(text)

    async def relay(websocket: WebSocket) -> None:
        room = websocket.query_params["room"]
        peer = websocket.query_params["peer"]
        await websocket.accept()
        ROOMS.setdefault(room, {})[peer] = websocket
        try:
            while True:
                data = json.loads(await websocket.receive_text())
                data["from"] = peer
                text = json.dumps(data)
                if redis_url:
                    await state["redis"].publish(f"bench:{room}:{data['to']}", text)  # type: ignore[attr-defined]
                else:
                    await deliver(room, data["to"], text)
        except WebSocketDisconnect:
            pass
        finally:
            ROOMS.get(room, {}).pop(peer, None)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not redis_url:
            yield
            return
        from redis.asyncio import BlockingConnectionPool, Redis

        # Many connections publish at once: wait for a pooled connection instead of failing
        # once more than the pool's size publish concurrently.
        redis = Redis(
            connection_pool=BlockingConnectionPool.from_url(redis_url, max_connections=64)
        )
        state["redis"] = redis
        pubsub = redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.psubscribe("bench:*")

        async def listen() -> None:
            async for item in pubsub.listen():
                if item["type"] == "pmessage":
                    _, room, to = item["channel"].decode().split(":", 2)
                    await deliver(room, to, item["data"].decode())

        task = asyncio.create_task(listen())
        try:
            yield
        finally:
            task.cancel()
            await pubsub.aclose()
            await redis.aclose()

    return Starlette(
        routes=[Route("/healthz", healthz), WebSocketRoute("/ws", relay)], lifespan=lifespan
    )
