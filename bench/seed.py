"""Seeds a fresh benchmark database (SQLite, or PostgreSQL for two instances): one GP,
specialists, rooms and sessions.

Ids start high (900000) so that Redis channels (``konsil:room:<id>``) cannot meet those of tests
running against the same Redis.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, timedelta

from app.accounts.models import AuthSession, Practice, Role, SessionKind, User
from app.db import create_engine, session_factory, unit_of_work, utcnow
from app.models import metadata
from app.scheduling.models import Appointment, Specialty
from app.tokens import new_token, token_hash

BASE_ID = 900_000
# Waiting patients beyond the staff's own rooms are spread over more specialists, this many
# each (a full day's list): every arrival in one specialist's line has each waiting patient's
# place in line read again, so 10,000 patients in ONE line would measure that line, not the
# memory of a waiting patient.
PATIENTS_PER_SPECIALIST = 20


@dataclass(frozen=True)
class Seeded:
    staff_cookie: str
    # (appointment id, patient cookie) per room
    rooms: list[tuple[int, str]]


async def _seed(url: str, rooms: int, staff_rooms: int | None) -> Seeded:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        sessions = session_factory(engine)
        now = utcnow()
        staff_token = new_token()
        patients: list[tuple[int, str]] = []
        async with unit_of_work(sessions) as session:
            session.add(Practice(id=BASE_ID, name="Bench", town="Bench"))
            session.add(Specialty(id=BASE_ID, slug="bench", name_de="Bench", name_en="Bench"))
            await session.flush()
            for uid, role in ((BASE_ID, Role.GP), (BASE_ID + 1, Role.SPECIALIST)):
                session.add(
                    User(
                        id=uid,
                        email=f"{role.value}@bench.example",
                        display_name=f"Bench {role.value}",
                        role=role,
                        password_hash="!",  # noqa: S106 - no login in the benchmark
                        practice_id=BASE_ID if role is Role.GP else None,
                        specialty_id=BASE_ID if role is Role.SPECIALIST else None,
                    )
                )
            await session.flush()
            staff_rooms = rooms if staff_rooms is None else staff_rooms
            others = -(-(rooms - staff_rooms) // PATIENTS_PER_SPECIALIST)
            for n in range(others):
                session.add(
                    User(
                        id=BASE_ID + 2 + n,
                        email=f"specialist{n}@bench.example",
                        display_name=f"Bench specialist {n}",
                        role=Role.SPECIALIST,
                        password_hash="!",  # noqa: S106 - no login in the benchmark
                        specialty_id=BASE_ID,
                    )
                )
            await session.flush()
            session.add(_session(staff_token, SessionKind.STAFF, user_id=BASE_ID + 1))
            for i in range(rooms):
                aid = BASE_ID + i
                starts = now + timedelta(minutes=5 + i)
                specialist = BASE_ID + 1
                if i >= staff_rooms:
                    specialist = BASE_ID + 2 + (i - staff_rooms) // PATIENTS_PER_SPECIALIST
                session.add(
                    Appointment(
                        id=aid,
                        specialist_id=specialist,
                        gp_id=BASE_ID,
                        practice_id=BASE_ID,
                        starts_at=starts,
                        ends_at=starts + timedelta(minutes=30),
                        patient_name="Bench",
                        patient_birth_date=date(1950, 1, 1),
                        patient_contact="bench@example.org",
                        clinical_question="-",
                    )
                )
                token = new_token()
                patients.append((aid, token))
            await session.flush()
            for aid, token in patients:
                session.add(_session(token, SessionKind.PATIENT, appointment_id=aid))
        return Seeded(staff_cookie=staff_token, rooms=patients)
    finally:
        await engine.dispose()


def _session(token: str, kind: SessionKind, **owner: int) -> AuthSession:
    return AuthSession(
        id=token_hash(token),
        kind=kind,
        csrf_token=new_token(),
        expires_at=utcnow() + timedelta(hours=6),
        **owner,
    )


def seed(url: str, rooms: int, staff_rooms: int | None = None) -> Seeded:
    """``rooms`` appointments with a patient session each; the first ``staff_rooms`` (all if
    None) are the seeded specialist's, whose session is ``staff_cookie``."""
    return asyncio.run(_seed(url, rooms, staff_rooms))
