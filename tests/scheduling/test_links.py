"""Join links: validity window, revocation, reissue, reschedule, patient sessions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx2
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from app.audit.models import AuditEvent
from app.broker.memory import MemoryBroker
from app.db import unit_of_work
from app.errors import LinkExpired, LinkInvalid, LinkNotYetValid
from app.scheduling import links
from app.scheduling.models import Appointment, JoinToken
from app.settings import Settings
from app.throttle import Throttle
from app.tokens import token_hash
from tests.factories import Demo, login
from tests.scheduling.helpers import ClientFactory, booking_body, free_slots, token_of


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    """These behaviours must hold on SQLite and on PostgreSQL alike."""
    return make_settings(database_url=database_url)


async def book_later(client: httpx2.AsyncClient, demo: Demo, index: int = 0) -> dict[str, Any]:
    """A booking at least three days ahead, so its link is certainly not valid yet."""
    first = datetime.now(UTC).date() + timedelta(days=3)
    slot = (await free_slots(client, demo.specialist, first=first))[index]
    response = await client.post(
        "/api/v1/appointments", json=booking_body(demo.specialist, slot["starts_at"])
    )
    assert response.status_code == 201, response.text
    booking: dict[str, Any] = response.json()
    return booking


async def open_window(sessions: async_sessionmaker[AsyncSession], appointment_id: int) -> None:
    """Time passes: the appointment's links become valid now."""
    now = datetime.now(UTC)
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(JoinToken)
            .where(col(JoinToken.appointment_id) == appointment_id)
            .values(valid_from=now - timedelta(minutes=5), valid_until=now + timedelta(hours=1))
        )


async def close_window(sessions: async_sessionmaker[AsyncSession], appointment_id: int) -> None:
    now = datetime.now(UTC)
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(JoinToken)
            .where(col(JoinToken.appointment_id) == appointment_id)
            .values(valid_from=now - timedelta(hours=2), valid_until=now - timedelta(minutes=1))
        )


async def redeem(client: httpx2.AsyncClient, join_url: str) -> httpx2.Response:
    return await client.post("/api/v1/patient/session", json={"token": token_of(join_url)})


async def test_link_not_yet_valid_is_403_with_valid_from(
    client: httpx2.AsyncClient, demo: Demo, client_factory: ClientFactory
) -> None:
    await login(client, demo.gp)
    booking = await book_later(client, demo)
    async with client_factory() as patient:
        response = await redeem(patient, booking["link"]["join_url"])
        assert response.status_code == 403
        error = response.json()["error"]
        assert error["code"] == "link_not_yet_valid"
        valid_from = datetime.fromisoformat(error["detail"]["valid_from"])
        assert valid_from == datetime.fromisoformat(booking["link"]["valid_from"])
        assert "konsil_patient" not in patient.cookies


