"""A consultation's guest (interpreter, sign-language interpreter, carer): invite, revoke,
redeem, admit.

The specialist or the booking GP invites one guest per appointment by a link
``{base_url}/guest#<token>`` (256 random bits in the URL fragment; only the SHA-256 is stored),
valid in the same window as the patient's join link. Issuing a new invitation revokes the old
one; rescheduling revokes it too. The link is single-use: its first redemption opens a guest
session and binds the invitation to it; the same browser may open it again, any other is
refused (``LinkUsed``). A
guest session can only join that appointment's call as role ``guest`` and read
``GuestMeOut``: never the question, documents, report or the patient's name. The specialist
admits the guest (``GuestChanged`` tells every server process's room replica); a transfer
takes the admission back. In the call the guest sees the participants' names and roles and
gets the chat, like everyone in the conversation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.accounts import service as accounts
from app.accounts.models import AuthSession, SessionKind
from app.accounts.service import NewSession, Principal
from app.audit import service as audit
from app.db import utcnow
from app.errors import (
    Conflict,
    Forbidden,
    InvalidTransition,
    KonsilError,
    LinkInvalid,
    LinkUsed,
    NotFound,
)
from app.events import outbox
from app.events.types import GuestChanged
from app.rooms import service as rooms
from app.rooms.state import Actor, is_closed
from app.scheduling import links
from app.scheduling import repository as repo
from app.scheduling.access import require_video, visible_appointment
from app.scheduling.links import Opening, window
from app.scheduling.models import (
    Appointment,
    AppointmentStatus,
    GuestInvitation,
    GuestKind,
)
from app.scheduling.schemas import GuestInvitationOut, GuestIssuedOut, GuestMeOut
from app.settings import Settings
from app.tokens import new_token, token_hash


@dataclass(frozen=True)
class GuestRedemption:
    """A redeemed guest link: ``new_session`` is None when this browser's own guest session
    opened it again (its cookie stays)."""

    new_session: NewSession | None
    summary: GuestMeOut


def guest_url(settings: Settings, token: str) -> str:
    return f"{settings.base_url.rstrip('/')}/guest#{token}"


def invitation_out(invitation: GuestInvitation) -> GuestInvitationOut:
    return GuestInvitationOut(
        name=invitation.name,
        kind=invitation.kind,
        created_at=invitation.created_at,
        valid_from=invitation.valid_from,
        valid_until=invitation.valid_until,
        redeemed=invitation.session_id is not None,
        admitted=invitation.admitted_at is not None,
    )


async def active(session: AsyncSession, appointment_id: int) -> GuestInvitation | None:
    """The appointment's guest invitation that is not revoked, if any."""
    query = select(GuestInvitation).where(
        col(GuestInvitation.appointment_id) == appointment_id,
        col(GuestInvitation.revoked_at).is_(None),
    )
    return (await session.execute(query.order_by(col(GuestInvitation.id).desc()))).scalars().first()


async def admitted(session: AsyncSession, appointment_id: int) -> bool:
    """Whether the appointment's guest is admitted (what a new room replica starts from)."""
    found = await active(session, appointment_id)
    return found is not None and found.admitted_at is not None


async def of_session(session: AsyncSession, session_id: str) -> GuestInvitation | None:
    """The active invitation a guest session was opened with (its name and kind)."""
    query = select(GuestInvitation).where(
        col(GuestInvitation.session_id) == session_id, col(GuestInvitation.revoked_at).is_(None)
    )
    return (await session.execute(query)).scalars().first()


# ---------------------------------------------------------------- staff: invite, revoke, read


async def _staff_appointment(
    session: AsyncSession, who: Principal, appointment_id: int
) -> Appointment:
    """The appointment, if ``who`` is its specialist or its booking GP (else NotFound)."""
    return await visible_appointment(session, who=who, appointment_id=appointment_id, lock=True)


