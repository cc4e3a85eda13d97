"""Bodies of the billing API."""

from __future__ import annotations

from datetime import datetime

from app.schemas import Out


class IdentityCheckOut(Out):
    """The specialist's record that the patient's identity was checked (EBM 01444)."""

    appointment_id: int
    # The first confirmation; confirming again keeps it.
    identity_checked_at: datetime
