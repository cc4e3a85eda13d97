"""Small factories for test data and logged-in clients."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import httpx2
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from app.accounts.models import Practice, User
from app.accounts.service import NewSession, open_patient_session
from app.db import unit_of_work, utcnow
from app.scheduling.models import Appointment, JoinToken, RoomState, Specialty, Urgency
from app.seed import DEMO_PASSWORD, seed_demo
from app.settings import Settings
from app.tokens import new_token, token_hash

# Distinct default start times: one active booking per specialist and start time.
_OFFSET = itertools.count()


@dataclass(frozen=True)
class Demo:
    """Ids of the demo accounts (see app/seed.py)."""

    admin: User
    gp: User
    other_gp: User
    specialist: User
    other_specialist: User
    dermatologist: User
    cardiology: Specialty
    dermatology: Specialty
    practice: Practice
    other_practice: Practice


async def seed(sessions: async_sessionmaker[AsyncSession]) -> Demo:
    async with unit_of_work(sessions) as session:
        await seed_demo(session)
    async with sessions() as session:
        users = {u.email: u for u in (await session.execute(select(User))).scalars()}
        specialties = {s.slug: s for s in (await session.execute(select(Specialty))).scalars()}
        practices = (
            (await session.execute(select(Practice).order_by(col(Practice.id)))).scalars().all()
        )
    return Demo(
        admin=users["admin@konsil.example"],
        gp=users["lehmann@praxis-spremberg.example"],
        other_gp=users["wojcik@praxis-forst.example"],
        specialist=users["schulz@klinikum.example"],
        other_specialist=users["nguyen@klinikum.example"],
        dermatologist=users["becker@klinikum.example"],
        cardiology=specialties["kardiologie"],
        dermatology=specialties["dermatologie"],
        practice=practices[0],
        other_practice=practices[1],
    )


async def login(client: httpx2.AsyncClient, user: User, password: str = DEMO_PASSWORD) -> str:
    """Logs ``client`` in as ``user``; sets the CSRF header for later requests; returns it."""
    response = await client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": password}
    )
    assert response.status_code == 200, response.text
    csrf = str(response.json()["csrf_token"])
    client.headers["X-CSRF-Token"] = csrf
    return csrf


async def make_appointment(
    sessions: async_sessionmaker[AsyncSession],
    demo: Demo,
    *,
    starts_at: datetime | None = None,
    specialist_id: int | None = None,
    gp_id: int | None = None,
    **options: Any,
) -> Appointment:
    """An appointment of the demo specialist and GP (unless given), starting now (a second
    apart from the previous one) unless given; ``options`` as for ``insert_appointment``."""
    start = starts_at or utcnow().replace(microsecond=0) + timedelta(seconds=next(_OFFSET))
    specialist_id = specialist_id or demo.specialist.id
    gp_id = gp_id or demo.gp.id
    assert specialist_id is not None
    assert gp_id is not None
    options.setdefault("practice_id", demo.practice.id)
    return await insert_appointment(
        sessions, specialist_id=specialist_id, gp_id=gp_id, starts_at=start, **options
    )


async def consultation_history(
    sessions: async_sessionmaker[AsyncSession],
    demo: Demo,
    *,
    days_ago: int = 1,
    lengths: tuple[int, ...] = (10, 12, 15, 20, 11),
) -> None:
    """The demo specialist's last consultations, ended ``days_ago`` days ago an hour apart,
    each ``lengths`` minutes from admission to the end (the default: typically 12 minutes)."""
    now = utcnow()
    for number, length in enumerate(lengths):
        ended = now - timedelta(days=days_ago, hours=number)
        await make_appointment(
            sessions,
            demo,
            starts_at=ended - timedelta(minutes=length + 5),
            room_state=RoomState.ENDED,
            admitted_at=ended - timedelta(minutes=length),
            ended_at=ended,
        )


async def insert_appointment(
    sessions: async_sessionmaker[AsyncSession],
    *,
    specialist_id: int,
    gp_id: int,
    starts_at: datetime,
    appointment_id: int | None = None,
    urgency: Urgency = Urgency.ROUTINE,
    room_state: RoomState = RoomState.SCHEDULED,
    waiting_since: datetime | None = None,
    **details: Any,
) -> Appointment:
    """A 30-minute appointment row written directly (for states and times the API would not
    create); ``details`` override the practice and the made-up patient fields."""
    fields: dict[str, Any] = {
        "patient_name": "Erika Mustermann",
        "patient_birth_date": date(1950, 1, 1),
        "patient_contact": "+49 30 000000",
        "clinical_question": "Belastungsdyspnoe",
        **details,
    }
    async with unit_of_work(sessions) as session:
        appointment = Appointment(
            id=appointment_id,
            specialist_id=specialist_id,
            gp_id=gp_id,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(minutes=30),
            urgency=urgency,
            room_state=room_state,
            waiting_since=waiting_since,
            **fields,
        )
        session.add(appointment)
    return appointment


async def patient_session(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, appointment: Appointment
) -> NewSession:
    """A patient session for ``appointment``, as after redeeming its link."""
    assert appointment.id is not None
    async with unit_of_work(sessions) as session:
        return open_patient_session(
            session,
            settings=settings,
            appointment_id=appointment.id,
            not_after=appointment.ends_at + timedelta(hours=1),
        )


async def patient_token(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, appointment: Appointment
) -> str:
    """The konsil_patient cookie value for the patient of ``appointment``."""
    return (await patient_session(sessions, settings, appointment)).token


async def link_token(
    sessions: async_sessionmaker[AsyncSession],
    appointment: Appointment,
    *,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
) -> str:
    """A join link token of ``appointment``, its row written directly (for windows the API
    would not give); valid from five minutes ago for an hour unless given."""
    assert appointment.id is not None
    token = new_token()
    now = utcnow()
    async with unit_of_work(sessions) as session:
        session.add(
            JoinToken(
                appointment_id=appointment.id,
                token_hash=token_hash(token),
                valid_from=valid_from or now - timedelta(minutes=5),
                valid_until=valid_until or now + timedelta(hours=1),
            )
        )
    return token
