"""Staff password hashing with Argon2id (argon2-cffi's RFC 9106 low-memory profile).

Hashing costs about 0.1 s of CPU and 64 MiB, on purpose. It never runs on the event loop:
``PasswordWorkers`` runs it in worker threads (argon2-cffi releases the GIL), at most
``workers`` at a time, with at most ``queue`` more waiting; beyond that a login is answered
503 at once instead of piling up. A flood of logins therefore costs a bounded share of the
CPU, and the loop goes on serving rooms and pages.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.errors import Unavailable
from app.metrics import PASSWORD_CHECKS, PASSWORD_OVERLOADED

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
    """Runs hashing and verification in at most ``workers`` threads, ``queue`` more waiting."""

    def __init__(self, *, workers: int, queue: int) -> None:
        self._limiter = anyio.CapacityLimiter(workers)
        self._bound = workers + queue
        self._admitted = 0

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches (always a full check, also for no account)."""
        with self._admit():
            return await anyio.to_thread.run_sync(
                verify_password, password_hash, password, limiter=self._limiter
            )

    async def hash(self, password: str) -> str:
        with self._admit():
            return await anyio.to_thread.run_sync(hash_password, password, limiter=self._limiter)

    @contextmanager
    def _admit(self) -> Iterator[None]:
        if self._admitted >= self._bound:
            PASSWORD_OVERLOADED.inc()
            raise Unavailable(
                "Die Anmeldung ist gerade stark ausgelastet. Bitte versuchen Sie es gleich noch "
                "einmal.",
                retry_after=2,
            )
        self._admitted += 1
        try:
            yield
        finally:
            self._admitted -= 1
