"""A small websocket client for the signalling protocol, against a live server."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import httpx2
from websockets.asyncio.client import ClientConnection, connect
from websockets.datastructures import Headers
from websockets.typing import Origin

from app.accounts.models import User
from app.seed import DEMO_PASSWORD
from tests.live import Listening

ORIGIN = "http://127.0.0.1:8000"
TIMEOUT = 20.0
LOGIN_TIMEOUT = 30.0
# Status messages that may come between the ones a test waits for (a test that checks one of
# them waits for it with ``expect``).
NOISE = ("room_state", "queue", "position", "delay", "peer_state")


async def staff_cookie(live: Listening, user: User) -> str:
    # A password check runs in low-priority threads: on a busy machine it may take seconds.
    async with httpx2.AsyncClient(base_url=live.url, timeout=LOGIN_TIMEOUT) as client:
        response = await client.post(
            "/api/v1/auth/login", json={"email": user.email, "password": DEMO_PASSWORD}
        )
        assert response.status_code == 200, response.text
        return f"konsil_staff={client.cookies['konsil_staff']}"


@asynccontextmanager
async def staff_api(live: Listening, user: User) -> AsyncIterator[httpx2.AsyncClient]:
    """An HTTP client signed in as ``user``, with the session's CSRF token."""
    async with httpx2.AsyncClient(
        base_url=live.url, headers={"Origin": ORIGIN}, timeout=LOGIN_TIMEOUT
    ) as http:
        response = await http.post(
            "/api/v1/auth/login", json={"email": user.email, "password": DEMO_PASSWORD}
        )
        assert response.status_code == 200, response.text
        http.headers["X-CSRF-Token"] = response.json()["csrf_token"]
        yield http


@asynccontextmanager
async def ws_connect(
    live: Listening, query: str, cookie: str | None, origin: str = ORIGIN
) -> AsyncIterator[Client]:
    headers = {"Cookie": cookie} if cookie else {}
    async with connect(
        f"{live.ws}?{query}", origin=Origin(origin), additional_headers=headers, compression=None
    ) as ws:
        yield Client(ws)


class Reachable(Protocol):
    """A server on 127.0.0.1 (``tests.live.Listening``, the chaos tests' proxy)."""

    @property
    def port(self) -> int: ...
    @property
    def ws(self) -> str: ...


@asynccontextmanager
async def raw_websocket(
    live: Reachable, query: str, cookie: str, *, origin: str = ORIGIN, sluggish: bool = False
) -> AsyncIterator[ClientConnection]:
    """A websocket of the client library itself, frames of any size accepted. ``sluggish``:
    one whose reader hardly reads (a 4 KiB receive buffer, one frame taken into the client
    at a time), so that what the server sends it piles up in the buffers and send queue."""
    sock = None
    if sluggish:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", live.port))
    async with connect(
        f"{live.ws}?{query}",
        sock=sock,
        origin=Origin(origin),
        additional_headers=Headers(Cookie=cookie),
        compression=None,
        max_queue=1 if sluggish else 16,
        max_size=None,
    ) as ws:
        yield ws


@dataclass
class Client:
    ws: ClientConnection

    async def send(self, **message: Any) -> None:
        await self.ws.send(json.dumps(message))

    async def recv(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
        return data

    async def expect(self, kind: str) -> dict[str, Any]:
        """The next message of type ``kind``, skipping the ``NOISE`` status messages."""
        while True:
            message = await self.recv()
            if message["type"] == kind:
                return message
            assert message["type"] in NOISE, message

    async def closed_with(self) -> int:
        await asyncio.wait_for(self.ws.wait_closed(), TIMEOUT)
        assert self.ws.close_code is not None
        return self.ws.close_code
