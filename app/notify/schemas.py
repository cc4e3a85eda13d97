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
    # A reminder: how many minutes before the start it is (was) due.
    reminder_minutes: int | None
    # Why the last attempt failed: recipient_refused, sender_refused, refused, auth_failed,
    # sms_refused, sms_gateway_error, tls, timeout, connection, no_address, not_configured,
    # link_unavailable (not sent: link_replaced, cancelled, link_expired, already_joined,
    # too_late; the GP's on-call message: claimed, request_closed, asked_again).
    error: str | None
    smtp_code: int | None
    # The SMS gateway's HTTP status when it refused.
    http_status: int | None
    resend_of: int | None


class MessagesOut(Out):
    """A booking's messages, oldest first, and whether e-mail and SMS can be sent at all."""

    email_configured: bool
    sms_configured: bool
    # The address messages to the patient go to; None when the GP did not choose e-mail.
    patient_email: str | None
    # The mobile number SMS to the patient go to (E.164); None when the GP did not choose SMS.
    patient_phone: str | None
    messages: list[MessageOut]
