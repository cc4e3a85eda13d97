"""Guessing throttles and password work: atomic reservations (also across two processes on
Redis), back-off instead of lockout, known browsers keep their owners in, hashing off the loop
with a bound."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import anyio
import anyio.to_thread
import httpx2
import pytest
from anyio import wait_all_tasks_blocked
from starlette.applications import Starlette

from app.accounts import devices, passwords
from app.accounts.passwords import PasswordWorkers
from app.broker import Broker, create_broker
from app.errors import TooManyAttempts, Unavailable
from app.main import create_app
from app.metrics import REGISTRY
from app.seed import DEMO_PASSWORD
from app.settings import Settings
from app.throttle import Budget, OnSuccess, Policy, Throttle, paced_refusals
from tests.conftest import BASE_URL, create_schema, lifespan_in_own_task
from tests.factories import Demo, seed
from tests.services import REDIS_URL, require_redis

LOGIN = "/api/v1/auth/login"
SECRET = "test-secret"


def checks() -> float:
    return REGISTRY.get_sample_value("konsil_password_checks_total") or 0.0


def client_at(app: Starlette, address: str) -> httpx2.AsyncClient:
    """A browser at ``address`` (its own cookie jar)."""
    transport = httpx2.ASGITransport(app=app, client=(address, 40000))
    return httpx2.AsyncClient(transport=transport, base_url=BASE_URL)


def policy(free: int = 5, on_success: OnSuccess = OnSuccess.RESET) -> Policy:
    return Policy("test", free, window_seconds=60, max_seconds=900, on_success=on_success)


# ---------------------------------------------------------------- the pure parts


def test_back_off_doubles_from_the_last_free_attempt_up_to_the_ceiling() -> None:
    waits = [policy(free=3).wait_after(n) for n in range(1, 16)]
    assert waits[:2] == [0.0, 0.0]
    assert waits[2:7] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert max(waits) == 900.0


def test_a_device_token_is_valid_for_its_login_name_only_and_expires() -> None:
    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    token = devices.issue(SECRET, "subject-a", now)
    cookie = devices.remember(None, token, now)
    assert devices.known(SECRET, "subject-a", cookie, now) == token.split(".")[0]
    assert devices.known(SECRET, "subject-b", cookie, now) is None
    assert devices.known("other-secret", "subject-a", cookie, now) is None
    later = now + devices.LIFETIME + timedelta(seconds=1)
    assert devices.known(SECRET, "subject-a", cookie, later) is None
    forged = cookie[:-1] + ("0" if cookie[-1] != "0" else "1")
    assert devices.known(SECRET, "subject-a", forged, now) is None


def test_a_cookie_keeps_the_newest_five_browsers_tokens() -> None:
    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    cookie = None
    for i in range(7):
        cookie = devices.remember(
            cookie, devices.issue(SECRET, f"s{i}", now + timedelta(minutes=i)), now
        )
    assert cookie is not None
    assert [devices.known(SECRET, f"s{i}", cookie, now) is not None for i in range(7)] == [
        False,
        False,
        True,
        True,
        True,
        True,
        True,
    ]
    assert devices.known(SECRET, "s0", "garbage~..~a.b.c", now) is None


# ---------------------------------------------------------------- reservations


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def brokers(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Broker, Broker]]:
    """Two brokers sharing state: one memory broker twice, or two Redis connections (two
    server processes)."""
    if request.param == "memory":
        one = create_broker("memory://")
        yield one, one
        return
    require_redis()
    first, second = create_broker(REDIS_URL), create_broker(REDIS_URL)
    await first.connect()
    await second.connect()
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_concurrent_attempts_get_exactly_the_free_ones_across_processes(
    brokers: tuple[Broker, Broker],
) -> None:
    identity = f"target-{datetime.now(UTC).timestamp()}"
    budget = Budget(policy(free=5), identity)
    throttles = [Throttle(broker, SECRET) for broker in brokers]

    async def attempt(i: int) -> int:
        """0 if the attempt may go ahead, else the seconds it is told to wait."""
        try:
            await throttles[i % 2].reserve([budget])
        except TooManyAttempts as refused:
            return int(refused.detail["retry_after"])
        return 0

    results = await asyncio.gather(*(attempt(i) for i in range(40)))
    assert results.count(0) == 5
    assert all(wait >= 1 for wait in results if wait)


async def test_a_refused_attempt_takes_nothing_and_a_success_resets_or_refunds(
    brokers: tuple[Broker, Broker],
) -> None:
    stamp = datetime.now(UTC).timestamp()
    own = Budget(policy(free=2), f"own-{stamp}")
    shared = Budget(policy(free=3, on_success=OnSuccess.REFUND), f"shared-{stamp}")
    throttle = Throttle(brokers[0], SECRET)
    await throttle.reserve([own, shared])  # a failure: counted
    success = await throttle.reserve([own, shared])
    await success.succeeded()  # own starts afresh, shared gets its attempt back
    for _ in range(2):
        await throttle.reserve([own, shared])
    with pytest.raises(TooManyAttempts):
        await throttle.reserve([own, shared])  # own is spent (2), shared has 3 of 3 used
    # The refusal took nothing from the shared budget: another client still has its due.
    other = Budget(policy(free=2), f"other-{stamp}")
    with pytest.raises(TooManyAttempts):
        await throttle.reserve([other, shared])  # shared is at its limit and holding


async def test_a_budget_that_keeps_counts_successes_too(brokers: tuple[Broker, Broker]) -> None:
    """``KEEP`` limits requests, not failures (the FHIR token endpoint per client)."""
    stamp = datetime.now(UTC).timestamp()
    requests = Budget(policy(free=2, on_success=OnSuccess.KEEP), f"keep-{stamp}")
    throttle = Throttle(brokers[0], SECRET)
    for _ in range(2):
        await (await throttle.reserve([requests])).succeeded()
    with pytest.raises(TooManyAttempts):
        await throttle.reserve([requests])


# ---------------------------------------------------------------- logins


async def test_forty_concurrent_wrong_passwords_cost_five_checks(
    app: Starlette, demo: Demo
) -> None:
    before = checks()
    async with client_at(app, "203.0.113.10") as attacker:
        responses = await asyncio.gather(
            *(
                attacker.post(LOGIN, json={"email": demo.gp.email, "password": f"guess-{i}"})
                for i in range(40)
            )
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [401] * 5 + [429] * 35
    assert checks() - before == 5


async def test_the_owner_on_a_known_browser_is_not_locked_out(app: Starlette, demo: Demo) -> None:
    async with client_at(app, "192.0.2.20") as owner, client_at(app, "203.0.113.10") as attacker:
        first = await owner.post(LOGIN, json={"email": demo.gp.email, "password": DEMO_PASSWORD})
        assert first.status_code == 200
        assert devices.COOKIE in first.cookies
        # Someone guesses from elsewhere until the account is throttled for unknown browsers.
        for i in range(25):
            await attacker.post(LOGIN, json={"email": demo.gp.email, "password": f"x-{i}"})
        stranger = await attacker.post(
            LOGIN, json={"email": demo.gp.email, "password": DEMO_PASSWORD}
        )
        assert stranger.status_code == 429
        again = await owner.post(LOGIN, json={"email": demo.gp.email, "password": DEMO_PASSWORD})
        assert again.status_code == 200


async def test_guessing_behind_a_practice_address_does_not_lock_its_staff_out(
    app: Starlette, demo: Demo
) -> None:
    practice = "198.51.100.99"  # one NAT address for the whole practice
    async with client_at(app, practice) as colleague, client_at(app, practice) as intruder:
        ok = await colleague.post(
            LOGIN, json={"email": demo.other_gp.email, "password": DEMO_PASSWORD}
        )
        assert ok.status_code == 200
        for i in range(30):
            await intruder.post(LOGIN, json={"email": f"nobody{i}@example.org", "password": "x"})
        refused = await intruder.post(
            LOGIN, json={"email": demo.gp.email, "password": DEMO_PASSWORD}
        )
        assert refused.status_code == 429  # an unknown browser at that address waits
        back = await colleague.post(
            LOGIN, json={"email": demo.other_gp.email, "password": DEMO_PASSWORD}
        )
        assert back.status_code == 200  # a known one does not


async def test_successful_logins_do_not_use_up_the_address(app: Starlette, demo: Demo) -> None:
    # Thirty logins in a morning from one practice address, each on a new browser.
    for _ in range(30):
        async with client_at(app, "198.51.100.50") as browser:
            response = await browser.post(
                LOGIN, json={"email": demo.gp.email, "password": DEMO_PASSWORD}
            )
            assert response.status_code == 200


async def test_no_database_connection_is_held_while_the_password_is_checked(
    app: Starlette, demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = app.state.resources
    seen: list[int] = []
    original = res.passwords.verify

    async def verify(password_hash: str | None, password: str) -> bool:
        seen.append(res.engine.pool.checkedout())
        return bool(await original(password_hash, password))

    monkeypatch.setattr(res.passwords, "verify", verify)
    async with client_at(app, "192.0.2.30") as browser:
        response = await browser.post(
            LOGIN, json={"email": demo.gp.email, "password": DEMO_PASSWORD}
        )
    assert response.status_code == 200
    assert seen == [0]


# ---------------------------------------------------------------- password workers


async def test_password_work_beyond_the_bound_is_refused_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    entered, release = asyncio.Event(), threading.Event()

    def slow_verify(password_hash: str | None, password: str) -> bool:
        loop.call_soon_threadsafe(entered.set)
        release.wait(30)
        return False

    monkeypatch.setattr("app.accounts.passwords.verify_password", slow_verify)
    workers = PasswordWorkers(workers=1, queue=1)
    results: list[bool] = []

    async def check() -> None:
        results.append(await workers.verify(None, "x"))

    async with anyio.create_task_group() as group:
        group.start_soon(check)  # runs
        await entered.wait()
        group.start_soon(check)  # waits for the worker
        await wait_all_tasks_blocked()  # (it is admitted the moment it starts)
        try:
            with pytest.raises(Unavailable):
                await workers.verify(None, "x")  # third: answered at once
        finally:
            release.set()
    assert results == [False, False]


async def test_a_login_over_the_bound_gets_503_and_keeps_its_attempt(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(password_workers=1, password_queue=0, login_free_attempts=1)
    await create_schema(settings.database_url)
    application = create_app(settings)
    loop = asyncio.get_running_loop()
    entered, release = asyncio.Event(), threading.Event()
    real_verify = passwords.verify_password

    def held_verify(password_hash: str | None, password: str) -> bool:
        if not release.is_set():  # the first check holds the only worker until released
            loop.call_soon_threadsafe(entered.set)
            release.wait(30)
        return real_verify(password_hash, password)

    async with lifespan_in_own_task(application):
        demo = await seed(application.state.resources.sessions)
        monkeypatch.setattr(passwords, "verify_password", held_verify)
        async with (
            client_at(application, "192.0.2.41") as first,
            client_at(application, "192.0.2.42") as second,
        ):
            async with anyio.create_task_group() as group:

                async def hold_the_worker() -> None:
                    await first.post(LOGIN, json={"email": demo.gp.email, "password": "x"})

                group.start_soon(hold_the_worker)
                await entered.wait()
                try:
                    busy = await second.post(
                        LOGIN, json={"email": demo.other_gp.email, "password": DEMO_PASSWORD}
                    )
                    # Refused before the body is read: not even a malformed one gets a 422.
                    unread = await second.post(
                        LOGIN, content=b"[" * 100_000, headers={"Content-Type": "text/plain"}
                    )
                finally:
                    release.set()  # (a failing assertion must not leave the worker waiting)
                assert busy.status_code == unread.status_code == 503
                assert busy.headers["retry-after"] == "2"
                assert busy.json()["error"]["code"] == "unavailable"
                assert "content-security-policy" in busy.headers
            # Nothing was checked for the refused login: with one free attempt it still has it.
            retry = await second.post(
                LOGIN, json={"email": demo.other_gp.email, "password": DEMO_PASSWORD}
            )
            assert retry.status_code == 200


async def test_a_burst_of_logins_beyond_the_bound_is_refused_at_the_door(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two logins may be under way (one check running, one waiting); ten arrive together. The
    # two let in are held in their throttle step: the other eight are answered 503 without
    # ever reaching the throttle or the database, not after doing that work.
    settings = make_settings(password_workers=1, password_queue=1, login_refusal_pace_seconds=0)
    await create_schema(settings.database_url)
    application = create_app(settings)
    release, eight_answered = asyncio.Event(), asyncio.Event()
    reserved: list[int] = []
    answered: list[int] = []

    async with lifespan_in_own_task(application):
        throttle = application.state.resources.throttle
        real_reserve = throttle.reserve

        async def held_reserve(budgets: list[Budget]) -> object:
            reserved.append(1)
            await release.wait()
            return await real_reserve(budgets)

        monkeypatch.setattr(throttle, "reserve", held_reserve)

        async def login(n: int) -> None:
            async with client_at(application, f"192.0.2.{60 + n}") as client:
                body = {"email": f"nobody-{n}@example.org", "password": "x" * 12}
                answered.append((await client.post(LOGIN, json=body)).status_code)
                if len(answered) == 8:
                    eight_answered.set()

        async with anyio.create_task_group() as group:
            for n in range(10):
                group.start_soon(login, n)
            try:
                with anyio.fail_after(10):  # without the door all ten wait in the throttle
                    await eight_answered.wait()
                assert answered == [503] * 8
                assert len(reserved) == 2
            finally:
                release.set()
    assert sorted(answered) == [401, 401] + [503] * 8


async def test_password_threads_run_at_the_lowest_cpu_priority() -> None:
    workers = PasswordWorkers(workers=1, queue=0)
    try:
        niceness = await workers._run(
            lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        )
    finally:
        workers.close()
    assert niceness == 19


async def test_refusals_are_paced_and_shorten_their_retry_after() -> None:
    clock = anyio.current_time
    started = clock()
    with pytest.raises(TooManyAttempts) as refused:
        async with paced_refusals(0.3):
            raise TooManyAttempts(retry_after=60)
    assert 0.14 <= clock() - started < 2
    assert refused.value.detail["retry_after"] == 60  # ceil(59.7..59.85): as long as before

    started = clock()
    with pytest.raises(Unavailable) as busy:
        async with paced_refusals(5):
            raise Unavailable(retry_after=2)
    assert 0.9 <= clock() - started < 4  # never longer than it asks the client to wait
    assert busy.value.detail["retry_after"] == 1

    started = clock()
    with pytest.raises(TooManyAttempts):
        async with paced_refusals(0):
            raise TooManyAttempts(retry_after=60)
    assert clock() - started < 0.2