async def issue(
    session: AsyncSession,
    *,
    settings: Settings,
    who: Principal,
    appointment_id: int,
    name: str,
    kind: GuestKind,
    now: datetime | None = None,
) -> GuestIssuedOut:
    """Invites a guest (specialist or booking GP): revokes an earlier invitation (and ends its
    guest's session), issues a new link, shown once."""
    now = now or utcnow()
    appointment = await _staff_appointment(session, who, appointment_id)
    require_video(appointment)
    if appointment.status != AppointmentStatus.BOOKED or is_closed(appointment.room_state):
        raise InvalidTransition("Zu diesem Termin kann niemand mehr eingeladen werden.")
    await revoke_all(session, appointment_id, now)
    token = new_token()
    valid_from, valid_until = window(appointment, settings)
    invitation = GuestInvitation(
        appointment_id=appointment_id,
        token_hash=token_hash(token),
        name=name,
        kind=kind,
        valid_from=valid_from,
        valid_until=valid_until,
        created_at=now,
        created_by=who.user_id,
    )
    session.add(invitation)
    await session.flush()
    audit.record_for(session, who, "guest.issued", appointment_id, invitation=invitation.id)
    out = invitation_out(invitation)
    return GuestIssuedOut(**out.model_dump(), guest_url=guest_url(settings, token))


async def revoke(
    session: AsyncSession, *, who: Principal, appointment_id: int, now: datetime | None = None
) -> int:
    """Revokes the appointment's guest invitation (specialist or booking GP) and ends the
    guest's session: its websocket closes with 4401."""
    await _staff_appointment(session, who, appointment_id)
    count = await revoke_all(session, appointment_id, now or utcnow())
    audit.record_for(session, who, "guest.revoked", appointment_id, revoked=count)
    return count


async def current(
    session: AsyncSession, *, who: Principal, appointment_id: int
) -> GuestInvitation | None:
    """The active invitation as its staff may see it (specialist or booking GP)."""
    await visible_appointment(session, who=who, appointment_id=appointment_id)
    return await active(session, appointment_id)


async def revoke_all(session: AsyncSession, appointment_id: int, now: datetime) -> int:
    """Revokes the appointment's guest invitations and ends their guests' sessions (their
    websockets close with 4401); the replicas hear that nobody is admitted any more."""
    rows = (
        (
            await session.execute(
                select(GuestInvitation).where(
                    col(GuestInvitation.appointment_id) == appointment_id,
                    col(GuestInvitation.revoked_at).is_(None),
                )
            )
        )
        .scalars()
        .all()
    )
    for invitation in rows:
        invitation.revoked_at = now
        if invitation.session_id is not None:
            await accounts.end_session(session, session_id=invitation.session_id)
    if any(invitation.admitted_at is not None for invitation in rows):
        outbox.record(session, GuestChanged(appointment_id=appointment_id, admitted=False))
    return len(rows)


# ---------------------------------------------------------------- the specialist admits


async def admit(
    session: AsyncSession, *, who: Principal, appointment_id: int, now: datetime | None = None
) -> GuestInvitation:
    """The appointment's specialist lets the guest into the call (while the patient is in it,
    or as soon as they are). Only a guest who opened the link can be admitted."""
    appointment = await rooms.load(session, appointment_id, lock=True)
    if rooms.actor_for(appointment, who) is not Actor.SPECIALIST:
        raise Forbidden("Nur die Fachärztin bzw. der Facharzt lässt Gäste herein.")
    if is_closed(appointment.room_state):
        raise InvalidTransition("Die Konsultation ist beendet.")
    invitation = await active(session, appointment_id)
    if invitation is None or invitation.session_id is None:
        raise Conflict("Es wartet kein Gast, der hereingelassen werden könnte.")
    if invitation.admitted_at is None:
        invitation.admitted_at = now or utcnow()
        audit.record_for(session, who, "guest.admitted", appointment_id, invitation=invitation.id)
        outbox.record(session, GuestChanged(appointment_id=appointment_id, admitted=True))
    return invitation


# ---------------------------------------------------------------- the guest


