"""The outgoing-message jobs: one row per message, holding ids and what to render, no text."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Column, Index, Integer
from sqlmodel import Field, SQLModel

from app.db import enum_column, utc_column, utcnow


class Channel(StrEnum):
    """How a message travels. (A printed invitation is handed over by the GP: no channel.)"""

    EMAIL = "email"
    SMS = "sms"


class Recipient(StrEnum):
    PATIENT = "patient"
    GP = "gp"


class Kind(StrEnum):
    """What the message says (each has a template per language, ``app/notify/templates``)."""

    INVITATION = "invitation"  # the join link, at booking
    RESCHEDULED = "rescheduled"  # the new time and a new link
    NEW_LINK = "new_link"  # a new link (the GP re-issued it)
    CANCELLED = "cancelled"  # the appointment was cancelled
    REPORT_READY = "report_ready"  # to the GP: a report is there, log in to read it
    DELAY = "delay"  # the specialist is running late (app/notify/delays.py)
    REMINDER = "reminder"  # the time and the link, ``reminder_minutes`` before the start
    # To the GP: nobody took their on-call request in time (ask again, book, or withdraw).
    ON_CALL_UNCLAIMED = "on_call_unclaimed"
    # To the GP: the specialist asked back about a Telekonsil (log in to answer).
    QUESTION_ASKED = "question_asked"
    # To the GP: the specialist declined the request (the reason is on the page only).
    DECLINED = "declined"


# Messages that carry the patient's join link (the row names it: ``join_token_id``).
LINK_KINDS = frozenset({Kind.INVITATION, Kind.RESCHEDULED, Kind.NEW_LINK, Kind.REMINDER})


class Status(StrEnum):
    QUEUED = "queued"  # due at ``available_at`` (a retry waits there)
    SENDING = "sending"  # claimed by a sender until ``lease_until``
    SENT = "sent"  # the SMTP server or the SMS gateway accepted it
    FAILED = "failed"  # refused for good, or out of attempts: shown to the GP
    # Not sent: its link was replaced, the appointment cancelled, or a reminder came too late.
    SUPERSEDED = "superseded"


class OutgoingMessage(SQLModel, table=True):
    """One message to send (or sent). Rendered from the appointment at send time: the row holds
    no address, no text, no health data."""

    __tablename__ = "outgoing_message"
    __table_args__ = (
        # The sender's claim: due queued rows, and claimed rows whose lease ran out.
        Index("ix_outgoing_message_due", "status", "available_at"),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    appointment_id: int = Field(foreign_key="appointment.id", index=True)
    # "<event id>:<channel>:<recipient>", "reminder:<link id>:<minutes>:<channel>" (or
    # "resend:<random>"): one event, or one reminder of one link, never sends twice.
    idempotency_key: str = Field(max_length=80, unique=True)
    kind: Kind = Field(sa_column=enum_column(Kind))
    channel: Channel = Field(sa_column=enum_column(Channel))
    recipient: Recipient = Field(sa_column=enum_column(Recipient))
    language: str = Field(max_length=2)
    # The join link a link message carries (its token is sealed on that link's row).
    join_token_id: int | None = None
    # The message this one repeats (the GP pressed "send again").
    resend_of: int | None = None
    # A reminder: how many minutes before the start it is due (``available_at`` at first).
    reminder_minutes: int | None = None
    status: Status = Field(default=Status.QUEUED, sa_column=enum_column(Status))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    available_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    lease_until: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    # Which claim holds it: a sender whose lease ran out cannot settle what another took over.
    claim: str | None = Field(default=None, max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    sent_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    failed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    # Why the last attempt did not go through: a code ("recipient_refused", "connection", …)
    # and the SMTP reply code or the SMS gateway's HTTP status, never the server's text (it
    # may quote the address or the number).
    error: str | None = Field(default=None, max_length=40)
    smtp_code: int | None = None
    http_status: int | None = None
