"""Many GPs racing for one slot: exactly one booking wins, the rest get SlotTaken."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from app.accounts import service as accounts
from app.accounts.models import Role, SessionKind, User
from app.accounts.service import Principal
from app.db import create_engine, session_factory, unit_of_work
from app.errors import SlotTaken
from app.main import create_app
from app.scheduling import availability, service
from app.scheduling import repository as repo
from app.scheduling.models import Appointment, AppointmentStatus, JoinToken
from app.scheduling.schemas import BookingIn
from app.settings import Settings
from tests.conftest import create_schema, new_client
from tests.factories import Demo, login, seed
from tests.scheduling.helpers import booking_body
from tests.services import require_postgres

RACERS = 8
PASSWORD = "race-password-2026"


@dataclass
class World:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    demo: Demo
    gps: list[User]


@pytest.fixture
async def world_factory(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[Callable[[str], Any]]:
    engines = []

    async def make(url: str) -> World:
        await create_schema(url)
        engine = create_engine(url)
        engines.append(engine)
        sessions = session_factory(engine)
        demo = await seed(sessions)
        async with unit_of_work(sessions) as session:
            gps = [
                await accounts.create_user(
                    session,
                    email=f"gp{i}@race.example",
                    password_hash=accounts.new_password_hash(PASSWORD),
                    display_name=f"GP {i}",
                    role=Role.GP,
                    practice_id=demo.practice.id,
                )
                for i in range(RACERS)
            ]
        return World(make_settings(database_url=url), sessions, demo, gps)

    yield make
    for engine in engines:
        await engine.dispose()


def as_principal(user: User) -> Principal:
    return Principal(
        kind=SessionKind.STAFF, session_id=f"s{user.id}", csrf_token="c", user_id=user.id,
        role=Role.GP, display_name=user.display_name,
    )  # fmt: skip


async def first_free_start(world: World) -> str:
    async with world.sessions() as session:
        slots = await availability.free_slots(
            session, settings=world.settings, specialist=world.demo.specialist.id
        )
    return slots[0].starts_at.isoformat()


async def race_through_service(world: World) -> list[str]:
    starts_at = await first_free_start(world)
    details = BookingIn.model_validate(booking_body(world.demo.specialist, starts_at))

    async def attempt(gp: User) -> str:
        try:
            async with unit_of_work(world.sessions) as session:
                await service.book(
                    session, settings=world.settings, who=as_principal(gp), details=details
                )
        except SlotTaken:
            return "taken"
        return "booked"

    return await asyncio.gather(*(attempt(gp) for gp in world.gps))


async def active_rows(world: World) -> int:
    async with world.sessions() as session:
        query = select(func.count()).where(col(Appointment.status) != AppointmentStatus.CANCELLED)
        return int((await session.execute(query)).scalar_one())


async def link_rows(world: World) -> int:
    async with world.sessions() as session:
        return int(
            (await session.execute(select(func.count()).select_from(JoinToken))).scalar_one()
        )


@pytest.mark.postgres
async def test_concurrent_booking_postgres_service_exactly_one_wins(
    postgres_url: str, world_factory: Callable[[str], Any]
) -> None:
    require_postgres()
    world: World = await world_factory(postgres_url)
    results = await race_through_service(world)
    assert sorted(results) == ["booked"] + ["taken"] * (RACERS - 1)
    assert await active_rows(world) == 1
    assert await link_rows(world) == 1


@pytest.mark.postgres
async def test_concurrent_booking_postgres_unique_index_catches_race_without_lock(
    postgres_url: str, world_factory: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even if the row lock were missing, the partial unique index lets only one through."""
    require_postgres()
    world: World = await world_factory(postgres_url)

    async def no_lock(session: AsyncSession, specialist_id: int) -> User | None:
        return await session.get(User, specialist_id)

    monkeypatch.setattr(repo, "lock_specialist", no_lock)
    results = await race_through_service(world)
    assert sorted(results) == ["booked"] + ["taken"] * (RACERS - 1)
    assert await active_rows(world) == 1


@pytest.mark.postgres
async def test_concurrent_booking_postgres_http_exactly_one_wins(
    postgres_url: str, world_factory: Callable[[str], Any]
) -> None:
    require_postgres()
    world: World = await world_factory(postgres_url)
    starts_at = await first_free_start(world)
    app = create_app(world.settings)
    async with app.router.lifespan_context(app):
        clients = [new_client(app) for _ in world.gps]
        try:
            for client, gp in zip(clients, world.gps, strict=True):
                await login(client, gp, password=PASSWORD)
            body = booking_body(world.demo.specialist, starts_at)
            responses = await asyncio.gather(
                *(c.post("/api/v1/appointments", json=body) for c in clients)
            )
        finally:
            for client in clients:
                await client.aclose()
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * (RACERS - 1)
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == {"slot_taken"}
    assert await active_rows(world) == 1


async def test_concurrent_booking_sqlite_service_exactly_one_wins(
    sqlite_url: str, world_factory: Callable[[str], Any]
) -> None:
    world: World = await world_factory(sqlite_url)
    results = await race_through_service(world)
    assert sorted(results) == ["booked"] + ["taken"] * (RACERS - 1)
    assert await active_rows(world) == 1


async def test_concurrent_booking_different_slots_all_succeed(
    database_url: str, world_factory: Callable[[str], Any]
) -> None:
    """The lock serialises one specialist's bookings; it must not refuse distinct slots."""
    world: World = await world_factory(database_url)
    async with world.sessions() as session:
        slots = await availability.free_slots(
            session, settings=world.settings, specialist=world.demo.specialist.id
        )

    async def attempt(gp: User, starts_at: str) -> None:
        details = BookingIn.model_validate(booking_body(world.demo.specialist, starts_at))
        async with unit_of_work(world.sessions) as session:
            await service.book(
                session, settings=world.settings, who=as_principal(gp), details=details
            )

    await asyncio.gather(
        *(attempt(gp, s.starts_at.isoformat()) for gp, s in zip(world.gps, slots, strict=False))
    )
    assert await active_rows(world) == RACERS
