"""The periodic retention job in the app's lifespan.

Every process runs it every ``retention_interval_minutes``; a hold in the broker lets one
process run per period (with Redis, one across all processes), and the service is safe to run
twice at once anyway (it claims disjoint rows, and deleting is idempotent).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from app.logging import get_logger
from app.metrics import RETENTION_RUNS
from app.resources import Resources
from app.retention import policy, service

log = get_logger("konsil.retention")

HOLD_KEY = "konsil:retention"
# The first round waits this long after start-up (or one interval, if shorter), so that a
# restart is not slowed down by it.
FIRST_ROUND_SECONDS = 60.0


async def round_(res: Resources) -> service.Counts | None:
    """One round on this process: None if another process holds this period."""
    if await res.broker.hold(HOLD_KEY, policy.hold_seconds(res.settings)) > 0:
        RETENTION_RUNS.labels(outcome="skipped").inc()
        return None
    counts = await service.run(res.sessions, res.settings)
    RETENTION_RUNS.labels(outcome="done").inc()
    # Counts only: what was deleted is nobody's business in a log.
    log.info("retention.done", **counts)
    return counts


async def periodic(res: Resources) -> None:
    interval = res.settings.retention_interval_minutes * 60
    await anyio.sleep(min(interval, FIRST_ROUND_SECONDS))
    while True:
        try:
            await round_(res)
        except Exception as exc:
            # The database or the broker is away: try again next period, keep the task alive.
            RETENTION_RUNS.labels(outcome="failed").inc()
            log.warning("retention.failed", error=type(exc).__name__)
        await anyio.sleep(interval)


@asynccontextmanager
async def lifespan(res: Resources) -> AsyncIterator[None]:
    """Registered in ``app.main.PACKAGE_LIFESPANS``."""

    async def run() -> None:
        await periodic(res)

    task = res.tasks.spawn("retention", run)
    try:
        yield
    finally:
        await task.stop()
