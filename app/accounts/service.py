"""Staff login and logout, server-side sessions for staff and patients, account creation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import case, delete, func, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from app.accounts import devices as devices_
from app.accounts import factors
from app.accounts.models import AuthSession, Practice, Role, SessionKind, SessionStage, User
from app.accounts.passwords import (
    MIN_PASSWORD_LENGTH,
    PasswordWorkers,
    hash_password,
    needs_rehash,
)
from app.audit import service as audit
from app.db import unit_of_work, utcnow
from app.errors import (
    Conflict,
    InvalidCredentials,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    Unavailable,
)
from app.events import outbox
from app.events.types import AccountDeactivated, SessionEnded
from app.presence.models import SpecialistPresence
from app.scheduling.models import Specialty
from app.settings import Settings
from app.throttle import Budget, OnSuccess, Policy, Throttle, paced_refusals
from app.tokens import new_token, session_key, token_hash

ADMIN_HAS_NO_LANR = "Eine LANR haben nur Ärztinnen und Ärzte, kein Administratorkonto."


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is behind a request or websocket: a staff member or a patient of one appointment.
    (Slots: every open websocket holds its principal for as long as it is open.)"""

    kind: SessionKind
    session_id: str
    csrf_token: str
    user_id: int | None = None
    role: Role | None = None
    display_name: str = ""
    appointment_id: int | None = None
    stage: SessionStage = SessionStage.FULL
    # When the password or a second factor was last shown in this session (re-auth).
    verified_at: datetime | None = None
    # The session's last activity when this request came (idle timeout).
    last_seen_at: datetime | None = None
    # The OpenID provider that vouched for this staff session (single sign-on), else None.
    oidc_issuer: str | None = None
    # The registered FHIR system client (its row id) acting as this staff member, else None:
    # its audit rows name it beside the doctor (``app.audit.service.record_for``).
    fhir_client: int | None = None

    @property
    def is_staff(self) -> bool:
        return self.kind is SessionKind.STAFF

    @property
    def is_patient(self) -> bool:
        return self.kind is SessionKind.PATIENT

    @property
    def is_guest(self) -> bool:
        return self.kind is SessionKind.GUEST


@dataclass(frozen=True)
class NewSession:
    token: str
    principal: Principal


@dataclass(frozen=True)
class Login:
    new_session: NewSession
    device_token: str  # for the browser's known-devices cookie (``app.accounts.devices``)


def login_policy(settings: Settings, name: str, free: int, on_success: OnSuccess) -> Policy:
    """A guessing budget named ``name`` with the login throttle's numbers: ``free`` attempts
    in the window, then exponential back-off (docs/deploy.md, "Login throttling")."""
    return Policy(
        name,
        free,
        window_seconds=settings.login_window_minutes * 60,
        max_seconds=settings.login_max_delay_seconds,
        on_success=on_success,
        base_seconds=settings.login_first_delay_seconds,
    )


def login_budgets(
    settings: Settings, *, subject: str, ip: str | None, device: str | None
) -> list[Budget]:
    """What a login attempt is counted against (docs/deploy.md, "Login throttling").

    From a browser that logged in to this account before: that browser's own budget only.
    Otherwise: the account on this address, the address, and the account from everywhere.
    """
    own, shared = settings.login_free_attempts, settings.login_free_attempts_shared
    if device is not None:
        budget = login_policy(settings, "login-device", own, OnSuccess.RESET)
        return [Budget(budget, f"{subject}|{device}")]
    address = ip or "unknown"
    return [
        Budget(login_policy(settings, "login-pair", own, OnSuccess.RESET), f"{subject}|{address}"),
        Budget(login_policy(settings, "login-address", shared, OnSuccess.REFUND), address),
        Budget(login_policy(settings, "login-account", shared, OnSuccess.REFUND), subject),
    ]


