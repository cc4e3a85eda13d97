"""Documents (size and type limits, download headers) and the specialist's report."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx2
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from app.audit.models import AuditEvent
from app.db import unit_of_work
from app.records.models import Document, Report
from app.records.service import mark_reported
from app.scheduling.models import Appointment, RoomState
from app.settings import Settings
from tests.factories import Demo, login, make_appointment
from tests.scheduling.helpers import ClientFactory, book

LIMIT = 4096
PDF = b"%PDF-1.7\n" + b"0" * 100 + b"\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(max_upload_bytes=LIMIT)


async def booked(client: httpx2.AsyncClient, demo: Demo) -> int:
    await login(client, demo.gp)
    appointment_id: int = (await book(client, demo.specialist))["appointment"]["id"]
    return appointment_id


async def upload(
    client: httpx2.AsyncClient, appointment_id: int, name: str, data: bytes, content_type: str
) -> httpx2.Response:
    return await client.post(
        f"/api/v1/appointments/{appointment_id}/documents",
        files={"file": (name, data, content_type)},
    )


@pytest.mark.parametrize(
    ("name", "data", "content_type"),
    [("befund.pdf", PDF, "application/pdf"), ("ekg.png", PNG, "image/png"),
     ("haut.jpeg", JPEG, "image/jpeg")],
)  # fmt: skip
async def test_documents_upload_list_and_download(
    client: httpx2.AsyncClient, demo: Demo, name: str, data: bytes, content_type: str
) -> None:
    appointment_id = await booked(client, demo)
    created = await upload(client, appointment_id, name, data, content_type)
    assert created.status_code == 201, created.text
    document = created.json()
    assert (document["filename"], document["size"]) == (name, len(data))
    listed = (await client.get(f"/api/v1/appointments/{appointment_id}/documents")).json()
    assert [d["id"] for d in listed] == [document["id"]]
    download = await client.get(f"/api/v1/appointments/{appointment_id}/documents/{document['id']}")
    assert download.status_code == 200
    assert download.content == data
    assert download.headers["content-type"].startswith(content_type)
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.headers["x-content-type-options"] == "nosniff"
    assert download.headers["cache-control"] == "no-store"


async def test_documents_too_large_is_413_and_nothing_stored(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment_id = await booked(client, demo)
    just_over = b"%PDF-1.4\n" + b"0" * (LIMIT - 8)
    far_over = b"%PDF-1.4\n" + b"0" * (LIMIT * 10)
    for data in (just_over, far_over):
        response = await upload(client, appointment_id, "gross.pdf", data, "application/pdf")
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"
    exactly = b"%PDF-1.4\n" + b"0" * (LIMIT - 9)
    assert (
        await upload(client, appointment_id, "ok.pdf", exactly, "application/pdf")
    ).status_code == 201
    async with sessions() as session:
        sizes = (await session.execute(select(Document.size))).scalars().all()
    assert sizes == [LIMIT]


@pytest.mark.parametrize(
    ("name", "data", "content_type"),
    [
        ("script.html", b"<html><script>alert(1)</script>", "text/html"),
        ("fake.pdf", b"<html><script>alert(1)</script>", "application/pdf"),
        ("fake.png", PDF, "image/png"),
        ("prog.exe", b"MZ\x90\x00", "application/octet-stream"),
    ],
)
async def test_documents_wrong_type_is_415(
    client: httpx2.AsyncClient, demo: Demo, name: str, data: bytes, content_type: str
) -> None:
    appointment_id = await booked(client, demo)
    response = await upload(client, appointment_id, name, data, content_type)
    assert response.status_code == 415
    listed = (await client.get(f"/api/v1/appointments/{appointment_id}/documents")).json()
    assert listed == []


async def test_documents_missing_file_or_not_multipart_is_422(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    appointment_id = await booked(client, demo)
    path = f"/api/v1/appointments/{appointment_id}/documents"
    no_file = await client.post(path, files={"other": ("a.pdf", PDF, "application/pdf")})
    as_json = await client.post(path, json={"file": "x"})
    assert (no_file.status_code, as_json.status_code) == (422, 422)


async def test_documents_filename_is_sanitised(client: httpx2.AsyncClient, demo: Demo) -> None:
    appointment_id = await booked(client, demo)
    response = await upload(
        client, appointment_id, '../../etc/"Brief"\r\nX: y.exe', PDF, "application/pdf"
    )
    assert response.status_code == 201
    name = response.json()["filename"]
    assert name.endswith(".pdf")
    assert not set('/"\r\n') & set(name)
    download = await client.get(
        f"/api/v1/appointments/{appointment_id}/documents/{response.json()['id']}"
    )
    assert "\n" not in download.headers["content-disposition"]


async def test_documents_upload_to_cancelled_appointment_is_409(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    appointment_id = await booked(client, demo)
    await client.post(f"/api/v1/appointments/{appointment_id}/cancel")
    response = await upload(client, appointment_id, "a.pdf", PDF, "application/pdf")
    assert response.status_code == 409


async def start_appointment(
    sessions: async_sessionmaker[AsyncSession], appointment_id: int
) -> None:
    """Time passes: the consultation has begun."""
    now = datetime.now(UTC)
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(Appointment)
            .where(col(Appointment.id) == appointment_id)
            .values(starts_at=now - timedelta(minutes=20), ends_at=now + timedelta(minutes=10))
        )


async def test_report_written_by_specialist_read_by_gp_marks_completed(
    client: httpx2.AsyncClient,
    demo: Demo,
    client_factory: ClientFactory,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    appointment_id = await booked(client, demo)
    await start_appointment(sessions, appointment_id)
    path = f"/api/v1/appointments/{appointment_id}/report"
    assert (await client.get(path)).status_code == 404
    async with client_factory() as specialist:
        await login(specialist, demo.specialist)
        written = await specialist.put(path, json={"body": "Echo: EF 55 %, keine Therapie nötig."})
        assert written.status_code == 200, written.text
        updated = await specialist.put(path, json={"body": "Echo: EF 55 %. Kontrolle in 1 Jahr."})
        assert updated.json()["body"].endswith("Kontrolle in 1 Jahr.")
    read = await client.get(path)
    assert read.status_code == 200
    assert read.json()["author_name"] == demo.specialist.display_name
    assert read.json()["body"] == updated.json()["body"]
    detail = (await client.get(f"/api/v1/appointments/{appointment_id}")).json()
    assert (detail["status"], detail["has_report"]) == ("completed", True)
    async with sessions() as session:
        events = (
            (
                await session.execute(
                    select(AuditEvent).where(col(AuditEvent.action) == "report.written")
                )
            )
            .scalars()
            .all()
        )
    assert len(events) == 2
    assert all("EF 55" not in str(e.model_dump()) for e in events)


async def test_report_refused_for_gp_before_start_and_when_too_long(
    client: httpx2.AsyncClient,
    demo: Demo,
    client_factory: ClientFactory,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    appointment_id = await booked(client, demo)
    path = f"/api/v1/appointments/{appointment_id}/report"
    assert (await client.put(path, json={"body": "GP darf nicht"})).status_code == 403
    async with client_factory() as specialist:
        await login(specialist, demo.specialist)
        early = await specialist.put(path, json={"body": "zu früh"})
        assert early.status_code == 409
        await start_appointment(sessions, appointment_id)
        too_long = await specialist.put(path, json={"body": "x" * 20001})
        assert too_long.status_code == 422
        empty = await specialist.put(path, json={"body": "   "})
        assert empty.status_code == 422
    assert (await client.get(path)).status_code == 404


async def set_room_state(
    sessions: async_sessionmaker[AsyncSession],
    appointment_id: int,
    state: RoomState,
    admitted_at: datetime | None = None,
) -> None:
    """The room got this far before the slot's start (links open 30 minutes early)."""
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(Appointment)
            .where(col(Appointment.id) == appointment_id)
            .values(room_state=state, admitted_at=admitted_at)
        )


