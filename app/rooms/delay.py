"""The specialist's late notice and what the waiting room tells each patient.

``set_delay`` and ``clear_delay`` write the notice and record ``DelayChanged``; listeners read
the notice back with ``current`` (signalling pushes it to the waiting patients, notify writes
to the patients who are not there yet). ``patient_views`` is what a waiting patient may know:
how many are ahead of them and the notice, nothing about the others. Callers own the unit of
work.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.accounts.models import User
from app.accounts.service import Principal
from app.audit import service as audit
from app.events import outbox
from app.events.types import DelayChanged
from app.rooms import history, waiting
from app.rooms.models import SpecialistDelay
from app.rooms.schemas import DelayOut, PatientDelay, WaitingView
from app.scheduling.models import Appointment, RoomState


async def current(
    session: AsyncSession, *, specialist_id: int, today: date
) -> SpecialistDelay | None:
    """The specialist's notice for ``today`` (a notice of an earlier day is no notice)."""
    found = await session.get(SpecialistDelay, specialist_id, populate_existing=True)
    return found if found is not None and found.day == today else None


def out(delay: SpecialistDelay | None) -> DelayOut | None:
    return DelayOut.model_validate(delay) if delay is not None else None


async def set_delay(
    session: AsyncSession,
    *,
    who: Principal,
    minutes: int | None,
    note: str | None,
    now: datetime,
    tz: ZoneInfo,
) -> DelayOut:
    """Replaces the specialist's notice for today. Saying the same again changes nothing (no
    event: the patients are not told twice)."""
    assert who.user_id is not None
    today = waiting.local_day(now, tz)
    row = await _locked_row(session, who.user_id, today, now)
    if (row.day, row.minutes, row.note) == (today, minutes, note):
        return DelayOut.model_validate(row)
    row.day, row.minutes, row.note, row.updated_at = today, minutes, note, now
    _changed(session, who, minutes=minutes or 0, note=int(note is not None))
    await session.flush()
    return DelayOut.model_validate(row)


async def _locked_row(
    session: AsyncSession, specialist_id: int, today: date, now: datetime
) -> SpecialistDelay:
    """The specialist's row, locked; made (empty) if there is none. Two first notices at once
    (two tabs) meet at the primary key: the one that loses takes the winner's row."""
    row = await session.get(SpecialistDelay, specialist_id, with_for_update=True)
    if row is not None:
        return row
    try:
        async with session.begin_nested():
            row = SpecialistDelay(specialist_id=specialist_id, day=today, updated_at=now)
            session.add(row)
            await session.flush()
        return row
    except IntegrityError:
        found = await session.get(
            SpecialistDelay, specialist_id, with_for_update=True, populate_existing=True
        )
        assert found is not None
        return found


async def clear_delay(
    session: AsyncSession, *, who: Principal, now: datetime, tz: ZoneInfo
) -> None:
    """The specialist is on time again: the notice goes (nothing happens if there was none)."""
    assert who.user_id is not None
    # One statement: of two withdrawals at once, one deletes the row and the other nothing.
    deleted = await session.execute(
        delete(SpecialistDelay)
        .where(col(SpecialistDelay.specialist_id) == who.user_id)
        .returning(col(SpecialistDelay.day))
        .execution_options(synchronize_session=False)
    )
    day = deleted.scalar_one_or_none()
    if day == waiting.local_day(now, tz):
        _changed(session, who, minutes=0, note=0)


def _changed(session: AsyncSession, who: Principal, *, minutes: int, note: int) -> None:
    assert who.user_id is not None
    outbox.record(session, DelayChanged(specialist_id=who.user_id))
    # Integers only: the note is free text and stays out of the audit log.
    audit.record(
        session,
        action="queue.delay",
        actor_kind="specialist",
        actor_id=who.user_id,
        minutes=minutes,
        note=note,
    )


async def patient_views(
    session: AsyncSession, *, appointment_ids: Collection[int], now: datetime, tz: ZoneInfo
) -> dict[int, WaitingView]:
    """For each appointment (deleted ones left out): its specialist, its room's state, how
    many waiting patients are ahead of it and about how long that takes, and the notice
    that concerns it."""
    if not appointment_ids:
        return {}
    query = select(Appointment).where(col(Appointment.id).in_(list(appointment_ids)))
    # An on-call request nobody has taken yet is in nobody's line (it has no view).
    appointments = [
        a for a in (await session.execute(query)).scalars() if a.specialist_id is not None
    ]
    lines: dict[int, dict[int, int]] = {}  # per specialist: patients ahead of each waiting one
    notices: dict[int, PatientDelay | None] = {}
    typical: dict[int, float | None] = {}
    consulting: dict[int, set[int]] = {}
    # A few reads per specialist, none per appointment: a specialist's whole line is read
    # again on every change of it.
    for specialist_id in {a.specialist_id for a in appointments if a.specialist_id is not None}:
        lines[specialist_id] = waiting.places(await _waiting_line(session, specialist_id), now)
        notices[specialist_id] = await _patient_delay(session, specialist_id, now, tz)
        typical[specialist_id] = waiting.typical_minutes(
            await history.recent_durations(session, specialist_id=specialist_id, now=now)
        )
        if typical[specialist_id] is not None:
            consulting[specialist_id] = await history.going_on(
                session, specialist_id=specialist_id, now=now
            )
    views: dict[int, WaitingView] = {}
    for appointment in appointments:
        assert appointment.id is not None
        assert appointment.specialist_id is not None
        specialist = appointment.specialist_id
        notice = notices[specialist]
        concerned = notice is not None and waiting.concerns(
            waiting.local_day(now, tz), appointment.starts_at, tz
        )
        ahead = lines[specialist].get(appointment.id)
        typical_minutes = typical[specialist]
        # A consultation going on, other than this patient's own (sent back to the waiting
        # room, their consultation counts as going on for the knock, not for their wait).
        busy = bool(consulting.get(specialist, set()) - {appointment.id})
        views[appointment.id] = WaitingView(
            appointment_id=appointment.id,
            specialist_id=specialist,
            room_state=appointment.room_state,
            ahead=ahead,
            eta_minutes=waiting.estimate_minutes(ahead, typical_minutes, busy),
            delay=notice if concerned else None,
        )
    return views


async def _waiting_line(session: AsyncSession, specialist_id: int) -> list[waiting.Waiter]:
    query = (
        select(
            col(Appointment.id),
            col(Appointment.urgency),
            col(Appointment.starts_at),
            col(Appointment.waiting_since),
        )
        .add_columns(col(Appointment.admitted_at))
        .where(
            col(Appointment.specialist_id) == specialist_id,
            col(Appointment.room_state) == RoomState.WAITING,
        )
    )
    rows = (await session.execute(query)).all()
    return [
        # Admitted before and waiting again: sent back from the call (rooms.admitted_before).
        waiting.Waiter(appointment_id, urgency, starts_at, since, sent_back=admitted is not None)
        for appointment_id, urgency, starts_at, since, admitted in rows
        if appointment_id is not None
    ]


async def _patient_delay(
    session: AsyncSession, specialist_id: int, now: datetime, tz: ZoneInfo
) -> PatientDelay | None:
    notice = await current(session, specialist_id=specialist_id, today=waiting.local_day(now, tz))
    if notice is None:
        return None
    specialist = await session.get(User, specialist_id)
    return PatientDelay(
        minutes=notice.minutes,
        note=notice.note,
        specialist_name=specialist.display_name if specialist is not None else "",
        updated_at=notice.updated_at,
    )
