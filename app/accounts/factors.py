"""Second factors for staff: TOTP apps (RFC 6238, ``pyotp``), passkeys and security keys
(WebAuthn, ``webauthn``) and one-time recovery codes.

The checks that matter are single statements, so two requests with the same code cannot both
pass: a TOTP time step is accepted only if it is newer than the last one accepted, a recovery
code only while it is unused. TOTP secrets are stored encrypted; recovery codes only as keyed
hashes.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime

import pyotp
import segno
import webauthn
from cryptography.fernet import InvalidToken
from sqlalchemy import delete, func, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from app.accounts.models import AuthSession, FactorKind, RecoveryCode, SecondFactor, User
from app.errors import Conflict, InvalidCode, InvalidInput, NotFound
from app.settings import Settings
from app.tokens import fernet, keyed_hash, same

ISSUER = "Konsil"
RECOVERY_CODE_COUNT = 10
# Without 0/o, 1/l/i: read off paper and typed on a phone.
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
RECOVERY_GROUPS, RECOVERY_GROUP_LENGTH = 3, 4  # "abcd-efgh-jkmn": about 59 bits
TOTP_DRIFT_STEPS = 1  # accept the previous and the next 30-second code too
_TOTP_KEY = b"konsil totp secrets"


# --- pure parts -------------------------------------------------------------------------------


def new_totp_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, account: str, issuer: str = ISSUER) -> str:
    """The ``otpauth://`` URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def qr_data_uri(uri: str) -> str:
    """The QR code of ``uri`` as an SVG data URI (``<img src>``)."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=6, border=2))


def totp_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose code ``code`` is (now, or one step either side), else None."""
    digits = "".join(code.split())
    if not secret or len(digits) != 6 or not digits.isascii() or not digits.isdigit():
        return None  # (no secret: it could not be decrypted after a change of the secret key)
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in range(current - TOTP_DRIFT_STEPS, current + TOTP_DRIFT_STEPS + 1):
        if same(totp.generate_otp(step), digits):
            return step
    return None


def new_recovery_codes() -> list[str]:
    return [
        "-".join(
            "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_GROUP_LENGTH))
            for _ in range(RECOVERY_GROUPS)
        )
        for _ in range(RECOVERY_CODE_COUNT)
    ]


def recovery_hash(secret_key: str, code: str) -> str:
    normalized = "".join(c for c in code.lower() if c.isalnum())
    return keyed_hash(secret_key, "recovery code", normalized)


def looks_like_recovery_code(code: str) -> bool:
    normalized = "".join(c for c in code.lower() if c.isalnum())
    return len(normalized) == RECOVERY_GROUPS * RECOVERY_GROUP_LENGTH and not normalized.isdigit()


# --- stored factors ---------------------------------------------------------------------------


async def confirmed(session: AsyncSession, user_id: int) -> list[SecondFactor]:
    rows = await session.execute(
        select(SecondFactor)
        .where(col(SecondFactor.user_id) == user_id, col(SecondFactor.confirmed_at).is_not(None))
        .order_by(col(SecondFactor.id))
    )
    return list(rows.scalars().all())


async def has_factor(session: AsyncSession, user_id: int) -> bool:
    return bool(await confirmed(session, user_id))


async def recovery_codes_left(session: AsyncSession, user_id: int) -> int:
    count = await session.execute(
        select(func.count())
        .select_from(RecoveryCode)
        .where(col(RecoveryCode.user_id) == user_id, col(RecoveryCode.used_at).is_(None))
    )
    return int(count.scalar_one())


@dataclass(frozen=True)
class TotpEnrolment:
    factor_id: int
    secret: str
    uri: str
    qr: str


async def start_totp(session: AsyncSession, *, secret_key: str, user: User) -> TotpEnrolment:
    """A new, unconfirmed TOTP factor (an earlier unconfirmed one of the user is dropped)."""
    assert user.id is not None
    await session.execute(
        delete(SecondFactor).where(
            col(SecondFactor.user_id) == user.id,
            col(SecondFactor.kind) == FactorKind.TOTP,
            col(SecondFactor.confirmed_at).is_(None),
        )
    )
    secret = new_totp_secret()
    factor = SecondFactor(
        user_id=user.id,
        kind=FactorKind.TOTP,
        label="Authenticator-App",
        secret=fernet(secret_key, _TOTP_KEY).encrypt(secret.encode()).decode(),
    )
    session.add(factor)
    await session.flush()
    assert factor.id is not None
    uri = provisioning_uri(secret, user.email)
    return TotpEnrolment(factor.id, secret, uri, qr_data_uri(uri))


