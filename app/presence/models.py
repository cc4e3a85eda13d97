"""The presence package's table: what each specialist last set on the queue page."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from app.db import enum_column, utc_column, utcnow


class Chosen(StrEnum):
    """What the specialist set on the queue page (``rules.Presence`` is what it means now)."""

    ON_DUTY = "on_duty"
    AWAY = "away"


class SpecialistPresence(SQLModel, table=True):
    """A specialist's own presence toggle, and the staff session that set it: on duty counts
    only as long as that session is live (a logout, a timeout or a deactivation is away). No
    health data, no names: an account id, a state, a session id and a time."""

    __tablename__ = "specialist_presence"

    user_id: int = Field(foreign_key="staff_user.id", primary_key=True)
    status: Chosen = Field(sa_column=enum_column(Chosen))
    # ``auth_session.id`` of the session that set it (no foreign key: retention deletes old
    # sessions on its own schedule; a row whose session is gone is simply away).
    session_id: str | None = Field(default=None, max_length=64)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
