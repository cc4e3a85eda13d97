"""Passkeys over the API with a software authenticator: a challenge is answered once, also by
two requests at once, and one partial session becomes one full session at most (SQLite and
PostgreSQL, where the conditional updates differ)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from app.accounts import factors
from app.accounts import service as accounts
from app.accounts.models import AuthSession, SessionKind, SessionStage, User
from app.accounts.service import Principal, resolve
from app.db import unit_of_work
from app.errors import NotAuthenticated
from app.settings import Settings
from tests.accounts.softkey import SoftKey
from tests.conftest import BASE_URL
from tests.factories import Demo, login


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url)


async def options(client: httpx2.AsyncClient, path: str) -> dict[str, Any]:
    response = await client.post(path)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def add_passkey(client: httpx2.AsyncClient) -> SoftKey:
    """Registers a software passkey for the client's (fully signed-in) account."""
    key = SoftKey(rp_id="127.0.0.1", origin=BASE_URL)
    created = key.register(await options(client, "/api/v1/account/second-factors/webauthn-options"))
    added = await client.post(
        "/api/v1/account/second-factors/webauthn", json={"credential": created, "label": "Key"}
    )
    assert added.status_code == 200, added.text
    return key


async def test_a_passkey_answers_its_challenge_once_even_twice_at_once(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.gp)
    key = await add_passkey(client)
    challenge = await options(client, "/api/v1/auth/second-factor/webauthn-options")
    assertion = key.assertion(challenge)
    answers = await asyncio.gather(
        *(client.post("/api/v1/auth/reauth", json={"credential": assertion}) for _ in range(2))
    )
    assert sorted(a.status_code for a in answers) == [204, 401]
    again = await client.post("/api/v1/auth/reauth", json={"credential": assertion})
    assert again.status_code == 401
    fresh = key.assertion(await options(client, "/api/v1/auth/second-factor/webauthn-options"))
    assert (await client.post("/api/v1/auth/reauth", json={"credential": fresh})).status_code == 204


async def test_a_challenge_is_taken_by_one_of_two_transactions(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await login(client, demo.gp)
    async with unit_of_work(sessions) as session:
        session_id = (await session.execute(select(AuthSession.id))).scalar_one()
        await factors.set_challenge(session, session_id, "the-challenge")

    async def take() -> str | None:
        async with unit_of_work(sessions) as session:
            return await factors.take_challenge(session, session_id)

    async with unit_of_work(sessions) as first:
        taken = await factors.take_challenge(first, session_id)
        # The second waits for the first one's row (PostgreSQL) or write lock (SQLite).
        second = asyncio.create_task(take())
        await asyncio.sleep(0.3)
    assert (taken, await second) == ("the-challenge", None)


async def test_two_factors_shown_at_once_make_one_signed_in_session(
    client: httpx2.AsyncClient,
    client_factory: Callable[[], httpx2.AsyncClient],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await login(client, demo.gp)
    key = await add_passkey(client)
    async with client_factory() as other:
        await login(other, demo.gp)
        assert (await other.get("/api/v1/auth/me")).json()["stage"] == "second_factor"
        codes = (await client.post("/api/v1/account/recovery-codes")).json()["recovery_codes"]
        passkey = key.assertion(await options(other, "/api/v1/auth/second-factor/webauthn-options"))
        answers = await asyncio.gather(
            other.post("/api/v1/auth/second-factor", json={"credential": passkey}),
            other.post("/api/v1/auth/second-factor", json={"code": codes[0]}),
        )
    assert sorted(a.status_code for a in answers) == [200, 401]
    async with sessions() as session:
        full = await session.execute(
            select(AuthSession.id).where(
                col(AuthSession.user_id) == demo.gp.id, col(AuthSession.ended_at).is_(None)
            )
        )
    assert len(full.all()) == 2  # the first client's and one new one


async def test_a_partial_session_is_promoted_once_and_only_for_an_active_account(
    client: httpx2.AsyncClient,
    client_factory: Callable[[], httpx2.AsyncClient],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    await login(client, demo.gp)
    await add_passkey(client)

    async def partial(browser: httpx2.AsyncClient) -> Principal:
        await login(browser, demo.gp)
        async with sessions() as session:
            token = browser.cookies["konsil_staff"]
            who = await resolve(session, token=token, kind=SessionKind.STAFF, touch_it=False)
        assert who is not None
        assert who.stage is SessionStage.SECOND_FACTOR
        return who

    async def promote(who: Principal) -> None:
        async with unit_of_work(sessions) as session:
            await accounts.promote(session, settings=settings, who=who)

    async with client_factory() as first, client_factory() as second:
        once = await partial(first)
        await promote(once)
        with pytest.raises(NotAuthenticated):
            await promote(once)  # it has been replaced already

        waiting = await partial(second)
        # Deactivated after its factor was checked (set directly: no sessions end with it).
        async with unit_of_work(sessions) as session:
            await session.execute(
                update(User).where(col(User.id) == demo.gp.id).values(is_active=False)
            )
        with pytest.raises(NotAuthenticated):
            await promote(waiting)
