"""Appointments as staff see them: with names, specialty, link state and report flag."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.scheduling import repository as repo
from app.scheduling.models import Appointment
from app.scheduling.schemas import AppointmentOut, LinkStateOut


async def appointment_views(
    session: AsyncSession, appointments: Sequence[Appointment]
) -> list[AppointmentOut]:
    """Appointments with names, specialty, link state and report flag (batched queries)."""
    ids = [a.id for a in appointments if a.id is not None]
    users = await repo.users_by_id(
        session,
        {a.specialist_id for a in appointments if a.specialist_id is not None}
        | {a.gp_id for a in appointments},
    )
    specialties = await repo.specialties_by_id(
        session,
        {u.specialty_id for u in users.values() if u.specialty_id is not None}
        | {a.specialty_id for a in appointments if a.specialty_id is not None},
    )
    active = await repo.active_links(session, ids)
    views = []
    for a in appointments:
        assert a.id is not None
        # An on-call request nobody has taken yet has its specialty but no specialist.
        specialist = users[a.specialist_id] if a.specialist_id is not None else None
        gp = users[a.gp_id]
        specialty_id = a.specialty_id or (specialist.specialty_id if specialist else None)
        specialty = specialties.get(specialty_id or 0)
        link = active.get(a.id)
        views.append(
            AppointmentOut.model_validate(
                {
                    **a.model_dump(),
                    "specialist_name": specialist.display_name if specialist else "",
                    "specialty": specialty.name_de if specialty else "",
                    "gp_name": gp.display_name,
                    "gp_lanr": gp.lanr,
                    "specialist_lanr": specialist.lanr if specialist else None,
                    "has_report": a.reported_at is not None,
                    "invite_by": [c for c in a.patient_channels.split(",") if c],
                    "link": LinkStateOut.model_validate(link) if link else None,
                }
            )
        )
    return views