def code_budgets(settings: Settings, *, user_id: int, ip: str | None) -> list[Budget]:
    """What a guess at a second-factor code (or the password at re-auth) is counted against:
    the account on this address, the address, and the account from everywhere, as a login
    from an unknown browser. Someone guessing from one address runs out of the first long
    before the account's, so the real user elsewhere still gets in."""
    own, shared = settings.login_free_attempts, settings.login_free_attempts_shared
    account, address = f"user:{user_id}", ip or "unknown"
    return [
        Budget(login_policy(settings, "code-pair", own, OnSuccess.RESET), f"{account}|{address}"),
        Budget(login_policy(settings, "code-address", shared, OnSuccess.REFUND), address),
        Budget(login_policy(settings, "code-account", shared, OnSuccess.REFUND), account),
    ]


async def login(
    sessions: async_sessionmaker[AsyncSession],
    *,
    settings: Settings,
    throttle: Throttle,
    passwords: PasswordWorkers,
    email: str,
    password: str,
    ip: str | None,
    devices: str | None,
    user_agent: str = "",
) -> Login:
    """Checks the password and opens a staff session. Same answer for unknown and wrong.

    The throttles are reserved before anything is checked; no database connection is held
    while the password is hashed (in a worker thread). ``devices`` is the browser's
    known-devices cookie. An account with a second factor (or one its role requires) gets a
    session that can only complete the sign-in (``SessionStage``).
    """
    secret = settings.secret_key.get_secret_value()
    subject = audit.subject_key(secret, email)
    now = utcnow()
    device = devices_.known(secret, subject, devices, now)
    async with paced_refusals(settings.login_refusal_pace_seconds):
        passwords.refuse_if_busy()
        reservation = await throttle.reserve(
            login_budgets(settings, subject=subject, ip=ip, device=device)
        )
    try:
        async with sessions() as session:
            user = (
                await session.execute(
                    select(User).where(func.lower(col(User.email)) == email.strip().lower())
                )
            ).scalar_one_or_none()
        # The hash is checked first in every case, so a deactivated account answers as slowly
        # as an active one and its existence does not show.
        password_ok = await passwords.verify(user.password_hash if user else None, password)
    except Unavailable:
        await reservation.release()  # nothing was checked
        raise
    if user is None or not user.is_active or not password_ok:
        async with unit_of_work(sessions) as session:
            audit.record(
                session, action="login.failure", actor_kind="anonymous", subject=subject, ip=ip
            )
        raise InvalidCredentials()
    assert user.password_hash is not None  # verified against it
    rehashed = await passwords.hash(password) if needs_rehash(user.password_hash) else None
    async with unit_of_work(sessions) as session:
        if rehashed is not None:
            await session.execute(
                update(User).where(col(User.id) == user.id).values(password_hash=rehashed)
            )
        stage = await first_stage(session, settings=settings, user=user)
        new = open_staff_session(
            session, settings=settings, user=user, stage=stage, ip=ip, user_agent=user_agent
        )
        audit.record(
            session,
            action="login.success" if stage is SessionStage.FULL else "login.password",
            actor_kind="staff",
            actor_id=user.id,
            ip=ip,
        )
    await reservation.succeeded()
    return Login(new, devices_.issue(secret, subject, now, nonce=device))


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"Das Passwort muss mindestens {MIN_PASSWORD_LENGTH} Zeichen haben.")


def new_password_hash(password: str) -> str:
    """Checks and hashes a new password on the calling thread (command line, seed data)."""
    check_new_password(password)
    return hash_password(password)


# A session waiting for its second factor or for enrolment lives this long at most.
PARTIAL_SESSION_TTL = {SessionStage.SECOND_FACTOR: timedelta(minutes=10)}
ENROL_SESSION_TTL = timedelta(minutes=30)


