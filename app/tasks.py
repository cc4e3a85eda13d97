"""The app's background tasks, all owned by one task group that the lifespan opens.

A room's broker subscription, a seat's resume timer, a dashboard's subscription, the outbox
dispatcher: each runs as a ``Task`` in that group, with its own cancel scope (so its owner can
end it) and an error boundary (so one failing task is logged and counted instead of taking the
whole group, and with it the server, down). At shutdown the lifespan cancels what is left.

``start`` is anyio's ready idiom: it returns once the task has called
``task_status.started()`` (a subscription is in place), and an error before that point is
raised to the caller, as if it had done the work itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskGroup, TaskStatus

from app.logging import get_logger
from app.metrics import TASKS_FAILED

log = get_logger("konsil.tasks")

START_TIMEOUT_SECONDS = 10.0


class Task:
    """One background task: cancel it, or stop it and wait until it has ended."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.scope = anyio.CancelScope()
        self.done = anyio.Event()

    def cancel(self) -> None:
        self.scope.cancel()

    async def stop(self) -> None:
        self.scope.cancel()
        await self.done.wait()


class _Status:
    """Passes ``started()`` on and remembers that it was called."""

    def __init__(self, inner: TaskStatus[None]) -> None:
        self.inner = inner
        self.started_ = False

    def started(self, value: None = None) -> None:
        self.started_ = True
        self.inner.started()


class Tasks:
    """Starts tasks in the lifespan's task group."""

    def __init__(self, group: TaskGroup) -> None:
        self._group = group

    def spawn(self, name: str, fn: Callable[[], Awaitable[None]]) -> Task:
        """Runs ``fn()`` in the background."""
        task = Task(name)
        self._group.start_soon(self._guard, task, fn, name=name)
        return task

    async def start(
        self,
        name: str,
        fn: Callable[..., Awaitable[None]],
    ) -> Task:
        """Runs ``fn(task_status=...)`` and returns once it has called ``task_status.started()``;
        raises what ``fn`` raised before that, or TimeoutError after START_TIMEOUT_SECONDS."""
        task = Task(name)
        with anyio.fail_after(START_TIMEOUT_SECONDS):
            await self._group.start(self._guard_started, task, fn, name=name)
        return task

    async def _guard(self, task: Task, fn: Callable[[], Awaitable[None]]) -> None:
        try:
            with task.scope:
                await fn()
        except Exception as exc:
            _failed(task, exc)
        finally:
            task.done.set()

    async def _guard_started(
        self,
        task: Task,
        fn: Callable[..., Awaitable[None]],
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        status = _Status(task_status)
        try:
            with task.scope:
                await fn(task_status=status)
        except Exception as exc:
            if not status.started_:
                raise  # to the caller of ``start``
            _failed(task, exc)
        finally:
            task.done.set()


def _failed(task: Task, exc: BaseException) -> None:
    # The type only: an exception's text may carry what a query or a message held.
    log.error("tasks.failed", task=task.name, error=type(exc).__name__)
    TASKS_FAILED.labels(task=task.name).inc()
