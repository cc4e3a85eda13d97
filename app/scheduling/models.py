"""Tables for specialties, availability, appointments and join links."""

from __future__ import annotations

from datetime import date, datetime, time
from enum import StrEnum

from sqlalchemy import CheckConstraint, Column, Index, Text, text
from sqlmodel import Field, SQLModel

from app.db import enum_column, utc_column, utcnow
from app.scheduling.identifiers import Certainty


class AppointmentStatus(StrEnum):
    BOOKED = "booked"
    COMPLETED = "completed"
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"


class RoomState(StrEnum):
    """The consultation room's lifecycle (see app.rooms.state)."""

    SCHEDULED = "scheduled"
    WAITING = "waiting"
    ADMITTED = "admitted"
    IN_CALL = "in_call"
    ENDED = "ended"
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"


class Urgency(StrEnum):
    ROUTINE = "routine"
    URGENT = "urgent"


class AppointmentKind(StrEnum):
    """A booked slot, an on-call request (a consult now with whichever specialist of the
    specialty takes it first, ``app.scheduling.on_call``), or a written Telekonsil."""

    BOOKED = "booked"
    ON_CALL = "on_call"
    # A written Telekonsil (``app.scheduling.written``): question, documents, report; no
    # video room, no patient link, no time in anyone's calendar.
    WRITTEN = "written"


class PatientSex(StrEnum):
    """The patient's sex as German health records give it (FHIR: female, male, other for
    "divers", unknown)."""

    FEMALE = "female"
    MALE = "male"
    DIVERSE = "diverse"
    UNKNOWN = "unknown"


class Mode(StrEnum):
    """Where the patient is: at home alone, or at the practice with the GP."""

    HOME = "home"
    PRACTICE = "practice"


class Specialty(SQLModel, table=True):
    __tablename__ = "specialty"

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=60, unique=True, index=True)
    name_de: str = Field(max_length=120)
    name_en: str = Field(max_length=120)


class AvailabilityRule(SQLModel, table=True):
    """Weekly recurring consultation hours, in the deployment's local time zone."""

    __tablename__ = "availability_rule"

    id: int | None = Field(default=None, primary_key=True)
    specialist_id: int = Field(foreign_key="staff_user.id", index=True)
    weekday: int = Field(ge=0, le=6)  # Monday = 0
    start_time: time
    end_time: time
    slot_minutes: int = Field(default=30, ge=5, le=240)
    valid_from: date | None = None
    valid_until: date | None = None


class AvailabilityException(SQLModel, table=True):
    """A one-off change: an absence (available=False) or extra hours (available=True)."""

    __tablename__ = "availability_exception"

    id: int | None = Field(default=None, primary_key=True)
    specialist_id: int = Field(foreign_key="staff_user.id", index=True)
    starts_at: datetime = Field(sa_column=utc_column())
    ends_at: datetime = Field(sa_column=utc_column())
    available: bool = Field(default=False)
    slot_minutes: int = Field(default=30, ge=5, le=240)


BOOKED_HAS_SPECIALIST = "ck_appointment_booked_has_specialist"


