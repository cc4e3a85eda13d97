"""The idle sweep: ends staff sessions that timed out, so that their open websockets close.

A request of a timed-out session is refused when it comes (``service.resolve``), and a
websocket message finds out when it counts as activity (``service.touch``). A websocket that
sends nothing (a queue page nobody uses) would stay open, though: every
``SWEEP_SECONDS`` this job ends such sessions in the database, and their ``SessionEnded``
events close their sockets on every process (``app.signaling.ended``), with 4401 as a logout.

Every process runs it; a hold in the broker lets one of them do a round per period, and a round
is safe twice at once anyway (each session is ended by a conditional UPDATE).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from app import periodic
from app.accounts import service
from app.db import unit_of_work, utcnow
from app.logging import get_logger
from app.resources import Resources

log = get_logger("konsil.accounts")

HOLD_KEY = "konsil:idle-sweep"
SWEEP_SECONDS = 60.0


async def round_(res: Resources) -> int | None:
    """One round: how many sessions it ended, None if another process holds this period."""
    if await res.broker.hold(HOLD_KEY, SWEEP_SECONDS * 0.9) > 0:
        return None
    idle = timedelta(minutes=res.settings.session_idle_minutes)
    async with unit_of_work(res.sessions) as session:
        ended = await service.end_idle_sessions(session, now=utcnow(), idle=idle)
    if ended:
        log.info("sessions.idle_ended", count=ended)
    return ended


@asynccontextmanager
async def lifespan(res: Resources) -> AsyncIterator[None]:
    """Registered in ``app.main.PACKAGE_LIFESPANS``."""
    async with periodic.every(
        res,
        name="accounts.idle_sweep",
        seconds=SWEEP_SECONDS,
        round_=round_,
        failed="sessions.idle_sweep_failed",
    ):
        yield
