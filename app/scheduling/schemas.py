"""Request and response bodies of the scheduling API (pydantic; no HTTP, no database)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AwareDatetime,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from app.db import utcnow
from app.scheduling import identifiers, phones
from app.scheduling.identifiers import Certainty
from app.scheduling.models import (
    AppointmentKind,
    AppointmentStatus,
    GuestKind,
    Mode,
    PatientSex,
    RoomState,
    Urgency,
)
from app.schemas import Day, Id, Out, Schema

MAX_QUESTION = 4000
MAX_MEDICATION = 4000
MAX_RULES = 50
MAX_AGE_YEARS = 130
_NO_CONTROL = r"^[^\x00-\x1f\x7f]+$"
_PHONE = re.compile(r"^\+?[0-9 ()/.\-]{6,30}$")


# The ways Konsil itself can send the patient the link (app/notify.models.Channel).
InviteChannel = Literal["email", "sms"]


def _invalid(message: str) -> PydanticCustomError:
    """A field error whose message is shown as is (no "Value error, " prefix)."""
    return PydanticCustomError("invalid", message)


# --- requests -----------------------------------------------------------------------------


# Identifier fields of a request and what checks and normalises each.
_IDENTIFIERS: dict[str, Callable[[str], str]] = {
    "patient_insurance_number": identifiers.normalise_kvnr,
    "diagnosis_code": identifiers.normalise_icd10,
}


class TelekonsilIn(Schema):
    """Who the patient is and what the specialist should answer: the part every request to a
    specialist shares, with video (a booking, an on-call request) or written."""

    patient_name: str = Field(min_length=2, max_length=200, pattern=_NO_CONTROL)
    patient_birth_date: Day
    clinical_question: str = Field(min_length=5, max_length=MAX_QUESTION)
    urgency: Urgency = Urgency.ROUTINE
    # The Telekonsil request's particulars (Telekonsilien-Vereinbarung § 3), each optional:
    # the insurance number (KVNR, check digit verified), the sex, the (suspected) diagnosis as
    # an ICD-10-GM code with its certainty and in words, the current medication, the day the
    # answer is needed by, and that the patient consented to the Telekonsil.
    patient_insurance_number: str | None = Field(default=None, max_length=20)
    patient_sex: PatientSex | None = None
    diagnosis_code: str | None = Field(default=None, max_length=12)
    diagnosis_text: str | None = Field(default=None, max_length=500, pattern=_NO_CONTROL)
    # After the diagnosis fields: its check reads them.
    diagnosis_certainty: Certainty | None = None
    medication: str | None = Field(default=None, max_length=MAX_MEDICATION)
    answer_by: Day | None = None
    consent_recorded: bool = False

    @field_validator("patient_insurance_number", "diagnosis_code", "diagnosis_text", "medication")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("patient_insurance_number", "diagnosis_code")
    @classmethod
    def _identifier(cls, value: str | None, info: ValidationInfo) -> str | None:
        normalise = _IDENTIFIERS[info.field_name or ""]
        try:
            return normalise(value) if value else None
        except ValueError as exc:
            raise _invalid(str(exc)) from None

    @field_validator("answer_by")
    @classmethod
    def _not_past(cls, value: date | None) -> date | None:
        # Not before today anywhere on earth (UTC-12 is the furthest behind).
        if value is not None and value < (utcnow() - timedelta(hours=12)).date():
            raise _invalid("Das Datum für die Antwort liegt in der Vergangenheit.")
        return value

    @field_validator("diagnosis_certainty")
    @classmethod
    def _certainty_of_a_diagnosis(
        cls, value: Certainty | None, info: ValidationInfo
    ) -> Certainty | None:
        # A diagnosis field that failed its own check is missing from ``info.data``: its error
        # is the one to show, not this one.
        given = [info.data.get(name, "refused") for name in ("diagnosis_code", "diagnosis_text")]
        if value is not None and not any(given):
            raise _invalid("Die Diagnosesicherheit gehört zu einer Diagnose (Code oder Text).")
        return value

    @field_validator("patient_birth_date")
    @classmethod
    def _plausible_birth_date(cls, value: date) -> date:
        # Not after today anywhere on earth (UTC+14 is the furthest ahead): a child born in
        # Berlin just after midnight is not "born in the future" while UTC is still on
        # yesterday.
        today = (utcnow() + timedelta(hours=14)).date()
        if value > today:
            raise _invalid("Das Geburtsdatum liegt in der Zukunft.")
        if value.year < today.year - MAX_AGE_YEARS:
            raise _invalid("Das Geburtsdatum ist nicht plausibel.")
        return value


class ConsultIn(TelekonsilIn):
    """A request with a video consultation (a booking, an on-call request): also how the
    patient is reached, and where they are."""

    patient_contact: str = Field(min_length=3, max_length=254)
    mode: Mode = Mode.HOME
    # How Konsil itself should reach the patient (app/notify): "email" sends the invitation,
    # a new link, a cancellation and the reminders to the e-mail address in
    # ``patient_contact``, "sms" the same by SMS to ``patient_phone``. Empty: the GP hands the
    # link over. (A printed invitation, for patients with neither, is the GP's to hand over.)
    invite_by: list[InviteChannel] = Field(default_factory=list, max_length=2)
    patient_language: Literal["de", "en"] = "de"
    # The patient's mobile number for SMS, normalised to E.164; required with "sms", and
    # dropped without it.
    patient_phone: str | None = Field(default=None, max_length=40, validate_default=True)

    @field_validator("patient_contact")
    @classmethod
    def _email_or_phone(cls, value: str) -> str:
        if "@" in value:
            try:
                return validate_email(value, check_deliverability=False).normalized
            except EmailNotValidError:
                raise _invalid("Die E-Mail-Adresse ist ungültig.") from None
        if _PHONE.match(value) and sum(c.isdigit() for c in value) >= 6:
            return value
        raise _invalid("Bitte eine E-Mail-Adresse oder eine Telefonnummer angeben.")

    @field_validator("invite_by")
    @classmethod
    def _reachable(cls, value: list[str], info: ValidationInfo) -> list[str]:
        contact = info.data.get("patient_contact")
        if "email" in value and isinstance(contact, str) and "@" not in contact:
            raise _invalid("Für den Versand per E-Mail bitte eine E-Mail-Adresse angeben.")
        return sorted(set(value))

    @field_validator("patient_phone")
    @classmethod
    def _mobile(cls, value: str | None, info: ValidationInfo) -> str | None:
        if "sms" not in info.data.get("invite_by", []):
            return None  # kept only to send by SMS: without SMS it is not stored
        if value is None or not value.strip():
            raise _invalid("Für den Versand per SMS bitte eine Mobilnummer angeben.")
        try:
            return phones.mobile_e164(value)
        except ValueError as exc:
            raise _invalid(str(exc)) from None


class BookingIn(ConsultIn):
    """A GP's booking: which slot, who the patient is, and what the specialist should answer."""

    specialist_id: Id
    starts_at: AwareDatetime


