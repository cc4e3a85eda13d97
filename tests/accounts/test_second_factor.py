"""Two-factor sign-in: enrolment with an authenticator app, codes, recovery codes, re-auth,
the admin's reset, and what a session that has only shown its password may do."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio.to_thread
import httpx2
import pyotp
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select
from starlette.applications import Starlette

from app import cli
from app.accounts import factors
from app.accounts.models import AuthSession, RecoveryCode, SecondFactor
from app.audit.models import AuditEvent
from app.db import unit_of_work, utcnow
from app.seed import DEMO_PASSWORD
from app.settings import Settings
from tests.conftest import BASE_URL
from tests.factories import Demo, login


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # The default: every staff role needs a second factor outside development.
    return make_settings(second_factor_roles=None)


def test_default_policy_requires_a_second_factor_outside_development() -> None:
    def cfg(**values: object) -> Settings:
        return Settings(**values)  # type: ignore[arg-type]

    assert not cfg(environment="development").second_factor_required("gp")
    assert cfg(environment="test").second_factor_required("specialist")
    assert cfg(environment="development", second_factor_roles=["admin"]).second_factor_required(
        "admin"
    )
    assert not cfg(environment="test", second_factor_roles=["admin"]).second_factor_required("gp")


def test_totp_codes_are_accepted_one_step_either_side_only() -> None:
    secret = factors.new_totp_secret()
    totp = pyotp.TOTP(secret)
    now = utcnow()
    step = totp.timecode(now)
    half_minutes = [now + timedelta(seconds=30 * k) for k in range(-2, 3)]
    before2, before, _, after, after2 = (totp.at(t) for t in half_minutes)
    assert factors.totp_step(secret, totp.at(now), now) == step
    assert factors.totp_step(secret, before, now) == step - 1
    assert factors.totp_step(secret, after, now) == step + 1
    assert factors.totp_step(secret, before2, now) is None
    assert factors.totp_step(secret, after2, now) is None
    assert factors.totp_step(secret, "12345", now) is None
    assert factors.totp_step(secret, "１２３４５６", now) is None  # full-width digits
    # A secret that could not be decrypted (KONSIL_SECRET_KEY changed) matches nothing.
    assert factors.totp_step("", totp.at(now), now) is None


@dataclass(frozen=True)
class Enrolled:
    secret: str
    recovery_codes: list[str]
    code: str  # the code that confirmed it (spent)
    at: datetime

    def next_code(self) -> str:
        """The code of the time step after the spent one (accepted for another 30-60 s)."""
        return str(pyotp.TOTP(self.secret).at(self.at + timedelta(seconds=30)))


async def enrol(client: httpx2.AsyncClient) -> Enrolled:
    """Sets up an authenticator app for the client's account."""
    started = await client.post("/api/v1/account/second-factors/totp")
    assert started.status_code == 201, started.text
    body = started.json()
    assert body["uri"].startswith("otpauth://totp/Konsil:")
    assert body["qr"].startswith("data:image/svg+xml")
    at = utcnow()
    code = pyotp.TOTP(body["secret"]).at(at)
    confirmed = await client.post(
        f"/api/v1/account/second-factors/totp/{body['id']}/confirm",
        json={"code": code, "label": "Telefon"},
    )
    assert confirmed.status_code == 200, confirmed.text
    return Enrolled(body["secret"], confirmed.json()["recovery_codes"], code, at)


async def test_an_account_without_a_factor_must_set_one_up_first(
    client: httpx2.AsyncClient, client_factory: Callable[[], httpx2.AsyncClient], demo: Demo
) -> None:
    await login(client, demo.gp)
    me = (await client.get("/api/v1/auth/me")).json()
    assert me["stage"] == "enrol"
    blocked = await client.get("/api/v1/appointments")
    assert blocked.status_code == 403
    assert blocked.json()["error"]["code"] == "second_factor_enrolment_required"
    token_before = client.cookies["konsil_staff"]

    codes = (await enrol(client)).recovery_codes

    assert len(codes) == 10
    assert len(set(codes)) == 10
    # The session was replaced: the token from before the second factor is worth nothing.
    assert client.cookies["konsil_staff"] != token_before
    me = (await client.get("/api/v1/auth/me")).json()
    assert me["stage"] == "full"
    client.headers["X-CSRF-Token"] = me["csrf_token"]
    assert (await client.get("/api/v1/appointments")).status_code == 200
    async with client_factory() as stale:
        stale.cookies.set("konsil_staff", token_before)
        assert (await stale.get("/api/v1/auth/me")).status_code == 401


