"""identity_checked_at: when the specialist confirmed checking the patient's identity in the
video consultation (Anlage 4b BMV-Ä, EBM 01444); null for every booking made before

Revision ID: 0021
Revises: 0020
Create Date: 2027-02-20 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

import app.db
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("identity_checked_at", app.db.UTCDateTime(), nullable=True))


def downgrade() -> None:
    # The previous release does not know the check: it goes with its column (the bookings
    # stay). SQLite's own DROP COLUMN: rebuilding the table would trip the foreign keys of the
    # rows that point at appointments.
    with op.batch_alter_table("appointment", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("identity_checked_at")