def open_staff_session(
    session: AsyncSession,
    *,
    settings: Settings,
    user: User,
    stage: SessionStage = SessionStage.FULL,
    ip: str | None = None,
    user_agent: str = "",
    oidc_issuer: str | None = None,
) -> NewSession:
    """A staff session for ``user`` at ``stage`` (the caller has checked who it is), after a
    password or a single sign-on (``oidc_issuer``: the provider that vouched for the user;
    logging out ends its session there too)."""
    ttl = timedelta(minutes=settings.session_ttl_minutes)
    if stage is SessionStage.SECOND_FACTOR:
        ttl = min(ttl, PARTIAL_SESSION_TTL[stage])
    elif stage is SessionStage.ENROL:
        ttl = min(ttl, ENROL_SESSION_TTL)
    return _open_session(
        session,
        kind=SessionKind.STAFF,
        ttl=ttl,
        user=user,
        stage=stage,
        ip=ip or "",
        user_agent=user_agent[:200],
        oidc_issuer=oidc_issuer,
    )


async def first_stage(session: AsyncSession, *, settings: Settings, user: User) -> SessionStage:
    """Where a session starts after the password (or a provider that did not vouch for a second
    factor): the second factor if the account has one, its set-up if the role requires one."""
    assert user.id is not None
    if await factors.has_factor(session, user.id):
        return SessionStage.SECOND_FACTOR
    if settings.second_factor_required(user.role.value):
        return SessionStage.ENROL
    return SessionStage.FULL


async def promote(session: AsyncSession, *, settings: Settings, who: Principal) -> NewSession:
    """Replaces a session whose second factor was just shown (or set up) by a fully signed-in
    one with a new token, so a token seen before the second factor is worth nothing after."""
    row = await session.get(AuthSession, who.session_id)
    user = await session.get(User, who.user_id) if who.user_id is not None else None
    # Only one fully signed-in session per partial one: of two requests that both showed a
    # factor (a code here, a passkey there), the one that does not end it gets nothing; nor
    # does an account deactivated or a session ended (logout) meanwhile.
    if (
        row is None
        or user is None
        or not user.is_active
        or not await end_session(session, session_id=who.session_id)
    ):
        raise NotAuthenticated("Die Anmeldung ist abgelaufen. Bitte melden Sie sich neu an.")
    return open_staff_session(
        session,
        settings=settings,
        user=user,
        ip=row.ip,
        user_agent=row.user_agent,
        oidc_issuer=row.oidc_issuer,
    )


async def confirms_at_provider(session: AsyncSession, *, user_id: int) -> bool:
    """Whether the account confirms sensitive actions by signing in at the OpenID provider
    again: it has neither a password nor a second factor (single sign-on only)."""
    user = await session.get(User, user_id)
    return (
        user is not None
        and user.password_hash is None
        and user.oidc_subject is not None
        and not await factors.has_factor(session, user_id)
    )


async def mark_verified(session: AsyncSession, *, session_id: str) -> None:
    """Records that the password or a second factor was just shown again (re-auth)."""
    await session.execute(
        update(AuthSession).where(col(AuthSession.id) == session_id).values(verified_at=utcnow())
    )


def open_link_session(
    session: AsyncSession,
    *,
    settings: Settings,
    kind: Literal[SessionKind.PATIENT, SessionKind.GUEST],
    appointment_id: int,
    not_after: datetime,
) -> NewSession:
    """A session opened with a link for one appointment: the patient's (join link) or the
    invited guest's (guest link), which may only take part in that appointment's call. It never
    outlives the link it came from."""
    ttl = timedelta(minutes=settings.patient_session_ttl_minutes)
    ttl = min(ttl, max(not_after - utcnow(), timedelta(0)))
    return _open_session(session, kind=kind, ttl=ttl, appointment_id=appointment_id)


def open_patient_session(
    session: AsyncSession, *, settings: Settings, appointment_id: int, not_after: datetime
) -> NewSession:
    """The patient's session of one appointment, made when a join link is redeemed."""
    return open_link_session(
        session,
        settings=settings,
        kind=SessionKind.PATIENT,
        appointment_id=appointment_id,
        not_after=not_after,
    )


