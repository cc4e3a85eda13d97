"""A consultation's guest (interpreter, carer) over the API: invite, revoke, redeem once,
admit, and a guest session that reaches nothing but its own minimal view."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx2
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select
from starlette.applications import Starlette

from app.accounts.models import AuthSession, SessionKind
from app.api import ApiResource, ApiRoute
from app.audit.models import AuditEvent
from app.db import unit_of_work, utcnow
from app.scheduling.models import Appointment, GuestInvitation, RoomState
from app.settings import Settings
from tests.factories import Demo, login, make_appointment, patient_token
from tests.scheduling.helpers import ClientFactory, token_of

GUEST = {"name": "Ayşe Demir", "kind": "interpreter"}


async def invite(client: httpx2.AsyncClient, appointment_id: int, **body: Any) -> dict[str, Any]:
    response = await client.post(
        f"/api/v1/appointments/{appointment_id}/guest", json={**GUEST, **body}
    )
    assert response.status_code == 201, response.text
    issued: dict[str, Any] = response.json()
    return issued


async def redeem(client: httpx2.AsyncClient, url: str) -> httpx2.Response:
    return await client.post("/api/v1/guest/session", json={"token": token_of(url)})


async def actions(sessions: async_sessionmaker[AsyncSession], appointment_id: int) -> list[str]:
    async with sessions() as session:
        rows = await session.execute(
            select(AuditEvent.action)
            .where(col(AuditEvent.appointment_id) == appointment_id)
            .order_by(col(AuditEvent.id))
        )
    return list(rows.scalars())


async def test_guest_invited_by_the_gp_redeems_once_and_sees_no_case_data(
    client: httpx2.AsyncClient,
    client_factory: ClientFactory,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    appointment = await make_appointment(sessions, demo)
    await login(client, demo.gp)
    issued = await invite(client, appointment.id or 0)
    assert issued["guest_url"].startswith("http://")
    assert "/guest#" in issued["guest_url"]
    assert (issued["name"], issued["kind"], issued["redeemed"]) == (
        "Ayşe Demir",
        "interpreter",
        False,
    )
    async with sessions() as session:
        stored = (await session.execute(select(GuestInvitation))).scalar_one()
    assert token_of(issued["guest_url"]) not in stored.token_hash  # only the hash is kept

    async with client_factory() as guest:
        response = await redeem(guest, issued["guest_url"])
        assert response.status_code == 200, response.text
        me = response.json()
        assert (me["name"], me["kind"], me["specialist_name"]) == (
            "Ayşe Demir",
            "interpreter",
            demo.specialist.display_name,
        )
        assert "Erika" not in response.text  # the patient's name
        assert "Belastungsdyspnoe" not in response.text  # the question
        again = await guest.get("/api/v1/guest/me")
        assert again.status_code == 200
        assert again.json()["csrf_token"] == me["csrf_token"]
        # The same browser may open its link again; its session stays.
        assert (await redeem(guest, issued["guest_url"])).status_code == 200

    async with client_factory() as elsewhere:
        refused = await redeem(elsewhere, issued["guest_url"])
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "link_used"

    shown = await client.get(f"/api/v1/appointments/{appointment.id}/guest")
    assert (shown.json()["redeemed"], shown.json()["admitted"]) == (True, False)
    assert "guest_url" not in shown.json()
    assert await actions(sessions, appointment.id or 0) == [
        "guest.issued",
        "guest.redeemed",
        "guest.rejected",
    ]


async def test_a_new_invitation_revokes_the_old_and_ends_its_session(
    client: httpx2.AsyncClient,
    client_factory: ClientFactory,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    appointment = await make_appointment(sessions, demo)
    await login(client, demo.specialist)
    first = await invite(client, appointment.id or 0)
    async with client_factory() as guest:
        assert (await redeem(guest, first["guest_url"])).status_code == 200
        second = await invite(client, appointment.id or 0, name="Max Meier", kind="carer")
        assert (await guest.get("/api/v1/guest/me")).status_code == 401
    async with client_factory() as other:
        old = await redeem(other, first["guest_url"])
        assert (old.status_code, old.json()["error"]["code"]) == (404, "link_invalid")
        assert (await redeem(other, second["guest_url"])).status_code == 200
    shown = await client.get(f"/api/v1/appointments/{appointment.id}/guest")
    assert shown.json()["name"] == "Max Meier"
    revoked = await client.delete(f"/api/v1/appointments/{appointment.id}/guest")
    assert revoked.status_code == 204
    assert (await client.get(f"/api/v1/appointments/{appointment.id}/guest")).status_code == 204
    async with sessions() as session:
        live = await session.execute(
            select(AuthSession).where(
                col(AuthSession.kind) == SessionKind.GUEST, col(AuthSession.ended_at).is_(None)
            )
        )
    assert live.scalars().all() == []
    assert "guest.revoked" in await actions(sessions, appointment.id or 0)


async def test_guest_link_outside_its_window_or_after_the_end_is_refused(
    client: httpx2.AsyncClient,
    client_factory: ClientFactory,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    appointment = await make_appointment(sessions, demo, starts_at=utcnow() + timedelta(days=3))
    await login(client, demo.gp)
    issued = await invite(client, appointment.id or 0)
    async with client_factory() as guest:
        early = await redeem(guest, issued["guest_url"])
        assert (early.status_code, early.json()["error"]["code"]) == (403, "link_not_yet_valid")
        async with unit_of_work(sessions) as session:
            await session.execute(
                update(GuestInvitation).values(
                    valid_from=utcnow() - timedelta(hours=2),
                    valid_until=utcnow() - timedelta(minutes=1),
                )
            )
        late = await redeem(guest, issued["guest_url"])
        assert (late.status_code, late.json()["error"]["code"]) == (410, "link_expired")
        async with unit_of_work(sessions) as session:
            await session.execute(
                update(GuestInvitation).values(valid_until=utcnow() + timedelta(hours=1))
            )
            await session.execute(
                update(Appointment)
                .where(col(Appointment.id) == appointment.id)
                .values(room_state=RoomState.ENDED)
            )
        ended = await redeem(guest, issued["guest_url"])
        assert (ended.status_code, ended.json()["error"]["detail"]["reason"]) == (410, "ended")
        bad = await guest.post("/api/v1/guest/session", json={"token": "x" * 43})
        assert (bad.status_code, bad.json()["error"]["code"]) == (404, "link_invalid")
    refused = await client.post(f"/api/v1/appointments/{appointment.id}/guest", json=GUEST)
    assert refused.status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        {"name": "", "kind": "interpreter"},
        {"name": "A" * 81, "kind": "interpreter"},
        {"name": "Ayşe\nDemir", "kind": "interpreter"},
        {"name": "    ", "kind": "interpreter"},
        {"name": " A ", "kind": "interpreter"},
        {"name": "Ayşe\u202eDemir", "kind": "interpreter"},
        {"name": "Ayşe\u200dDemir", "kind": "interpreter"},
        {"name": "Ayşe Demir", "kind": "surgeon"},
        {"name": "Ayşe Demir"},
        {"name": "Ayşe Demir", "kind": "carer", "token": "x"},
    ],
)
async def test_guest_invitation_bad_input_is_422(
    client: httpx2.AsyncClient,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
    body: dict[str, Any],
) -> None:
    appointment = await make_appointment(sessions, demo)
    await login(client, demo.gp)
    response = await client.post(f"/api/v1/appointments/{appointment.id}/guest", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_input"


async def test_guest_name_is_stored_without_surrounding_spaces(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo)
    await login(client, demo.gp)
    issued = await invite(client, appointment.id or 0, name="  Ayşe Demir ")
    assert issued["name"] == "Ayşe Demir"
    refused = await client.post(
        f"/api/v1/appointments/{appointment.id}/guest",
        json={"name": "Ayşe\u202eDemir", "kind": "interpreter"},
    )
    (field,) = refused.json()["error"]["detail"]["fields"]
    assert field["message"] == "Der Name enthält unsichtbare Steuerzeichen."


async def test_only_the_appointments_own_staff_invite_and_only_its_specialist_admits(
    client: httpx2.AsyncClient,
    client_factory: ClientFactory,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    appointment = await make_appointment(sessions, demo)
    async with client_factory() as stranger:
        await login(stranger, demo.other_gp)
        foreign = await stranger.post(f"/api/v1/appointments/{appointment.id}/guest", json=GUEST)
        assert foreign.status_code == 404
        assert (
            await stranger.post(f"/api/v1/rooms/{appointment.id}/guest/admit")
        ).status_code == 404
    async with client_factory() as patient:
        patient.cookies.set("konsil_patient", await patient_token(sessions, settings, appointment))
        assert (
            await patient.post(f"/api/v1/appointments/{appointment.id}/guest", json=GUEST)
        ).status_code == 401
    await login(client, demo.gp)
    issued = await invite(client, appointment.id or 0)
    admit = f"/api/v1/rooms/{appointment.id}/guest/admit"
    nobody = await client.post(admit)
    assert nobody.status_code == 403  # the GP may invite, not admit
    async with client_factory() as specialist:
        await login(specialist, demo.specialist)
        not_yet = await specialist.post(admit)
        assert (not_yet.status_code, not_yet.json()["error"]["code"]) == (409, "conflict")
        async with client_factory() as guest:
            assert (await redeem(guest, issued["guest_url"])).status_code == 200
            assert (await guest.post(admit)).status_code == 403
        admitted = await specialist.post(admit)
        assert admitted.status_code == 200, admitted.text
        assert admitted.json()["admitted"] is True
    assert (await actions(sessions, appointment.id or 0))[-1] == "guest.admitted"


PARAM = re.compile(r"\{(\w+)(?::int)?\}")


def _value(name: str, appointment_id: int) -> str:
    if name in ("id", "appointment_id"):
        return str(appointment_id)
    return "1" if name.endswith("id") else "k" * 32


# A staff member's own login and account: "not signed in (as staff)" is the right answer.
ACCOUNT_PATHS = ("/api/v1/auth", "/api/v1/account")


def _operations(app: Starlette) -> list[tuple[str, str, str]]:
    found = []
    for route in app.routes:
        if isinstance(route, ApiRoute | ApiResource):
            for op in route.operations:
                found.append((op.method, op.path, op.auth))
    return found


async def test_a_guest_session_is_refused_every_api_but_its_own(
    app: Starlette,
    client: httpx2.AsyncClient,
    client_factory: ClientFactory,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    appointment = await make_appointment(sessions, demo)
    await login(client, demo.gp)
    issued = await invite(client, appointment.id or 0)
    async with client_factory() as guest:
        me = (await redeem(guest, issued["guest_url"])).json()
        guest.headers["X-CSRF-Token"] = me["csrf_token"]
        checked, wrong = 0, []
        for method, path, auth in _operations(app):
            if auth in ("none", "guest", "call"):
                continue
            url = PARAM.sub(lambda p: _value(p[1], appointment.id or 0), path)
            response = await guest.request(method.upper(), url, json={})
            assert response.status_code in (401, 403), (method, path, response.status_code)
            if auth in ("staff", "patient") and not path.startswith(ACCOUNT_PATHS):
                wrong.extend([] if response.status_code == 403 else [(method, path)])
            assert "Erika" not in response.text
            checked += 1
        assert checked > 40
        assert wrong == []  # case data: forbidden to a guest, not "please log in"
        ice = await guest.get(f"/api/v1/rooms/{appointment.id}/ice")
        assert ice.status_code == 200
        other = await make_appointment(sessions, demo)
        assert (await guest.get(f"/api/v1/rooms/{other.id}/ice")).status_code == 404
