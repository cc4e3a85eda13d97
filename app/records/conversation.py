"""Questions back and answers between the booking GP and the specialist about one
consultation: the specialist asks for more data (a finding, the medication plan), the GP
answers, both read the thread on the appointment's page.

A question of the specialist opens the appointment's ``question_open_since`` (the GP's list
shows it), the GP's next message closes it. Messages are clinical content: kept and deleted
with the documents and the report (app/retention), never in a log or an audit row (ids only).
Callers own the unit of work.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.accounts.models import User
from app.accounts.service import Principal
from app.audit import service as audit
from app.db import utcnow
from app.errors import Conflict, Forbidden
from app.events import outbox
from app.events.types import QuestionAsked
from app.records.models import ConsultMessage
from app.records.schemas import MessageOut
from app.scheduling.access import is_gp_of, is_specialist_of, visible_appointment
from app.scheduling.models import AppointmentStatus

MAX_MESSAGES = 100


async def post(
    session: AsyncSession,
    *,
    who: Principal,
    appointment_id: int,
    body: str,
    now: datetime | None = None,
) -> MessageOut:
    """A message of the booking GP or the appointment's specialist (not of a cancelled one)."""
    now = now or utcnow()
    appointment = await visible_appointment(
        session, who=who, appointment_id=appointment_id, lock=True
    )
    gp, specialist = is_gp_of(who, appointment), is_specialist_of(who, appointment)
    if not (gp or specialist):
        raise Forbidden(
            "Nur die anfragende Praxis und die Fachärztin bzw. der Facharzt schreiben hier."
        )
    if appointment.status == AppointmentStatus.CANCELLED:
        raise Conflict("Der Termin wurde abgesagt.")
    count = await session.execute(
        select(func.count())
        .select_from(ConsultMessage)
        .where(col(ConsultMessage.appointment_id) == appointment_id)
    )
    if count.scalar_one() >= MAX_MESSAGES:
        raise Conflict(f"Zu diesem Termin gibt es schon {MAX_MESSAGES} Nachrichten.")
    assert who.user_id is not None
    message = ConsultMessage(
        appointment_id=appointment_id, author_id=who.user_id, body=body, created_at=now
    )
    session.add(message)
    if specialist:
        if appointment.question_open_since is None:
            assert appointment.specialist_id is not None
            outbox.record(
                session,
                QuestionAsked(
                    appointment_id=appointment_id,
                    specialist_id=appointment.specialist_id,
                    gp_id=appointment.gp_id,
                ),
            )
        appointment.question_open_since = appointment.question_open_since or now
    else:
        appointment.question_open_since = None
    await session.flush()
    audit.record_for(
        session,
        who,
        "conversation.posted",
        appointment_id,
        message_id=message.id,
        by="specialist" if specialist else "gp",
    )
    return (await _out(session, [message], appointment.gp_id))[0]


async def thread(session: AsyncSession, *, who: Principal, appointment_id: int) -> list[MessageOut]:
    """The appointment's messages, oldest first (whoever may see the appointment)."""
    appointment = await visible_appointment(session, who=who, appointment_id=appointment_id)
    found = await session.execute(
        select(ConsultMessage)
        .where(col(ConsultMessage.appointment_id) == appointment_id)
        .order_by(col(ConsultMessage.id))
    )
    return await _out(session, list(found.scalars()), appointment.gp_id)


async def _out(
    session: AsyncSession, messages: list[ConsultMessage], gp_id: int
) -> list[MessageOut]:
    ids = {m.author_id for m in messages}
    users = (
        {
            u.id: u
            for u in (await session.execute(select(User).where(col(User.id).in_(ids)))).scalars()
        }
        if ids
        else {}
    )
    return [
        MessageOut(
            id=m.id or 0,
            author_id=m.author_id,
            author_name=users[m.author_id].display_name if m.author_id in users else "",
            author_role="gp" if m.author_id == gp_id else "specialist",
            body=m.body,
            created_at=m.created_at,
        )
        for m in messages
    ]
