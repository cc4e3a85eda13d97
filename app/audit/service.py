"""Writing to the audit log. Callers pass ids and outcomes, never health data."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.audit.models import AuditEvent
from app.db import utcnow


def record(
    session: AsyncSession,
    *,
    action: str,
    actor_kind: str,
    actor_id: int | None = None,
    appointment_id: int | None = None,
    subject: str | None = None,
    ip: str | None = None,
    **detail: Any,
) -> AuditEvent:
    """Adds one audit row to the current unit of work (it commits with the change it records)."""
    event = AuditEvent(
        action=action,
        actor_kind=actor_kind,
        actor_id=actor_id,
        appointment_id=appointment_id,
        subject=subject,
        ip=ip,
        detail=detail,
    )
    session.add(event)
    return event


class Actor(Protocol):
    """Whoever did something: a request's principal (staff member or patient)."""

    @property
    def kind(self) -> StrEnum: ...

    @property
    def user_id(self) -> int | None: ...

    @property
    def fhir_client(self) -> int | None: ...


def record_for(
    session: AsyncSession, who: Actor, action: str, appointment_id: int | None, **detail: Any
) -> AuditEvent:
    """An audit row for something ``who`` did (to an appointment, if given): ids and outcomes.
    What a FHIR system client did in its doctor's name also names the client (its row id: an
    integer, so it outlives retention's reduction of the row to ids)."""
    if who.fhir_client is not None:
        detail["fhir_client"] = who.fhir_client
    return record(
        session,
        action=action,
        actor_kind=who.kind.value,
        actor_id=who.user_id,
        appointment_id=appointment_id,
        **detail,
    )


def subject_key(secret: str, login_name: str) -> str:
    """A keyed hash of a login name: throttling without keeping the name of unknown accounts."""
    normalized = login_name.strip().lower().encode()
    return hmac.new(secret.encode(), normalized, hashlib.sha256).hexdigest()


async def count_since(
    session: AsyncSession,
    *,
    action: str,
    since: datetime,
    subject: str | None = None,
    ip: str | None = None,
) -> int:
    query = (
        select(func.count())
        .select_from(AuditEvent)
        .where(
            col(AuditEvent.action) == action,
            col(AuditEvent.at) >= since,
        )
    )
    if subject is not None:
        query = query.where(col(AuditEvent.subject) == subject)
    if ip is not None:
        query = query.where(col(AuditEvent.ip) == ip)
    return int((await session.execute(query)).scalar_one())


def window_start(minutes: int) -> datetime:
    return utcnow() - timedelta(minutes=minutes)
