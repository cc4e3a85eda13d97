"""Staff login, logout, sessions, CSRF, throttling and no user enumeration."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx2
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import select

from app.accounts.models import AuthSession, User
from app.audit.models import AuditEvent
from app.db import unit_of_work
from tests.factories import Demo, login


async def test_login_sets_cookie_and_returns_profile(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    response = await client.post(
        "/api/v1/auth/login",
        json={"email": "Lehmann@Praxis-Spremberg.example", "password": "konsil-demo-2026"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["role"] == "gp"
    assert body["email"] == demo.gp.email
    cookie = response.headers["set-cookie"]
    assert "konsil_staff=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie


async def test_login_stores_only_the_hash_of_the_session_token(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await login(client, demo.gp)
    token = client.cookies["konsil_staff"]
    async with sessions() as session:
        ids = (await session.execute(select(AuthSession.id))).scalars().all()
    assert len(token) >= 43
    assert token not in ids
    assert len(ids) == 1
    assert len(ids[0]) == 64


async def test_login_wrong_password_and_unknown_user_look_the_same(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    wrong = await client.post(
        "/api/v1/auth/login", json={"email": demo.gp.email, "password": "nope"}
    )
    unknown = await client.post(
        "/api/v1/auth/login", json={"email": "nobody@example.org", "password": "nope"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert "set-cookie" not in wrong.headers


async def test_login_rejects_malformed_body(client: httpx2.AsyncClient, demo: Demo) -> None:
    response = await client.post("/api/v1/auth/login", content=b"{not json")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"
    extra = await client.post(
        "/api/v1/auth/login", json={"email": demo.gp.email, "password": "x", "admin": True}
    )
    assert extra.status_code == 422
    assert extra.json()["error"]["detail"]["fields"][0]["field"] == "admin"


async def test_login_refuses_an_oversized_body_while_it_streams(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        # No Content-Length: only counting while reading can stop this body.
        yield b'{"email": "' + b"a" * 200_000
        yield b"b" * 200_000 + b'", "password": "x"}'

    streamed = await client.post("/api/v1/auth/login", content=chunks())
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "payload_too_large"
    declared = await client.post("/api/v1/auth/login", content=b" " * 300_000)
    assert declared.status_code == 413
    async with sessions() as session:
        assert (await session.execute(select(AuditEvent.id))).first() is None


async def test_login_throttled_after_repeated_failures(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    for _ in range(5):
        r = await client.post(
            "/api/v1/auth/login", json={"email": demo.gp.email, "password": "bad"}
        )
        assert r.status_code == 401
    blocked = await client.post(
        "/api/v1/auth/login", json={"email": demo.gp.email, "password": "konsil-demo-2026"}
    )
    assert blocked.status_code == 429
    assert blocked.json()["error"]["code"] == "too_many_attempts"
    assert int(blocked.headers["retry-after"]) > 0
    # Another account is not locked by someone guessing at this one.
    await login(client, demo.other_gp)
    async with sessions() as session:
        subjects = (await session.execute(select(AuditEvent.subject, AuditEvent.detail))).all()
    assert all(demo.gp.email not in str(row) for row in subjects)


async def test_logout_ends_the_session_even_if_the_cookie_is_replayed(
    client: httpx2.AsyncClient, demo: Demo, client_factory: Callable[[], httpx2.AsyncClient]
) -> None:
    await login(client, demo.gp)
    token = client.cookies["konsil_staff"]
    assert (await client.get("/api/v1/auth/me")).status_code == 200
    assert (await client.post("/api/v1/auth/logout")).status_code == 204
    async with client_factory() as replay:
        replay.cookies.set("konsil_staff", token)
        assert (await replay.get("/api/v1/auth/me")).status_code == 401


async def test_unsafe_request_without_csrf_token_is_refused(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.gp)
    del client.headers["X-CSRF-Token"]
    response = await client.post("/api/v1/auth/logout")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"
    assert (await client.get("/api/v1/auth/me")).status_code == 200


async def test_csrf_token_in_a_form_field_is_not_accepted(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.gp)
    token = client.headers.pop("X-CSRF-Token")
    response = await client.post("/api/v1/auth/logout", data={"csrf_token": token})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"
    assert (await client.get("/api/v1/auth/me")).status_code == 200


async def test_unsafe_request_from_foreign_origin_is_refused(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.gp)
    response = await client.post("/api/v1/auth/logout", headers={"Origin": "https://evil.example"})
    assert response.status_code == 403


async def test_admin_creates_user_and_others_may_not(
    client: httpx2.AsyncClient, demo: Demo, client_factory: Callable[[], httpx2.AsyncClient]
) -> None:
    new = {
        "email": "neu@praxis.example",
        "password": "lang-genug-123",
        "display_name": "Dr. Neu",
        "role": "gp",
        "practice_id": demo.practice.id,
    }
    async with client_factory() as gp:
        await login(gp, demo.gp)
        assert (await gp.post("/api/v1/admin/users", json=new)).status_code == 403
    await login(client, demo.admin)
    created = await client.post("/api/v1/admin/users", json=new)
    assert created.status_code == 201
    assert "password" not in created.text
    again = await client.post("/api/v1/admin/users", json=new)
    assert again.status_code == 409


async def test_audit_log_is_append_only(
    database_url: str, make_settings: Callable[..., object]
) -> None:
    from tests.conftest import create_schema

    await create_schema(database_url)
    from app.db import create_engine, session_factory

    engine = create_engine(database_url)
    sessions = session_factory(engine)
    try:
        async with unit_of_work(sessions) as session:
            session.add(AuditEvent(action="login.success", actor_kind="staff", actor_id=1))
        for statement in ("UPDATE audit_event SET action = 'x'", "DELETE FROM audit_event"):
            with pytest.raises(DBAPIError, match="append-only"):
                async with unit_of_work(sessions) as session:
                    await session.execute(text(statement))
        async with sessions() as session:
            rows = (await session.execute(select(AuditEvent.action))).scalars().all()
        assert rows == ["login.success"]
    finally:
        await engine.dispose()


async def test_inactive_user_cannot_log_in(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with unit_of_work(sessions) as session:
        user = await session.get(User, demo.gp.id)
        assert user is not None
        user.is_active = False
    r = await client.post(
        "/api/v1/auth/login", json={"email": demo.gp.email, "password": "konsil-demo-2026"}
    )
    assert r.status_code == 401


async def test_admin_deactivation_ends_the_users_sessions(
    client: httpx2.AsyncClient, demo: Demo, client_factory: Callable[[], httpx2.AsyncClient]
) -> None:
    async with client_factory() as gp:
        await login(gp, demo.gp)
        await login(client, demo.admin)
        response = await client.patch(
            f"/api/v1/admin/users/{demo.gp.id}", json={"is_active": False}
        )
        assert response.status_code == 200
        assert response.json()["is_active"] is False
        assert (await gp.get("/api/v1/auth/me")).status_code == 401
    own = await client.patch(f"/api/v1/admin/users/{demo.admin.id}", json={"is_active": False})
    assert own.status_code == 409
    missing = await client.patch("/api/v1/admin/users/99999", json={"is_active": True})
    assert missing.status_code == 404


async def test_admin_creates_specialty_once(client: httpx2.AsyncClient, demo: Demo) -> None:
    await login(client, demo.admin)
    body = {"slug": "neurologie", "name_de": "Neurologie", "name_en": "Neurology"}
    assert (await client.post("/api/v1/specialties", json=body)).status_code == 201
    assert (await client.post("/api/v1/specialties", json=body)).status_code == 409
    bad = await client.post("/api/v1/specialties", json={**body, "slug": "Neuro Logie"})
    assert bad.status_code == 422
    slugs = [s["slug"] for s in (await client.get("/api/v1/specialties")).json()]
    assert "neurologie" in slugs
