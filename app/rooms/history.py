"""What a specialist's own rooms say beyond the waiting line: whether a consultation is going
on now, and how long the recent ones took (for the waiting-time estimate, ``waiting.py``)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, or_, select

from app.rooms import waiting
from app.rooms.state import IN_CONSULTATION
from app.scheduling.models import Appointment, RoomState

# A room admitted longer ago than this and never ended is a forgotten one, not a consultation
# going on: it does not keep the knock alert silent for good.
CONSULTATION_AT_MOST = timedelta(hours=12)


async def in_consultation(
    session: AsyncSession, *, specialist_id: int, now: datetime, besides: int | None = None
) -> bool:
    """Whether a room of the specialist is admitted or in a call now, whatever day its slot
    is on (a consultation that runs over midnight, an appointment moved to now), or its
    patient was sent back to the waiting room (the specialist talks to the GP alone and
    admits the patient again: still one consultation, not a new arrival to knock for).
    ``besides``: an appointment not to count (a sent-back patient's own, for their estimate)."""
    return bool(await going_on(session, specialist_id=specialist_id, now=now) - {besides})


async def going_on(session: AsyncSession, *, specialist_id: int, now: datetime) -> set[int]:
    """The specialist's appointments that make ``in_consultation`` true (usually one or none):
    one read serves every waiting patient's estimate, each leaving out their own."""
    rows = await session.scalars(
        select(col(Appointment.id)).where(
            col(Appointment.specialist_id) == specialist_id, _going_on(now)
        )
    )
    return {appointment_id for appointment_id in rows if appointment_id is not None}


async def consulting(
    session: AsyncSession, *, now: datetime, specialist_ids: Collection[int] | None = None
) -> set[int]:
    """Of ``specialist_ids`` (None: of all specialists), those with a consultation going on
    now, as ``in_consultation`` decides it for one."""
    query = select(col(Appointment.specialist_id)).where(_going_on(now)).distinct()
    if specialist_ids is not None:
        query = query.where(col(Appointment.specialist_id).in_(list(specialist_ids)))
    return {s for s in (await session.execute(query)).scalars() if s is not None}


def _going_on(now: datetime) -> ColumnElement[bool]:
    going_on = col(Appointment.room_state).in_(IN_CONSULTATION)
    sent_back = col(Appointment.room_state) == RoomState.WAITING
    return and_(
        or_(going_on, sent_back),
        # Set on admission only: a waiting room with it is a sent-back patient's.
        col(Appointment.admitted_at) > now - CONSULTATION_AT_MOST,
    )


async def recent_durations(
    session: AsyncSession, *, specialist_id: int, now: datetime
) -> list[timedelta]:
    """From admission to the end, the specialist's last consultations within
    ``waiting.HISTORY_DAYS`` (newest first, at most ``waiting.HISTORY_KEPT``)."""
    rows = await session.execute(
        select(col(Appointment.admitted_at), col(Appointment.ended_at))
        .where(
            col(Appointment.specialist_id) == specialist_id,
            col(Appointment.room_state) == RoomState.ENDED,
            col(Appointment.admitted_at).is_not(None),
            col(Appointment.ended_at) > now - timedelta(days=waiting.HISTORY_DAYS),
        )
        .order_by(col(Appointment.ended_at).desc())
        .limit(waiting.HISTORY_KEPT)
    )
    return [ended - admitted for admitted, ended in rows if admitted and ended]
