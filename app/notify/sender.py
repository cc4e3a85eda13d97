"""The sender: a task in every process's lifespan that sends the due messages one by one.

Each message is claimed (and committed) before it is sent and settled after, in transactions of
their own; nothing is held open while the SMTP server answers. The clock is injected, so tests
move time instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import anyio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import unit_of_work, utcnow
from app.events.dispatcher import Doorbell
from app.logging import get_logger
from app.metrics import MESSAGES_SENT
from app.notify import policy, queue, smtp
from app.notify.compose import Skip, compose
from app.notify.models import OutgoingMessage, Status
from app.settings import Settings

log = get_logger("konsil.notify")
STOP_GRACE_SECONDS = 15.0


@dataclass
class Sender:
    sessions: async_sessionmaker[AsyncSession]
    settings: Settings
    transport: smtp.Transport
    clock: Callable[[], datetime] = utcnow
    doorbell: Doorbell = field(default_factory=Doorbell)
    _stopping: bool = field(default=False, init=False)
    _scope: anyio.CancelScope | None = field(default=None, init=False)

    async def run(self) -> None:
        """Sends what is due, then again on every ring and every ``mail_poll_seconds``."""
        while not self._stopping:
            with anyio.CancelScope(shield=True) as self._scope:
                outcome = await self.send_next()
            self._scope = None
            if outcome is None:
                await self.doorbell.wait(self.settings.mail_poll_seconds)

    def stop(self) -> None:
        """Ends ``run`` after the message in hand (a send is not cut off halfway, which could
        deliver it without recording it), or after ``STOP_GRACE_SECONDS``."""
        self._stopping = True
        self.doorbell.ring()
        if self._scope is not None:
            self._scope.deadline = anyio.current_time() + STOP_GRACE_SECONDS

    async def send_next(self) -> Status | None:
        """Claims, sends and settles one due message; None if none was due (or the database is
        away: tried again at the next round)."""
        try:
            return await self._send_next()
        except Exception as exc:
            log.warning("notify.round_failed", error=type(exc).__name__)
            return None

    async def send_all(self) -> list[Status]:
        """Sends until nothing is due now (tests, and the CLI one day)."""
        done = []
        while (status := await self.send_next()) is not None:
            done.append(status)
        return done

    async def _send_next(self) -> Status | None:
        now = self.clock()
        lease = timedelta(seconds=self.settings.mail_lease_seconds)
        async with unit_of_work(self.sessions) as session:
            message = await queue.claim(session, now=now, lease=lease)
        if message is None:
            return None
        async with self.sessions() as session:
            built = await compose(session, settings=self.settings, message=message, now=now)
        if isinstance(built, Skip):
            return await self._settle(message, built.status, error=built.error)
        try:
            await self.transport.send(built.email)
        except Exception as exc:
            return await self._failed(message, smtp.classify(exc))
        return await self._settle(message, Status.SENT, sent_at=self.clock(), error=None)

    async def _failed(self, message: OutgoingMessage, failure: policy.Failure) -> Status:
        decided = policy.after_failure(
            failure,
            attempts=message.attempts,
            max_attempts=self.settings.mail_max_attempts,
            first_seconds=self.settings.mail_retry_first_seconds,
            now=self.clock(),
        )
        return await self._settle(
            message,
            decided.status,
            available_at=decided.available_at,
            error=failure.error,
            smtp_code=failure.smtp_code,
        )

    async def _settle(self, message: OutgoingMessage, status: Status, **values: object) -> Status:
        if status is Status.FAILED:
            values["failed_at"] = self.clock()
        async with unit_of_work(self.sessions) as session:
            held = await queue.settle(session, message, status=status, **values)
        MESSAGES_SENT.labels(kind=message.kind.value, outcome=status.value).inc()
        # Ids and codes only: no address, no server text.
        log.info(
            "notify.settled",
            message_id=message.id,
            kind=message.kind.value,
            status=status.value,
            attempts=message.attempts,
            error=values.get("error"),
            lease_lost=not held,
        )
        return status
