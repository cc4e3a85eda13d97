"""The on-call sweep: tells GPs when nobody took their on-call request in time.

Every ``SWEEP_SECONDS`` one process (a hold in the broker) marks the requests whose
``claim_until`` has passed (``on_call.sweep_unclaimed``); each is marked once even if two
rounds run at once (a conditional UPDATE), and its ``OnCallUnclaimed`` event tells the GP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app import periodic
from app.db import unit_of_work, utcnow
from app.logging import get_logger
from app.resources import Resources
from app.scheduling import on_call

log = get_logger("konsil.scheduling")

HOLD_KEY = "konsil:on-call-sweep"
SWEEP_SECONDS = 15.0


async def round_(res: Resources) -> int | None:
    """One round: how many requests it marked, None if another process holds this period."""
    if await res.broker.hold(HOLD_KEY, SWEEP_SECONDS * 0.9) > 0:
        return None
    async with unit_of_work(res.sessions) as session:
        marked = await on_call.sweep_unclaimed(session, now=utcnow())
    if marked:
        log.info("on_call.unclaimed", count=marked)
    return marked


@asynccontextmanager
async def lifespan(res: Resources) -> AsyncIterator[None]:
    """Registered in ``app.main.PACKAGE_LIFESPANS``."""
    async with periodic.every(
        res,
        name="scheduling.on_call_sweep",
        seconds=SWEEP_SECONDS,
        round_=round_,
        failed="on_call.sweep_failed",
    ):
        yield
