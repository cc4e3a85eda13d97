"""The transactional outbox: events are rows written in the same transaction as the change.

``record`` is what services call. The rest is the dispatcher's repository: claim the due rows
that head their aggregate (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two processes never
claim the same row; SQLite, one process, renders no lock clause), and settle each row: deleted
once delivered, rescheduled with back-off when a listener failed, set aside as failed after
``MAX_ATTEMPTS``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, Column, Index, Integer, delete, exists
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import Field, SQLModel, col, select

from app.db import OUTBOX_PENDING, utc_column, utcnow
from app.events.types import DomainEvent

MAX_ATTEMPTS = 12
BACKOFF_CAP = timedelta(minutes=5)


class OutboxEvent(SQLModel, table=True):
    """One committed, not yet delivered domain event (delivered rows are deleted)."""

    __tablename__ = "outbox_event"
    __table_args__ = (
        # The dispatcher's claim: due rows that have not failed, oldest first.
        Index("ix_outbox_event_due", "failed_at", "available_at"),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    event_id: str = Field(max_length=32, unique=True)
    aggregate: str = Field(max_length=80, index=True)
    type: str = Field(max_length=48)
    payload: str  # the event as JSON: ids only, never health data
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    available_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    failed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


def record(session: AsyncSession, event: DomainEvent) -> None:
    """Adds ``event`` to the caller's unit of work: it commits with the change or not at all."""
    session.add(
        OutboxEvent(
            event_id=event.event_id,
            aggregate=event.aggregate,
            type=event.type,
            payload=event.model_dump_json(),
        )
    )
    session.info[OUTBOX_PENDING] = True


async def claim(
    session: AsyncSession, *, now: datetime, limit: int, types: Collection[str]
) -> Sequence[OutboxEvent]:
    """The due rows that head their aggregate (no earlier row of it is still owed), oldest
    first, of the ``types`` this release knows, locked for this transaction.

    Only heads: an aggregate's next event waits until the one before it is delivered, by
    whichever process holds it, so two dispatchers never reorder an aggregate, and a row that
    is backing off holds back its own aggregate but no other. On PostgreSQL rows another
    dispatcher holds are skipped (``SKIP LOCKED``); their locks go with that transaction, also
    when its process dies."""
    earlier = aliased(OutboxEvent)
    query = (
        select(OutboxEvent)
        .where(
            col(OutboxEvent.failed_at).is_(None),
            col(OutboxEvent.available_at) <= now,
            col(OutboxEvent.type).in_(list(types)),
            ~exists().where(
                col(earlier.aggregate) == col(OutboxEvent.aggregate),
                col(earlier.id) < col(OutboxEvent.id),
                col(earlier.failed_at).is_(None),
            ),
        )
        .order_by(col(OutboxEvent.id))
        .limit(limit)
        .with_for_update(skip_locked=True, of=OutboxEvent)
    )
    return (await session.execute(query)).scalars().all()


async def delivered(session: AsyncSession, rows: Iterable[OutboxEvent]) -> None:
    """Delivered rows go: the outbox holds only what is still owed.

    By event id, not row id: SQLite gives a deleted row's id to the next row, so a round that
    deleted by row id after another dispatcher had deleted the same row would take a newer,
    undelivered event with it (two processes on one SQLite file, as two test servers are)."""
    done = [row.event_id for row in rows]
    if done:
        await session.execute(delete(OutboxEvent).where(col(OutboxEvent.event_id).in_(done)))


def retry_later(row: OutboxEvent, now: datetime) -> bool:
    """A listener failed: back off exponentially; False once the row is set aside as failed."""
    row.attempts += 1
    if row.attempts >= MAX_ATTEMPTS:
        row.failed_at = now
        return False
    row.available_at = now + min(timedelta(seconds=2**row.attempts), BACKOFF_CAP)
    return True
