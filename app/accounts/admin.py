"""The admin's account and practice management (services; docs/api.md, "Accounts and
administration"). Every change is audited with ids only: who (the admin), what (the action),
to which account, practice or specialty."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.accounts import phones
from app.accounts import service as accounts
from app.accounts.models import Practice, Role, SecondFactor, User
from app.accounts.schemas import PracticeIn, PracticePatch, UserOut, UserPatch
from app.audit import service as audit
from app.errors import Conflict, InvalidInput, NotFound
from app.scheduling.models import Specialty


async def users_out(session: AsyncSession, users: Sequence[User]) -> list[UserOut]:
    """Accounts as the admin sees them: with whether a second factor is set up."""
    ids = [u.id for u in users]
    with_factor = set(
        (
            await session.execute(
                select(SecondFactor.user_id).where(
                    col(SecondFactor.user_id).in_(ids), col(SecondFactor.confirmed_at).is_not(None)
                )
            )
        )
        .scalars()
        .all()
    )
    return [
        UserOut.model_validate(u).model_copy(
            update={"second_factor": u.id in with_factor, "single_sign_on": bool(u.oidc_subject)}
        )
        for u in users
    ]


async def all_users(session: AsyncSession) -> list[UserOut]:
    users = (await session.execute(select(User).order_by(col(User.id)))).scalars().all()
    return await users_out(session, users)


async def check_assignment(
    session: AsyncSession, *, role: Role, practice_id: int | None, specialty_id: int | None
) -> None:
    """A GP belongs to an existing practice, a specialist to an existing specialty; nobody
    else to either."""
    if role is Role.GP and practice_id is None:
        raise _field("practice_id", "Eine Hausärztin bzw. ein Hausarzt braucht eine Praxis.")
    if role is Role.SPECIALIST and specialty_id is None:
        raise _field("specialty_id", "Eine Fachärztin bzw. ein Facharzt braucht ein Fachgebiet.")
    if role is not Role.GP and practice_id is not None:
        raise _field("practice_id", "Nur Hausärztinnen und Hausärzte gehören zu einer Praxis.")
    if role is not Role.SPECIALIST and specialty_id is not None:
        raise _field("specialty_id", "Nur Fachärztinnen und Fachärzte haben ein Fachgebiet.")
    if practice_id is not None and await session.get(Practice, practice_id) is None:
        raise _field("practice_id", "Diese Praxis gibt es nicht.")
    if specialty_id is not None and await session.get(Specialty, specialty_id) is None:
        raise _field("specialty_id", "Dieses Fachgebiet gibt es nicht.")


async def update_user(
    session: AsyncSession, *, actor_id: int, user_id: int, patch: UserPatch
) -> User:
    """Changes the fields sent in ``patch``. A changed role ends the account's sessions (its
    pages and permissions change), so does deactivating it. Admins cannot take their own admin
    role or deactivate themselves (so there is always one admin left who can undo it)."""
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("Dieses Konto gibt es nicht.")
    _protect_self(actor_id=actor_id, user_id=user_id, patch=patch)
    role = patch.role if patch.role is not None else user.role
    practice_id, specialty_id = _assignment(user, patch, role)
    await check_assignment(session, role=role, practice_id=practice_id, specialty_id=specialty_id)
    changes: list[tuple[str, dict[str, Any]]] = []
    if patch.display_name is not None and patch.display_name != user.display_name:
        user.display_name = patch.display_name
        changes.append(("user.renamed", {}))
    role_changed = role is not user.role
    if role_changed:
        user.role = role
        changes.append(("user.role_changed", {}))
    if practice_id != user.practice_id:
        user.practice_id = practice_id
        changes.append(("user.practice_changed", {"practice_id": practice_id}))
    if specialty_id != user.specialty_id:
        user.specialty_id = specialty_id
        changes.append(("user.specialty_changed", {"specialty_id": specialty_id}))
    lanr = patch.lanr if "lanr" in patch.model_fields_set else user.lanr
    if role is Role.ADMIN:
        if "lanr" in patch.model_fields_set and lanr is not None:
            raise _field("lanr", accounts.ADMIN_HAS_NO_LANR)
        lanr = None  # an admin has none, also one who was a doctor before
    if lanr != user.lanr:
        user.lanr = lanr
        changes.append(("user.lanr_changed", {}))
    if patch.is_active is not None and patch.is_active != user.is_active:
        await accounts.set_active(session, user_id=user_id, active=patch.is_active)
        changes.append(("user.activated" if patch.is_active else "user.deactivated", {}))
    if role_changed and user.is_active:
        await accounts.end_sessions_of(session, user_id=user_id)
    for action, ids in changes:
        audit.record(
            session, action=action, actor_kind="staff", actor_id=actor_id, target=user_id, **ids
        )
    await session.flush()
    return user


def _assignment(user: User, patch: UserPatch, role: Role) -> tuple[int | None, int | None]:
    """The practice and specialty after ``patch``: as sent; else kept if they fit the (new)
    role, else none (the old role's practice or specialty does not carry over)."""
    given = patch.model_fields_set
    practice_id = patch.practice_id if "practice_id" in given else user.practice_id
    specialty_id = patch.specialty_id if "specialty_id" in given else user.specialty_id
    if "practice_id" not in given and role is not Role.GP:
        practice_id = None
    if "specialty_id" not in given and role is not Role.SPECIALIST:
        specialty_id = None
    return practice_id, specialty_id


def _protect_self(*, actor_id: int, user_id: int, patch: UserPatch) -> None:
    if user_id != actor_id:
        return
    if patch.role is not None and patch.role is not Role.ADMIN:
        raise Conflict("Sie können sich die Rolle Administrator nicht selbst nehmen.")
    if patch.is_active is False:
        raise Conflict("Sie können Ihr eigenes Konto nicht deaktivieren.")


async def create_practice(session: AsyncSession, *, actor_id: int, data: PracticeIn) -> Practice:
    practice = Practice(
        name=data.name, town=data.town, phone=phones.normalise(data.phone), bsnr=data.bsnr
    )
    session.add(practice)
    await session.flush()
    audit.record(
        session,
        action="practice.created",
        actor_kind="staff",
        actor_id=actor_id,
        practice_id=practice.id,
    )
    return practice


async def update_practice(
    session: AsyncSession, *, actor_id: int, practice_id: int, patch: PracticePatch
) -> Practice:
    """Changes the fields sent in ``patch``; an empty or null ``phone`` removes the number."""
    practice = await session.get(Practice, practice_id)
    if practice is None:
        raise NotFound("Diese Praxis gibt es nicht.")
    if patch.name is not None:
        practice.name = patch.name
    if patch.town is not None:
        practice.town = patch.town
    if "phone" in patch.model_fields_set:
        practice.phone = phones.normalise(patch.phone)
    if "bsnr" in patch.model_fields_set:
        practice.bsnr = patch.bsnr
    await session.flush()
    audit.record(
        session,
        action="practice.updated",
        actor_kind="staff",
        actor_id=actor_id,
        practice_id=practice_id,
    )
    return practice


def _field(name: str, message: str) -> InvalidInput:
    return InvalidInput(message, fields=[{"field": name, "message": message}])
