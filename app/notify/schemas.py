"""What the delivery-status API answers (pydantic; no HTTP, no database)."""

from __future__ import annotations

from datetime import datetime

from app.notify.models import Channel, Kind, Recipient, Status
from app.schemas import Out


class MessageOut(Out):
    """One message: what, to whom (the recipient's role, not the address), and how it went."""

    id: int
    kind: Kind
    channel: Channel
    recipient: Recipient
    status: Status
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    failed_at: datetime | None
    # Queued: when the next attempt is due.
    next_attempt_at: datetime | None
    # Why the last attempt failed: recipient_refused, sender_refused, refused, auth_failed, tls,
    # timeout, connection, no_address, link_unavailable (not sent: link_replaced, cancelled,
    # link_expired).
    error: str | None
    smtp_code: int | None
    resend_of: int | None


class MessagesOut(Out):
    """A booking's messages, oldest first, and whether e-mail can be sent at all."""

    email_configured: bool
    # The address messages to the patient go to; None when the GP did not choose e-mail.
    patient_email: str | None
    messages: list[MessageOut]
