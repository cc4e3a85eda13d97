"""The EBM export through the HTTP API, for a seeded quarter (2026-Q4): each staff member sees
the rows of their own appointments only; the download is audited and never cached. And the
specialist's confirmation of the identity check."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx2
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from app.audit.models import AuditEvent
from app.billing import export
from app.scheduling.models import Appointment, AppointmentStatus, RoomState
from app.settings import Settings
from tests.factories import Demo, login, make_appointment, patient_token

Q4 = "2026-Q4"
# 10:00 on 3 November 2026 in Berlin.
HELD = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    """On SQLite and on PostgreSQL alike (the quarter's query compares instants)."""
    return make_settings(database_url=database_url)


async def held(
    sessions: async_sessionmaker[AsyncSession],
    demo: Demo,
    admitted: datetime | None,
    *,
    minutes: int | None = None,
    reported: datetime | None = None,
    **options: Any,
) -> Appointment:
    """An appointment of the demo GP and specialist (unless given) let in at ``admitted``,
    ended ``minutes`` later, reported at ``reported``."""
    start = options.pop("starts_at", None) or admitted or reported or HELD
    assert isinstance(start, datetime)
    return await make_appointment(
        sessions,
        demo,
        starts_at=start,
        room_state=RoomState.ENDED if minutes is not None else RoomState.SCHEDULED,
        status=AppointmentStatus.COMPLETED if minutes or reported else AppointmentStatus.BOOKED,
        admitted_at=admitted,
        ended_at=admitted + timedelta(minutes=minutes) if admitted and minutes else None,
        reported_at=reported,
        **options,
    )


@pytest.fixture
async def seeded(sessions: async_sessionmaker[AsyncSession], demo: Demo) -> dict[str, Appointment]:
    """2026-Q4 of the demo GP and specialist, and what is not theirs or not in it."""
    assert demo.other_specialist.id is not None
    return {
        # A video consultation of 25 minutes with the identity checked, and a report.
        "video": await held(
            sessions,
            demo,
            HELD,
            minutes=25,
            reported=HELD + timedelta(hours=1),
            identity_checked_at=HELD + timedelta(minutes=1),
            patient_name="Erika Mustermann",
            patient_birth_date=date(1956, 4, 12),
            patient_insurance_number="A123456780",
        ),
        # Answered in writing only, on New Year's Eve, 23:30 in Berlin.
        "written": await held(
            sessions,
            demo,
            None,
            reported=datetime(2026, 12, 31, 22, 30, tzinfo=UTC),
            patient_name="Max Muster",
        ),
        # Held at 23:59 on 30 September in Berlin: 2026-Q3.
        "before": await held(sessions, demo, datetime(2026, 9, 30, 21, 59, tzinfo=UTC), minutes=12),
        # Held at 00:00 on 1 January 2027 in Berlin: 2027-Q1.
        "after": await held(sessions, demo, datetime(2026, 12, 31, 23, 0, tzinfo=UTC), minutes=12),
        # Neither held nor answered.
        "scheduled": await held(sessions, demo, None, starts_at=HELD + timedelta(days=2)),
        # The GP's request that another specialist answered.
        "colleague": await held(
            sessions,
            demo,
            HELD + timedelta(days=3),
            minutes=15,
            specialist_id=demo.other_specialist.id,
        ),
    }


def table(response: httpx2.Response) -> list[list[str]]:
    assert response.status_code == 200, response.text
    text = response.content.decode("utf-8")
    assert text.startswith(export.BOM)
    lines = list(csv.reader(io.StringIO(text[1:], newline=""), delimiter=";"))
    assert lines[0][0] == "Abrechnungshilfe – keine Abrechnungsdatei"
    assert lines[1] == list(export.COLUMNS)
    return lines[2:]


def summary(rows: list[list[str]]) -> list[tuple[str, str, str, str, str]]:
    """(day, appointment, GOP, count, minutes) of each row."""
    return [(r[0], r[8], r[4], r[6], r[7]) for r in rows]


async def test_ebm_csv_gp_gets_01670_for_their_requests_held_or_answered_in_the_quarter(
    client: httpx2.AsyncClient, demo: Demo, seeded: dict[str, Appointment]
) -> None:
    await login(client, demo.gp)
    response = await client.get("/api/v1/billing/ebm.csv", params={"quarter": Q4})
    video, written, colleague = seeded["video"].id, seeded["written"].id, seeded["colleague"].id
    assert summary(table(response)) == [
        ("03.11.2026", str(video), "01670", "1", ""),
        ("06.11.2026", str(colleague), "01670", "1", ""),
        ("31.12.2026", str(written), "01670", "1", ""),
    ]
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert (
        response.headers["content-disposition"] == 'attachment; filename="konsil-ebm-2026-Q4.csv"'
    )


async def test_ebm_csv_specialist_gets_their_consultations_with_minutes_and_identity_check(
    client: httpx2.AsyncClient, demo: Demo, seeded: dict[str, Appointment]
) -> None:
    await login(client, demo.specialist)
    rows = table(await client.get("/api/v1/billing/ebm.csv", params={"quarter": Q4}))
    video, written = str(seeded["video"].id), str(seeded["written"].id)
    assert summary(rows) == [
        ("03.11.2026", video, "01444", "1", ""),
        ("03.11.2026", video, "01450", "1", ""),
        ("03.11.2026", video, "01671", "1", "25"),
        ("03.11.2026", video, "01672", "3", "25"),
        ("31.12.2026", written, "01671", "1", ""),
    ]
    assert rows[0][1:4] == ["Erika Mustermann", "12.04.1956", "A123456780"]
    assert rows[4][1:4] == ["Max Muster", "01.01.1950", ""]
    assert rows[4][9] == "Schriftlich beantwortet: die Dauer kennt Konsil nicht."


async def test_ebm_csv_quarter_after_new_year_has_what_began_at_local_midnight(
    client: httpx2.AsyncClient, demo: Demo, seeded: dict[str, Appointment]
) -> None:
    await login(client, demo.specialist)
    rows = table(await client.get("/api/v1/billing/ebm.csv", params={"quarter": "2027-Q1"}))
    after = str(seeded["after"].id)
    assert summary(rows) == [
        ("01.01.2027", after, "01450", "1", ""),
        ("01.01.2027", after, "01671", "1", "12"),
    ]


async def test_ebm_csv_another_gp_gets_none_of_them(
    client: httpx2.AsyncClient, demo: Demo, seeded: dict[str, Appointment]
) -> None:
    await login(client, demo.other_gp)
    assert table(await client.get("/api/v1/billing/ebm.csv", params={"quarter": Q4})) == []


async def test_ebm_csv_download_is_audited_with_quarter_and_count_only(
    client: httpx2.AsyncClient,
    demo: Demo,
    seeded: dict[str, Appointment],
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await login(client, demo.gp)
    table(await client.get("/api/v1/billing/ebm.csv", params={"quarter": Q4}))
    async with sessions() as session:
        (event,) = (
            await session.execute(
                select(AuditEvent).where(col(AuditEvent.action) == "billing.ebm_exported")
            )
        ).scalars()
    assert (event.actor_kind, event.actor_id, event.appointment_id) == ("staff", demo.gp.id, None)
    assert event.detail == {"year": 2026, "quarter": 4, "rows": 3}


@pytest.mark.parametrize("quarter", [None, "", "2026-Q5", "Q4", "2026-Q4; DROP", "1999-Q1"])
async def test_ebm_csv_bad_quarter_is_400_with_a_clear_message(
    client: httpx2.AsyncClient, demo: Demo, quarter: str | None
) -> None:
    await login(client, demo.gp)
    params = {} if quarter is None else {"quarter": quarter}
    response = await client.get("/api/v1/billing/ebm.csv", params=params)
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "invalid_quarter",
        "message": "Bitte das Quartal als JJJJ-QN angeben, z. B. 2026-Q4.",
    }


async def test_ebm_csv_only_for_signed_in_gps_and_specialists(
    client: httpx2.AsyncClient,
    client_factory: Callable[[], httpx2.AsyncClient],
    demo: Demo,
    seeded: dict[str, Appointment],
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    url = f"/api/v1/billing/ebm.csv?quarter={Q4}"
    assert (await client.get(url)).status_code == 401
    async with client_factory() as patient:
        patient.cookies.set(
            "konsil_patient", await patient_token(sessions, settings, seeded["video"])
        )
        assert (await patient.get(url)).status_code == 401
    await login(client, demo.admin)
    assert (await client.get(url)).status_code == 403


async def started(
    sessions: async_sessionmaker[AsyncSession], demo: Demo, **options: Any
) -> Appointment:
    """An appointment of the demo GP and specialist starting now, not yet begun."""
    return await make_appointment(sessions, demo, **options)


async def confirm(client: httpx2.AsyncClient, appointment: Appointment) -> httpx2.Response:
    return await client.post(f"/api/v1/appointments/{appointment.id}/identity-checked")


async def test_identity_check_once_begun_is_kept_and_idempotent(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    admitted = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
    appointment = await started(sessions, demo, room_state=RoomState.IN_CALL, admitted_at=admitted)
    await login(client, demo.specialist)
    first = await confirm(client, appointment)
    assert first.status_code == 200, first.text
    again = await confirm(client, appointment)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert first.json()["appointment_id"] == appointment.id
    shown = (await client.get(f"/api/v1/appointments/{appointment.id}")).json()
    assert shown["identity_checked_at"] == first.json()["identity_checked_at"]
    async with sessions() as session:
        audited = (
            (
                await session.execute(
                    select(AuditEvent).where(
                        col(AuditEvent.action) == "appointment.identity_checked"
                    )
                )
            )
            .scalars()
            .all()
        )
    assert [(e.actor_id, e.appointment_id) for e in audited] == [
        (demo.specialist.id, appointment.id)
    ]


@pytest.mark.parametrize("state", [RoomState.WAITING, RoomState.ENDED], ids=["sent-back", "ended"])
async def test_identity_check_after_the_call_or_with_the_patient_sent_back(
    client: httpx2.AsyncClient,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
    state: RoomState,
) -> None:
    appointment = await started(
        sessions, demo, room_state=state, admitted_at=datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
    )
    await login(client, demo.specialist)
    assert (await confirm(client, appointment)).status_code == 200


@pytest.mark.parametrize("state", [RoomState.SCHEDULED, RoomState.WAITING, RoomState.ENDED])
async def test_identity_check_refused_before_the_consultation_began(
    client: httpx2.AsyncClient,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
    state: RoomState,
) -> None:
    # Ended without ever letting the patient in: no video contact, nothing to check.
    appointment = await started(sessions, demo, room_state=state)
    await login(client, demo.specialist)
    response = await confirm(client, appointment)
    assert response.status_code == 409
    assert "begonnen" in response.json()["error"]["message"]
    assert (await client.get(f"/api/v1/appointments/{appointment.id}")).json()[
        "identity_checked_at"
    ] is None


async def test_identity_check_only_by_the_appointments_specialist(
    client: httpx2.AsyncClient,
    client_factory: Callable[[], httpx2.AsyncClient],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    appointment = await started(
        sessions,
        demo,
        room_state=RoomState.IN_CALL,
        admitted_at=datetime(2026, 11, 3, 9, tzinfo=UTC),
    )
    assert (await confirm(client, appointment)).status_code == 401
    await login(client, demo.gp)  # the booking GP sees it, but does not check
    assert (await confirm(client, appointment)).status_code == 403
    async with client_factory() as colleague:
        await login(colleague, demo.other_specialist)  # someone else's: as if it did not exist
        assert (await confirm(colleague, appointment)).status_code == 404
    async with client_factory() as patient:
        patient.cookies.set("konsil_patient", await patient_token(sessions, settings, appointment))
        assert (await confirm(patient, appointment)).status_code == 401
    async with sessions() as session:
        stored = await session.get(Appointment, appointment.id)
    assert stored is not None
    assert stored.identity_checked_at is None
