"""Patients a FHIR client created (``POST /fhir/R4/Patient``) to book them by reference:
what Konsil needs of a patient to book (name, birth date, contact; the insurance number and
the sex if given), checked by the JSON API's rules when created, and tagged ``external``
when answered (the data is the sending system's, not checked by anyone at Konsil).

A created Patient is the creating GP's only (anyone else: as if it did not exist). Its data
goes into each booking that references it, which keeps it under the booking's own retention;
the row itself goes ``KEEP`` after it was created (retention kind ``fhir_patients``).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col, select

from app.db import utc_column, utcnow

KEEP = timedelta(days=7)
# The fields of a booking (``app.scheduling.schemas.ConsultIn``) a created Patient fills.
FIELDS = (
    "patient_name",
    "patient_birth_date",
    "patient_contact",
    "patient_insurance_number",
    "patient_sex",
)


class FhirPatient(SQLModel, table=True):
    """A Patient a FHIR client created for its GP."""

    __tablename__ = "fhir_patient"

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="staff_user.id", index=True)
    # The system client that created it (its row id), None for a staff session.
    fhir_client: int | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(index=True))
    patient_name: str = Field(max_length=200)
    patient_birth_date: date
    patient_contact: str = Field(max_length=254)
    patient_insurance_number: str | None = Field(default=None, max_length=20)
    patient_sex: str | None = Field(default=None, max_length=16)


async def create(
    session: AsyncSession,
    *,
    owner_id: int,
    fields: dict[str, object],
    fhir_client: int | None,
    now: datetime,
) -> FhirPatient:
    """Stores the (checked) patient ``fields`` as ``owner_id``'s."""
    patient = FhirPatient.model_validate(
        {
            **{name: fields.get(name) for name in FIELDS},
            "owner_id": owner_id,
            "fhir_client": fhir_client,
            "created_at": now,
        }
    )
    session.add(patient)
    await session.flush()
    return patient


async def find(session: AsyncSession, patient_id: int, *, owner_id: int) -> FhirPatient | None:
    """The owner's Patient with this id, or None (another's is as unknown as none)."""
    found = await session.execute(
        select(FhirPatient).where(
            col(FhirPatient.id) == patient_id, col(FhirPatient.owner_id) == owner_id
        )
    )
    return found.scalars().first()


def fields_of(patient: FhirPatient) -> dict[str, object]:
    """The booking fields the Patient fills."""
    return {name: getattr(patient, name) for name in FIELDS}
