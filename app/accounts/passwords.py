"""Staff password hashing with Argon2id (argon2-cffi's RFC 9106 low-memory profile).

Hashing costs about 0.1 s of CPU and 64 MiB, on purpose. It never runs on the event loop:
``PasswordWorkers`` runs it in worker threads of low CPU priority (argon2-cffi releases the
GIL), at most ``workers`` at a time, with at most ``queue`` more waiting; beyond that a login
is answered 503 at once instead of piling up. A flood of logins therefore takes the CPU the
loop leaves, and the loop goes on serving rooms and pages (bench/login_flood.py).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.errors import Unavailable
from app.metrics import PASSWORD_CHECKS, PASSWORD_OVERLOADED

T = TypeVar("T")
_hasher = PasswordHasher()

# Verified against when the account does not exist, so both paths cost the same time.
_DUMMY_HASH = _hasher.hash("konsil-no-such-account")

MIN_PASSWORD_LENGTH = 10


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    PASSWORD_CHECKS.inc()
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


class PasswordWorkers:
    """Runs hashing and verification in at most ``workers`` threads, ``queue`` more waiting.

    The threads run at the lowest CPU priority (Linux ``nice`` 19, per thread; the threads
    libargon2 starts for its lanes inherit it): under a flood of logins the CPU goes to the
    event loop first (rooms, pages, the queue) and to password checks with what is left.
    """

    def __init__(self, *, workers: int, queue: int) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="konsil-password", initializer=_lowest_priority
        )
        self._bound = workers + queue
        self._admitted = 0  # checks submitted to the threads and not yet done
        self._logins = 0  # logins let in at the door and not yet answered

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches (always a full check, also for no account)."""
        return await self._run(verify_password, password_hash, password)

    async def hash(self, password: str) -> str:
        return await self._run(hash_password, password)

    @property
    def busy(self) -> bool:
        """No check could start now (every worker busy, the queue full)."""
        return self._admitted >= self._bound

    @property
    def saturated(self) -> bool:
        """No login is let in now: no check could start, or as many logins as checks could
        run or wait are already under way (each needs one, after its throttle and database
        work)."""
        return self.busy or self._logins >= self._bound

    def enter_login(self) -> None:
        """Lets a login in at the door (``app.accounts.shedding``), or refuses it with 503
        before its body is read. Counting the logins under way, not only the checks already
        submitted, keeps a burst of logins from all passing the door together and each doing
        its throttle and database work only to be refused at the workers. Every login let in
        calls ``leave_login`` when answered."""
        if self.saturated:
            raise overloaded()
        self._logins += 1

    def leave_login(self) -> None:
        self._logins -= 1

    def refuse_if_busy(self) -> None:
        """503 when no check could start now: called before anything else of a login
        (throttle, database), so that an overloaded server answers a flood at the least cost
        (``app.accounts.shedding`` answers most of them before the request is even read)."""
        if self.busy:
            raise overloaded()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        self.refuse_if_busy()
        loop = asyncio.get_running_loop()
        self._admitted += 1
        future = self._executor.submit(fn, *args)
        # Counted until the thread is done, even if the request that asked is gone.
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._done))
        return await asyncio.wrap_future(future)

    def _done(self) -> None:
        self._admitted -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def overloaded() -> Unavailable:
    """The refusal of a login while the password workers are saturated (counted)."""
    PASSWORD_OVERLOADED.inc()
    return Unavailable(
        "Die Anmeldung ist gerade stark ausgelastet. Bitte versuchen Sie es gleich noch einmal.",
        retry_after=2,
    )


def _lowest_priority() -> None:
    with suppress(OSError, AttributeError):  # not Linux: the threads keep normal priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
