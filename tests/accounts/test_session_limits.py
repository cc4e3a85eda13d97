"""Limits a security review checks first: a session's absolute end, how passwords are kept and
how short they may be (BSI TR-03161; docs/compliance.md cites these tests)."""

from __future__ import annotations

from datetime import timedelta

import httpx2
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from app.accounts.models import AuthSession, User
from app.db import utcnow
from tests.factories import Demo, login


async def test_a_session_past_its_absolute_lifetime_is_refused(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await login(client, demo.gp)
    assert (await client.get("/api/v1/auth/me")).status_code == 200
    async with sessions() as session, session.begin():
        await session.execute(
            update(AuthSession).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert (await client.get("/api/v1/auth/me")).status_code == 401


async def test_staff_passwords_are_kept_as_argon2id_hashes(
    demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as session:
        hashes = (await session.execute(select(User.password_hash))).scalars().all()
    assert hashes
    assert all(h.startswith("$argon2id$") for h in hashes)


async def test_a_new_staff_password_needs_ten_characters(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await login(client, demo.admin)
    new = {
        "email": "kurz@praxis.example",
        "password": "123456789",
        "display_name": "Dr. Kurz",
        "role": "gp",
        "practice_id": demo.practice.id,
    }
    refused = await client.post("/api/v1/admin/users", json=new)
    assert refused.status_code == 422
    async with sessions() as session:
        found = await session.execute(select(User).where(col(User.email) == new["email"]))
        assert found.first() is None
