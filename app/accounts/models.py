"""Tables for staff, practices and server-side sessions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from app.db import enum_column, utc_column, utcnow


class Role(StrEnum):
    ADMIN = "admin"
    GP = "gp"
    SPECIALIST = "specialist"


class SessionKind(StrEnum):
    STAFF = "staff"
    PATIENT = "patient"


class Practice(SQLModel, table=True):
    """A GP practice (Hausarztpraxis)."""

    __tablename__ = "practice"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    town: str = Field(max_length=120)


class User(SQLModel, table=True):
    """A staff member: admin, GP or hospital specialist."""

    __tablename__ = "staff_user"
    __table_args__ = (
        UniqueConstraint("oidc_issuer", "oidc_subject", name="uq_staff_user_oidc_identity"),
    )

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    display_name: str = Field(max_length=200)
    role: Role = Field(sa_column=enum_column(Role))
    # None: an SSO-only account; a password login is refused as if the password were wrong.
    password_hash: str | None = Field(default=None, max_length=200)
    practice_id: int | None = Field(default=None, foreign_key="practice.id")
    specialty_id: int | None = Field(default=None, foreign_key="specialty.id", index=True)
    is_active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    # The single sign-on identity bound to this account (app/accounts/oidc.py): the provider's
    # issuer and its subject, never the e-mail address alone.
    oidc_issuer: str | None = Field(default=None, max_length=500)
    oidc_subject: str | None = Field(default=None, max_length=255)


class AuthSession(SQLModel, table=True):
    """A server-side session. The cookie holds a random token; only its SHA-256 is stored."""

    __tablename__ = "auth_session"

    id: str = Field(primary_key=True, max_length=64)
    kind: SessionKind = Field(sa_column=enum_column(SessionKind))
    user_id: int | None = Field(default=None, foreign_key="staff_user.id", index=True)
    appointment_id: int | None = Field(default=None, foreign_key="appointment.id", index=True)
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    expires_at: datetime = Field(sa_column=utc_column(index=True))
    ended_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    # The OpenID provider that authenticated this session (single sign-on), else None; logging
    # out of such a session also ends the session at the provider.
    oidc_issuer: str | None = Field(default=None, max_length=500)