async def confirm_totp(
    session: AsyncSession,
    *,
    secret_key: str,
    user_id: int,
    factor_id: int,
    code: str,
    label: str,
    now: datetime,
) -> list[str] | None:
    """Confirms an enrolment with a first code; returns new recovery codes if this is the
    account's first factor."""
    factor = await session.get(SecondFactor, factor_id)
    if (
        factor is None
        or factor.user_id != user_id
        or factor.kind is not FactorKind.TOTP
        or factor.confirmed_at is not None
    ):
        raise NotFound("Diese Einrichtung gibt es nicht (mehr). Bitte beginnen Sie neu.")
    step = totp_step(_secret(secret_key, factor), code, now)
    if step is None:
        raise InvalidCode()
    first = not await has_factor(session, user_id)
    factor.confirmed_at, factor.last_step, factor.label = now, step, label
    factor.last_used_at = now
    if not first:
        return None
    return await replace_recovery_codes(session, secret_key=secret_key, user_id=user_id)


async def check_totp(
    session: AsyncSession, *, secret_key: str, user_id: int, code: str, now: datetime
) -> bool:
    """Whether ``code`` is a fresh code of one of the user's TOTP factors (then spent)."""
    for factor in await confirmed(session, user_id):
        if factor.kind is not FactorKind.TOTP:
            continue
        step = totp_step(_secret(secret_key, factor), code, now)
        if step is None:
            continue
        spent = await session.execute(
            update(SecondFactor)
            .where(
                col(SecondFactor.id) == factor.id,
                (col(SecondFactor.last_step).is_(None)) | (col(SecondFactor.last_step) < step),
            )
            .values(last_step=step, last_used_at=now)
        )
        return bool(getattr(spent, "rowcount", 0))
    return False


async def use_recovery_code(
    session: AsyncSession, *, secret_key: str, user_id: int, code: str, now: datetime
) -> bool:
    spent = await session.execute(
        update(RecoveryCode)
        .where(
            col(RecoveryCode.user_id) == user_id,
            col(RecoveryCode.code_hash) == recovery_hash(secret_key, code),
            col(RecoveryCode.used_at).is_(None),
        )
        .values(used_at=now)
    )
    return bool(getattr(spent, "rowcount", 0))


async def replace_recovery_codes(
    session: AsyncSession, *, secret_key: str, user_id: int
) -> list[str]:
    """New recovery codes; the old ones stop working. Shown once, stored only as hashes."""
    await session.execute(delete(RecoveryCode).where(col(RecoveryCode.user_id) == user_id))
    codes = new_recovery_codes()
    for code in codes:
        session.add(RecoveryCode(user_id=user_id, code_hash=recovery_hash(secret_key, code)))
    return codes


async def remove(session: AsyncSession, *, user_id: int, factor_id: int, required: bool) -> None:
    """Removes one factor; the last one only if the role does not require a second factor
    (its recovery codes go with it)."""
    factor = await session.get(SecondFactor, factor_id)
    if factor is None or factor.user_id != user_id:
        raise NotFound("Diesen zweiten Faktor gibt es nicht.")
    others = [f for f in await confirmed(session, user_id) if f.id != factor_id]
    if factor.confirmed_at is not None and not others:
        if required:
            raise Conflict(
                "Das ist Ihr letzter zweiter Faktor, und Ihre Rolle braucht einen. "
                "Richten Sie zuerst einen anderen ein."
            )
        await session.execute(delete(RecoveryCode).where(col(RecoveryCode.user_id) == user_id))
    await session.delete(factor)


async def reset(session: AsyncSession, *, user_id: int) -> None:
    """Removes every factor and recovery code of the account (an admin's reset)."""
    await session.execute(delete(SecondFactor).where(col(SecondFactor.user_id) == user_id))
    await session.execute(delete(RecoveryCode).where(col(RecoveryCode.user_id) == user_id))


def _secret(secret_key: str, factor: SecondFactor) -> str:
    assert factor.secret is not None
    try:
        return fernet(secret_key, _TOTP_KEY).decrypt(factor.secret.encode()).decode()
    except InvalidToken:
        # KONSIL_SECRET_KEY was changed: the factor can no longer be checked (an admin resets it).
        return ""


# --- WebAuthn ---------------------------------------------------------------------------------


def _origins(settings: Settings) -> list[str]:
    return sorted(settings.origins)


def registration_options(
    settings: Settings, user: User, existing: list[SecondFactor]
) -> tuple[str, str]:
    """Options for ``navigator.credentials.create`` (JSON) and the challenge to keep."""
    assert user.id is not None
    options = webauthn.generate_registration_options(
        rp_id=settings.rp_id,
        rp_name=ISSUER,
        user_name=user.email,
        user_id=f"konsil-user-{user.id}".encode(),
        user_display_name=user.display_name,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=_descriptors(existing),
    )
    return webauthn.options_to_json(options), bytes_to_base64url(options.challenge)


