"""Single sign-on: what a provider's verified claims mean for Konsil, and who gets in.

Pure: ``identity`` reads the validated id_token claims through the settings (role claim and its
value map, practice claim, specialty claim; dotted paths reach nested claims, as Keycloak's
``realm_access.roles``), ``check_assurance`` checks the provider's ``acr``/``amr`` against
what the operator requires, and ``decide`` says what to do with an identity: log in the bound
account, bind an account an admin created (found by verified e-mail, first login only), create
one (provisioning ``create``), or refuse.

``sign_in`` applies the decision in the caller's unit of work and opens a normal staff session.
Accounts are linked by (issuer, subject), never by e-mail alone: the e-mail finds an account
once, after which its subject is the key. The I/O with the provider is
``app.accounts.oidc_client``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.accounts.models import Practice, Role, SessionStage, User
from app.accounts.service import NewSession, first_stage, open_staff_session
from app.errors import SsoRefused
from app.settings import Settings

MAX_NAME = 200
# Where an account that signs in only through the provider confirms a sensitive action: a new
# sign-in at the provider (``app.pages.sso``).
REAUTH_PATH = "/auth/oidc/reauth"


@dataclass(frozen=True)
class Identity:
    """A person as the provider vouches for them, mapped to Konsil's terms."""

    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None
    role: Role | None  # None: no value of the role claim is mapped
    practice_id: int | None
    specialty: str | None  # a specialty slug
    acr: str | None
    amr: tuple[str, ...]


class Action(StrEnum):
    LOGIN = "login"  # the account bound to this identity
    BIND = "bind"  # an admin's account, found by verified e-mail, bound now
    CREATE = "create"  # a new SSO-only account


@dataclass(frozen=True)
class Decision:
    action: Action
    user: User | None = None


