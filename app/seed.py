"""Demo data for a local installation: accounts, practices, specialties, consultation hours,
and a demo consultation joinable now (``python -m app.cli demo-consult``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.accounts import service as accounts
from app.accounts.models import Practice, Role, SessionKind, User
from app.accounts.service import Principal
from app.errors import NotFound
from app.rooms.state import CLOSED
from app.scheduling import links
from app.scheduling.models import Appointment, AppointmentStatus, AvailabilityRule, Specialty
from app.settings import Settings

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


# ---------------------------------------------------------------- a consultation to try now

DEMO_PATIENT = "Erika Demo"
DEMO_SPECIALIST = "schulz@klinikum.example"
DEMO_GP = "lehmann@praxis-spremberg.example"
DEMO_MINUTES = 30


@dataclass(frozen=True)
class DemoConsult:
    """A demo consultation that is joinable now, and its patient link (shown once)."""

    appointment_id: int
    link: links.IssuedLink
    specialist_email: str
    gp_email: str


async def demo_consult(session: AsyncSession, *, settings: Settings, now: datetime) -> DemoConsult:
    """A consultation of the demo specialist with the demo GP's patient, starting now, so a
    newcomer can hold a call at any hour (the demo hours are weekdays 08:00-16:00 only).

    A demo consultation still going on is reused; its link is issued afresh (only a hash is
    stored, so the old one cannot be shown again). Demo accounts must exist (seed_demo)."""
    users = {
        u.email: u
        for u in (
            await session.execute(
                select(User).where(col(User.email).in_([DEMO_SPECIALIST, DEMO_GP]))
            )
        ).scalars()
    }
    specialist, gp = users.get(DEMO_SPECIALIST), users.get(DEMO_GP)
    if specialist is None or gp is None or specialist.id is None or gp.id is None:
        raise NotFound("Die Demo-Konten fehlen: zuerst `python -m app.cli seed-demo`.")
    appointment = (
        await session.execute(
            select(Appointment)
            .where(
                col(Appointment.specialist_id) == specialist.id,
                col(Appointment.patient_name) == DEMO_PATIENT,
                col(Appointment.status) == AppointmentStatus.BOOKED,
                col(Appointment.room_state).not_in(CLOSED),
                col(Appointment.starts_at) <= now,
                # Enough of it left for a try.
                col(Appointment.ends_at) > now + timedelta(minutes=10),
            )
            .order_by(col(Appointment.starts_at).desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if appointment is None:
        starts_at = now.replace(microsecond=0)
        # Booked slots start on the minute: one may start this very second.
        while await session.scalar(
            select(col(Appointment.id)).where(
                col(Appointment.specialist_id) == specialist.id,
                col(Appointment.starts_at) == starts_at,
                col(Appointment.status) != AppointmentStatus.CANCELLED,
            )
        ):
            starts_at += timedelta(seconds=1)
        appointment = Appointment(
            specialist_id=specialist.id,
            gp_id=gp.id,
            practice_id=gp.practice_id,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(minutes=DEMO_MINUTES),
            patient_name=DEMO_PATIENT,
            patient_birth_date=date(1951, 3, 14),
            patient_contact="erika.demo@example.org",
            clinical_question="Demo: Belastungsdyspnoe seit drei Wochen, bitte Einschätzung.",
            created_at=now,
        )
        session.add(appointment)
        await session.flush()
    assert appointment.id is not None
    # The command acts for the demo GP, who books and hands out links in the product.
    gp_principal = Principal(
        kind=SessionKind.STAFF,
        session_id="",
        csrf_token="",
        user_id=gp.id,
        role=Role.GP,
        display_name=gp.display_name,
    )
    link = await links.issue(
        session,
        settings=settings,
        appointment=appointment,
        who=gp_principal,
        now=now,
        action="demo.link_issued",
    )
    return DemoConsult(appointment.id, link, DEMO_SPECIALIST, DEMO_GP)
