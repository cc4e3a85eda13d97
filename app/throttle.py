"""Throttles for guessing: staff logins, join links and the FHIR token endpoint.

Each attempt first takes a **reservation** from every budget that applies, before the password
or token is checked, with one atomic broker operation per budget (Redis with several
processes). A budget lets ``free`` attempts through within its window; from then on an
attempt has to wait after the previous one, 1 s, then 2 s, 4 s, … up to ``max_seconds``
(exponential back-off). So 40 concurrent guesses at one account get exactly ``free`` checks,
wherever they land.

An attempt that is refused is not counted (it did not check anything). An attempt that
succeeds resets its own budget (the browser's, or the account-and-address pair) and gives back
what it took from the shared ones (the address, the account), so a practice whose staff log in
every morning behind one address does not run its address's budget down. See
``app.accounts.service.login`` for which budgets a login takes and docs/deploy.md for the
policy an operator sees.

Keys hold a keyed hash of what they count (an address, a login name), never the value itself.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum

import anyio

from app.broker import Broker
from app.errors import TooManyAttempts, Unavailable
from app.metrics import THROTTLED


class OnSuccess(StrEnum):
    RESET = "reset"  # the budget is this client's own: a success starts it afresh
    REFUND = "refund"  # the budget is shared: a success gives back its attempt
    KEEP = "keep"  # the budget limits requests, not failures: a success counts like any


@dataclass(frozen=True)
class Policy:
    name: str
    free: int
    window_seconds: float
    max_seconds: float
    on_success: OnSuccess
    base_seconds: float = 1.0

    def wait_after(self, attempt: int) -> float:
        """How long the attempt after attempt number ``attempt`` (1-based) has to wait."""
        beyond = attempt - self.free
        if beyond < 0:
            return 0.0
        return min(self.base_seconds * 2.0**beyond, self.max_seconds)


@dataclass(frozen=True)
class Budget:
    policy: Policy
    identity: str  # what is counted: an address, a login name, a browser id


class Throttle:
    def __init__(self, broker: Broker, secret: str) -> None:
        self.broker = broker
        self._secret = secret.encode()

    def _key(self, budget: Budget) -> str:
        digest = hmac.new(self._secret, budget.identity.encode(), hashlib.sha256).hexdigest()
        return f"konsil:throttle:{budget.policy.name}:{digest[:32]}"

    async def reserve(self, budgets: Sequence[Budget]) -> Reservation:
        """Takes one attempt from every budget, or raises TooManyAttempts (with the seconds to
        wait) and takes nothing."""
        reservation = Reservation(self.broker)
        try:
            for budget in budgets:
                key = self._key(budget)
                policy = budget.policy
                attempt = await self.broker.count(key, 1, policy.window_seconds)
                wait = policy.wait_after(attempt)
                remaining = await self.broker.hold(key + HOLD, wait) if wait > 0 else 0.0
                reservation.taken.append(_Taken(budget, key, held=wait > 0 and not remaining))
                if remaining > 0:
                    THROTTLED.labels(policy=policy.name).inc()
                    raise TooManyAttempts(retry_after=math.ceil(remaining))
        except BaseException:
            await reservation.release()
            raise
        return reservation

    async def give_back(self, budgets: Sequence[Budget]) -> None:
        """Gives back one attempt that an earlier request took from each budget: for a try
        that spans two requests (a single sign-on started, then completed) and turned out
        well. Never below zero, should the window have started afresh meanwhile."""
        for budget in budgets:
            key, window = self._key(budget), budget.policy.window_seconds
            if await self.broker.count(key, -1, window) < 0:
                await self.broker.count(key, 1, window)


HOLD = ":hold"


@asynccontextmanager
async def paced_refusals(pace_seconds: float) -> AsyncIterator[None]:
    """Answers a refusal raised inside (429, or 503 from a saturated password pool) only after
    part of the wait it asks for, at most ``pace_seconds``, and shortens its ``Retry-After`` by
    as much. A client that honours ``Retry-After`` waits just as long as before; a flood that
    ignores it is slowed to one attempt per ``pace_seconds`` per connection, and each refusal
    costs a sleeping coroutine instead of the CPU of another request (docs/deploy.md, "Login
    throttling")."""
    try:
        yield
    except (TooManyAttempts, Unavailable) as refusal:
        retry = float(refusal.detail.get("retry_after") or 0)
        # Half to all of the pace, at random: refusals of a burst do not come back as a burst.
        delay = min(pace_seconds, retry) * random.uniform(0.5, 1.0)  # noqa: S311 - not a secret
        if delay > 0:
            await anyio.sleep(delay)
            refusal.detail["retry_after"] = max(1, math.ceil(retry - delay))
        raise


@dataclass
class _Taken:
    budget: Budget
    key: str
    held: bool  # this attempt started the wait that follows it


class Reservation:
    """The attempts one check took. A failed check keeps them; ``succeeded`` settles them."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self.taken: list[_Taken] = []

    async def release(self) -> None:
        """Gives every attempt back, and the waits they started: nothing was checked (refused
        by another budget, or the server was too busy)."""
        for taken in self.taken:
            await self._broker.count(taken.key, -1, taken.budget.policy.window_seconds)
            if taken.held:
                await self._broker.forget(taken.key + HOLD)
        self.taken = []

    async def succeeded(self) -> None:
        for taken in self.taken:
            if taken.budget.policy.on_success is OnSuccess.RESET:
                await self._broker.forget(taken.key, taken.key + HOLD)
            elif taken.budget.policy.on_success is OnSuccess.REFUND:
                await self._broker.count(taken.key, -1, taken.budget.policy.window_seconds)
                if taken.held:
                    await self._broker.forget(taken.key + HOLD)
        self.taken = []