class OnCallIn(ConsultIn):
    """A GP's request for a consult now with whichever specialist of ``specialty_id`` takes it
    first (urgent unless said otherwise)."""

    specialty_id: Id
    urgency: Urgency = Urgency.URGENT


class WrittenIn(TelekonsilIn):
    """A GP's written Telekonsil to a specialty: no video, the patient takes no part; the
    first specialist of ``specialty_id`` to take it answers with a report. The day the answer
    is needed by and the patient's consent (their data goes to another doctor without them)
    are required."""

    specialty_id: Id
    answer_by: Day
    consent_recorded: bool

    @field_validator("consent_recorded")
    @classmethod
    def _consented(cls, value: bool) -> bool:
        if not value:
            raise _invalid(
                "Für ein schriftliches Telekonsil bitte die Einwilligung der Patientin oder des "
                "Patienten bestätigen."
            )
        return value


class CancelIn(Schema):
    """Why, for the other side: the GP reads a specialist's reason for declining."""

    reason: str | None = Field(default=None, max_length=1000)


class RescheduleIn(Schema):
    starts_at: AwareDatetime


class RuleIn(Schema):
    """Weekly consultation hours in local time (Europe/Berlin). Monday = 0."""

    weekday: int = Field(ge=0, le=6)
    start_time: time
    end_time: time
    slot_minutes: int = Field(default=30, ge=5, le=240)
    valid_from: Day | None = None
    valid_until: Day | None = None

    @model_validator(mode="after")
    def _consistent(self) -> RuleIn:
        if self.start_time.tzinfo is not None or self.end_time.tzinfo is not None:
            raise _invalid("Zeiten ohne Zeitzone angeben (Ortszeit).")
        if self.start_time >= self.end_time:
            raise _invalid("Der Beginn muss vor dem Ende liegen.")
        start = self.start_time.hour * 60 + self.start_time.minute
        end = self.end_time.hour * 60 + self.end_time.minute
        if end - start < self.slot_minutes:
            raise _invalid("In diesen Zeitraum passt kein einziger Termin dieser Länge.")
        if self.valid_from and self.valid_until and self.valid_from > self.valid_until:
            raise _invalid("valid_from liegt nach valid_until.")
        return self


