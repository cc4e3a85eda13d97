"""The audit table. Rows are only ever inserted; triggers refuse UPDATE and DELETE, except in
the retention job's transaction (``app.retention``), which holds a row in ``audit_permit``
while it reduces old rows to ids and deletes expired ones. The permit row is deleted in the
same transaction, so no other transaction ever sees it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DDL, JSON, Column, Index, event
from sqlmodel import Field, SQLModel

from app.db import utc_column, utcnow


class AuditEvent(SQLModel, table=True):
    """Who did what to which appointment, and when. Never health data: ids and outcomes only."""

    __tablename__ = "audit_event"
    __table_args__ = (
        # The retention job's search: rows not yet reduced to ids, oldest first.
        Index("ix_audit_event_reduced", "reduced_at", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=utc_column(index=True))
    action: str = Field(max_length=60, index=True)
    actor_kind: str = Field(max_length=20)
    actor_id: int | None = Field(default=None, index=True)
    appointment_id: int | None = Field(default=None, index=True)
    # Keyed hash of a login name, so failed logins can be throttled without storing the name.
    subject: str | None = Field(default=None, max_length=64, index=True)
    ip: str | None = Field(default=None, max_length=64)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Set when retention reduced the row to ids (no address, no subject, integer details only).
    reduced_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class AuditPermit(SQLModel, table=True):
    """Present only inside the retention job's transaction: lets it change ``audit_event``."""

    __tablename__ = "audit_permit"

    id: int | None = Field(default=None, primary_key=True)


# Refused unless the transaction holds an ``audit_permit`` row (only the retention job does).
APPEND_ONLY_SQLITE = [
    "CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event "
    "WHEN NOT EXISTS (SELECT 1 FROM audit_permit) "
    "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END",
    "CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event "
    "WHEN NOT EXISTS (SELECT 1 FROM audit_permit) "
    "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END",
]
APPEND_ONLY_POSTGRESQL = [
    "CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$ "
    "BEGIN "
    "IF EXISTS (SELECT 1 FROM audit_permit) THEN "
    "IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; RETURN NEW; "
    "END IF; "
    "RAISE EXCEPTION 'audit_event is append-only'; END; $$ LANGUAGE plpgsql",
    "CREATE TRIGGER audit_event_no_change BEFORE UPDATE OR DELETE ON audit_event "
    "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()",
]

_table = SQLModel.metadata.tables["audit_event"]
for _dialect, _statements in (
    ("sqlite", APPEND_ONLY_SQLITE),
    ("postgresql", APPEND_ONLY_POSTGRESQL),
):
    for _statement in _statements:
        _ddl = DDL(_statement)  # type: ignore[no-untyped-call]
        event.listen(_table, "after_create", _ddl.execute_if(dialect=_dialect))
