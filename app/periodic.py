"""Jobs every process runs every so often (the idle sweep, the on-call sweep): one task in the
lifespan's task group whose rounds may fail without ending it. A round decides itself whether
it is this process's turn (usually a hold in the broker)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio

from app.logging import get_logger
from app.resources import Resources

log = get_logger("konsil")


@asynccontextmanager
async def every(
    res: Resources,
    *,
    name: str,
    seconds: float,
    round_: Callable[[Resources], Awaitable[object]],
    failed: str,
) -> AsyncIterator[None]:
    """Runs ``round_`` every ``seconds`` while the block lasts; a failing round is logged as
    ``failed`` (its error's type only) and the next one comes as planned."""

    async def run() -> None:
        while True:
            await anyio.sleep(seconds)
            try:
                await round_(res)
            except Exception as exc:  # the database or the broker is away: next period
                log.warning(failed, error=type(exc).__name__)

    task = res.tasks.spawn(name, run)
    try:
        yield
    finally:
        await task.stop()
