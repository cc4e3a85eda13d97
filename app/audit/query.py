"""Reading the audit log (the admin's list and CSV export): filters and keyset paging, newest
first. Rows reduced by retention (``reduced_at``: no address, integer details only) list like
any other."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import ColumnElement, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.audit.models import AuditEvent


@dataclass(frozen=True)
class AuditFilter:
    """Which rows: ``action`` matches itself and its sub-actions (``login`` finds
    ``login.success`` and ``login.failure``); days are local calendar days, both inclusive."""

    action: str | None = None
    actor_id: int | None = None
    appointment_id: int | None = None
    first_day: date | None = None
    last_day: date | None = None


def conditions(found: AuditFilter, tz: tzinfo) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if found.action:
        where.append(
            or_(
                col(AuditEvent.action) == found.action,
                col(AuditEvent.action).startswith(found.action + ".", autoescape=True),
            )
        )
    if found.actor_id is not None:
        where.append(col(AuditEvent.actor_id) == found.actor_id)
    if found.appointment_id is not None:
        where.append(col(AuditEvent.appointment_id) == found.appointment_id)
    if found.first_day is not None:
        where.append(col(AuditEvent.at) >= _day_start(found.first_day, tz))
    if found.last_day is not None:
        where.append(col(AuditEvent.at) < _day_start(found.last_day + timedelta(days=1), tz))
    return where


async def page(
    session: AsyncSession,
    found: AuditFilter,
    *,
    tz: tzinfo,
    limit: int,
    before_id: int | None = None,
) -> list[AuditEvent]:
    """Up to ``limit`` matching rows with ids below ``before_id``, newest first."""
    query = select(AuditEvent).where(*conditions(found, tz))
    if before_id is not None:
        query = query.where(col(AuditEvent.id) < before_id)
    query = query.order_by(col(AuditEvent.id).desc()).limit(limit)
    return list((await session.execute(query)).scalars().all())


def as_dict(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": event.at,
        "action": event.action,
        "actor_kind": event.actor_kind,
        "actor_id": event.actor_id,
        "appointment_id": event.appointment_id,
        "ip": event.ip,
        "detail": event.detail,
        "reduced_at": event.reduced_at,
    }


def _day_start(day: date, tz: tzinfo) -> datetime:
    # Local midnight: 23 or 25 hours apart on the days the clocks change.
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
