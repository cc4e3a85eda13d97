"""``/ws`` is served ahead of Starlette's middleware and exception chain (``app.main.Konsil``):
an open signalling socket holds no coroutine of that chain, only the endpoint's own, while every
other path still goes through it."""

from __future__ import annotations

import gc
import types
from collections import Counter

import httpx2
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import WS_POLICY_VIOLATION
from app.settings import Settings
from tests.factories import Demo, make_appointment, patient_token
from tests.live import Live
from tests.signaling.wsclient import ws_connect


def suspended(package: str) -> Counter[str]:
    """How many suspended coroutines of each qualified name have their code in ``package``."""
    marker = f"/{package}/"
    return Counter(
        obj.cr_code.co_qualname
        for obj in gc.get_objects()
        if type(obj) is types.CoroutineType  # (not isinstance: dead weak proxies raise)
        and obj.cr_frame is not None
        and marker in obj.cr_code.co_filename
    )


async def test_ws_socket_holds_no_coroutine_of_the_chain(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo)
    cookie = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    chain = suspended("starlette")  # the app's lifespan runs through the chain, once
    async with ws_connect(live, f"as=patient&appointment={appointment.id}", cookie) as p:
        await p.send(type="join")
        assert (await p.recv())["type"] == "joined"
        # The patient waits: the endpoint's coroutines are suspended, and none of Starlette's
        # (its middlewares, router, route wrapper) is under them.
        assert {"signaling", "serve", "_run", "_reader"} <= suspended("app/signaling").keys()
        assert suspended("starlette") == chain
    # A refusal is still answered by the endpoint itself, with its close code.
    async with ws_connect(live, "as=nobody&appointment=1", cookie) as bad:
        assert await bad.closed_with() == WS_POLICY_VIOLATION


async def test_other_paths_still_go_through_the_chain(live: Live) -> None:
    async with httpx2.AsyncClient(base_url=live.url) as client:
        page = await client.get("/healthz")
        missing = await client.get("/ws")  # an HTTP request to the socket's path
    assert page.status_code == 200
    # The security headers middleware still answers for everything but the socket.
    assert "content-security-policy" in {k.lower() for k in page.headers}
    assert missing.status_code in (404, 405)