async def test_link_valid_opens_patient_session_with_safe_summary(
    client: httpx2.AsyncClient,
    demo: Demo,
    client_factory: ClientFactory,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await login(client, demo.gp)
    booking = await book_later(client, demo)
    appointment_id = booking["appointment"]["id"]
    await open_window(sessions, appointment_id)
    async with client_factory() as patient:
        response = await redeem(patient, booking["link"]["join_url"])
        assert response.status_code == 200, response.text
        assert "HttpOnly" in response.headers["set-cookie"]
        body = response.json()
        assert set(body) == {
            "appointment_id", "starts_at", "ends_at", "specialist_name", "specialty",
            "mode", "room_state", "csrf_token",
        }  # fmt: skip
        assert body["appointment_id"] == appointment_id
        assert body["specialist_name"] == demo.specialist.display_name
        assert body["specialty"] == "Kardiologie"
        assert "Mustermann" not in response.text
        me = await patient.get("/api/v1/patient/me")
        assert me.status_code == 200
        assert me.json()["appointment_id"] == appointment_id
        assert me.json()["csrf_token"] == body["csrf_token"]
    async with sessions() as session:
        link = (await session.execute(select(JoinToken))).scalar_one()
        actions = (await session.execute(select(AuditEvent.action))).scalars().all()
    assert link.last_redeemed_at is not None
    assert "link.redeemed" in actions


async def test_link_may_be_redeemed_again_while_valid(
    client: httpx2.AsyncClient,
    demo: Demo,
    client_factory: ClientFactory,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await login(client, demo.gp)
    booking = await book_later(client, demo)
    await open_window(sessions, booking["appointment"]["id"])
    async with client_factory() as phone, client_factory() as laptop:
        assert (await redeem(phone, booking["link"]["join_url"])).status_code == 200
        assert (await redeem(laptop, booking["link"]["join_url"])).status_code == 200
        # One patient per consultation: the device that opened the link last takes over.
        assert (await laptop.get("/api/v1/patient/me")).status_code == 200
        assert (await phone.get("/api/v1/patient/me")).status_code == 401


async def test_link_expired_is_410(
    client: httpx2.AsyncClient,
    demo: Demo,
    client_factory: ClientFactory,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await login(client, demo.gp)
    booking = await book_later(client, demo)
    await close_window(sessions, booking["appointment"]["id"])
    async with client_factory() as patient:
        response = await redeem(patient, booking["link"]["join_url"])
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "link_expired"


async def test_link_unknown_or_malformed_is_404_and_audited_without_token(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    guess = "A" * 43
    for token in (guess, "../../etc", "x"):
        response = await client.post("/api/v1/patient/session", json={"token": token})
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "link_invalid"
    async with sessions() as session:
        events = (
            (
                await session.execute(
                    select(AuditEvent).where(col(AuditEvent.action) == "link.rejected")
                )
            )
            .scalars()
            .all()
        )
    assert len(events) == 3
    assert all(guess not in str(e.model_dump()) for e in events)


async def test_link_revoked_fails_and_ends_patient_session(
    client: httpx2.AsyncClient,
    demo: Demo,
    client_factory: ClientFactory,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await login(client, demo.gp)
    booking = await book_later(client, demo)
    appointment_id = booking["appointment"]["id"]
    await open_window(sessions, appointment_id)
    async with client_factory() as patient:
        assert (await redeem(patient, booking["link"]["join_url"])).status_code == 200
        revoked = await client.delete(f"/api/v1/appointments/{appointment_id}/link")
        assert revoked.status_code == 204
        assert (await patient.get("/api/v1/patient/me")).status_code == 401
        again = await redeem(patient, booking["link"]["join_url"])
        assert again.status_code == 404
    detail = await client.get(f"/api/v1/appointments/{appointment_id}")
    assert detail.json()["link"] is None


async def test_link_reissue_replaces_the_old_link(
    client: httpx2.AsyncClient,
    demo: Demo,
    client_factory: ClientFactory,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await login(client, demo.gp)
    booking = await book_later(client, demo)
    appointment_id = booking["appointment"]["id"]
    reissued = await client.post(f"/api/v1/appointments/{appointment_id}/link")
    assert reissued.status_code == 201
    new = reissued.json()
    assert new["join_url"] != booking["link"]["join_url"]
    assert token_of(new["join_url"]) in new["patient_ics"].replace("\r\n ", "")
    await open_window(sessions, appointment_id)
    async with client_factory() as patient:
        assert (await redeem(patient, booking["link"]["join_url"])).status_code == 404
        assert (await redeem(patient, new["join_url"])).status_code == 200


async def test_link_after_reschedule_old_fails_new_works(
    client: httpx2.AsyncClient,
    demo: Demo,
    client_factory: ClientFactory,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await login(client, demo.gp)
    booking = await book_later(client, demo)
    appointment_id = booking["appointment"]["id"]
    first = datetime.now(UTC).date() + timedelta(days=3)
    target = (await free_slots(client, demo.specialist, first=first))[1]
    moved = await client.post(
        f"/api/v1/appointments/{appointment_id}/reschedule",
        json={"starts_at": target["starts_at"]},
    )
    assert moved.status_code == 200, moved.text
    body = moved.json()
    assert body["appointment"]["id"] == appointment_id
    assert body["appointment"]["starts_at"] == target["starts_at"]
    await open_window(sessions, appointment_id)
    async with client_factory() as patient:
        old = await redeem(patient, booking["link"]["join_url"])
        assert old.status_code == 404
        assert (await redeem(patient, body["link"]["join_url"])).status_code == 200
    slots_now = [s["starts_at"] for s in await free_slots(client, demo.specialist, first=first)]
    assert booking["appointment"]["starts_at"] in slots_now  # the old slot is free again
    assert target["starts_at"] not in slots_now


async def test_link_of_cancelled_appointment_is_410_cancelled(
    client: httpx2.AsyncClient,
    demo: Demo,
    client_factory: ClientFactory,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await login(client, demo.gp)
    booking = await book_later(client, demo)
    appointment_id = booking["appointment"]["id"]
    await open_window(sessions, appointment_id)
    async with client_factory() as patient:
        assert (await redeem(patient, booking["link"]["join_url"])).status_code == 200
        cancelled = await client.post(f"/api/v1/appointments/{appointment_id}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["room_state"] == "cancelled"
        assert (await patient.get("/api/v1/patient/me")).status_code == 401
        response = await redeem(patient, booking["link"]["join_url"])
    assert response.status_code == 410
    assert response.json()["error"]["detail"]["reason"] == "cancelled"


async def test_patient_session_reaches_only_its_own_appointment(
    client: httpx2.AsyncClient,
    demo: Demo,
    client_factory: ClientFactory,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await login(client, demo.gp)
    mine = await book_later(client, demo, index=0)
    other = await book_later(client, demo, index=0)
    await open_window(sessions, mine["appointment"]["id"])
    async with client_factory() as patient:
        assert (await redeem(patient, mine["link"]["join_url"])).status_code == 200
        me = await patient.get("/api/v1/patient/me")
        assert me.json()["appointment_id"] == mine["appointment"]["id"]
        other_id = other["appointment"]["id"]
        for path in (
            f"/api/v1/appointments/{other_id}",
            f"/api/v1/appointments/{mine['appointment']['id']}",
            f"/api/v1/appointments/{other_id}/documents",
            f"/api/v1/appointments/{other_id}/calendar.ics",
        ):
            assert (await patient.get(path)).status_code == 401
        assert (await redeem(patient, other["link"]["join_url"])).status_code == 403


async def test_patient_logout_ends_the_session(
    client: httpx2.AsyncClient,
    demo: Demo,
    client_factory: ClientFactory,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await login(client, demo.gp)
    booking = await book_later(client, demo)
    await open_window(sessions, booking["appointment"]["id"])
    async with client_factory() as patient:
        session_body = (await redeem(patient, booking["link"]["join_url"])).json()
        refused = await patient.post("/api/v1/patient/logout")
        assert refused.status_code == 403  # no CSRF token
        out = await patient.post(
            "/api/v1/patient/logout", headers={"X-CSRF-Token": session_body["csrf_token"]}
        )
        assert out.status_code == 204
        assert (await patient.get("/api/v1/patient/me")).status_code == 401


async def test_redeem_checks_window_boundaries(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], demo: Demo
) -> None:
    starts = datetime(2031, 3, 4, 9, 0, tzinfo=UTC)
    async with unit_of_work(sessions) as session:
        appointment = Appointment(
            specialist_id=demo.specialist.id or 0,
            gp_id=demo.gp.id or 0,
            starts_at=starts,
            ends_at=starts + timedelta(minutes=30),
            patient_name="Test",
            patient_birth_date=date(1970, 1, 1),
            patient_contact="t@example.org",
            clinical_question="Frage",
        )
        session.add(appointment)
        await session.flush()
        token = "T" * 43
        valid_from, valid_until = links.window(appointment, settings)
        session.add(
            JoinToken(
                appointment_id=appointment.id or 0,
                token_hash=token_hash(token),
                valid_from=valid_from,
                valid_until=valid_until,
            )
        )
    assert valid_from == starts - timedelta(minutes=30)
    assert valid_until == starts + timedelta(minutes=60)
    cases = [
        (valid_from - timedelta(seconds=1), LinkNotYetValid),
        (valid_from, None),
        (valid_until, None),
        (valid_until + timedelta(seconds=1), LinkExpired),
    ]
    throttle = Throttle(MemoryBroker(), "test-secret")
    for now, expected in cases:
        redeeming = links.redeem(
            sessions,
            kind=links.JOIN_LINK,
            settings=settings,
            throttle=throttle,
            token=token,
            ip=None,
            now=now,
        )
        if expected is None:
            assert isinstance(await redeeming, links.Redemption)
        else:
            with pytest.raises(expected):
                await redeeming
    with pytest.raises(LinkInvalid):
        await links.redeem(
            sessions,
            kind=links.JOIN_LINK,
            settings=settings,
            throttle=throttle,
            token="U" * 43,
            ip=None,
            now=starts,
        )


async def test_redeem_throttles_a_client_after_many_rejections(
    client: httpx2.AsyncClient, demo: Demo, settings: Settings
) -> None:
    for _ in range(settings.login_free_attempts_shared):
        response = await client.post("/api/v1/patient/session", json={"token": "B" * 43})
        assert response.status_code == 404
    throttled = await client.post("/api/v1/patient/session", json={"token": "B" * 43})
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) > 0


async def test_redeem_refuses_foreign_origin(client: httpx2.AsyncClient, demo: Demo) -> None:
    response = await client.post(
        "/api/v1/patient/session",
        json={"token": "C" * 43},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
