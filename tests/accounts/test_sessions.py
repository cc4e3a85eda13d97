"""Staff sessions: idle timeout, one's own list of sessions, ending one, cookie names."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx2
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import select

from app.accounts import service as accounts
from app.accounts.models import AuthSession
from app.db import unit_of_work, utcnow
from app.main import create_app
from app.seed import DEMO_PASSWORD
from app.settings import Settings
from tests.conftest import create_schema, lifespan_in_own_task
from tests.factories import Demo, login, seed


async def idle_for(sessions: async_sessionmaker[AsyncSession], minutes: float) -> None:
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(AuthSession).values(last_seen_at=utcnow() - timedelta(minutes=minutes))
        )


async def last_seen(sessions: async_sessionmaker[AsyncSession]) -> timedelta:
    async with sessions() as session:
        seen = (await session.execute(select(AuthSession.last_seen_at))).scalar_one()
    return utcnow() - seen


async def test_a_session_ends_after_thirty_idle_minutes(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await login(client, demo.gp)
    me = (await client.get("/api/v1/auth/me")).json()
    assert me["idle_minutes"] == 30
    await idle_for(sessions, 29)
    assert (await client.get("/api/v1/auth/me")).status_code == 200
    await idle_for(sessions, 30)
    assert (await client.get("/api/v1/auth/me")).status_code == 401
    page = await client.get("/gp", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login")


async def test_requests_count_as_activity_written_at_most_once_a_minute(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await login(client, demo.gp)
    await idle_for(sessions, 5)
    assert (await client.get("/api/v1/appointments")).status_code == 200
    assert await last_seen(sessions) < timedelta(seconds=10)
    await idle_for(sessions, 0.5)
    assert (await client.get("/api/v1/appointments")).status_code == 200
    assert await last_seen(sessions) >= timedelta(seconds=29)  # not written again yet


async def test_staff_list_and_end_their_own_sessions(
    client: httpx2.AsyncClient, client_factory: Callable[[], httpx2.AsyncClient], demo: Demo
) -> None:
    await login(client, demo.gp)
    async with client_factory() as laptop, client_factory() as colleague:
        laptop.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"
        await login(laptop, demo.gp)
        await login(colleague, demo.other_gp)
        listed = (await client.get("/api/v1/auth/sessions")).json()
        assert len(listed) == 2  # the colleague's session is not listed
        current = [s for s in listed if s["current"]]
        other = [s for s in listed if not s["current"]]
        assert len(current) == len(other) == 1
        assert "Firefox" in other[0]["user_agent"]
        assert other[0]["ip"]

        ended = await client.delete(f"/api/v1/auth/sessions/{other[0]['key']}")
        assert ended.status_code == 204
        assert (await laptop.get("/api/v1/auth/me")).status_code == 401
        again = await client.delete(f"/api/v1/auth/sessions/{other[0]['key']}")
        assert again.status_code == 404
        not_mine = (await colleague.get("/api/v1/auth/sessions")).json()[0]["key"]
        assert (await client.delete(f"/api/v1/auth/sessions/{not_mine}")).status_code == 404
        assert (await colleague.get("/api/v1/auth/me")).status_code == 200

    own = await client.delete(f"/api/v1/auth/sessions/{current[0]['key']}")
    assert own.status_code == 204
    assert "konsil_staff=" in own.headers["set-cookie"]  # cleared
    assert (await client.get("/api/v1/auth/me")).status_code == 401


async def test_over_https_the_cookies_carry_host_and_secure_prefixes(
    make_settings: Callable[..., Settings],
) -> None:
    cfg = make_settings(cookie_secure=True, base_url="https://konsil.example")
    await create_schema(cfg.database_url)
    application = create_app(cfg)
    async with lifespan_in_own_task(application):
        demo = await seed(application.state.resources.sessions)
        async with httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=application), base_url="https://konsil.example"
        ) as browser:
            response = await browser.post(
                "/api/v1/auth/login", json={"email": demo.gp.email, "password": DEMO_PASSWORD}
            )
            assert response.status_code == 200, response.text
            cookies = response.headers.get_list("set-cookie")
            session = next(c for c in cookies if c.startswith("__Host-konsil_staff="))
            assert "Secure" in session
            assert "Path=/;" in session or session.endswith("Path=/")
            assert "Domain" not in session
            assert any(c.startswith("__Secure-konsil_device=") for c in cookies)
            # The prefixed cookie is the one the server reads.
            browser.headers["X-CSRF-Token"] = response.json()["csrf_token"]
            assert (await browser.get("/api/v1/auth/me")).status_code == 200
            plain = httpx2.AsyncClient(
                transport=httpx2.ASGITransport(app=application),
                base_url="https://konsil.example",
                cookies={"konsil_staff": browser.cookies["__Host-konsil_staff"]},
            )
            async with plain:
                assert (await plain.get("/api/v1/auth/me")).status_code == 401


async def test_touch_does_not_revive_an_ended_or_timed_out_session(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await login(client, demo.gp)
    async with sessions() as session:
        session_id = (await session.execute(select(AuthSession.id))).scalar_one()
    idle = timedelta(minutes=30)

    async def touch() -> bool:
        async with unit_of_work(sessions) as session:
            return await accounts.touch(session, session_id=session_id, now=utcnow(), idle=idle)

    await idle_for(sessions, 29)
    assert await touch()
    assert await last_seen(sessions) < timedelta(seconds=10)
    await idle_for(sessions, 30)
    assert not await touch()
    assert await last_seen(sessions) >= timedelta(minutes=30)
    await idle_for(sessions, 1)
    async with unit_of_work(sessions) as session:
        await accounts.end_session(session, session_id=session_id)
    assert not await touch()
    assert await last_seen(sessions) >= timedelta(minutes=1)
