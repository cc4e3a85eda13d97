"""Specialists' presence: setting one's own, and reading it per specialist and per specialty.

``set_presence`` writes the toggle with the session that set it and records
``PresenceChanged``. Everything else is derived at read time (``rules.effective``): whether
that session is still live (``app.accounts.service.is_live``) and whether a consultation of the
specialist is going on (``app.rooms.history``). So a logout, a timeout, a deactivation or a
call that starts changes what is read without anybody writing presence. Callers own the unit
of work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.accounts.models import AuthSession, Role, User
from app.accounts.service import Principal, is_live
from app.audit import service as audit
from app.events import outbox
from app.events.types import PresenceChanged
from app.presence import rules
from app.presence.models import Chosen, SpecialistPresence
from app.presence.rules import Presence
from app.presence.schemas import PresenceOut, SpecialtyPresence
from app.rooms import history
from app.scheduling.models import Specialty


@dataclass(frozen=True)
class SpecialistNow:
    """One active specialist's presence now."""

    user_id: int
    specialty_id: int
    presence: Presence
    on_duty: bool  # the toggle as it counts now (set on duty by a live session)
    updated_at: datetime | None


async def states(
    session: AsyncSession,
    *,
    now: datetime,
    idle: timedelta,
    specialty_id: int | None = None,
    user_id: int | None = None,
) -> list[SpecialistNow]:
    """Every active specialist's presence now (of one specialty, or one specialist, if given);
    ``idle``: the staff sessions' idle timeout (``KONSIL_SESSION_IDLE_MINUTES``)."""
    query = (
        select(User.id, User.specialty_id, SpecialistPresence, AuthSession)
        .outerjoin(SpecialistPresence, col(SpecialistPresence.user_id) == col(User.id))
        .outerjoin(AuthSession, col(AuthSession.id) == col(SpecialistPresence.session_id))
        .where(
            col(User.role) == Role.SPECIALIST,
            col(User.is_active).is_(True),
            col(User.specialty_id).is_not(None),
        )
        .order_by(col(User.id))
    )
    if specialty_id is not None:
        query = query.where(col(User.specialty_id) == specialty_id)
    if user_id is not None:
        query = query.where(col(User.id) == user_id)
    rows = (await session.execute(query)).all()
    busy = await history.consulting(session, now=now, specialist_ids=[r[0] for r in rows])
    found = []
    for uid, specialty, row, auth in rows:
        live = auth is not None and auth.user_id == uid and is_live(auth, now=now, idle=idle)
        chosen = row.status if row is not None else None
        found.append(
            SpecialistNow(
                user_id=uid,
                specialty_id=specialty,
                presence=rules.effective(
                    chosen=chosen, session_live=live, in_consultation=uid in busy
                ),
                on_duty=chosen is Chosen.ON_DUTY and live,
                updated_at=row.updated_at if row is not None else None,
            )
        )
    return found


async def on_duty(
    session: AsyncSession, *, specialty_id: int, now: datetime, idle: timedelta
) -> list[int]:
    """The specialists of the specialty who are on duty and free now (their ids)."""
    found = await states(session, now=now, idle=idle, specialty_id=specialty_id)
    return [s.user_id for s in found if s.presence is Presence.ON_DUTY]


async def by_specialty(
    session: AsyncSession, *, now: datetime, idle: timedelta
) -> list[SpecialtyPresence]:
    """Per specialty (every one, by German name): how many specialists are on duty and free,
    and how many are in a consultation. Counts only."""
    found = await states(session, now=now, idle=idle)
    specialties = (
        (await session.execute(select(Specialty).order_by(col(Specialty.name_de)))).scalars().all()
    )
    out = []
    for specialty in specialties:
        assert specialty.id is not None
        counts = rules.count(s.presence for s in found if s.specialty_id == specialty.id)
        out.append(
            SpecialtyPresence(
                specialty_id=specialty.id,
                slug=specialty.slug,
                name_de=specialty.name_de,
                name_en=specialty.name_en,
                on_duty=counts.on_duty,
                in_call=counts.in_call,
            )
        )
    return out


async def own(
    session: AsyncSession, *, who: Principal, now: datetime, idle: timedelta
) -> PresenceOut:
    """The specialist's own presence now."""
    assert who.user_id is not None
    found = await states(session, now=now, idle=idle, user_id=who.user_id)
    if not found:  # a specialist without a specialty: nobody counts them
        return PresenceOut(status=Presence.AWAY, on_duty=False, updated_at=None)
    mine = found[0]
    return PresenceOut(status=mine.presence, on_duty=mine.on_duty, updated_at=mine.updated_at)


async def set_presence(
    session: AsyncSession, *, who: Principal, chosen: Chosen, now: datetime, idle: timedelta
) -> PresenceOut:
    """Sets the specialist's own toggle for this session (``who``'s). Saying the same again in
    the same session changes nothing (no event, no audit row)."""
    assert who.user_id is not None
    row = await _locked_row(session, who.user_id, now)
    if (row.status, row.session_id) != (chosen, who.session_id):
        row.status, row.session_id, row.updated_at = chosen, who.session_id, now
        outbox.record(session, PresenceChanged(specialist_id=who.user_id))
        audit.record_for(session, who, "presence.set", None, on_duty=int(chosen is Chosen.ON_DUTY))
        await session.flush()
    return await own(session, who=who, now=now, idle=idle)


async def _locked_row(session: AsyncSession, user_id: int, now: datetime) -> SpecialistPresence:
    """The specialist's row, locked. Without one, it is made as "away" (so the caller sees a
    change); two first toggles at once meet at the primary key and the loser takes the row."""
    row = await session.get(SpecialistPresence, user_id, with_for_update=True)
    if row is not None:
        return row
    try:
        async with session.begin_nested():
            row = SpecialistPresence(
                user_id=user_id, status=Chosen.AWAY, session_id=None, updated_at=now
            )
            session.add(row)
            await session.flush()
        return row
    except IntegrityError:
        found = await session.get(
            SpecialistPresence, user_id, with_for_update=True, populate_existing=True
        )
        assert found is not None
        return found
