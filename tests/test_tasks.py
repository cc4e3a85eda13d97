"""The app's background tasks: one failing task is logged and counted, the others go on; ``start``
waits for the ready signal and raises a failure before it to its caller; ``stop`` waits."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest
from anyio.abc import TaskStatus

from app.metrics import REGISTRY
from app.tasks import Tasks


def failures(name: str) -> float:
    value = REGISTRY.get_sample_value("konsil_background_task_failures_total", {"task": name})
    return value or 0.0


async def test_a_failing_task_is_counted_and_the_others_go_on() -> None:
    before = failures("test.broken")
    ticks: list[int] = []

    async def broken() -> None:
        raise RuntimeError("patient data would be here")

    async def steady() -> None:
        for i in range(3):
            ticks.append(i)
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as group:
        tasks = Tasks(group)
        failing = tasks.spawn("test.broken", broken)
        going = tasks.spawn("test.steady", steady)
        await failing.done.wait()
        await going.done.wait()
    assert ticks == [0, 1, 2]
    assert failures("test.broken") == before + 1


async def test_start_returns_once_the_task_is_ready_and_stop_waits_for_its_end() -> None:
    events: list[str] = []

    async def listener(*, task_status: TaskStatus[None]) -> None:
        events.append("subscribed")
        task_status.started()
        try:
            await anyio.sleep_forever()
        finally:
            events.append("unsubscribed")

    async with anyio.create_task_group() as group:
        task = await Tasks(group).start("test.listener", listener)
        assert events == ["subscribed"]
        await task.stop()
        assert events == ["subscribed", "unsubscribed"]


async def test_a_failure_before_ready_is_raised_to_the_caller_and_not_counted() -> None:
    before = failures("test.unready")

    async def cannot_subscribe(*, task_status: TaskStatus[None]) -> None:
        raise ConnectionError("broker down")

    async with anyio.create_task_group() as group:
        with pytest.raises(ConnectionError):
            await Tasks(group).start("test.unready", cannot_subscribe)
    assert failures("test.unready") == before


async def test_a_task_cancelled_before_it_runs_ends_at_its_first_wait() -> None:
    # (A resume cancels a seat's expiry timer that may not have begun to sleep yet.)
    ran: list[bool] = []

    async def work() -> None:
        await anyio.lowlevel.checkpoint()
        ran.append(True)

    async with anyio.create_task_group() as group:
        task = Tasks(group).spawn("test.cancelled", work)
        task.cancel()
        await task.done.wait()
    assert ran == []