async def test_sign_in_needs_a_fresh_code_and_each_code_works_once(
    client: httpx2.AsyncClient,
    client_factory: Callable[[], httpx2.AsyncClient],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await login(client, demo.specialist)
    enrolled = await enrol(client)

    async with client_factory() as other:
        await login(other, demo.specialist)
        me = (await other.get("/api/v1/auth/me")).json()
        assert me["stage"] == "second_factor"
        blocked = await other.get("/api/v1/appointments")
        assert blocked.status_code == 403
        assert blocked.json()["error"]["code"] == "second_factor_required"
        wrong = await other.post("/api/v1/auth/second-factor", json={"code": "000000"})
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "invalid_code"
        # The code that confirmed the enrolment was spent there.
        replay = await other.post("/api/v1/auth/second-factor", json={"code": enrolled.code})
        assert replay.status_code == 401
        ok = await other.post("/api/v1/auth/second-factor", json={"code": enrolled.next_code()})
        assert ok.status_code == 200, ok.text
        assert ok.json()["stage"] == "full"
        other.headers["X-CSRF-Token"] = ok.json()["csrf_token"]
        assert (await other.get("/api/v1/auth/me")).json()["stage"] == "full"

    async with sessions() as session:
        actions = (await session.execute(select(AuditEvent.action))).scalars().all()
    assert "second_factor.failure" in actions
    assert "second_factor.success" in actions


async def test_a_code_sent_twice_at_once_signs_in_only_once(
    client: httpx2.AsyncClient, client_factory: Callable[[], httpx2.AsyncClient], demo: Demo
) -> None:
    await login(client, demo.gp)
    code = (await enrol(client)).next_code()
    async with client_factory() as first, client_factory() as second:
        await login(first, demo.gp)
        await login(second, demo.gp)
        answers = await asyncio.gather(
            first.post("/api/v1/auth/second-factor", json={"code": code}),
            second.post("/api/v1/auth/second-factor", json={"code": code}),
        )
    assert sorted(a.status_code for a in answers) == [200, 401]


async def test_a_recovery_code_signs_in_once(
    client: httpx2.AsyncClient,
    client_factory: Callable[[], httpx2.AsyncClient],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await login(client, demo.gp)
    codes = (await enrol(client)).recovery_codes
    async with sessions() as session:
        stored = (await session.execute(select(RecoveryCode.code_hash))).scalars().all()
    assert not set(codes) & set(stored)  # only keyed hashes are kept

    async with client_factory() as other:
        await login(other, demo.gp)
        used = await other.post(
            "/api/v1/auth/second-factor", json={"code": codes[0].upper().replace("-", " ")}
        )
        assert used.status_code == 200, used.text
    async with client_factory() as third:
        await login(third, demo.gp)
        again = await third.post("/api/v1/auth/second-factor", json={"code": codes[0]})
        assert again.status_code == 401
    other_me = await client.get("/api/v1/account/second-factors")
    assert other_me.json()["recovery_codes_left"] == 9


async def test_code_guessing_is_throttled_per_account(
    client: httpx2.AsyncClient, client_factory: Callable[[], httpx2.AsyncClient], demo: Demo
) -> None:
    await login(client, demo.gp)
    await enrol(client)
    async with client_factory() as other:
        await login(other, demo.gp)
        statuses = [
            (await other.post("/api/v1/auth/second-factor", json={"code": "000000"})).status_code
            for _ in range(7)
        ]
    assert statuses[:5] == [401] * 5
    assert statuses[5:] == [429, 429]


async def test_changing_factors_needs_a_recent_second_factor(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await login(client, demo.gp)
    enrolled = await enrol(client)
    client.headers["X-CSRF-Token"] = (await client.get("/api/v1/auth/me")).json()["csrf_token"]
    factor_id = (await client.get("/api/v1/account/second-factors")).json()["factors"][0]["id"]
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(AuthSession).values(verified_at=utcnow() - timedelta(minutes=11))
        )

    stale = await client.delete(f"/api/v1/account/second-factors/{factor_id}")
    assert stale.status_code == 403
    assert stale.json()["error"]["code"] == "reauth_required"
    password_only = await client.post("/api/v1/auth/reauth", json={"password": DEMO_PASSWORD})
    assert password_only.status_code == 422  # the account has a second factor: it must be shown
    fresh = await client.post("/api/v1/auth/reauth", json={"code": enrolled.next_code()})
    assert fresh.status_code == 204, fresh.text
    last = await client.delete(f"/api/v1/account/second-factors/{factor_id}")
    assert last.status_code == 409  # the role needs one: not the last
    new_codes = await client.post("/api/v1/account/recovery-codes")
    assert new_codes.status_code == 201
    assert len(new_codes.json()["recovery_codes"]) == 10


async def test_admin_resets_a_lost_factor_and_the_account_sets_up_again(
    client: httpx2.AsyncClient,
    client_factory: Callable[[], httpx2.AsyncClient],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await login(client, demo.gp)
    await enrol(client)
    async with client_factory() as admin:
        await login(admin, demo.admin)
        await enrol(admin)
        admin.headers["X-CSRF-Token"] = (await admin.get("/api/v1/auth/me")).json()["csrf_token"]
        reset = await admin.post(f"/api/v1/admin/users/{demo.gp.id}/second-factor-reset")
        assert reset.status_code == 204, reset.text
        not_admin = await client.post(f"/api/v1/admin/users/{demo.gp.id}/second-factor-reset")
        assert not_admin.status_code == 401  # the GP's session was ended by the reset
    async with sessions() as session:
        left = (
            await session.execute(
                select(SecondFactor).where(col(SecondFactor.user_id) == demo.gp.id)
            )
        ).all()
    assert left == []
    await login(client, demo.gp)
    assert (await client.get("/api/v1/auth/me")).json()["stage"] == "enrol"


async def test_a_session_waiting_for_its_code_expires_after_ten_minutes(
    client: httpx2.AsyncClient,
    client_factory: Callable[[], httpx2.AsyncClient],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await login(client, demo.gp)
    await enrol(client)
    async with client_factory() as other:
        await login(other, demo.gp)
        async with sessions() as session:
            partial = (
                await session.execute(
                    select(AuthSession).where(col(AuthSession.stage) == "second_factor")
                )
            ).scalar_one()
        assert partial.expires_at - partial.created_at == timedelta(minutes=10)


async def test_logging_out_works_before_the_second_factor(
    client: httpx2.AsyncClient, client_factory: Callable[[], httpx2.AsyncClient], demo: Demo
) -> None:
    await login(client, demo.gp)  # at the set-up step
    assert (await client.post("/api/v1/auth/logout")).status_code == 204
    assert (await client.get("/api/v1/auth/me")).status_code == 401


async def test_the_operator_resets_the_last_admins_factor_from_the_shell(
    client: httpx2.AsyncClient,
    demo: Demo,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await login(client, demo.admin)
    await enrol(client)
    monkeypatch.setenv("KONSIL_DATABASE_URL", settings.database_url)

    code = await anyio.to_thread.run_sync(
        cli.main, ["reset-second-factor", "--email", "ADMIN@konsil.example"]
    )
    unknown = await anyio.to_thread.run_sync(
        cli.main, ["reset-second-factor", "--email", "x@example.org"]
    )

    assert (code, unknown) == (0, 2)
    assert "removed" in capsys.readouterr().out
    assert (await client.get("/api/v1/auth/me")).status_code == 401  # its sessions ended
    await login(client, demo.admin)
    assert (await client.get("/api/v1/auth/me")).json()["stage"] == "enrol"


def client_at(app: Starlette, address: str) -> httpx2.AsyncClient:
    transport = httpx2.ASGITransport(app=app, client=(address, 40000))
    return httpx2.AsyncClient(transport=transport, base_url=BASE_URL)


async def test_code_guessing_from_one_address_does_not_lock_the_owner_out(
    app: Starlette, client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.gp)
    enrolled = await enrol(client)
    # Someone who has the password guesses codes from their address until refused ...
    async with client_at(app, "203.0.113.66") as intruder:
        await login(intruder, demo.gp)
        statuses = [
            (await intruder.post("/api/v1/auth/second-factor", json={"code": "000000"})).status_code
            for _ in range(7)
        ]
        assert statuses == [401] * 5 + [429] * 2
        refused = await intruder.post(
            "/api/v1/auth/second-factor", json={"code": enrolled.next_code()}
        )
        assert refused.status_code == 429
    # ... the owner at the practice still signs in with a fresh code.
    async with client_at(app, "192.0.2.77") as owner:
        await login(owner, demo.gp)
        ok = await owner.post("/api/v1/auth/second-factor", json={"code": enrolled.next_code()})
        assert ok.status_code == 200, ok.text


async def test_a_session_at_the_set_up_asks_for_a_factor_set_up_in_another_tab(
    client: httpx2.AsyncClient,
    client_factory: Callable[[], httpx2.AsyncClient],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with client_factory() as other_tab:
        await login(other_tab, demo.gp)
        await login(client, demo.gp)
        assert (await other_tab.get("/api/v1/auth/me")).json()["stage"] == "enrol"
        enrolled = await enrol(client)

        me = (await other_tab.get("/api/v1/auth/me")).json()
        assert (me["stage"], me["second_factors"]) == ("second_factor", ["totp"])
        again = await other_tab.post("/api/v1/account/second-factors/totp")
        assert again.status_code == 403  # no second set-up
        page = await other_tab.get("/account", follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"].startswith("/login")
        async with sessions() as session:
            waiting = (
                await session.execute(
                    select(AuthSession).where(col(AuthSession.stage) == "second_factor")
                )
            ).scalar_one()
        assert waiting.expires_at - utcnow() <= timedelta(minutes=10)
        ok = await other_tab.post("/api/v1/auth/second-factor", json={"code": enrolled.next_code()})
        assert ok.status_code == 200, ok.text
        assert ok.json()["stage"] == "full"
