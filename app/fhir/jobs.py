"""Asynchronous ``$book`` (``Prefer: respond-async``, FHIR's asynchronous request pattern): a
job per request, its status under a secret URL, its result once the booking is done.

A job row holds no health data: who asked (``owner_id``), the booking's id once it exists, or
the status and message of the error that refused it. The booking and the job's end are one
transaction, so a job that never ended booked nothing. A job not ended within ``DEADLINE``
(its process stopped, say) is ended as failed by the first poll after it, with a conditional
UPDATE; the booking task ends its job with the same condition and rolls its booking back if
the poll came first, so a client is never told "nothing booked" for a booking that exists.
Rows go after ``KEEP`` (retention kind ``fhir_jobs``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Column, Text, delete, func, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col, select

from app.accounts.models import User
from app.db import utc_column, utcnow
from app.errors import KonsilError

KEEP = timedelta(hours=24)
DEADLINE = timedelta(seconds=60)
# What a poll says of a job its process never ended.
LOST = (
    "Die Buchung wurde nicht ausgeführt (der Server wurde unterbrochen); es ist nichts gebucht."
    " Bitte erneut buchen."
)


class FhirJob(SQLModel, table=True):
    """One asynchronous request of a FHIR client."""

    __tablename__ = "fhir_job"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    owner_id: int = Field(foreign_key="staff_user.id", index=True)
    # The system client that opened it (its row id), None for a staff session: that client
    # may poll it with the scope that booked (``app.fhir.routes_booking.poll_job``).
    fhir_client: int | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(index=True))
    finished_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    # The answer: an HTTP status; with 201 the booking's id, otherwise the OperationOutcome's
    # issue code and message (never an echo of the request).
    status: int | None = None
    appointment_id: int | None = None  # not a foreign key: the job outlives nothing
    issue_code: str | None = Field(default=None, max_length=32)
    diagnostics: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


@dataclass(frozen=True)
class Outcome:
    """How a job ended."""

    status: int
    appointment_id: int | None = None
    issue_code: str | None = None
    diagnostics: str | None = None


class TooManyJobs(KonsilError):
    """The GP has as many bookings running in the background as allowed."""

    status = 429
    code = "too_many_jobs"
    default_message = (
        "Zu viele Buchungen laufen noch im Hintergrund. Bitte auf ihr Ergebnis warten und"
        " dann erneut buchen."
    )


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def open_job(
    session: AsyncSession,
    *,
    owner_id: int,
    now: datetime,
    limit: int,
    fhir_client: int | None = None,
) -> tuple[int, str]:
    """A new job of ``owner_id`` (opened by ``fhir_client``, if by one): its id and the
    secret token of its status URL. Refused (``TooManyJobs``) while ``limit`` of the owner's
    jobs run: each holds a background task and a database connection, and a looping client
    must not pile them up."""
    # Two requests of one GP at once are counted one after the other: this write holds the
    # GP's row (on SQLite, the database's write lock) until the transaction ends.
    await session.execute(
        update(User).where(col(User.id) == owner_id).values(is_active=col(User.is_active))
    )
    if await running(session, owner_id=owner_id, now=now) >= limit:
        raise TooManyJobs(retry_after=1)
    token = secrets.token_urlsafe(24)
    job = FhirJob(
        token_hash=_hash(token), owner_id=owner_id, fhir_client=fhir_client, created_at=now
    )
    session.add(job)
    await session.flush()
    assert job.id is not None
    return job.id, token


async def running(session: AsyncSession, *, owner_id: int, now: datetime) -> int:
    """The owner's jobs not ended and not yet overdue (an overdue one's process is gone: its
    first poll ends it, and it holds nothing meanwhile)."""
    found = await session.execute(
        select(func.count())
        .select_from(FhirJob)
        .where(
            col(FhirJob.owner_id) == owner_id,
            col(FhirJob.finished_at).is_(None),
            col(FhirJob.created_at) >= now - DEADLINE,
        )
    )
    return int(found.scalar_one())


async def finish(session: AsyncSession, job_id: int, outcome: Outcome, *, now: datetime) -> bool:
    """Ends a job that has not ended; False if it had (a poll gave it up meanwhile)."""
    result = await session.execute(
        update(FhirJob)
        .where(col(FhirJob.id) == job_id, col(FhirJob.finished_at).is_(None))
        .values(
            finished_at=now,
            status=outcome.status,
            appointment_id=outcome.appointment_id,
            issue_code=outcome.issue_code,
            diagnostics=outcome.diagnostics,
        )
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


async def find(session: AsyncSession, token: str, *, owner_id: int) -> FhirJob | None:
    """The owner's job with this token, or None (another's job is as unknown as none)."""
    if not 16 <= len(token) <= 64:
        return None
    found = await session.execute(
        select(FhirJob).where(
            col(FhirJob.token_hash) == _hash(token), col(FhirJob.owner_id) == owner_id
        )
    )
    return found.scalars().first()


def overdue(job: FhirJob, now: datetime) -> bool:
    return job.finished_at is None and now - job.created_at > DEADLINE


async def purge(session: AsyncSession, *, before: datetime) -> int:
    """Deletes jobs created before ``before``."""
    result = await session.execute(delete(FhirJob).where(col(FhirJob.created_at) < before))
    assert isinstance(result, CursorResult)
    return result.rowcount