def _open_session(
    session: AsyncSession,
    *,
    kind: SessionKind,
    ttl: timedelta,
    user: User | None = None,
    appointment_id: int | None = None,
    stage: SessionStage = SessionStage.FULL,
    ip: str = "",
    user_agent: str = "",
    oidc_issuer: str | None = None,
) -> NewSession:
    token = new_token()
    now = utcnow()
    row = AuthSession(
        id=token_hash(token),
        kind=kind,
        user_id=user.id if user else None,
        appointment_id=appointment_id,
        csrf_token=new_token(),
        created_at=now,
        expires_at=now + ttl,
        last_seen_at=now,
        verified_at=now,
        stage=stage,
        ip=ip,
        user_agent=user_agent,
        oidc_issuer=oidc_issuer,
    )
    session.add(row)
    return NewSession(token=token, principal=_principal(row, user))


# The idle clock is written at most this often per session (not on every request).
TOUCH_EVERY = timedelta(seconds=60)


async def resolve(
    session: AsyncSession,
    *,
    token: str,
    kind: SessionKind,
    idle: timedelta | None = None,
    touch_it: bool = True,
) -> Principal | None:
    """The principal behind a session cookie, or None if unknown, ended, expired or (staff,
    with ``idle``) unused for longer than ``idle``. Counts this request as activity."""
    row = await session.get(AuthSession, token_hash(token))
    now = utcnow()
    if row is None or row.kind != kind or not is_live(row, now=now, idle=idle):
        return None
    user = None
    if row.user_id is not None:
        user = await session.get(User, row.user_id)
        if user is None or not user.is_active:
            return None
    wrote = False
    if row.stage is SessionStage.ENROL and row.user_id is not None:
        wrote = await _ask_for_factor_if_enrolled(session, row, now)
    found = _principal(row, user)
    if touch_it and now - row.last_seen_at >= TOUCH_EVERY:
        staff_idle = idle if kind is SessionKind.STAFF else None
        if not await touch(session, session_id=row.id, now=now, idle=staff_idle, stage=row.stage):
            return None  # ended or timed out since it was read
        wrote = True
    if wrote:
        await session.commit()
    return found


def is_live(row: AuthSession, *, now: datetime, idle: timedelta | None) -> bool:
    """Whether a session is still live at ``now``: not ended, not past its end and (a staff
    session, with ``idle``) used within ``idle``. The same rule as ``touch`` writes."""
    if row.ended_at is not None or row.expires_at <= now:
        return False
    return idle is None or row.kind is not SessionKind.STAFF or row.last_seen_at + idle > now


async def _ask_for_factor_if_enrolled(
    session: AsyncSession, row: AuthSession, now: datetime
) -> bool:
    """A session waiting for its set-up whose account got a second factor elsewhere (another
    tab or device) asks for that factor now instead of offering a set-up again, with the
    second-factor step's shorter lifetime. Returns whether it moved."""
    assert row.user_id is not None
    if not await factors.has_factor(session, row.user_id):
        return False
    expires = min(row.expires_at, now + PARTIAL_SESSION_TTL[SessionStage.SECOND_FACTOR])
    moved = await session.execute(
        update(AuthSession)
        .where(col(AuthSession.id) == row.id, col(AuthSession.stage) == SessionStage.ENROL)
        .values(stage=SessionStage.SECOND_FACTOR, expires_at=expires)
    )
    # (``row`` follows: the ORM update synchronises the loaded object.)
    return bool(getattr(moved, "rowcount", 0))