@pytest.mark.parametrize("state", [RoomState.ADMITTED, RoomState.IN_CALL, RoomState.ENDED])
async def test_report_before_start_accepted_once_consultation_began(
    client: httpx2.AsyncClient,
    demo: Demo,
    client_factory: ClientFactory,
    sessions: async_sessionmaker[AsyncSession],
    state: RoomState,
) -> None:
    appointment_id = await booked(client, demo)
    await set_room_state(sessions, appointment_id, state)
    path = f"/api/v1/appointments/{appointment_id}/report"
    async with client_factory() as specialist:
        await login(specialist, demo.specialist)
        written = await specialist.put(path, json={"body": "Früh eingelassen, Befund folgt."})
    assert written.status_code == 200, written.text
    assert (await client.get(path)).json()["body"] == "Früh eingelassen, Befund folgt."


async def test_report_before_start_accepted_after_the_patient_was_sent_back(
    client: httpx2.AsyncClient,
    demo: Demo,
    client_factory: ClientFactory,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Admitted early, then sent back to the waiting room while the specialist talks to the
    GP alone: the consultation has begun, so the report may be written before the slot."""
    appointment_id = await booked(client, demo)
    admitted_at = datetime.now(UTC) - timedelta(minutes=3)
    await set_room_state(sessions, appointment_id, RoomState.WAITING, admitted_at=admitted_at)
    path = f"/api/v1/appointments/{appointment_id}/report"
    async with client_factory() as specialist:
        await login(specialist, demo.specialist)
        written = await specialist.put(path, json={"body": "Rückfrage mit der Hausärztin."})
        assert written.status_code == 200, written.text
        shown = (await specialist.get(f"/api/v1/appointments/{appointment_id}")).json()
    assert shown["admitted_at"] is not None


@pytest.mark.parametrize("state", [RoomState.SCHEDULED, RoomState.WAITING])
async def test_report_before_start_refused_while_consultation_not_begun(
    client: httpx2.AsyncClient,
    demo: Demo,
    client_factory: ClientFactory,
    sessions: async_sessionmaker[AsyncSession],
    state: RoomState,
) -> None:
    appointment_id = await booked(client, demo)
    await set_room_state(sessions, appointment_id, state)
    path = f"/api/v1/appointments/{appointment_id}/report"
    async with client_factory() as specialist:
        await login(specialist, demo.specialist)
        early = await specialist.put(path, json={"body": "zu früh"})
    assert early.status_code == 409
    assert early.json()["error"]["code"] == "conflict"
    assert (await client.get(path)).status_code == 404


async def test_report_refused_for_gp_even_during_the_call(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment_id = await booked(client, demo)
    await set_room_state(sessions, appointment_id, RoomState.IN_CALL)
    path = f"/api/v1/appointments/{appointment_id}/report"
    assert (await client.put(path, json={"body": "GP darf nicht"})).status_code == 403
    assert (await client.get(path)).status_code == 404


async def test_report_refused_for_cancelled_appointment_after_start(
    client: httpx2.AsyncClient,
    demo: Demo,
    client_factory: ClientFactory,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    appointment_id = await booked(client, demo)
    assert (await client.post(f"/api/v1/appointments/{appointment_id}/cancel")).status_code == 200
    await start_appointment(sessions, appointment_id)
    path = f"/api/v1/appointments/{appointment_id}/report"
    async with client_factory() as specialist:
        await login(specialist, demo.specialist)
        refused = await specialist.put(path, json={"body": "abgesagt"})
    assert refused.status_code == 409
    assert (await client.get(path)).status_code == 404


async def test_reports_written_by_the_previous_release_are_marked_at_start_up(
    sessions: async_sessionmaker[AsyncSession], demo: Demo
) -> None:
    # During a rolling upgrade a process of the release before 0004 writes a report without
    # setting appointment.reported_at; every process marks such reports when it starts.
    written = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
    reported = await make_appointment(sessions, demo)
    untouched = await make_appointment(sessions, demo)
    async with unit_of_work(sessions) as session:
        assert reported.id is not None
        assert demo.specialist.id is not None
        session.add(
            Report(
                appointment_id=reported.id,
                author_id=demo.specialist.id,
                body="Befund",
                created_at=written,
                updated_at=written,
            )
        )
    async with unit_of_work(sessions) as session:
        assert await mark_reported(session) == 1
    async with unit_of_work(sessions) as session:
        assert await mark_reported(session) == 0  # nothing left to do
        marks = {
            a.id: a.reported_at
            for a in (await session.execute(select(Appointment))).scalars()
            if a.id in (reported.id, untouched.id)
        }
    assert marks == {reported.id: written, untouched.id: None}
