"""Patient join links: issue, revoke and redeem.

A link is ``{base_url}/join#<token>``: 256 random bits in the URL fragment, which browsers never
send to a server. Only the token's SHA-256 is stored, and, while Konsil is to send the link
to the patient itself, the token sealed with a key from ``KONSIL_SECRET_KEY``. A link is valid
from ``starts_at - link_early_minutes`` until ``ends_at + link_grace_minutes``; issuing a new
one revokes the old.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, Protocol, TypeVar

from cryptography.fernet import InvalidToken
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts import service as accounts
from app.accounts.models import SessionKind
from app.accounts.service import NewSession, Principal
from app.audit import service as audit
from app.db import unit_of_work, utcnow
from app.errors import (
    KonsilError,
    LinkExpired,
    LinkInvalid,
    LinkNotYetValid,
    NotFound,
)
from app.events import outbox
from app.events.types import LinkIssued, LinkReason, LinkRevoked, PatientSessionsEnded
from app.rooms.state import is_closed
from app.scheduling import repository as repo
from app.scheduling.access import require_video
from app.scheduling.models import Appointment, AppointmentStatus, JoinToken
from app.scheduling.schemas import GuestMeOut, PatientAppointmentOut
from app.settings import Settings
from app.throttle import Budget, OnSuccess, Policy, Throttle, paced_refusals
from app.tokens import fernet, new_token, session_key, token_hash

TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{32,128}$")
ENDED_STATUSES = frozenset({AppointmentStatus.COMPLETED, AppointmentStatus.NO_SHOW})
_SEAL_KEY = b"konsil.join-link.sealed"


@dataclass(frozen=True)
class IssuedLink:
    """A new link. The token exists only here and in the patient's hands."""

    token: str
    join_url: str
    valid_from: datetime
    valid_until: datetime


@dataclass(frozen=True)
class Redemption:
    new_session: NewSession
    summary: PatientAppointmentOut


def window(appointment: Appointment, settings: Settings) -> tuple[datetime, datetime]:
    return (
        appointment.starts_at - timedelta(minutes=settings.link_early_minutes),
        appointment.ends_at + timedelta(minutes=settings.link_grace_minutes),
    )


def seal(settings: Settings, token: str) -> str:
    """The token encrypted for Konsil's own later use (sending it by e-mail, again on resend)."""
    return (
        fernet(settings.secret_key.get_secret_value(), _SEAL_KEY).encrypt(token.encode()).decode()
    )


def unseal(settings: Settings, sealed: str) -> str | None:
    """The token, or None if it was sealed under another KONSIL_SECRET_KEY."""
    try:
        return fernet(settings.secret_key.get_secret_value(), _SEAL_KEY).decrypt(sealed).decode()
    except InvalidToken:
        return None


def join_url(settings: Settings, token: str) -> str:
    return f"{settings.base_url.rstrip('/')}/join#{token}"


async def issue(
    session: AsyncSession,
    *,
    settings: Settings,
    appointment: Appointment,
    who: Principal,
    now: datetime,
    action: str = "link.issued",
    reason: LinkReason = "booked",
) -> IssuedLink:
    """Revokes every earlier link of the appointment (and their patient sessions), issues one.

    When Konsil is to send the link itself (the GP chose e-mail or SMS: the invitation, the
    reminders), the token is kept sealed with the link; otherwise only its hash is stored."""
    assert appointment.id is not None
    require_video(appointment)
    if await repo.revoke_links(session, appointment.id, now):
        await _end_patient_sessions(session, appointment.id, now)
    token = new_token()
    valid_from, valid_until = window(appointment, settings)
    link = JoinToken(
        appointment_id=appointment.id,
        token_hash=token_hash(token),
        valid_from=valid_from,
        valid_until=valid_until,
        created_at=now,
        sealed=seal(settings, token) if appointment.patient_channels else None,
    )
    session.add(link)
    await session.flush()
    audit.record_for(session, who, action, appointment.id)
    outbox.record(
        session, LinkIssued(appointment_id=appointment.id, link_id=link.id, reason=reason)
    )
    return IssuedLink(
        token=token,
        join_url=join_url(settings, token),
        valid_from=valid_from,
        valid_until=valid_until,
    )


