"""``patient_views`` over a real database: what every waiting patient of a line is told, read
with as many statements for a line of thirty as for one patient (a line is read again on every
change of it, so reads per patient would make a morning's arrivals cost the square of them)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import utcnow
from app.rooms.delay import patient_views
from app.scheduling.models import RoomState
from app.settings import Settings
from tests.factories import Demo, consultation_history, make_appointment


@contextmanager
def statements(sessions: async_sessionmaker[AsyncSession]) -> Iterator[list[str]]:
    """The SQL statements the sessions' engine runs inside the block."""
    engine = sessions.kw["bind"].sync_engine
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def test_patient_views_read_a_long_line_with_as_many_statements_as_one_patient(
    demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    now = utcnow()
    noon = datetime.combine(now.astimezone(settings.tz).date(), time(12), settings.tz)
    await consultation_history(sessions, demo)  # typical consultation: 12 minutes
    # A consultation going on, and a patient sent back from it (admitted before, waiting
    # again): they go first, and their own consultation does not count as the one going on.
    await make_appointment(
        sessions,
        demo,
        starts_at=noon - timedelta(hours=1),
        room_state=RoomState.IN_CALL,
        admitted_at=now - timedelta(minutes=3),
    )
    sent_back = await make_appointment(
        sessions,
        demo,
        starts_at=noon - timedelta(minutes=30),
        room_state=RoomState.WAITING,
        waiting_since=now - timedelta(minutes=1),
        admitted_at=now - timedelta(minutes=20),
    )
    line = [
        await make_appointment(
            sessions,
            demo,
            starts_at=noon + timedelta(minutes=number),
            room_state=RoomState.WAITING,
            waiting_since=now - timedelta(minutes=30),
        )
        for number in range(30)
    ]
    everybody = [sent_back.id, *(a.id for a in line)]
    assert None not in everybody

    async with sessions() as session:
        with statements(sessions) as for_one:
            one = await patient_views(
                session, appointment_ids=[line[0].id or 0], now=now, tz=settings.tz
            )
    async with sessions() as session:
        with statements(sessions) as for_all:
            views = await patient_views(
                session, appointment_ids=[a or 0 for a in everybody], now=now, tz=settings.tz
            )

    assert len(for_all) == len(for_one), (for_one, for_all)
    assert one[line[0].id or 0] == views[line[0].id or 0]
    assert [views[a or 0].ahead for a in everybody] == list(range(31))
    # The sent-back patient waits only for the consultation going on besides their own one
    # (half of 12 minutes, in steps of five); the others for everybody ahead and that half.
    assert views[sent_back.id or 0].eta_minutes == 10
    assert views[line[0].id or 0].eta_minutes == 20
    assert {v.specialist_id for v in views.values()} == {demo.specialist.id}