class RulesIn(Schema):
    """The complete new set of weekly rules (replaces the old set)."""

    rules: list[RuleIn] = Field(max_length=MAX_RULES)


class ExceptionIn(Schema):
    """An absence (available=false) or extra hours (available=true). Naive times are local."""

    starts_at: datetime
    ends_at: datetime
    available: bool = False
    slot_minutes: int = Field(default=30, ge=5, le=240)


class RedeemIn(Schema):
    token: str = Field(min_length=1, max_length=200)


class SlotsQuery(Schema):
    model_config = ConfigDict(populate_by_name=True)

    specialist: Id | None = Field(default=None, description="Specialist id (or give specialty)")
    specialty: str | None = Field(
        default=None, max_length=60, description="Specialty id or slug (or give specialist)"
    )
    first_day: Day | None = Field(
        default=None, alias="from", description="First local day (default: today)"
    )
    last_day: Day | None = Field(
        default=None,
        alias="to",
        description="Last local day, inclusive (default: from + 13 days; at most 62 days)",
    )

    @model_validator(mode="after")
    def _one_target(self) -> SlotsQuery:
        if (self.specialist is None) == (self.specialty is None):
            raise _invalid("Genau eines von specialist oder specialty angeben.")
        return self


class SpecialistsQuery(Schema):
    specialty: str | None = Field(default=None, max_length=60, description="Specialty id or slug")


class AppointmentsQuery(Schema):
    model_config = ConfigDict(populate_by_name=True)

    first_day: Day | None = Field(default=None, alias="from", description="First local day")
    last_day: Day | None = Field(default=None, alias="to", description="Last local day, inclusive")
    status: AppointmentStatus | None = None
    limit: int = Field(default=100, ge=1, le=500, description="At most this many")


# --- responses ----------------------------------------------------------------------------


class SpecialtyIn(Schema):
    slug: str = Field(min_length=2, max_length=60, pattern=r"^[a-z][a-z0-9-]*$")
    name_de: str = Field(min_length=1, max_length=120)
    name_en: str = Field(min_length=1, max_length=120)


class SpecialtyPatch(Schema):
    """A new name in German, English or both (the slug stays)."""

    name_de: str | None = Field(default=None, min_length=1, max_length=120)
    name_en: str | None = Field(default=None, min_length=1, max_length=120)

    @model_validator(mode="after")
    def _some_name(self) -> SpecialtyPatch:
        if self.name_de is None and self.name_en is None:
            raise _invalid("Bitte geben Sie einen neuen Namen an.")
        return self


class SpecialtyOut(Out):
    id: int
    slug: str
    name_de: str
    name_en: str


class SpecialistOut(Out):
    id: int
    display_name: str
    specialty_id: int
    specialty: str


class SlotOut(Out):
    specialist_id: int
    specialist_name: str
    starts_at: datetime
    ends_at: datetime


class RuleOut(Out):
    id: int
    weekday: int
    start_time: time
    end_time: time
    slot_minutes: int
    valid_from: date | None
    valid_until: date | None


class ExceptionOut(Out):
    id: int
    starts_at: datetime
    ends_at: datetime
    available: bool
    slot_minutes: int
    # Active bookings an absence overlaps: they are NOT cancelled automatically.
    conflicting_appointment_ids: list[int] = Field(default_factory=list)


class LinkStateOut(Out):
    """The active join link, without its token (that is shown only once, at issue)."""

    valid_from: datetime
    valid_until: datetime
    created_at: datetime
    last_redeemed_at: datetime | None


