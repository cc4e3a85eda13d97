"""A guest invitation through the appointment's life: a revocation racing a redemption, a
rescheduled or transferred consultation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from app.accounts.models import AuthSession, Role, SessionKind, User
from app.accounts.service import Principal
from app.db import unit_of_work, utcnow
from app.errors import LinkInvalid
from app.events.outbox import OutboxEvent
from app.rooms import service as rooms
from app.scheduling import guests
from app.scheduling.links import Opening
from app.scheduling.models import Appointment, GuestInvitation
from app.settings import Settings
from tests.factories import Demo, login, make_appointment
from tests.scheduling.helpers import ClientFactory, free_slots
from tests.scheduling.test_guests import invite, redeem
from tests.scheduling.test_links import book_later


async def invited(
    client: httpx2.AsyncClient, sessions: async_sessionmaker[AsyncSession], who: User, demo: Demo
) -> tuple[Appointment, dict[str, Any]]:
    """An appointment now, and a guest invited by ``who`` (signed in on ``client``)."""
    appointment = await make_appointment(sessions, demo)
    await login(client, who)
    return appointment, await invite(client, appointment.id or 0)


async def test_a_revocation_between_reading_and_binding_leaves_the_invitation_unbound(
    client: httpx2.AsyncClient,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    await invited(client, sessions, demo.gp, demo)
    async with sessions() as session:
        read = (await session.execute(select(GuestInvitation))).scalar_one()
    # The staff revoke commits after redeem read the invitation, before it binds it.
    async with unit_of_work(sessions) as session:
        await session.execute(update(GuestInvitation).values(revoked_at=utcnow()))
    async with unit_of_work(sessions) as session:
        appointment = await session.get(Appointment, read.appointment_id)
        assert appointment is not None
        at = Opening(settings=settings, ip=None, own_session=None, now=utcnow())
        redemption, refusal = await guests._bind(session, read, appointment, at)
    assert redemption is None
    assert isinstance(refusal, LinkInvalid)
    async with sessions() as session:
        stored = (await session.execute(select(GuestInvitation))).scalar_one()
        opened = await session.execute(
            select(AuthSession).where(col(AuthSession.kind) == SessionKind.GUEST)
        )
    assert stored.session_id is None
    assert opened.scalars().all() == []


async def test_a_guest_whose_invitation_is_revoked_gets_no_ice_servers(
    client: httpx2.AsyncClient,
    client_factory: ClientFactory,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    appointment, issued = await invited(client, sessions, demo.gp, demo)
    async with client_factory() as guest:
        assert (await redeem(guest, issued["guest_url"])).status_code == 200
        ice = f"/api/v1/rooms/{appointment.id}/ice"
        assert (await guest.get(ice)).status_code == 200
        # Revoked while its session lives on (the race above, had it bound first).
        async with unit_of_work(sessions) as session:
            await session.execute(update(GuestInvitation).values(revoked_at=utcnow()))
        assert (await guest.get(ice)).status_code == 404


async def test_rescheduling_revokes_the_guest_invitation_and_ends_its_session(
    client: httpx2.AsyncClient,
    client_factory: ClientFactory,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await login(client, demo.gp)
    booking = await book_later(client, demo)
    appointment_id = booking["appointment"]["id"]
    issued = await invite(client, appointment_id)
    async with unit_of_work(sessions) as session:  # time passes: the guest's link is valid now
        await session.execute(
            update(GuestInvitation).values(
                valid_from=utcnow() - timedelta(minutes=5),
                valid_until=utcnow() + timedelta(hours=1),
            )
        )
    async with client_factory() as guest:
        assert (await redeem(guest, issued["guest_url"])).status_code == 200
        first = datetime.now(UTC).date() + timedelta(days=3)
        target = (await free_slots(client, demo.specialist, first=first))[1]
        moved = await client.post(
            f"/api/v1/appointments/{appointment_id}/reschedule",
            json={"starts_at": target["starts_at"]},
        )
        assert moved.status_code == 200, moved.text
        assert (await guest.get("/api/v1/guest/me")).status_code == 401
    assert (await client.get(f"/api/v1/appointments/{appointment_id}/guest")).status_code == 204
    async with client_factory() as other:
        old = await redeem(other, issued["guest_url"])
        assert (old.status_code, old.json()["error"]["code"]) == (404, "link_invalid")
    again = await invite(client, appointment_id)
    assert again["valid_from"] < target["starts_at"] < again["valid_until"]


async def test_a_transfer_takes_back_the_guests_admission(
    client: httpx2.AsyncClient,
    client_factory: ClientFactory,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    appointment, issued = await invited(client, sessions, demo.specialist, demo)
    admit = f"/api/v1/rooms/{appointment.id}/guest/admit"
    async with client_factory() as guest:
        assert (await redeem(guest, issued["guest_url"])).status_code == 200
        assert (await client.post(admit)).status_code == 200
        specialist = Principal(
            kind=SessionKind.STAFF,
            session_id="s",
            csrf_token="c",
            user_id=demo.specialist.id,
            role=Role.SPECIALIST,
        )
        async with unit_of_work(sessions) as session:
            await rooms.transfer(
                session,
                appointment_id=appointment.id or 0,
                who=specialist,
                to_specialist_id=demo.other_specialist.id or 0,
            )
            told = [
                json.loads(o.payload)["admitted"]
                for o in session.new
                if isinstance(o, OutboxEvent) and o.type == "guest.changed"
            ]
        assert told == [False]  # what every signalling replica applies
        assert (await guest.get("/api/v1/guest/me")).status_code == 200  # still invited
    async with client_factory() as colleague:
        await login(colleague, demo.other_specialist)
        shown = await colleague.get(f"/api/v1/appointments/{appointment.id}/guest")
        assert shown.json()["admitted"] is False
        again = await colleague.post(admit)
        assert (again.status_code, again.json()["admitted"]) == (200, True)
