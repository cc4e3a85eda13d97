"""The message jobs' repository: add without duplicates, claim with a lease, settle.

``claim`` is one UPDATE of one due row, picked by a subquery that PostgreSQL runs with ``FOR
UPDATE SKIP LOCKED``: two senders never claim the same row, and neither waits for the other.
(SQLite, one process, renders no lock clause; its one writer at a time gives the same.) The
claim commits at once, so the sending happens outside any transaction; a sender that dies
leaves its row ``sending`` until ``lease_until``, after which any sender claims it again.
``settle`` only changes a row its claim still holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.notify.models import Kind, OutgoingMessage, Status
from app.notify.policy import Planned


async def enqueue(
    session: AsyncSession, *, key: str, appointment_id: int, planned: Planned, now: datetime
) -> bool:
    """Adds the message unless one with ``key`` exists; True if it was added."""
    values: dict[str, Any] = {
        "appointment_id": appointment_id,
        "idempotency_key": key,
        "kind": planned.kind,
        "channel": planned.channel,
        "recipient": planned.recipient,
        "language": planned.language,
        "join_token_id": planned.join_token_id,
        "reminder_minutes": planned.reminder_minutes,
        "status": Status.QUEUED,
        "attempts": 0,
        "available_at": planned.available_at or now,
        "created_at": now,
    }
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(OutgoingMessage)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
    )
    result = await session.execute(statement)
    return bool(getattr(result, "rowcount", 0))


def _due(now: datetime) -> Any:
    return or_(
        and_(
            col(OutgoingMessage.status) == Status.QUEUED, col(OutgoingMessage.available_at) <= now
        ),
        and_(col(OutgoingMessage.status) == Status.SENDING, col(OutgoingMessage.lease_until) < now),
    )


async def claim(
    session: AsyncSession, *, now: datetime, lease: timedelta
) -> OutgoingMessage | None:
    """Claims the message due longest (or one whose sender's lease ran out), counting an
    attempt; None if nothing is due."""
    pick = (
        select(col(OutgoingMessage.id))
        .where(_due(now))
        .order_by(col(OutgoingMessage.available_at), col(OutgoingMessage.id))
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    token = uuid.uuid4().hex
    claimed = await session.execute(
        update(OutgoingMessage)
        .where(col(OutgoingMessage.id) == pick, _due(now))
        .values(
            status=Status.SENDING,
            claim=token,
            lease_until=now + lease,
            attempts=col(OutgoingMessage.attempts) + 1,
        )
        .returning(col(OutgoingMessage.id))
        .execution_options(synchronize_session=False)
    )
    message_id = claimed.scalar_one_or_none()
    if message_id is None:
        return None
    return await session.get(OutgoingMessage, message_id, populate_existing=True)


async def settle(session: AsyncSession, message: OutgoingMessage, **values: Any) -> bool:
    """Writes the outcome of ``message``'s attempt, if its claim still holds the row."""
    result = await session.execute(
        update(OutgoingMessage)
        .where(col(OutgoingMessage.id) == message.id, col(OutgoingMessage.claim) == message.claim)
        .values(claim=None, lease_until=None, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def supersede_reminders(
    session: AsyncSession, *, appointment_id: int, keep_link: int | None, error: str
) -> int:
    """Marks the appointment's reminders not yet sent as superseded, but those of the link
    ``keep_link`` (the live one); returns how many. A reminder being sent right now is left to
    its sender (which found its link live a moment ago)."""
    statement = update(OutgoingMessage).where(
        col(OutgoingMessage.appointment_id) == appointment_id,
        col(OutgoingMessage.kind) == Kind.REMINDER,
        col(OutgoingMessage.status) == Status.QUEUED,
    )
    if keep_link is not None:
        statement = statement.where(
            or_(
                col(OutgoingMessage.join_token_id).is_(None),
                col(OutgoingMessage.join_token_id) != keep_link,
            )
        )
    result = await session.execute(
        statement.values(status=Status.SUPERSEDED, error=error).execution_options(
            synchronize_session=False
        )
    )
    return int(getattr(result, "rowcount", 0))


async def for_appointment(session: AsyncSession, appointment_id: int) -> Sequence[OutgoingMessage]:
    query = (
        select(OutgoingMessage)
        .where(col(OutgoingMessage.appointment_id) == appointment_id)
        .order_by(col(OutgoingMessage.created_at), col(OutgoingMessage.id))
    )
    return (await session.execute(query)).scalars().all()


async def pending_like(session: AsyncSession, message: OutgoingMessage) -> bool:
    """Whether a message of the same kind (and reminder time) to the same recipient through the
    same channel is still on its way."""
    query = select(col(OutgoingMessage.id)).where(
        col(OutgoingMessage.appointment_id) == message.appointment_id,
        col(OutgoingMessage.kind) == message.kind,
        col(OutgoingMessage.recipient) == message.recipient,
        col(OutgoingMessage.channel) == message.channel,
        col(OutgoingMessage.status).in_([Status.QUEUED, Status.SENDING]),
    )
    if message.reminder_minutes is not None:
        query = query.where(col(OutgoingMessage.reminder_minutes) == message.reminder_minutes)
    return (await session.execute(query.limit(1))).first() is not None