class AppointmentOut(Out):
    id: int
    kind: AppointmentKind
    # None (and ``specialist_name`` empty) while an on-call request waits for a specialist.
    specialist_id: int | None
    specialist_name: str
    specialty: str
    gp_id: int
    gp_name: str
    # The doctors' LANR where the admin recorded one.
    gp_lanr: str | None = None
    specialist_lanr: str | None = None
    practice_id: int | None
    starts_at: datetime
    ends_at: datetime
    status: AppointmentStatus
    room_state: RoomState
    urgency: Urgency
    mode: Mode
    patient_name: str
    patient_birth_date: date
    patient_contact: str
    patient_phone: str | None
    invite_by: list[str]
    patient_language: str
    clinical_question: str
    created_at: datetime
    cancelled_at: datetime | None
    # When the specialist first let the patient in; kept when the patient is sent back.
    admitted_at: datetime | None
    has_report: bool
    link: LinkStateOut | None
    # On-call requests (null for booked slots): until when the request waits for a specialist
    # before the GP is told, when one took it, when the GP was told nobody had.
    claim_until: datetime | None = None
    claimed_at: datetime | None = None
    unclaimed_at: datetime | None = None
    # The Telekonsil request's particulars (null where the GP gave none).
    patient_insurance_number: str | None = None
    patient_sex: PatientSex | None = None
    diagnosis_code: str | None = None
    diagnosis_certainty: Certainty | None = None
    diagnosis_text: str | None = None
    medication: str | None = None
    answer_by: date | None = None
    consent_recorded_at: datetime | None = None
    # Who cancelled ("gp", "specialist": declined) and why; since when a question of the
    # specialist waits for the GP's answer.
    cancelled_by: str | None = None
    cancel_reason: str | None = None
    question_open_since: datetime | None = None
    # When the specialist confirmed checking the patient's identity (EBM 01444); null if not.
    identity_checked_at: datetime | None = None


class OnCallEntry(Out):
    """An on-call request nobody has taken yet, as the specialists of its specialty see it in
    their queue: what is asked and by whom, not yet who the patient is (only the age)."""

    appointment_id: int
    requested_at: datetime
    urgency: Urgency
    mode: Mode
    gp_name: str
    practice: str
    clinical_question: str
    patient_age: int
    patient_waiting: bool = Field(description="The patient is in the waiting room already.")
    claim_until: datetime | None
    unclaimed: bool = Field(description="Its time ran out and the GP was told; still open.")


class WrittenEntry(Out):
    """A written Telekonsil in a specialist's queue: one of the specialty nobody has taken yet
    (``mine`` false: no patient name, only the age, as for on-call requests) or one the
    specialist took and has not answered (``mine`` true)."""

    appointment_id: int
    requested_at: datetime
    urgency: Urgency
    gp_name: str
    practice: str
    clinical_question: str
    patient_age: int
    answer_by: date = Field(description="The day the GP needs the answer by.")
    overdue: bool = Field(description="The day the answer was needed by has passed.")
    mine: bool
    patient_name: str | None = None
    claimed_at: datetime | None = None
    question_open_since: datetime | None = Field(
        default=None, description="The specialist asked back; the GP has not answered yet."
    )


class LinkOut(Out):
    """A freshly issued join link. ``join_url`` holds the token: it is never shown again."""

    join_url: str
    valid_from: datetime
    valid_until: datetime
    patient_ics: str


class BookingOut(Out):
    appointment: AppointmentOut
    link: LinkOut


class PatientAppointmentOut(Out):
    """What the patient's browser may know: no health data, no other people's details."""

    appointment_id: int
    starts_at: datetime
    ends_at: datetime
    specialist_name: str
    specialty: str
    mode: Mode
    room_state: RoomState
    csrf_token: str


class GuestIn(Schema):
    """Invite a guest (interpreter, carer) to the consultation: the name the others see."""

    name: str = Field(min_length=2, max_length=80, pattern=_NO_CONTROL)
    kind: GuestKind

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        # (Trimmed already: ``Schema``.) Format characters, U+202E and the other bidi controls
        # or zero-width joiners, could make the tile label read as someone else's name.
        if any(unicodedata.category(c) == "Cf" for c in value):
            raise _invalid("Der Name enthält unsichtbare Steuerzeichen.")
        return value


class GuestInvitationOut(Out):
    """The appointment's active guest invitation, as staff see it (never the token)."""

    name: str
    kind: GuestKind
    created_at: datetime
    valid_from: datetime
    valid_until: datetime
    redeemed: bool = Field(description="The guest has opened the link (on one browser).")
    admitted: bool = Field(description="The specialist has let the guest into the call.")


class GuestIssuedOut(GuestInvitationOut):
    """A freshly issued guest link. ``guest_url`` holds the token: it is never shown again."""

    guest_url: str


class GuestMeOut(Out):
    """What the guest's browser may know: when, with whom, as what. No case data, not even
    the patient's name."""

    appointment_id: int
    starts_at: datetime
    ends_at: datetime
    specialist_name: str
    specialty: str
    name: str
    kind: GuestKind
    room_state: RoomState
    csrf_token: str
