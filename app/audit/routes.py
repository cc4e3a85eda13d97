"""The audit log for admins: a filtered, paged list and a CSV download (JSON API; docs/api.md,
"Audit")."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, tzinfo
from typing import Any

from pydantic import ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from app.accounts.models import Role
from app.accounts.web import require_staff
from app.api import api_route, parse_query, respond
from app.audit import export, query
from app.audit import service as audit
from app.db import unit_of_work, utcnow
from app.resources import db, settings
from app.schemas import Id, Out, Schema

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
# The CSV holds at most this many rows (the newest); older ones with ``before_id``.
CSV_MAX_ROWS = 10_000
# The CSV is read in batches, each in a short transaction of its own, so a slow download
# holds no database connection.
CSV_BATCH = 500


class AuditQuery(Schema):
    model_config = ConfigDict(populate_by_name=True)

    action: str | None = Field(default=None, max_length=60, pattern=r"^[a-z0-9_.]+$")
    actor_id: Id | None = None
    appointment_id: Id | None = None
    first_day: date | None = Field(default=None, alias="from")
    last_day: date | None = Field(default=None, alias="to")
    before_id: Id | None = None
    limit: int = Field(default=PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        # A form submits empty fields as ``name=``: not given.
        return None if value == "" else value

    @model_validator(mode="after")
    def _order(self) -> AuditQuery:
        if self.first_day and self.last_day and self.first_day > self.last_day:
            raise PydanticCustomError("invalid", "Das Ende liegt vor dem Anfang.")
        return self

    def filter(self) -> query.AuditFilter:
        return query.AuditFilter(
            action=self.action,
            actor_id=self.actor_id,
            appointment_id=self.appointment_id,
            first_day=self.first_day,
            last_day=self.last_day,
        )


class AuditCsvQuery(AuditQuery):
    limit: int = Field(default=CSV_MAX_ROWS, ge=1, le=CSV_MAX_ROWS)


class AuditEventOut(Out):
    id: int
    at: datetime
    action: str
    actor_kind: str
    actor_id: int | None
    appointment_id: int | None
    ip: str | None
    detail: dict[str, Any]
    # Set when retention reduced the row to ids (no address, integer details only).
    reduced_at: datetime | None


class AuditPageOut(Out):
    events: list[AuditEventOut]
    # Pass as ``before_id`` for the next (older) page; None on the last page.
    next_before_id: int | None


async def list_events(request: Request) -> Response:
    await require_staff(request, Role.ADMIN)
    params = parse_query(request, AuditQuery)
    async with db(request)() as session:
        rows = await query.page(
            session,
            params.filter(),
            tz=settings(request).tz,
            limit=params.limit,
            before_id=params.before_id,
        )
    more = len(rows) == params.limit
    return respond(
        AuditPageOut(
            events=[AuditEventOut.model_validate(r) for r in rows],
            next_before_id=rows[-1].id if more and rows else None,
        )
    )


async def export_csv(request: Request) -> Response:
    who = await require_staff(request, Role.ADMIN)
    params = parse_query(request, AuditCsvQuery)
    sessions = db(request)
    async with unit_of_work(sessions) as session:
        audit.record(session, action="audit.exported", actor_kind="staff", actor_id=who.user_id)
    name = f"konsil-audit-{utcnow():%Y%m%d-%H%M%S}.csv"
    return StreamingResponse(
        _csv(sessions, params, settings(request).tz),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


async def _csv(
    sessions: async_sessionmaker[AsyncSession], params: AuditCsvQuery, tz: tzinfo
) -> AsyncIterator[str]:
    yield export.header()
    found = params.filter()
    before, left = params.before_id, params.limit
    while left > 0:
        async with sessions() as session:
            rows = await query.page(
                session, found, tz=tz, limit=min(CSV_BATCH, left), before_id=before
            )
        if not rows:
            return
        yield export.event_lines(rows)
        left -= len(rows)
        before = rows[-1].id


FILTERS = [
    ("action", "Action, with its sub-actions (login finds login.success)", False),
    ("actor_id", "Staff id of who did it", False),
    ("appointment_id", "Appointment id", False),
    ("from", "First local day, YYYY-MM-DD", False),
    ("to", "Last local day, inclusive", False),
    ("before_id", "Only rows with a smaller id (the next page)", False),
]
routes = [
    api_route(
        "/api/v1/admin/audit",
        list_events,
        summary="The audit log, newest first, filtered and paged",
        tags=["admin"],
        response=AuditPageOut,
        errors=[401, 403, 422],
        query=[*FILTERS, ("limit", f"Rows per page, 1 to {MAX_PAGE_SIZE}", False)],
    ),
    api_route(
        "/api/v1/admin/audit.csv",
        export_csv,
        summary=f"The audit log as CSV (same filters; at most {CSV_MAX_ROWS} rows, newest first)",
        tags=["admin"],
        content_type="text/csv",
        errors=[401, 403, 422],
        query=[*FILTERS, ("limit", f"At most this many rows, 1 to {CSV_MAX_ROWS}", False)],
    ),
]
