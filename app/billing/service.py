"""The EBM export for a signed-in staff member, and the specialist's record of the identity
check (services; callers own the unit of work).

A GP gets the rows of the Telekonsil requests they asked for, a specialist those of the
consultations they answered (``appointment.specialist_id``: after a transfer, the colleague who
took it over). Every download is in the audit log, with the quarter and the number of rows:
the file names patients.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, func, select

from app.accounts.models import Role
from app.accounts.service import Principal
from app.audit import service as audit
from app.billing.ebm import Facts, Quarter, Row, Side, rows_in
from app.db import UTCDateTime
from app.errors import Conflict, Forbidden
from app.rooms import service as rooms
from app.scheduling.access import is_specialist_of, visible_appointment
from app.scheduling.models import Appointment, AppointmentStatus

SIDES = {Role.GP: Side.ASKING, Role.SPECIALIST: Side.ANSWERING}


def side_of(who: Principal) -> Side:
    """The GP asks, the specialist answers; anybody else has no rows (``Forbidden``)."""
    if who.role not in SIDES or who.user_id is None:
        raise Forbidden()
    return SIDES[who.role]


async def ebm_rows(
    session: AsyncSession, *, who: Principal, quarter: Quarter, tz: ZoneInfo
) -> list[Row]:
    """The staff member's rows of ``quarter`` (quarter bounds in ``tz``), audited."""
    side = side_of(who)
    assert who.user_id is not None
    facts = await _facts(session, staff_id=who.user_id, side=side, quarter=quarter, tz=tz)
    rows = rows_in(facts, side, quarter, tz)
    audit.record_for(
        session,
        who,
        "billing.ebm_exported",
        None,
        year=quarter.year,
        quarter=quarter.number,
        rows=len(rows),
    )
    return rows


async def _facts(
    session: AsyncSession, *, staff_id: int, side: Side, quarter: Quarter, tz: ZoneInfo
) -> list[Facts]:
    start, end = quarter.bounds(tz)
    held = func.coalesce(
        col(Appointment.admitted_at), col(Appointment.reported_at), type_=UTCDateTime()
    )
    owner = col(Appointment.gp_id) if side is Side.ASKING else col(Appointment.specialist_id)
    query = select(Appointment).where(
        owner == staff_id,
        col(Appointment.status) != AppointmentStatus.CANCELLED,
        held >= start,
        held < end,
    )
    return [_facts_of(a) for a in (await session.execute(query)).scalars()]


def _facts_of(appointment: Appointment) -> Facts:
    assert appointment.id is not None
    return Facts(
        appointment_id=appointment.id,
        patient_name=appointment.patient_name,
        patient_birth_date=appointment.patient_birth_date,
        insurance_number=appointment.patient_insurance_number,
        cancelled=appointment.status == AppointmentStatus.CANCELLED,
        admitted_at=appointment.admitted_at,
        ended_at=appointment.ended_at,
        reported_at=appointment.reported_at,
        identity_checked_at=appointment.identity_checked_at,
    )


async def check_identity(
    session: AsyncSession, *, who: Principal, appointment_id: int, now: datetime
) -> Appointment:
    """Records that the specialist checked the patient's identity in the video consultation
    (the health card shown to the camera, Anlage 4b BMV-Ä; EBM 01444). Only the
    appointment's specialist, only once the consultation has begun (the patient was let in);
    again later it changes nothing and keeps the first time."""
    appointment = await visible_appointment(
        session, who=who, appointment_id=appointment_id, lock=True
    )
    if not is_specialist_of(who, appointment):
        raise Forbidden(
            "Nur die Fachärztin bzw. der Facharzt des Termins bestätigt die Identitätsprüfung."
        )
    if appointment.identity_checked_at is not None:
        return appointment
    if not rooms.admitted_before(appointment):
        raise Conflict(
            "Die Identitätsprüfung lässt sich erst bestätigen, wenn die Konsultation begonnen "
            "hat (die Patientin bzw. der Patient wurde hereingeholt)."
        )
    appointment.identity_checked_at = now
    audit.record_for(session, who, "appointment.identity_checked", appointment_id)
    return appointment
