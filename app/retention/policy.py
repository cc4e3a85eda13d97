"""What retention deletes, and when: pure functions of the settings and the current time.

The rule (docs/deploy.md "Retention"):

- An appointment is **metadata** of a video consultation (KBV Anlage 31b: deleted after three
  months at the latest). It goes, with everything that names its patient or carries its
  content (join links, patient sessions, documents, report, undelivered events), once its
  consultation ended ``retention_metadata_days`` ago: the later of its scheduled end and the
  end of its call.
- **Documents and the report** are copies for the GP to take into the practice record (the
  medical record itself, §630f BGB, is kept by the practice and the hospital). They go
  ``retention_records_days`` after the report was written, or after the appointment was
  cancelled, and at the latest with their appointment.
- The **audit log** keeps, after the metadata period, only ids: no address, no login-name
  hash, and of its details only integers (ids and counts); strings such as states, reasons
  and times go. Rows are deleted after ``retention_audit_days``.
- Ended or expired **sessions** go after the metadata period; **idempotent answers** and
  **asynchronous FHIR requests** after their 24 hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.fhir.jobs import KEEP as FHIR_JOB_KEEP
from app.fhir.patients import KEEP as FHIR_PATIENT_KEEP
from app.idempotency import KEEP as IDEMPOTENCY_KEEP
from app.settings import Settings


@dataclass(frozen=True)
class Cutoffs:
    """Everything that happened before these instants is due."""

    # Appointments whose consultation ended before this go, with all their rows.
    consultation: datetime
    # Documents and reports of appointments reported (or cancelled) before this go.
    records: datetime
    # Audit rows from before this are reduced to ids; from before ``audit_delete`` deleted.
    audit_reduce: datetime
    audit_delete: datetime
    # Sessions that ended or expired before this go.
    sessions: datetime
    # Undelivered or failed domain events recorded before this go.
    events: datetime
    # Answers to Idempotency-Key requests stored before this go.
    idempotency: datetime
    # Asynchronous FHIR requests opened before this go.
    fhir_jobs: datetime
    # Patients FHIR clients created before this go (their bookings keep their own copy).
    fhir_patients: datetime
    # A specialist's late notice last changed before this goes (it was for an earlier day).
    late_notices: datetime


# A late notice is for one local day: two days after its last change it is for nobody, on
# any time zone.
LATE_NOTICE_KEEP = timedelta(days=2)


def cutoffs(settings: Settings, now: datetime) -> Cutoffs:
    """The cutoffs at ``now``. Records never outlive their appointment."""
    metadata = timedelta(days=settings.retention_metadata_days)
    records = min(timedelta(days=settings.retention_records_days), metadata)
    return Cutoffs(
        consultation=now - metadata,
        records=now - records,
        audit_reduce=now - metadata,
        audit_delete=now - timedelta(days=settings.retention_audit_days),
        sessions=now - metadata,
        events=now - metadata,
        idempotency=now - IDEMPOTENCY_KEEP,
        fhir_jobs=now - FHIR_JOB_KEEP,
        fhir_patients=now - FHIR_PATIENT_KEEP,
        late_notices=now - LATE_NOTICE_KEEP,
    )


def reduced_detail(detail: dict[str, Any]) -> dict[str, int]:
    """An audit row's details as kept after the metadata period: integers only (ids, counts).
    Strings go whatever they hold, so a detail a later release adds cannot keep a name."""
    return {
        key: value
        for key, value in detail.items()
        if isinstance(value, int) and not isinstance(value, bool)
    }


def hold_seconds(settings: Settings) -> float:
    """How long one process's run keeps the others from starting theirs: most of an interval,
    so the next run (by whichever process wakes first) is not held back."""
    return settings.retention_interval_minutes * 60 * 0.9
