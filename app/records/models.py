"""Tables for a consultation's clinical records: the GP's documents, the specialist's report."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, LargeBinary, Text
from sqlmodel import Field, SQLModel

from app.db import utc_column, utcnow


class Report(SQLModel, table=True):
    """The specialist's written report on one consultation, read by the booking GP."""

    __tablename__ = "report"

    id: int | None = Field(default=None, primary_key=True)
    appointment_id: int = Field(foreign_key="appointment.id", unique=True)
    author_id: int = Field(foreign_key="staff_user.id")
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


class Document(SQLModel, table=True):
    """A document the GP attaches to a booking (findings, letters, images)."""

    __tablename__ = "document"

    id: int | None = Field(default=None, primary_key=True)
    appointment_id: int = Field(foreign_key="appointment.id", index=True)
    uploaded_by: int = Field(foreign_key="staff_user.id")
    filename: str = Field(max_length=200)
    content_type: str = Field(max_length=100)
    size: int
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


class ConsultMessage(SQLModel, table=True):
    """A message between the booking GP and the specialist about one consultation: the
    specialist's question back (more data, a finding) and the GP's answer."""

    __tablename__ = "consult_message"

    id: int | None = Field(default=None, primary_key=True)
    appointment_id: int = Field(foreign_key="appointment.id", index=True)
    author_id: int = Field(foreign_key="staff_user.id")
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
