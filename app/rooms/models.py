"""The rooms package's own table: the specialist's late notice for the day."""

from __future__ import annotations

from datetime import date, datetime

from sqlmodel import Field, SQLModel

from app.db import utc_column, utcnow

MAX_NOTE = 140


class SpecialistDelay(SQLModel, table=True):
    """A specialist's notice to the day's waiting patients that they are running late: about
    ``minutes`` late, and/or a short ``note``. One row per specialist, for one local ``day``
    (a notice of an earlier day applies to nobody). The note is shown in the waiting room only:
    it is never logged, never put in an event and never sent by e-mail."""

    __tablename__ = "specialist_delay"

    specialist_id: int = Field(foreign_key="staff_user.id", primary_key=True)
    day: date
    minutes: int | None = None
    note: str | None = Field(default=None, max_length=MAX_NOTE)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
