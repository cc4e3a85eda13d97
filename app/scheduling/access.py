"""Who may see or change an appointment: the permission checks every service applies first."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Role
from app.accounts.service import Principal
from app.errors import Forbidden, NotFound, NoVideoRoom
from app.scheduling import repository as repo
from app.scheduling.models import Appointment, AppointmentKind


def require_role(who: Principal, role: Role) -> int:
    """The staff member's id, if they have ``role``."""
    if who.role is not role or who.user_id is None:
        raise Forbidden()
    return who.user_id


def is_gp_of(who: Principal, appointment: Appointment) -> bool:
    return who.role is Role.GP and who.user_id == appointment.gp_id


def is_specialist_of(who: Principal, appointment: Appointment) -> bool:
    return who.role is Role.SPECIALIST and who.user_id == appointment.specialist_id


def require_video(appointment: Appointment) -> None:
    """Links, guests and new times belong to a consultation with video: a written Telekonsil
    has none of them."""
    if appointment.kind is AppointmentKind.WRITTEN:
        raise NoVideoRoom()


async def visible_appointment(
    session: AsyncSession, *, who: Principal, appointment_id: int, lock: bool = False
) -> Appointment:
    """The appointment, if ``who`` is its booking GP or its specialist.

    Anyone else gets NotFound, exactly as for an id that does not exist: ids are not probeable.
    """
    if lock:
        appointment = await repo.lock_appointment(session, appointment_id)
    else:
        appointment = await session.get(Appointment, appointment_id)
    if appointment is None or not (
        is_gp_of(who, appointment) or is_specialist_of(who, appointment)
    ):
        raise NotFound("Diesen Termin gibt es nicht.")
    return appointment
