"""The directory the FHIR endpoint reads: specialties and active specialists (services)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.fhir.search import row_id
from app.scheduling import repository as repo
from app.scheduling.models import Specialty


async def specialties(session: AsyncSession) -> Sequence[Specialty]:
    return await repo.specialties(session)


async def specialty(session: AsyncSession, key: str) -> Specialty | None:
    """A specialty by id or slug (an id no row can have names none)."""
    if key.isdigit() and row_id(key) is None:
        return None
    return await repo.specialty_by_key(session, key)


async def specialists(
    session: AsyncSession, *, ids: Sequence[int] | None = None, specialty_id: int | None = None
) -> Sequence[tuple[User, Specialty]]:
    """Active specialists with their specialty, optionally only ``ids`` or one specialty."""
    return await repo.specialists(session, ids=ids, specialty_id=specialty_id)
