"""Request and response bodies of the records API."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from app.schemas import Out, Schema

MAX_REPORT = 20000


class ReportIn(Schema):
    body: str = Field(min_length=1, max_length=MAX_REPORT)


class DocumentOut(Out):
    id: int
    appointment_id: int
    filename: str
    content_type: str
    size: int
    uploaded_by: int
    created_at: datetime


class ReportOut(Out):
    appointment_id: int
    author_id: int
    author_name: str
    body: str
    created_at: datetime
    updated_at: datetime


class MessageIn(Schema):
    body: str = Field(min_length=1, max_length=4000)


class MessageOut(Out):
    id: int
    author_id: int
    author_name: str
    author_role: str  # "gp" (the booking GP) or "specialist"
    body: str
    created_at: datetime
