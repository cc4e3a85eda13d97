"""Waiting, bounded, for what a test cannot await: what another task, process or browser did
shows only in state the test can look at (a registry, a table, a list of messages heard).

One helper for every kind of test: ``check`` may be a plain function or a coroutine function,
and the bound is a limit on a hung wait, not a timing assertion. When the bound passes it
raises ``TimeoutError`` naming what did not happen: that fails a test like a failed assert,
and the chaos scenarios (tests/chaos) catch it where not happening is a finding they report.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def until(
    check: Callable[[], Awaitable[object] | object], limit: float, what: str, step: float = 0.05
) -> float:
    """Polls ``check`` every ``step`` s until what it returns (awaited if need be) is true, at
    most ``limit`` s, else ``TimeoutError`` naming ``what``; the seconds it took."""
    started = time.monotonic()
    while True:
        result = check()
        if inspect.isawaitable(result):
            # A check that hangs by itself (a query that never returns) ends at the bound too.
            left = max(limit - (time.monotonic() - started), step)
            try:
                result = await asyncio.wait_for(result, left)
            except TimeoutError:
                raise TimeoutError(f"{what}: not within {limit:g} s (the check hung)") from None
        if result:
            return time.monotonic() - started
        if time.monotonic() - started > limit:
            raise TimeoutError(f"{what}: not within {limit:g} s")
        await asyncio.sleep(step)
