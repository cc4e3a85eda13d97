"""A booking retried with the same Idempotency-Key gets the first answer: the same booking and
the same join link, also when both requests run at once; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import httpx2
import pytest
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import select

from app.idempotency import IdempotentResponse
from app.scheduling.models import Appointment
from app.settings import Settings
from tests.factories import Demo, login
from tests.scheduling.helpers import ClientFactory, booking_body, free_slots

BOOK = "/api/v1/appointments"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url)


async def appointments(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(
            (await session.execute(select(func.count()).select_from(Appointment))).scalar_one()
        )


async def test_a_retry_with_the_same_key_gets_the_same_booking_and_link(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await login(client, demo.gp)
    slot = (await free_slots(client, demo.specialist))[0]
    body = booking_body(demo.specialist, slot["starts_at"])
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await client.post(BOOK, json=body, headers=key)
    assert first.status_code == 201, first.text
    # The answer was lost on the way; the browser sends the same request again.
    retry = await client.post(BOOK, json=body, headers=key)
    assert retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json() == first.json()
    assert await appointments(sessions) == 1
    # Without the key the same request is a second booking of a taken slot.
    again = await client.post(BOOK, json=body)
    assert again.status_code == 409
    # The stored answer holds the join link only encrypted.
    token = first.json()["link"]["join_url"].split("#", 1)[1]
    async with sessions() as session:
        stored = (await session.execute(select(IdempotentResponse))).scalars().all()
    assert len(stored) == 1
    assert token not in stored[0].body
    assert "Erika" not in stored[0].body


async def test_the_same_key_with_another_request_is_refused(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await login(client, demo.gp)
    slots = await free_slots(client, demo.specialist)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await client.post(
        BOOK, json=booking_body(demo.specialist, slots[0]["starts_at"]), headers=key
    )
    assert first.status_code == 201
    other = await client.post(
        BOOK, json=booking_body(demo.specialist, slots[1]["starts_at"]), headers=key
    )
    assert other.status_code == 422
    assert other.json()["error"]["detail"]["reason"] == "idempotency_key_reused"
    assert await appointments(sessions) == 1


async def test_keys_belong_to_one_gp(
    client_factory: ClientFactory, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    key = {"Idempotency-Key": "shared-key-0001"}
    async with client_factory() as first, client_factory() as second:
        await login(first, demo.gp)
        await login(second, demo.other_gp)
        slots = await free_slots(first, demo.specialist)
        one = await first.post(
            BOOK, json=booking_body(demo.specialist, slots[0]["starts_at"]), headers=key
        )
        two = await second.post(
            BOOK, json=booking_body(demo.specialist, slots[1]["starts_at"]), headers=key
        )
    assert (one.status_code, two.status_code) == (201, 201)
    assert one.json()["appointment"]["id"] != two.json()["appointment"]["id"]
    assert await appointments(sessions) == 2


async def test_two_requests_with_one_key_at_once_book_once(
    client: httpx2.AsyncClient, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await login(client, demo.gp)
    slot = (await free_slots(client, demo.specialist))[0]
    body = booking_body(demo.specialist, slot["starts_at"])
    key = {"Idempotency-Key": str(uuid.uuid4())}
    answers = await asyncio.gather(*(client.post(BOOK, json=body, headers=key) for _ in range(3)))
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert len({a.json()["link"]["join_url"] for a in answers}) == 1
    assert await appointments(sessions) == 1


@pytest.mark.parametrize("value", ["short", "with space inside", "x" * 256, "ümlaut-key-123"])
async def test_a_malformed_key_is_refused_and_books_nothing(
    client: httpx2.AsyncClient, demo: Demo, value: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await login(client, demo.gp)
    slot = (await free_slots(client, demo.specialist))[0]
    response = await client.post(
        BOOK,
        json=booking_body(demo.specialist, slot["starts_at"]),
        headers={b"Idempotency-Key": value.encode()},  # raw bytes, as a client may send them
    )
    assert response.status_code == 422
    assert await appointments(sessions) == 0