class Appointment(SQLModel, table=True):
    """A booked teleconsultation and the state of its consultation room."""

    __tablename__ = "appointment"
    __table_args__ = (
        # One active booking per specialist and start time: the database settles races.
        Index(
            "uq_appointment_active_slot",
            "specialist_id",
            "starts_at",
            unique=True,
            sqlite_where=text("status != 'cancelled'"),
            postgresql_where=text("status != 'cancelled'"),
        ),
        # Only an on-call request may wait without a specialist.
        CheckConstraint(
            "kind != 'booked' OR specialist_id IS NOT NULL", name=BOOKED_HAS_SPECIALIST
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    # None only for an on-call request nobody has taken yet (``kind`` on_call).
    specialist_id: int | None = Field(default=None, foreign_key="staff_user.id", index=True)
    gp_id: int = Field(foreign_key="staff_user.id", index=True)
    practice_id: int | None = Field(default=None, foreign_key="practice.id")
    starts_at: datetime = Field(sa_column=utc_column(index=True))
    ends_at: datetime = Field(sa_column=utc_column())
    status: AppointmentStatus = Field(
        default=AppointmentStatus.BOOKED, sa_column=enum_column(AppointmentStatus)
    )
    patient_name: str = Field(max_length=200)
    patient_birth_date: date
    patient_contact: str = Field(max_length=254)
    # The patient's mobile number for SMS (E.164, ``app.scheduling.phones``); None if not given.
    patient_phone: str | None = Field(default=None, max_length=16)
    clinical_question: str = Field(sa_column=Column(Text, nullable=False))
    urgency: Urgency = Field(default=Urgency.ROUTINE, sa_column=enum_column(Urgency))
    mode: Mode = Field(default=Mode.HOME, sa_column=enum_column(Mode))
    room_state: RoomState = Field(default=RoomState.SCHEDULED, sa_column=enum_column(RoomState))
    waiting_since: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    admitted_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    ended_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    # When the specialist's first report was written (the report itself is in app.records).
    reported_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    cancelled_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    # iCalendar SEQUENCE: bumped whenever the booking's time or status changes.
    sequence: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # How the GP asked Konsil to reach the patient ("email", "sms", comma-separated; "" for
    # none: the GP hands the link over), and in which language (app/notify).
    patient_channels: str = Field(
        default="", max_length=40, sa_column_kwargs={"server_default": ""}
    )
    patient_language: str = Field(
        default="de", max_length=2, sa_column_kwargs={"server_default": "de"}
    )
    kind: AppointmentKind = Field(
        default=AppointmentKind.BOOKED,
        sa_column=enum_column(AppointmentKind, server_default=AppointmentKind.BOOKED.value),
    )
    # On-call requests: the specialty asked, until when it waits for a specialist before the
    # GP is told (``claim_until``), when a specialist took it and when the GP was told that
    # nobody did (``unclaimed_at``, cleared when the GP asks the specialty again).
    specialty_id: int | None = Field(default=None, foreign_key="specialty.id", index=True)
    claim_until: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    claimed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    unclaimed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))

    # The Telekonsil request's particulars (Telekonsilien-Vereinbarung § 3), each optional:
    # the insurance number (KVNR, app/scheduling/identifiers.py), the patient's sex, the
    # (suspected) diagnosis as an ICD-10-GM code with its certainty and in words, the current
    # medication, the day the answer is needed by, and when the GP recorded that the patient
    # consented to the Telekonsil.
    patient_insurance_number: str | None = Field(default=None, max_length=10)
    patient_sex: PatientSex | None = Field(
        default=None, sa_column=enum_column(PatientSex, nullable=True)
    )
    diagnosis_code: str | None = Field(default=None, max_length=8)
    diagnosis_certainty: Certainty | None = Field(
        default=None, sa_column=enum_column(Certainty, nullable=True)
    )
    diagnosis_text: str | None = Field(default=None, max_length=500)
    medication: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    answer_by: date | None = None
    consent_recorded_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    # Who cancelled ("gp" or "specialist": a specialist's cancellation declines the request)
    # and why, if they said (shown to the other side).
    cancelled_by: str | None = Field(default=None, max_length=24)
    cancel_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Since when the specialist's question back to the GP waits for the GP's answer
    # (app/records/conversation.py writes it; None when none waits).
    question_open_since: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    # When the specialist confirmed having checked the patient's identity in the video
    # consultation (the health card shown to the camera, Anlage 4b BMV-Ä): EBM 01444. Written
    # by ``app.billing.identity`` only, once the consultation has begun.
    identity_checked_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))

    def reached_by(self, channel: str) -> bool:
        """Whether the GP asked for messages to the patient through ``channel``."""
        return channel in self.patient_channels.split(",")


class JoinToken(SQLModel, table=True):
    """A patient's join link. Only the SHA-256 of the 256-bit token is stored."""

    __tablename__ = "join_token"

    id: int | None = Field(default=None, primary_key=True)
    appointment_id: int = Field(foreign_key="appointment.id", index=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    valid_from: datetime = Field(sa_column=utc_column())
    valid_until: datetime = Field(sa_column=utc_column())
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    revoked_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    last_redeemed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    # The token encrypted with a key from KONSIL_SECRET_KEY (``links.seal``), only while Konsil
    # is to send the link to the patient itself (app/notify); cleared when the link is revoked.
    sealed: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class GuestKind(StrEnum):
    """What a guest of a consultation is there for (shown with the guest's name)."""

    INTERPRETER = "interpreter"
    SIGN_LANGUAGE = "sign_language"
    CARER = "carer"
    OTHER = "other"


class GuestInvitation(SQLModel, table=True):
    """A fourth participant's single-use link (interpreter, carer): only the SHA-256 of the
    256-bit token is stored. The first redemption binds it to that browser's guest session
    (``session_id``); the specialist admits the guest (``admitted_at``). One active invitation
    per appointment: a new one revokes the old."""

    __tablename__ = "guest_invitation"

    id: int | None = Field(default=None, primary_key=True)
    appointment_id: int = Field(foreign_key="appointment.id", index=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    name: str = Field(max_length=80)
    kind: GuestKind = Field(sa_column=enum_column(GuestKind))
    valid_from: datetime = Field(sa_column=utc_column())
    valid_until: datetime = Field(sa_column=utc_column())
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    created_by: int | None = Field(default=None, foreign_key="staff_user.id")
    revoked_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    redeemed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    # The guest session the first redemption opened (AuthSession.id, a token's hash).
    session_id: str | None = Field(default=None, max_length=64)
    admitted_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
