"""Tables for staff, practices and server-side sessions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.db import enum_column, utc_column, utcnow


class Role(StrEnum):
    ADMIN = "admin"
    GP = "gp"
    SPECIALIST = "specialist"


class SessionKind(StrEnum):
    STAFF = "staff"
    PATIENT = "patient"
    GUEST = "guest"  # a consultation's invited guest (interpreter, carer): the call only


class SessionStage(StrEnum):
    """How far a staff session is signed in (docs/deploy.md, "Two-factor authentication").

    A password alone opens a session at ``SECOND_FACTOR`` (only the code check may be called)
    or, for an account that must but has no second factor yet, at ``ENROL`` (only setting one
    up may be called). ``FULL`` may do what the role allows.
    """

    FULL = "full"
    SECOND_FACTOR = "second_factor"
    ENROL = "enrol"


class FactorKind(StrEnum):
    TOTP = "totp"
    WEBAUTHN = "webauthn"


class Practice(SQLModel, table=True):
    """A GP practice (Hausarztpraxis)."""

    __tablename__ = "practice"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    town: str = Field(max_length=120)
    # E.164 (``+4935631234``), normalised by ``app.accounts.phones``; None if not known.
    phone: str | None = Field(default=None, max_length=20)
    # Betriebsstättennummer (nine digits): on the report letter and the billing helper.
    bsnr: str | None = Field(default=None, max_length=9)


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
    # Lebenslange Arztnummer (nine digits, check digit verified) of a GP or specialist.
    lanr: str | None = Field(default=None, max_length=9)
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
    # Idle timeout: the last request, page or websocket message (written at most once a minute).
    last_seen_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    stage: SessionStage = Field(default=SessionStage.FULL, sa_column=enum_column(SessionStage))
    # The last time the password or a second factor was shown in this session (re-auth).
    verified_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    # For the staff member's own list of sessions: browser and address at login.
    user_agent: str = Field(default="", max_length=200)
    ip: str = Field(default="", max_length=64)
    # A WebAuthn challenge handed out to this session and not yet answered.
    challenge: str | None = Field(default=None, max_length=128)
    # The OpenID provider that authenticated this session (single sign-on), else None; logging
    # out of such a session also ends the session at the provider.
    oidc_issuer: str | None = Field(default=None, max_length=500)


class SecondFactor(SQLModel, table=True):
    """A staff member's second factor: a TOTP app or a WebAuthn authenticator (passkey)."""

    __tablename__ = "second_factor"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="staff_user.id", index=True)
    kind: FactorKind = Field(sa_column=enum_column(FactorKind))
    label: str = Field(max_length=100)
    # TOTP: the shared secret, encrypted with a key derived from KONSIL_SECRET_KEY.
    secret: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # TOTP: the last time step accepted, so one code is never accepted twice.
    last_step: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    # WebAuthn: credential id (base64url, unique), public key (COSE, base64url), counter.
    credential_id: str | None = Field(default=None, max_length=1400, unique=True)
    public_key: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    sign_count: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    confirmed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    last_used_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class RecoveryCode(SQLModel, table=True):
    """A one-time code for when the second factor is lost; only its keyed hash is stored."""

    __tablename__ = "recovery_code"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="staff_user.id", index=True)
    code_hash: str = Field(max_length=64)
    used_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