def authentication_options(settings: Settings, factors: list[SecondFactor]) -> tuple[str, str]:
    """Options for ``navigator.credentials.get`` (JSON) and the challenge to keep."""
    options = webauthn.generate_authentication_options(
        rp_id=settings.rp_id,
        allow_credentials=_descriptors(factors),
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    return webauthn.options_to_json(options), bytes_to_base64url(options.challenge)


async def set_challenge(session: AsyncSession, session_id: str, challenge: str) -> None:
    """Keeps the WebAuthn challenge just handed to this session (one at a time)."""
    await session.execute(
        update(AuthSession).where(col(AuthSession.id) == session_id).values(challenge=challenge)
    )


async def take_challenge(session: AsyncSession, session_id: str) -> str | None:
    """The WebAuthn challenge handed to this session, taken so that it is answered once: the
    one conditional UPDATE clears exactly the value read, so of two requests with the same
    challenge only one gets it (the other waits for the first one's row lock, then finds it
    gone). None if there is none (never handed out, or taken already)."""
    challenge = (
        await session.execute(
            select(AuthSession.challenge).where(col(AuthSession.id) == session_id)
        )
    ).scalar_one_or_none()
    if challenge is None:
        return None
    taken = await session.execute(
        update(AuthSession)
        .where(col(AuthSession.id) == session_id, col(AuthSession.challenge) == challenge)
        .values(challenge=None)
    )
    return challenge if getattr(taken, "rowcount", 0) else None


def _descriptors(factors: list[SecondFactor]) -> list[PublicKeyCredentialDescriptor]:
    return [
        PublicKeyCredentialDescriptor(id=base64url_to_bytes(f.credential_id))
        for f in factors
        if f.kind is FactorKind.WEBAUTHN and f.credential_id
    ]


async def add_passkey(
    session: AsyncSession,
    *,
    settings: Settings,
    user_id: int,
    credential: dict[str, object],
    challenge: str | None,
    label: str,
    now: datetime,
) -> list[str] | None:
    """Stores a verified new passkey; recovery codes if it is the account's first factor."""
    if challenge is None:
        raise InvalidInput("Bitte starten Sie die Einrichtung des Passkeys neu.")
    try:
        verified = webauthn.verify_registration_response(
            credential=json.dumps(credential),
            expected_challenge=base64url_to_bytes(challenge),
            expected_rp_id=settings.rp_id,
            expected_origin=_origins(settings),
        )
    # WebAuthnException: every refusal of the library, a malformed credential included.
    except (WebAuthnException, ValueError, KeyError, TypeError) as error:
        raise InvalidInput("Der Passkey konnte nicht geprüft werden.") from error
    credential_id = bytes_to_base64url(verified.credential_id)
    taken = await session.execute(
        select(SecondFactor.id).where(col(SecondFactor.credential_id) == credential_id)
    )
    if taken.first() is not None:
        raise Conflict("Dieser Passkey ist schon eingerichtet.")
    first = not await has_factor(session, user_id)
    session.add(
        SecondFactor(
            user_id=user_id,
            kind=FactorKind.WEBAUTHN,
            label=label,
            credential_id=credential_id,
            public_key=bytes_to_base64url(verified.credential_public_key),
            sign_count=verified.sign_count,
            confirmed_at=now,
        )
    )
    if not first:
        return None
    return await replace_recovery_codes(
        session, secret_key=settings.secret_key.get_secret_value(), user_id=user_id
    )


async def check_passkey(
    session: AsyncSession,
    *,
    settings: Settings,
    user_id: int,
    credential: dict[str, object],
    challenge: str | None,
    now: datetime,
) -> bool:
    """Whether ``credential`` is a valid assertion of one of the user's passkeys for
    ``challenge`` (the signature counter is kept, so a cloned authenticator shows)."""
    if challenge is None:
        return False
    raw_id = credential.get("id")
    if not isinstance(raw_id, str):
        return False
    factor = (
        await session.execute(
            select(SecondFactor).where(
                col(SecondFactor.user_id) == user_id,
                col(SecondFactor.credential_id) == raw_id,
                col(SecondFactor.confirmed_at).is_not(None),
            )
        )
    ).scalar_one_or_none()
    if factor is None or factor.public_key is None:
        return False
    try:
        verified = webauthn.verify_authentication_response(
            credential=json.dumps(credential),
            expected_challenge=base64url_to_bytes(challenge),
            expected_rp_id=settings.rp_id,
            expected_origin=_origins(settings),
            credential_public_key=base64url_to_bytes(factor.public_key),
            credential_current_sign_count=factor.sign_count,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError):
        return False
    factor.sign_count, factor.last_used_at = verified.new_sign_count, now
    return True
