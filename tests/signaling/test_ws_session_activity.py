"""Websocket activity keeps a staff session from its idle timeout: messages, and being in a
consultation (without clicking for half an hour)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from app.accounts.models import AuthSession
from app.db import unit_of_work, utcnow
from app.signaling import endpoint
from tests.factories import Demo, make_appointment
from tests.live import Live
from tests.signaling.wsclient import staff_cookie, ws_connect


async def idle_for(sessions: async_sessionmaker[AsyncSession], user_id: int | None) -> None:
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(AuthSession)
            .where(col(AuthSession.user_id) == user_id)
            .values(last_seen_at=utcnow() - timedelta(minutes=20))
        )


async def idle(sessions: async_sessionmaker[AsyncSession], user_id: int | None) -> timedelta:
    async with sessions() as session:
        seen = (
            await session.execute(
                select(AuthSession.last_seen_at).where(col(AuthSession.user_id) == user_id)
            )
        ).scalar_one()
    return utcnow() - seen


async def test_being_in_a_call_and_sending_messages_count_as_activity(
    live: Live,
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(endpoint, "ACTIVITY_EVERY_SECONDS", 0.2)
    appointment = await make_appointment(sessions, demo)
    in_call = await staff_cookie(live, demo.specialist)
    dashboard = await staff_cookie(live, demo.other_specialist)
    async with (
        ws_connect(live, f"as=staff&appointment={appointment.id}", in_call) as call,
        ws_connect(live, "as=staff", dashboard) as queue,
    ):
        await call.send(type="join")
        await call.expect("joined")
        await idle_for(sessions, demo.specialist.id)
        await idle_for(sessions, demo.other_specialist.id)
        await asyncio.sleep(1.0)
        assert await idle(sessions, demo.specialist.id) < timedelta(seconds=5)
        # An open queue page nobody uses is not activity ...
        assert await idle(sessions, demo.other_specialist.id) > timedelta(minutes=19)
        # ... a message from it is.
        await queue.send(type="join")
        assert (await queue.expect("error"))["code"] == "not_in_room"
        assert await idle(sessions, demo.other_specialist.id) < timedelta(seconds=5)
