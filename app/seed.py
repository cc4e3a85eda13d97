"""Demo data for a local installation: accounts, practices, specialties, consultation hours."""

from __future__ import annotations

from datetime import time

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import select

from app.accounts import service as accounts
from app.accounts.models import Practice, Role, User
from app.scheduling.models import AvailabilityRule, Specialty

DEMO_PASSWORD = "konsil-demo-2026"  # noqa: S105 - documented demo password, development only

SPECIALTIES = [
    ("kardiologie", "Kardiologie", "Cardiology"),
    ("dermatologie", "Dermatologie", "Dermatology"),
]
PRACTICES = [
    ("Hausarztpraxis Dr. Lehmann", "Spremberg"),
    ("Landarztpraxis Forst", "Forst (Lausitz)"),
]
# (email, name, role, practice index, specialty slug)
ACCOUNTS: list[tuple[str, str, Role, int | None, str | None]] = [
    ("admin@konsil.example", "Konsil Admin", Role.ADMIN, None, None),
    ("lehmann@praxis-spremberg.example", "Dr. Anna Lehmann", Role.GP, 0, None),
    ("wojcik@praxis-forst.example", "Dr. Piotr Wójcik", Role.GP, 1, None),
    ("schulz@klinikum.example", "Prof. Dr. Maria Schulz", Role.SPECIALIST, None, "kardiologie"),
    ("nguyen@klinikum.example", "Dr. Minh Nguyen", Role.SPECIALIST, None, "kardiologie"),
    ("becker@klinikum.example", "Dr. Jonas Becker", Role.SPECIALIST, None, "dermatologie"),
]


async def seed_demo(session: AsyncSession) -> bool:
    """Creates the demo data once. Returns False when it was already there."""
    if (await session.execute(select(User.id).limit(1))).first() is not None:
        return False
    specialties: dict[str, Specialty] = {}
    for slug, name_de, name_en in SPECIALTIES:
        specialties[slug] = Specialty(slug=slug, name_de=name_de, name_en=name_en)
        session.add(specialties[slug])
    practices = [Practice(name=name, town=town) for name, town in PRACTICES]
    session.add_all(practices)
    await session.flush()
    # One hash for all: the demo accounts share their password anyway (and seeding stays fast).
    password_hash = accounts.new_password_hash(DEMO_PASSWORD)
    for email, name, role, practice, specialty in ACCOUNTS:
        user = await accounts.create_user(
            session,
            email=email,
            password_hash=password_hash,
            display_name=name,
            role=role,
            practice_id=practices[practice].id if practice is not None else None,
            specialty_id=specialties[specialty].id if specialty else None,
        )
        if role is Role.SPECIALIST:
            assert user.id is not None
            session.add_all(_consultation_hours(user.id))
    return True


def _consultation_hours(specialist_id: int) -> list[AvailabilityRule]:
    """Monday to Friday, 08:00-12:00 and 13:00-16:00, 30-minute slots."""
    return [
        AvailabilityRule(
            specialist_id=specialist_id,
            weekday=day,
            start_time=start,
            end_time=end,
            slot_minutes=30,
        )
        for day in range(5)
        for start, end in ((time(8), time(12)), (time(13), time(16)))
    ]
