"""On-call requests on a fixed clock around local midnight (Europe/Berlin): the patient's age
in the specialists' queue is the local day's, and a consult asked before midnight and taken
after it is in the specialist's day when it is held."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts.models import Role, SessionKind, User
from app.accounts.service import Principal
from app.db import unit_of_work
from app.rooms import service as rooms
from app.scheduling import on_call, on_call_queue
from app.scheduling.schemas import OnCallIn
from app.settings import Settings
from tests.factories import Demo


def staff(user: User) -> Principal:
    assert user.id is not None
    return Principal(
        kind=SessionKind.STAFF, session_id="s", csrf_token="c", user_id=user.id,
        role=user.role, display_name=user.display_name,
    )  # fmt: skip


async def ask_at(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    demo: Demo,
    now: datetime,
    born: date = date(1956, 4, 12),
) -> int:
    details = OnCallIn(
        specialty_id=demo.cardiology.id,
        patient_name="Erika Mustermann",
        patient_birth_date=born,
        patient_contact="erika@example.org",
        clinical_question="Neu aufgetretenes Vorhofflimmern im EKG.",
    )
    async with unit_of_work(sessions) as session:
        asked = await on_call.request(
            session, settings=settings, who=staff(demo.gp), details=details, now=now
        )
    return asked.appointment.id


async def test_on_call_queue_shows_the_age_of_the_local_day(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, demo: Demo
) -> None:
    # 22:30 UTC on 14 June is 00:30 on 15 June in Berlin (summer time): the birthday is today.
    now = datetime(2026, 6, 14, 22, 30, tzinfo=UTC)
    assert now.astimezone(settings.tz).date() == date(2026, 6, 15)
    await ask_at(sessions, settings, demo, now, born=date(1956, 6, 15))
    assert demo.cardiology.id is not None
    async with sessions() as session:
        (entry,) = await on_call_queue.open_requests(
            session, specialty_id=demo.cardiology.id, now=now, tz=settings.tz
        )
        (before,) = await on_call_queue.open_requests(
            session,
            specialty_id=demo.cardiology.id,
            now=now - timedelta(hours=1),  # 23:30 on 14 June in Berlin
            tz=settings.tz,
        )
    assert (entry.patient_age, before.patient_age) == (70, 69)


@pytest.mark.parametrize(
    "asked",
    [
        datetime(2026, 6, 14, 21, 55, tzinfo=UTC),  # 23:55 summer time
        datetime(2026, 3, 28, 22, 55, tzinfo=UTC),  # 23:55 before the spring change
        datetime(2026, 10, 24, 21, 55, tzinfo=UTC),  # 23:55 before the autumn change
    ],
    ids=["summer", "spring-forward", "fall-back"],
)
async def test_on_call_taken_after_midnight_is_in_the_specialists_day(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, demo: Demo, asked: datetime
) -> None:
    appointment_id = await ask_at(sessions, settings, demo, asked)
    taken = asked + timedelta(minutes=10)  # 00:05 local, the next day
    assert taken.astimezone(settings.tz).date() == asked.astimezone(settings.tz).date() + (
        timedelta(days=1)
    )
    async with unit_of_work(sessions) as session:
        await on_call.claim(
            session, who=staff(demo.specialist), appointment_id=appointment_id, now=taken
        )
    assert demo.specialist.id is not None
    assert demo.specialist.role is Role.SPECIALIST
    async with sessions() as session:
        snapshot = await rooms.queue(
            session, specialist_id=demo.specialist.id, tz=settings.tz, now=taken
        )
        colleague = await rooms.queue(
            session, specialist_id=demo.other_specialist.id or 0, tz=settings.tz, now=taken
        )
    assert snapshot.day == taken.astimezone(settings.tz).date()
    assert [e.appointment_id for e in snapshot.today] == [appointment_id]
    assert snapshot.on_call == []
    assert colleague.today == []