async def revoke(
    session: AsyncSession, *, appointment: Appointment, who: Principal | None, now: datetime
) -> int:
    """Revokes the appointment's links and ends the patient sessions opened with them."""
    assert appointment.id is not None
    count = await repo.revoke_links(session, appointment.id, now)
    await _end_patient_sessions(session, appointment.id, now)
    if count:
        outbox.record(session, LinkRevoked(appointment_id=appointment.id))
    if who is not None:
        audit.record_for(session, who, "link.revoked", appointment.id, revoked=count)
    return count


def link_budget(settings: Settings, ip: str | None) -> Budget:
    """Tokens cannot be guessed (256 bits); this only stops a client hammering the endpoint:
    ``login_free_attempts_shared`` failed redemptions per address, then back-off."""
    policy = Policy(
        "link-address",
        settings.login_free_attempts_shared,
        window_seconds=settings.login_window_minutes * 60,
        max_seconds=settings.login_max_delay_seconds,
        on_success=OnSuccess.REFUND,
        base_seconds=settings.login_first_delay_seconds,
    )
    return Budget(policy, ip or "unknown")


async def _open(
    session: AsyncSession, link: JoinToken, appointment: Appointment, at: Opening
) -> tuple[Redemption, None]:
    assert appointment.id is not None
    link.last_redeemed_at = at.now
    # One patient per consultation: the link opened on another device (or again) takes over,
    # and the sessions opened with it before end (and their websockets close).
    ended = await repo.end_patient_sessions(session, appointment.id, at.now)
    new = accounts.open_patient_session(
        session, settings=at.settings, appointment_id=appointment.id, not_after=link.valid_until
    )
    if ended:
        keep = session_key(new.principal.session_id)
        outbox.record(session, PatientSessionsEnded(appointment_id=appointment.id, keep=keep))
    audit.record(
        session,
        action="link.redeemed",
        actor_kind="patient",
        appointment_id=appointment.id,
        ip=at.ip,
    )
    if at.own_session is not None:
        # One browser, one patient session: opening a new link ends the old session.
        await accounts.end_session(session, session_id=at.own_session)
    summary = await patient_summary(
        session, appointment_id=appointment.id, csrf_token=new.principal.csrf_token
    )
    return Redemption(new_session=new, summary=summary), None


async def _end_patient_sessions(session: AsyncSession, appointment_id: int, now: datetime) -> None:
    """Ends the appointment's patient sessions and records it, so their websockets close too."""
    if await repo.end_patient_sessions(session, appointment_id, now):
        outbox.record(session, PatientSessionsEnded(appointment_id=appointment_id))


class Windowed(Protocol):
    """A link with a validity window that can be revoked (a join link, a guest invitation)."""

    @property
    def appointment_id(self) -> int: ...
    @property
    def revoked_at(self) -> datetime | None: ...
    @property
    def valid_from(self) -> datetime: ...
    @property
    def valid_until(self) -> datetime: ...


def refusal(
    link: Windowed | None,
    appointment: Appointment | None,
    *,
    settings: Settings,
    now: datetime,
) -> KonsilError | None:
    """Why the link's window and its appointment's state say no, or None: unknown or revoked,
    the appointment cancelled or over, too early or too late."""
    if link is None or appointment is None:
        return LinkInvalid()
    if appointment.status == AppointmentStatus.CANCELLED:
        return LinkExpired("Dieser Termin wurde abgesagt.", reason="cancelled")
    if link.revoked_at is not None:
        return LinkInvalid()
    if appointment.status in ENDED_STATUSES or is_closed(appointment.room_state):
        return LinkExpired("Diese Video-Sprechstunde ist bereits beendet.", reason="ended")
    if now < link.valid_from:
        local = link.valid_from.astimezone(settings.tz)
        return LinkNotYetValid(
            f"Der Link ist ab {local:%d.%m.%Y, %H:%M} Uhr gültig.",
            valid_from=link.valid_from.isoformat(),
        )
    if now > link.valid_until:
        return LinkExpired()
    return None