async def touch(
    session: AsyncSession,
    *,
    session_id: str,
    now: datetime,
    idle: timedelta | None,
    stage: SessionStage = SessionStage.FULL,
) -> bool:
    """Counts as activity for the idle timeout (a request, a page, a websocket message), but
    only for a session that is still live: not ended, not past its end, used within ``idle``
    (None: no idle timeout, patients) and at ``stage``. Returns whether it was: a session that
    has timed out is never revived by a late message."""
    live = [
        col(AuthSession.id) == session_id,
        col(AuthSession.ended_at).is_(None),
        col(AuthSession.expires_at) > now,
        col(AuthSession.stage) == stage,
    ]
    if idle is not None:
        live.append(col(AuthSession.last_seen_at) > now - idle)
    seen = col(AuthSession.last_seen_at)
    result = await session.execute(
        update(AuthSession)
        .where(*live)
        # Never backwards: another request may have written a later time meanwhile.
        .values(last_seen_at=case((seen < now, now), else_=seen))
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


@dataclass(frozen=True)
class OpenSession:
    """One of a staff member's own sessions, as listed to them."""

    key: str
    created_at: datetime
    last_seen_at: datetime
    user_agent: str
    ip: str
    current: bool


async def own_sessions(
    session: AsyncSession, *, who: Principal, idle: timedelta
) -> list[OpenSession]:
    """The staff member's sessions that are still open, newest activity first."""
    now = utcnow()
    rows = await session.execute(
        select(AuthSession)
        .where(
            col(AuthSession.user_id) == who.user_id,
            col(AuthSession.kind) == SessionKind.STAFF,
            col(AuthSession.stage) == SessionStage.FULL,
            col(AuthSession.ended_at).is_(None),
            col(AuthSession.expires_at) > now,
            col(AuthSession.last_seen_at) > now - idle,
        )
        .order_by(col(AuthSession.last_seen_at).desc())
    )
    return [
        OpenSession(
            key=session_key(row.id),
            created_at=row.created_at,
            last_seen_at=row.last_seen_at,
            user_agent=row.user_agent,
            ip=row.ip,
            current=row.id == who.session_id,
        )
        for row in rows.scalars().all()
    ]


async def end_own_session(session: AsyncSession, *, who: Principal, key: str) -> None:
    """Ends one of the staff member's own sessions, named by its key (``own_sessions``)."""
    rows = await session.execute(
        select(AuthSession.id).where(
            col(AuthSession.user_id) == who.user_id,
            col(AuthSession.kind) == SessionKind.STAFF,
            col(AuthSession.ended_at).is_(None),
        )
    )
    for (session_id,) in rows.all():
        if session_key(session_id) == key:
            await end_session(session, session_id=session_id)
            return
    raise NotFound("Diese Sitzung gibt es nicht oder sie ist schon beendet.")


async def end_session(session: AsyncSession, *, session_id: str) -> bool:
    """Ends a session for good: the cookie is worthless afterwards, even if replayed, and its
    open websockets close. False if it had ended already."""
    result = await session.execute(
        update(AuthSession)
        .where(col(AuthSession.id) == session_id, col(AuthSession.ended_at).is_(None))
        .values(ended_at=utcnow())
    )
    if not getattr(result, "rowcount", 0):
        return False
    outbox.record(session, SessionEnded(session_key=session_key(session_id)))
    return True


# Sessions ended per round of the idle sweep (a backlog is worked off in the next rounds).
SWEEP_BATCH = 500


async def end_idle_sessions(
    session: AsyncSession, *, now: datetime, idle: timedelta, limit: int = SWEEP_BATCH
) -> int:
    """Ends staff sessions unused for ``idle`` or past their absolute end, so that their open
    websockets close too (``SessionEnded``): a socket is authorised once, and a dashboard
    nobody touches sends nothing that would find out. Each is ended by a conditional UPDATE,
    so activity that came in meanwhile wins, and two processes never both end one."""
    over = (col(AuthSession.last_seen_at) <= now - idle) | (col(AuthSession.expires_at) <= now)
    live_staff = (
        col(AuthSession.kind) == SessionKind.STAFF,
        col(AuthSession.ended_at).is_(None),
    )
    ids = (
        await session.execute(select(AuthSession.id).where(*live_staff, over).limit(limit))
    ).scalars()
    ended = 0
    for session_id in list(ids):
        result = await session.execute(
            update(AuthSession)
            .where(col(AuthSession.id) == session_id, *live_staff, over)
            .values(ended_at=now)
        )
        if getattr(result, "rowcount", 0):
            outbox.record(session, SessionEnded(session_key=session_key(session_id)))
            ended += 1
    return ended


def _principal(row: AuthSession, user: User | None) -> Principal:
    return Principal(
        kind=row.kind,
        session_id=row.id,
        csrf_token=row.csrf_token,
        user_id=user.id if user else None,
        role=user.role if user else None,
        display_name=user.display_name if user else "",
        appointment_id=row.appointment_id,
        stage=row.stage,
        verified_at=row.verified_at,
        last_seen_at=row.last_seen_at,
        oidc_issuer=row.oidc_issuer,
    )


async def set_active(session: AsyncSession, *, user_id: int, active: bool) -> User:
    """Activates or deactivates a staff account; deactivating ends all its sessions at once."""
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("Dieses Konto gibt es nicht.")
    user.is_active = active
    if not active:
        await end_sessions_of(session, user_id=user_id)
        # Away for good: reactivated, the specialist is not on duty until they say so.
        await session.execute(
            delete(SpecialistPresence).where(col(SpecialistPresence.user_id) == user_id)
        )
    return user


async def end_sessions_of(session: AsyncSession, *, user_id: int) -> None:
    """Ends every session of a staff account at once, and closes its websockets."""
    outbox.record(session, AccountDeactivated(user_id=user_id))
    await session.execute(
        update(AuthSession)
        .where(col(AuthSession.user_id) == user_id, col(AuthSession.ended_at).is_(None))
        .values(ended_at=utcnow())
    )


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password_hash: str | None,
    display_name: str,
    role: Role,
    practice_id: int | None = None,
    specialty_id: int | None = None,
    lanr: str | None = None,
) -> User:
    """Creates a staff account (``password_hash`` from ``new_password_hash`` or
    ``PasswordWorkers.hash``, after ``check_new_password``; None for an account that logs in
    only by single sign-on). GPs belong to a practice, specialists to a specialty."""
    if role is Role.GP and practice_id is None:
        raise InvalidInput("Eine Hausärztin bzw. ein Hausarzt braucht eine Praxis.")
    if role is Role.SPECIALIST and specialty_id is None:
        raise InvalidInput("Eine Fachärztin bzw. ein Facharzt braucht ein Fachgebiet.")
    if role is Role.ADMIN and lanr is not None:
        raise InvalidInput(fields=[{"field": "lanr", "message": ADMIN_HAS_NO_LANR}])
    normalized = email.strip().lower()
    existing = await session.execute(
        select(User.id).where(func.lower(col(User.email)) == normalized)
    )
    if existing.first() is not None:
        raise Conflict("Diese E-Mail-Adresse ist schon vergeben.")
    # Checked here, not left to the foreign keys: their violation would be a server error.
    if practice_id is not None and await session.get(Practice, practice_id) is None:
        raise InvalidInput(
            fields=[{"field": "practice_id", "message": "Diese Praxis gibt es nicht."}]
        )
    if specialty_id is not None and await session.get(Specialty, specialty_id) is None:
        raise InvalidInput(
            fields=[{"field": "specialty_id", "message": "Dieses Fachgebiet gibt es nicht."}]
        )
    user = User(
        email=normalized,
        display_name=display_name,
        role=role,
        password_hash=password_hash,
        practice_id=practice_id,
        specialty_id=specialty_id,
        lanr=lanr,
    )
    session.add(user)
    await session.flush()
    return user
