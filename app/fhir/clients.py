"""The FHIR system clients (SMART Backend Services): a GP or specialist registers, from their
own session with a recent second factor, a system that acts as them (a practice system books
as that GP; a hospital system reads as a specialist): its public keys and the scopes it may be
granted. Nobody can register a system that acts as someone else; the admin lists and
deactivates them. The account's own access rules apply on top of the scopes; a deactivated
account or client, or an account whose role changed since, gets no token and loses the ones
it has."""

from __future__ import annotations

import json
import secrets
from datetime import datetime

from sqlalchemy import Column, Text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col, select

from app.accounts.models import Role, User
from app.db import utc_column, utcnow
from app.errors import Conflict, NotFound
from app.fhir.schemas import FhirClientIn

# The roles a client may act as: those the FHIR endpoint serves.
ACTING_ROLES = (Role.GP, Role.SPECIALIST)


class FhirClient(SQLModel, table=True):
    """A registered FHIR system client."""

    __tablename__ = "fhir_client"

    id: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=200)
    account_id: int = Field(foreign_key="staff_user.id", index=True)
    # The account's role at registration: a changed role stops the client.
    role: str = Field(max_length=24)
    scopes: str = Field(sa_column=Column(Text, nullable=False))  # space-separated
    jwks: str = Field(sa_column=Column(Text, nullable=False))  # the public keys, JSON
    active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    last_used_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


async def register(session: AsyncSession, *, owner_id: int, data: FhirClientIn) -> FhirClient:
    """A client acting as ``owner_id``: the signed-in doctor's own."""
    account = await session.get(User, owner_id)
    if account is None:
        raise NotFound("Dieses Konto gibt es nicht.")
    if account.role not in ACTING_ROLES or not account.is_active:
        raise Conflict(
            "Ein Client handelt für ein aktives Konto einer Hausärztin/eines Hausarztes oder"
            " einer Fachärztin/eines Facharztes."
        )
    client = FhirClient(
        client_id=secrets.token_urlsafe(18),
        name=data.name,
        account_id=owner_id,
        role=account.role.value,
        scopes=" ".join(data.scopes),
        jwks=json.dumps(data.jwks, separators=(",", ":")),
    )
    session.add(client)
    await session.flush()
    return client


async def all_clients(session: AsyncSession) -> list[FhirClient]:
    found = await session.execute(select(FhirClient).order_by(col(FhirClient.id)))
    return list(found.scalars().all())


async def deactivate(session: AsyncSession, client_db_id: int) -> FhirClient:
    client = await session.get(FhirClient, client_db_id)
    if client is None:
        raise NotFound("Diesen Client gibt es nicht.")
    client.active = False
    session.add(client)
    return client


async def usable(session: AsyncSession, client_id: str) -> tuple[FhirClient, User] | None:
    """The active client with this id and the active account it acts as, or None."""
    found = await session.execute(
        select(FhirClient, User)
        .join(User, col(User.id) == col(FhirClient.account_id))
        .where(col(FhirClient.client_id) == client_id, col(FhirClient.active).is_(True))
    )
    row = found.first()
    if row is None:
        return None
    client, account = row
    if not account.is_active or account.role.value != client.role:
        return None
    return client, account


async def used(session: AsyncSession, client_db_id: int | None, now: datetime) -> None:
    """Notes when the client last got a token (that column only: never the others)."""
    await session.execute(
        update(FhirClient).where(col(FhirClient.id) == client_db_id).values(last_used_at=now)
    )