def claim(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by name, or by dotted path into nested objects when no claim has that name."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def mapped_role(claims: Mapping[str, Any], settings: Settings) -> Role | None:
    """The one Konsil role the role claim maps to; None if none does. Several: refused."""
    value = claim(claims, settings.oidc_role_claim)
    values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    roles = {
        Role(settings.oidc_role_map[v])
        for v in values
        if isinstance(v, str) and v in settings.oidc_role_map
    }
    if len(roles) > 1:
        raise SsoRefused("role_ambiguous")
    return roles.pop() if roles else None


def identity(claims: Mapping[str, Any], settings: Settings) -> Identity:
    """The verified claims of an id_token in Konsil's terms."""
    email = claims.get("email")
    name = claims.get("name")
    practice = claim(claims, settings.oidc_practice_claim)
    specialty = claim(claims, settings.oidc_specialty_claim)
    acr = claims.get("acr")
    amr = claims.get("amr")
    return Identity(
        issuer=str(claims["iss"]),
        subject=str(claims["sub"]),
        email=email.strip().lower() if isinstance(email, str) and "@" in email else None,
        email_verified=claims.get("email_verified") is True,
        name=name.strip()[:MAX_NAME] if isinstance(name, str) and name.strip() else None,
        role=mapped_role(claims, settings),
        practice_id=_practice_id(practice),
        specialty=specialty if isinstance(specialty, str) and specialty else None,
        acr=acr if isinstance(acr, str) else None,
        amr=tuple(a for a in amr if isinstance(a, str)) if isinstance(amr, list) else (),
    )


def _practice_id(value: object) -> int | None:
    if isinstance(value, list) and len(value) == 1:  # Keycloak attributes may come as lists
        value = value[0]
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value < 2**63 else None
    if isinstance(value, str) and value.isdecimal() and len(value) < 19:
        return int(value) or None
    return None


def check_assurance(person: Identity, settings: Settings) -> None:
    """The provider's login strength the operator requires (KONSIL_OIDC_REQUIRED_ACR/AMR)."""
    if settings.oidc_required_acr and person.acr not in settings.oidc_required_acr:
        raise SsoRefused("assurance")
    if settings.oidc_required_amr and not set(settings.oidc_required_amr) & set(person.amr):
        raise SsoRefused("assurance")


def decide(
    person: Identity, *, bound: User | None, by_email: User | None, settings: Settings
) -> Decision:
    """Who ``person`` logs in as. ``bound``: the account bound to (issuer, subject);
    ``by_email``: the account with the person's e-mail address, if any."""
    if person.role is None:
        raise SsoRefused("role")
    if bound is not None:
        return Decision(Action.LOGIN, _usable(bound, person))
    if by_email is not None:
        if not person.email_verified:
            raise SsoRefused("email_unverified")
        if by_email.oidc_subject is not None:
            raise SsoRefused("identity_conflict")  # bound to another person or provider
        return Decision(Action.BIND, _usable(by_email, person))
    if settings.oidc_provisioning != "create":
        raise SsoRefused("no_account")
    if person.email is None or not person.email_verified:
        raise SsoRefused("email_unverified")
    if person.role is Role.GP and person.practice_id is None:
        raise SsoRefused("practice")
    if person.role is Role.SPECIALIST and person.specialty is None:
        raise SsoRefused("specialty")
    return Decision(Action.CREATE)


def _usable(user: User, person: Identity) -> User:
    if not user.is_active:
        raise SsoRefused("inactive")
    # The provider does not move accounts between roles: a GP's bookings stay a GP's.
    if user.role is not person.role:
        raise SsoRefused("role_mismatch")
    return user


async def sign_in(
    session: AsyncSession,
    *,
    settings: Settings,
    person: Identity,
    specialties: Mapping[str, int],
) -> tuple[NewSession, Action]:
    """Logs ``person`` in (binding or creating the account as ``decide`` says) and opens a
    staff session; ``specialties`` maps specialty slugs to ids. Raises ``SsoRefused``."""
    check_assurance(person, settings)
    bound = (
        await session.execute(
            select(User).where(
                col(User.oidc_issuer) == person.issuer, col(User.oidc_subject) == person.subject
            )
        )
    ).scalar_one_or_none()
    by_email = None
    if bound is None and person.email is not None:
        by_email = (
            await session.execute(select(User).where(func.lower(col(User.email)) == person.email))
        ).scalar_one_or_none()
    decision = decide(person, bound=bound, by_email=by_email, settings=settings)
    user = decision.user
    if decision.action is Action.BIND:
        assert user is not None
        user.oidc_issuer, user.oidc_subject = person.issuer, person.subject
    elif decision.action is Action.CREATE:
        user = await _create(session, person, specialties)
    assert user is not None
    try:
        await session.flush()
    except IntegrityError as exc:
        # The same person's first login in two tabs at once: one of them binds or creates.
        raise SsoRefused("identity_conflict") from exc
    # A provider required to vouch for a multi-factor login (acr/amr, checked above) stands in
    # for Konsil's second factor; otherwise the session starts where a password login does.
    if settings.oidc_required_acr or settings.oidc_required_amr:
        stage = SessionStage.FULL
    else:
        stage = await first_stage(session, settings=settings, user=user)
    new = open_staff_session(
        session, settings=settings, user=user, stage=stage, oidc_issuer=person.issuer
    )
    return new, decision.action


async def _create(session: AsyncSession, person: Identity, specialties: Mapping[str, int]) -> User:
    assert person.email is not None
    assert person.role is not None
    practice_id = specialty_id = None
    if person.role is Role.GP:
        if person.practice_id is None or await session.get(Practice, person.practice_id) is None:
            raise SsoRefused("practice")
        practice_id = person.practice_id
    if person.role is Role.SPECIALIST:
        specialty_id = specialties.get(person.specialty or "")
        if specialty_id is None:
            raise SsoRefused("specialty")
    user = User(
        email=person.email,
        display_name=person.name or person.email,
        role=person.role,
        password_hash=None,
        practice_id=practice_id,
        specialty_id=specialty_id,
        oidc_issuer=person.issuer,
        oidc_subject=person.subject,
    )
    session.add(user)
    return user
