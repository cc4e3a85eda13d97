"""Retry-safe POSTs: an ``Idempotency-Key`` header makes a repeated request get the first
answer instead of doing the work again.

A GP's browser may lose the answer to a booking (a dead spot, a server restart between commit
and response). Retrying with the same key returns the same booking and the same join link;
without the key the retry would get 409 for the slot it had just booked, and the link would be
lost until reissued.

The answer is stored in the same transaction as the work it answers, so it exists exactly when
the work was committed. It holds the join link's token, which is otherwise never stored, so it
is kept encrypted (Fernet, with a key derived from ``KONSIL_SECRET_KEY``) and only for
``KEEP`` (24 h). The key itself is stored as a hash, per caller (``scope``); a key sent again
with a different request is refused (422), as the IETF draft on the header asks.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Column, Text, UniqueConstraint, delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col, select

from app.db import utc_column, utcnow
from app.errors import InvalidInput
from app.tokens import fernet

HEADER = "idempotency-key"
KEEP = timedelta(hours=24)
KEY_SHAPE = re.compile(r"^[\x21-\x7e]{8,255}$")  # printable ASCII, no spaces


class IdempotentResponse(SQLModel, table=True):
    """The answer to a request that carried an ``Idempotency-Key``, kept for ``KEEP``."""

    __tablename__ = "idempotent_response"
    __table_args__ = (UniqueConstraint("scope", "key_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    scope: str = Field(max_length=64)  # whose keys: e.g. "booking:gp:7"
    key_hash: str = Field(max_length=64)
    request_hash: str = Field(max_length=64)
    status: int
    body: str = Field(sa_column=Column(Text, nullable=False))  # Fernet token of the JSON
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(index=True))


@dataclass(frozen=True)
class Replay:
    status: int
    body: dict[str, Any]


def request_key(value: str | None) -> str | None:
    """The header's value, checked; None when the client sent none."""
    if value is None:
        return None
    if not KEY_SHAPE.match(value):
        raise InvalidInput(
            "Der Idempotency-Key muss 8 bis 255 druckbare Zeichen ohne Leerzeichen haben."
        )
    return value


def fingerprint(canonical: str) -> str:
    return hashlib.sha256(canonical.encode()).hexdigest()


def _fernet(secret: str) -> Fernet:
    return fernet(secret, b"konsil idempotent responses")


async def replay(
    session: AsyncSession, *, secret: str, scope: str, key: str, request_hash: str
) -> Replay | None:
    """The stored answer to this key, if it is still kept; 422 if the key came with another
    request."""
    row = (
        await session.execute(
            select(IdempotentResponse).where(
                col(IdempotentResponse.scope) == scope,
                col(IdempotentResponse.key_hash) == fingerprint(key),
                col(IdempotentResponse.created_at) > utcnow() - KEEP,
            )
        )
    ).scalar_one_or_none()
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise InvalidInput(
            "Dieser Idempotency-Key wurde schon für eine andere Anfrage verwendet.",
            reason="idempotency_key_reused",
        )
    try:
        body = json.loads(_fernet(secret).decrypt(row.body.encode()))
    except InvalidToken:
        return None  # the secret key was changed since: the answer cannot be given again
    return Replay(row.status, body)


async def remember(
    session: AsyncSession,
    *,
    secret: str,
    scope: str,
    key: str,
    request_hash: str,
    status: int,
    body: dict[str, Any],
) -> None:
    """Stores the answer in the caller's unit of work (it commits with the work it answers),
    and drops answers older than ``KEEP``."""
    await session.execute(
        delete(IdempotentResponse).where(col(IdempotentResponse.created_at) <= utcnow() - KEEP)
    )
    session.add(
        IdempotentResponse(
            scope=scope,
            key_hash=fingerprint(key),
            request_hash=request_hash,
            status=status,
            body=_fernet(secret).encrypt(json.dumps(body).encode()).decode(),
        )
    )
