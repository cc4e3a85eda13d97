"""The admin's audit log: filters, paging, the CSV download (formula-safe, attachment, bounded),
and rows that retention reduced to ids."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx2
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit import export
from app.audit.models import AuditEvent
from app.db import unit_of_work, utcnow
from app.retention import service as retention
from app.settings import Settings
from tests.factories import Demo, login

BERLIN = ZoneInfo("Europe/Berlin")


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """A fixed time in March 2026 (before the clocks change), Berlin time."""
    return datetime(2026, 3, day, hour, minute, tzinfo=BERLIN)


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url)


@pytest.fixture
async def admin(client: httpx2.AsyncClient, demo: Demo) -> httpx2.AsyncClient:
    await login(client, demo.admin)
    return client


async def add_events(
    sessions: async_sessionmaker[AsyncSession], *events: dict[str, Any]
) -> list[int]:
    rows = [AuditEvent(actor_kind="staff", **e) for e in events]
    async with unit_of_work(sessions) as session:
        session.add_all(rows)
    return [r.id or 0 for r in rows]


def ids(answer: httpx2.Response) -> list[int]:
    assert answer.status_code == 200, answer.text
    return [e["id"] for e in answer.json()["events"]]


async def test_audit_filters_by_action_group_actor_and_appointment(
    admin: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    a, _, c, d = await add_events(
        sessions,
        {"action": "report.written", "actor_id": demo.specialist.id, "appointment_id": 7},
        {"action": "report_other", "actor_id": demo.specialist.id},
        {"action": "reports.x", "actor_id": demo.gp.id, "appointment_id": 7},
        {"action": "report", "actor_id": demo.gp.id, "appointment_id": 8},
    )
    # "report" is the group report.*, and the action itself; not report_other or reports.x.
    assert ids(await admin.get("/api/v1/admin/audit", params={"action": "report"})) == [d, a]
    assert ids(await admin.get("/api/v1/admin/audit", params={"action": "report_"})) == []
    by_actor = await admin.get("/api/v1/admin/audit", params={"actor_id": demo.gp.id})
    assert set(ids(by_actor)) >= {c, d}
    assert a not in ids(by_actor)
    on_seven = await admin.get("/api/v1/admin/audit", params={"appointment_id": 7})
    assert ids(on_seven) == [c, a]
    both = {"appointment_id": "7", "actor_id": str(demo.gp.id), "action": "reports"}
    assert ids(await admin.get("/api/v1/admin/audit", params=both)) == [c]


async def test_audit_days_are_local_calendar_days(
    admin: httpx2.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    before, first, last, after = await add_events(
        sessions,
        {"action": "t.day", "at": local(9, 23, 59)},
        {"action": "t.day", "at": local(10, 0, 0)},  # 23:00 UTC on the 9th
        {"action": "t.day", "at": local(11, 23, 30)},
        {"action": "t.day", "at": local(12, 0, 30)},
    )
    params = {"action": "t", "from": "2026-03-10", "to": "2026-03-11"}
    assert ids(await admin.get("/api/v1/admin/audit", params=params)) == [last, first]
    assert ids(
        await admin.get("/api/v1/admin/audit", params={"action": "t", "to": "2026-03-09"})
    ) == [before]
    assert ids(
        await admin.get("/api/v1/admin/audit", params={"action": "t", "from": "2026-03-12"})
    ) == [after]


async def test_audit_pages_with_before_id(
    admin: httpx2.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    made = await add_events(sessions, *({"action": "t.page"} for _ in range(5)))
    first = await admin.get("/api/v1/admin/audit", params={"action": "t", "limit": 2})
    assert ids(first) == [made[4], made[3]]
    assert first.json()["next_before_id"] == made[3]
    second = await admin.get(
        "/api/v1/admin/audit", params={"action": "t", "limit": 2, "before_id": made[3]}
    )
    assert ids(second) == [made[2], made[1]]
    third = await admin.get(
        "/api/v1/admin/audit", params={"action": "t", "limit": 2, "before_id": made[1]}
    )
    assert ids(third) == [made[0]]
    assert third.json()["next_before_id"] is None
    assert (await admin.get("/api/v1/admin/audit", params={"limit": 201})).status_code == 422


@pytest.mark.parametrize(
    "params",
    [
        {"action": "login' OR 1=1 --"},
        {"action": "x" * 61},
        {"actor_id": "abc"},
        {"actor_id": "0"},
        {"appointment_id": str(2**63)},
        {"from": "2026-13-01"},
        {"from": "2026-03-12", "to": "2026-03-10"},
        {"limit": "0"},
        {"limit": "10001"},
        {"before_id": "-1"},
        {"sort": "id"},
    ],
)
async def test_audit_filters_are_validated(
    admin: httpx2.AsyncClient, params: dict[str, str]
) -> None:
    for path in ("/api/v1/admin/audit", "/api/v1/admin/audit.csv"):
        answer = await admin.get(path, params=params)
        assert answer.status_code == 422, (path, params, answer.text)
        assert answer.json()["error"]["code"] == "invalid_input"


async def test_empty_filter_fields_from_a_form_mean_no_filter(
    admin: httpx2.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    (made,) = await add_events(sessions, {"action": "t.form"})
    empty = {"action": "", "actor_id": "", "appointment_id": "", "from": "", "to": ""}
    assert made in ids(await admin.get("/api/v1/admin/audit", params=empty))


def test_csv_cells_that_start_a_formula_are_made_inert() -> None:
    text = export.lines(
        [
            ['=HYPERLINK("http://evil")', "+1", "-2", "@SUM(A1)", "\tx", "\rx", "ok", "a=b"],
            [None, {"note": "=1+1"}, datetime(2026, 3, 10, 11, 0, tzinfo=UTC), 7],
        ]
    )
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == [
        '\'=HYPERLINK("http://evil")',
        "'+1",
        "'-2",
        "'@SUM(A1)",
        "'\tx",
        "'\rx",
        "ok",
        "a=b",
    ]
    assert rows[1] == ["", '{"note":"=1+1"}', "2026-03-10T11:00:00+00:00", "7"]


async def test_csv_download_is_an_attachment_with_the_same_filters(
    admin: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    formula, plain, other = await add_events(
        sessions,
        {"action": "t.csv", "ip": "-1+1", "detail": {"n": 3, "why": "@cmd"}, "appointment_id": 5},
        {"action": "t.csv", "actor_id": demo.gp.id, "at": local(10, 12)},
        {"action": "t.other"},
    )
    answer = await admin.get("/api/v1/admin/audit.csv", params={"action": "t.csv"})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    disposition = answer.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="konsil-audit-')
    assert disposition.endswith('.csv"')
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [int(r["id"]) for r in rows] == [plain, formula]
    assert rows[1]["ip"] == "'-1+1"
    assert rows[1]["detail"] == '{"n":3,"why":"@cmd"}'
    assert rows[1]["appointment_id"] == "5"
    assert rows[0]["at"] == "2026-03-10T11:00:00+00:00"
    assert rows[0]["actor_id"] == str(demo.gp.id)
    assert other not in [int(r["id"]) for r in rows]
    limited = await admin.get("/api/v1/admin/audit.csv", params={"action": "t", "limit": 1})
    assert [int(r["id"]) for r in csv.DictReader(io.StringIO(limited.text))] == [other]
    too_many = await admin.get("/api/v1/admin/audit.csv", params={"limit": 10_001})
    assert too_many.status_code == 422


async def test_csv_streams_more_rows_than_one_batch(
    admin: httpx2.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    made = await add_events(sessions, *({"action": "t.many"} for _ in range(1_203)))
    answer = await admin.get("/api/v1/admin/audit.csv", params={"action": "t.many"})
    listed = [int(r["id"]) for r in csv.DictReader(io.StringIO(answer.text))]
    assert listed == sorted(made, reverse=True)


async def test_the_export_itself_is_audited(admin: httpx2.AsyncClient, demo: Demo) -> None:
    await admin.get("/api/v1/admin/audit.csv", params={"action": "none"})
    found = await admin.get("/api/v1/admin/audit", params={"action": "audit.exported"})
    (event,) = found.json()["events"]
    assert (event["actor_kind"], event["actor_id"]) == ("staff", demo.admin.id)


async def test_rows_reduced_by_retention_still_list_and_export(
    admin: httpx2.AsyncClient,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    old = utcnow() - timedelta(days=120)
    (reduced,) = await add_events(
        sessions,
        {
            "action": "t.old",
            "actor_id": demo.gp.id,
            "appointment_id": 42,
            "ip": "198.51.100.7",
            "subject": "a" * 64,
            "detail": {"document_id": 3, "reason": "text"},
            "at": old,
        },
    )
    counts = await retention.run(sessions, settings)
    assert counts["audit_reduced"] >= 1
    (event,) = (await admin.get("/api/v1/admin/audit", params={"action": "t.old"})).json()["events"]
    assert event["id"] == reduced
    assert event["ip"] is None
    assert event["detail"] == {"document_id": 3}
    assert event["reduced_at"] is not None
    assert event["appointment_id"] == 42
    by_appointment = await admin.get("/api/v1/admin/audit", params={"appointment_id": 42})
    assert ids(by_appointment) == [reduced]
    exported = await admin.get("/api/v1/admin/audit.csv", params={"action": "t.old"})
    (row,) = csv.DictReader(io.StringIO(exported.text))
    assert (row["ip"], row["detail"]) == ("", '{"document_id":3}')
    assert row["reduced_at"] != ""
