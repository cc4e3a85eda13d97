"""The audit log as CSV: one line per row, cells that a spreadsheet would run as a formula made
inert (OWASP "CSV injection": a leading ``'``)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from app.audit.models import AuditEvent

COLUMNS = (
    "id",
    "at",
    "action",
    "actor_kind",
    "actor_id",
    "appointment_id",
    "ip",
    "detail",
    "reduced_at",
)
# What makes Excel, LibreOffice or Google Sheets read a cell as a formula (or split it).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str:
    """One cell as text: datetimes in ISO 8601 (UTC), details as compact JSON."""
    if value is None:
        text = ""
    elif isinstance(value, datetime):
        text = value.isoformat()
    elif isinstance(value, dict):
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    else:
        text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def lines(rows: Iterable[Sequence[Any]]) -> str:
    """CSV text of ``rows`` (RFC 4180: CRLF, quoted where needed)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow([cell(v) for v in row])
    return buffer.getvalue()


def header() -> str:
    return lines([COLUMNS])


def event_lines(events: Iterable[AuditEvent]) -> str:
    return lines(
        [
            (
                e.id,
                e.at,
                e.action,
                e.actor_kind,
                e.actor_id,
                e.appointment_id,
                e.ip,
                e.detail,
                e.reduced_at,
            )
            for e in events
        ]
    )
