"""Imports every table so that ``SQLModel.metadata`` is complete (Alembic, tests)."""

from sqlmodel import SQLModel

from app.accounts.models import AuthSession, Practice, RecoveryCode, SecondFactor, User
from app.audit.models import AuditEvent, AuditPermit
from app.events.outbox import OutboxEvent
from app.fhir.clients import FhirClient
from app.fhir.jobs import FhirJob
from app.fhir.patients import FhirPatient
from app.idempotency import IdempotentResponse
from app.notify.delays import DelayNotice
from app.notify.models import OutgoingMessage
from app.presence.models import SpecialistPresence
from app.records.models import ConsultMessage, Document, Report
from app.rooms.models import SpecialistDelay
from app.scheduling.models import (
    Appointment,
    AvailabilityException,
    AvailabilityRule,
    GuestInvitation,
    JoinToken,
    Specialty,
)

metadata = SQLModel.metadata

__all__ = [
    "Appointment",
    "AuditEvent",
    "AuditPermit",
    "AuthSession",
    "AvailabilityException",
    "AvailabilityRule",
    "ConsultMessage",
    "DelayNotice",
    "Document",
    "FhirClient",
    "FhirJob",
    "FhirPatient",
    "GuestInvitation",
    "IdempotentResponse",
    "JoinToken",
    "OutboxEvent",
    "OutgoingMessage",
    "Practice",
    "RecoveryCode",
    "Report",
    "SecondFactor",
    "SpecialistDelay",
    "SpecialistPresence",
    "Specialty",
    "User",
    "metadata",
]