# ---------------------------------------------------------------- redeeming either kind


@dataclass(frozen=True)
class Opening:
    """One redemption's circumstances, handed to the link kind's ``open``."""

    settings: Settings
    ip: str | None
    own_session: str | None  # this browser's session of the link's kind, if any
    now: datetime


class Redeemed(Protocol):
    """What a redemption hands the browser: a new session for its cookie (None: the browser's
    own session stays) and what the page shows."""

    @property
    def new_session(self) -> NewSession | None: ...
    @property
    def summary(self) -> PatientAppointmentOut | GuestMeOut: ...


L = TypeVar("L", bound=Windowed)
R = TypeVar("R", bound=Redeemed)


@dataclass(frozen=True)
class LinkKind(Generic[L, R]):
    """What sets a patient's join link and a guest's invitation apart when redeemed: the
    session it opens, how the audit names a refusal, where the token's hash is found and how
    a link that passed the window check opens its session (or refuses after all)."""

    session: SessionKind
    actor: str
    rejected: str
    find: Callable[[AsyncSession, str], Awaitable[L | None]]
    open: Callable[
        [AsyncSession, L, Appointment, Opening], Awaitable[tuple[R | None, KonsilError | None]]
    ]


async def redeem(
    sessions: async_sessionmaker[AsyncSession],
    *,
    kind: LinkKind[L, R],
    settings: Settings,
    throttle: Throttle,
    token: str,
    ip: str | None,
    own_session: str | None = None,
    now: datetime | None = None,
) -> R:
    """Redeems a link of ``kind`` (``JOIN_LINK``, ``guests.GUEST_LINK``): the guessing
    throttle, the window check, the kind's own opening; a refusal is audited (and committed),
    then raised. ``own_session``: this browser's session of the kind, if any (a patient's
    ends, a guest's may open its own link again)."""
    at = Opening(settings=settings, ip=ip, own_session=own_session, now=now or utcnow())
    async with paced_refusals(settings.login_refusal_pace_seconds):
        reservation = await throttle.reserve([link_budget(settings, ip)])
    async with unit_of_work(sessions) as session:
        link = await kind.find(session, token_hash(token)) if TOKEN_SHAPE.match(token) else None
        appointment = await session.get(Appointment, link.appointment_id) if link else None
        refused = refusal(link, appointment, settings=settings, now=at.now)
        redeemed = None
        if refused is None and link is not None and appointment is not None:
            redeemed, refused = await kind.open(session, link, appointment, at)
        if refused is not None:
            audit.record(
                session,
                action=kind.rejected,
                actor_kind=kind.actor,
                appointment_id=appointment.id if appointment else None,
                ip=ip,
                reason=refused.code,
            )
    if refused is not None or redeemed is None:
        raise refused or LinkInvalid()  # its audit row is committed
    await reservation.succeeded()
    return redeemed


JOIN_LINK: LinkKind[JoinToken, Redemption] = LinkKind(
    session=SessionKind.PATIENT,
    actor="patient",
    rejected="link.rejected",
    find=repo.link_by_hash,
    open=_open,
)


async def patient_summary(
    session: AsyncSession, *, appointment_id: int, csrf_token: str
) -> PatientAppointmentOut:
    """The appointment as the patient may see it."""
    appointment = await session.get(Appointment, appointment_id)
    if appointment is None:
        raise NotFound()
    specialist, specialty = await repo.specialist_and_specialty(session, appointment)
    return PatientAppointmentOut(
        appointment_id=appointment_id,
        starts_at=appointment.starts_at,
        ends_at=appointment.ends_at,
        # Empty while an on-call request waits for a specialist: the page names the specialty.
        specialist_name=specialist.display_name if specialist else "",
        specialty=specialty.name_de if specialty else "",
        mode=appointment.mode,
        room_state=appointment.room_state,
        csrf_token=csrf_token,
    )
