"""The sender: a task in every process's lifespan that sends the due messages one by one.

Each message is claimed (and committed) before it is sent and settled after, in transactions of
their own; nothing is held open while the SMTP server or the SMS gateway answers. Each channel
has its transport (None: not set up on this server). The clock is injected, so tests move time
instead of sleeping.
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
from app.notify import policy, queue, sms, smtp
from app.notify.compose import ReadyMail, ReadySms, Skip, compose
from app.notify.models import Channel, OutgoingMessage, Status
from app.notify.sms import Transport as SmsTransport
from app.settings import Settings

log = get_logger("konsil.notify")
STOP_GRACE_SECONDS = 15.0


@dataclass
class Sender:
    sessions: async_sessionmaker[AsyncSession]
    settings: Settings
    mail: smtp.Transport | None
    clock: Callable[[], datetime] = utcnow
    doorbell: Doorbell = field(default_factory=Doorbell)
    sms: SmsTransport | None = None
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
        if (self.mail if message.channel is Channel.EMAIL else self.sms) is None:
            return await self._settle(message, Status.FAILED, error="not_configured")
        async with self.sessions() as session:
            built = await compose(session, settings=self.settings, message=message, now=now)
        if isinstance(built, Skip):
            return await self._settle(message, built.status, error=built.error)
        try:
            await self._hand_over(built)
        except Exception as exc:
            failure = smtp.classify(exc) if isinstance(built, ReadyMail) else sms.classify(exc)
            return await self._failed(message, failure)
        return await self._settle(message, Status.SENT, sent_at=self.clock(), error=None)

    async def _hand_over(self, built: ReadyMail | ReadySms) -> None:
        if isinstance(built, ReadyMail):
            assert self.mail is not None  # checked before composing
            await self.mail.send(built.email)
        else:
            assert self.sms is not None
            await self.sms.send(built.sms)

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
            http_status=failure.http_status,
        )

    async def _settle(self, message: OutgoingMessage, status: Status, **values: object) -> Status:
        if status is Status.FAILED:
            values["failed_at"] = self.clock()
        async with unit_of_work(self.sessions) as session:
            held = await queue.settle(session, message, status=status, **values)
        MESSAGES_SENT.labels(
            kind=message.kind.value, channel=message.channel.value, outcome=status.value
        ).inc()
        # Ids and codes only: no address, no number, no text, no server text.
        log.info(
            "notify.settled",
            message_id=message.id,
            kind=message.kind.value,
            channel=message.channel.value,
            status=status.value,
            attempts=message.attempts,
            error=values.get("error"),
            lease_lost=not held,
        )
        return status