async def _by_token_hash(session: AsyncSession, digest: str) -> GuestInvitation | None:
    query = select(GuestInvitation).where(col(GuestInvitation.token_hash) == digest)
    return (await session.execute(query)).scalar_one_or_none()


async def _bind(
    session: AsyncSession, invitation: GuestInvitation, appointment: Appointment, at: Opening
) -> tuple[GuestRedemption | None, KonsilError | None]:
    own, now = at.own_session, at.now
    if invitation.session_id is not None:
        if own is None or own != invitation.session_id or not await _live(session, own, now):
            return None, LinkUsed()
        summary = await guest_summary(session, invitation=invitation, csrf_token=None)
        return GuestRedemption(new_session=None, summary=summary), None
    new = accounts.open_link_session(
        session,
        settings=at.settings,
        kind=SessionKind.GUEST,
        appointment_id=invitation.appointment_id,
        not_after=invitation.valid_until,
    )
    # Conditional: of two browsers redeeming at once, exactly one binds the invitation; and a
    # revocation committed since the invitation was read leaves it unbound.
    bound = await session.execute(
        update(GuestInvitation)
        .where(
            col(GuestInvitation.id) == invitation.id,
            col(GuestInvitation.session_id).is_(None),
            col(GuestInvitation.revoked_at).is_(None),
        )
        .values(session_id=new.principal.session_id, redeemed_at=now)
        .execution_options(synchronize_session=False)
    )
    if not getattr(bound, "rowcount", 0):
        opened = await session.get(AuthSession, new.principal.session_id)
        if opened is not None:
            await session.delete(opened)
        revoked = await session.scalar(
            select(GuestInvitation.revoked_at).where(col(GuestInvitation.id) == invitation.id)
        )
        return None, LinkInvalid() if revoked is not None else LinkUsed()
    audit.record(
        session,
        action="guest.redeemed",
        actor_kind="guest",
        appointment_id=invitation.appointment_id,
        ip=at.ip,
    )
    summary = await guest_summary(
        session, invitation=invitation, csrf_token=new.principal.csrf_token
    )
    return GuestRedemption(new_session=new, summary=summary), None


GUEST_LINK: links.LinkKind[GuestInvitation, GuestRedemption] = links.LinkKind(
    session=SessionKind.GUEST,
    actor="guest",
    rejected="guest.rejected",
    find=_by_token_hash,
    open=_bind,
)


async def _live(session: AsyncSession, session_id: str, now: datetime) -> bool:
    row = await session.get(AuthSession, session_id)
    return (
        row is not None
        and row.kind is SessionKind.GUEST
        and row.ended_at is None
        and row.expires_at > now
    )


async def guest_summary(
    session: AsyncSession, *, invitation: GuestInvitation, csrf_token: str | None
) -> GuestMeOut:
    """The appointment as the guest may see it: time, the specialist, the guest's own name."""
    appointment = await session.get(Appointment, invitation.appointment_id)
    if appointment is None:
        raise NotFound()
    specialist, specialty = await repo.specialist_and_specialty(session, appointment)
    if csrf_token is None:
        row = await session.get(AuthSession, invitation.session_id or "")
        csrf_token = row.csrf_token if row is not None else ""
    return GuestMeOut(
        appointment_id=invitation.appointment_id,
        starts_at=appointment.starts_at,
        ends_at=appointment.ends_at,
        specialist_name=specialist.display_name if specialist else "",
        specialty=specialty.name_de if specialty else "",
        name=invitation.name,
        kind=invitation.kind,
        room_state=appointment.room_state,
        csrf_token=csrf_token,
    )


async def me(session: AsyncSession, *, who: Principal) -> GuestMeOut:
    """The guest's own view, for a guest session (``/api/v1/guest/me``)."""
    invitation = await of_session(session, who.session_id)
    if invitation is None:
        raise LinkInvalid()
    return await guest_summary(session, invitation=invitation, csrf_token=who.csrf_token)
