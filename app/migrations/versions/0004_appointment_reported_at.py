"""appointment.reported_at: when the first report was written (a lifecycle fact of the booking)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 18:30:00

Scheduling shows whether a report exists without reading the records tables; the column is
filled from the reports already written.
"""

from collections.abc import Sequence

import sqlalchemy as sa

import app.db
from alembic import op

# Also run by every process at start-up (app.records.service.mark_reported): reports that a
# process of the previous release writes during a rolling upgrade are marked too.
BACKFILL = (
    "UPDATE appointment SET reported_at = "
    "(SELECT report.created_at FROM report WHERE report.appointment_id = appointment.id) "
    "WHERE reported_at IS NULL "
    "AND EXISTS (SELECT 1 FROM report WHERE report.appointment_id = appointment.id)"
)

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reported_at", app.db.UTCDateTime(), nullable=True))
    op.execute(BACKFILL)


def downgrade() -> None:
    # SQLite's own DROP COLUMN: rebuilding the table would trip the foreign keys of the rows
    # that point at appointments (reports, documents, links).
    with op.batch_alter_table("appointment", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("reported_at")
