"""Booking services on SQLite and PostgreSQL: DST days, rebooking, rescheduling refusals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from app.accounts.models import Role, SessionKind
from app.accounts.service import Principal
from app.db import unit_of_work
from app.errors import Conflict, InvalidTransition, SlotTaken, SlotUnavailable
from app.scheduling import availability, service
from app.scheduling.models import Appointment, AvailabilityRule
from app.scheduling.schemas import BookingIn
from app.settings import Settings
from tests.factories import Demo
from tests.scheduling.helpers import booking_body

BERLIN = ZoneInfo("Europe/Berlin")
SPRING_FORWARD = date(2026, 3, 29)
FALL_BACK = date(2026, 10, 25)


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url)


def staff(user_id: int | None, role: Role) -> Principal:
    return Principal(
        kind=SessionKind.STAFF, session_id="s", csrf_token="c", user_id=user_id, role=role
    )


async def sunday_hours(sessions: async_sessionmaker[AsyncSession], demo: Demo) -> None:
    """The specialist consults on Sundays 01:00-04:00 and 09:00-10:00 local time."""
    async with unit_of_work(sessions) as session:
        await session.execute(
            delete(AvailabilityRule).where(
                col(AvailabilityRule.specialist_id) == demo.specialist.id
            )
        )
        for start, end in ((time(1), time(4)), (time(9), time(10))):
            session.add(
                AvailabilityRule(
                    specialist_id=demo.specialist.id or 0, weekday=6, start_time=start, end_time=end
                )
            )


async def book_at(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    demo: Demo,
    starts_at: datetime,
    now: datetime,
) -> Appointment:
    details = BookingIn.model_validate(booking_body(demo.specialist, starts_at.isoformat()))
    async with unit_of_work(sessions) as session:
        booking = await service.book(
            session, settings=settings, who=staff(demo.gp.id, Role.GP), details=details, now=now
        )
    async with sessions() as session:
        stored = await session.get(Appointment, booking.appointment.id)
    assert stored is not None
    return stored


@pytest.mark.parametrize("day", [SPRING_FORWARD, FALL_BACK])
async def test_service_books_nine_oclock_local_on_dst_days(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], demo: Demo, day: date
) -> None:
    await sunday_hours(sessions, demo)
    now = datetime(2026, 3, 1, tzinfo=UTC) if day.month == 3 else datetime(2026, 10, 1, tzinfo=UTC)
    nine = datetime.combine(day, time(9), tzinfo=BERLIN)
    stored = await book_at(sessions, settings, demo, nine, now)
    assert stored.starts_at == nine.astimezone(UTC)
    assert stored.starts_at.astimezone(BERLIN).time() == time(9)
    assert stored.ends_at - stored.starts_at == timedelta(minutes=30)


async def test_service_nonexistent_local_time_is_not_bookable(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], demo: Demo
) -> None:
    await sunday_hours(sessions, demo)
    async with sessions() as session:
        slots = await availability.free_slots(
            session, settings=settings, specialist=demo.specialist.id,
            first_day=SPRING_FORWARD, last_day=SPRING_FORWARD, now=datetime(2026, 3, 1, tzinfo=UTC),
        )  # fmt: skip
    local_times = [s.starts_at.astimezone(BERLIN).strftime("%H:%M") for s in slots]
    assert local_times == ["01:00", "01:30", "03:00", "03:30", "09:00", "09:30"]
    # 02:30 CET would be 01:30 UTC, which is 03:30 CEST: only the 03:30 slot starts there.
    assert slots[3].starts_at == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


async def test_service_cancelled_slot_can_be_booked_again(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], demo: Demo
) -> None:
    await sunday_hours(sessions, demo)
    now = datetime(2026, 3, 1, tzinfo=UTC)
    nine = datetime.combine(SPRING_FORWARD, time(9), tzinfo=BERLIN)
    first = await book_at(sessions, settings, demo, nine, now)
    with pytest.raises(SlotTaken):
        await book_at(sessions, settings, demo, nine, now)
    async with unit_of_work(sessions) as session:
        await service.cancel(
            session, who=staff(demo.gp.id, Role.GP), appointment_id=first.id or 0, now=now
        )
    second = await book_at(sessions, settings, demo, nine, now)
    assert second.id != first.id
    async with sessions() as session:
        statuses = (await session.execute(select(Appointment.status))).scalars().all()
    assert sorted(statuses) == ["booked", "cancelled"]


async def test_service_reschedule_refuses_taken_same_and_cancelled(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], demo: Demo
) -> None:
    await sunday_hours(sessions, demo)
    now = datetime(2026, 3, 1, tzinfo=UTC)
    nine = datetime.combine(SPRING_FORWARD, time(9), tzinfo=BERLIN)
    half_past = nine + timedelta(minutes=30)
    mine = await book_at(sessions, settings, demo, nine, now)
    await book_at(sessions, settings, demo, half_past, now)
    gp = staff(demo.gp.id, Role.GP)

    async def move(to: datetime) -> None:
        async with unit_of_work(sessions) as session:
            await service.reschedule(
                session,
                settings=settings,
                who=gp,
                appointment_id=mine.id or 0,
                starts_at=to,
                now=now,
            )

    with pytest.raises(SlotTaken):
        await move(half_past)
    with pytest.raises(Conflict):
        await move(nine)
    with pytest.raises(SlotUnavailable):
        await move(nine + timedelta(minutes=10))
    with pytest.raises(SlotUnavailable):
        await move(datetime(2026, 2, 22, 8, tzinfo=UTC))  # a Sunday 09:00 in the past
    async with unit_of_work(sessions) as session:
        await service.cancel(session, who=gp, appointment_id=mine.id or 0, now=now)
    with pytest.raises(InvalidTransition):
        await move(datetime.combine(SPRING_FORWARD, time(1), tzinfo=BERLIN))
