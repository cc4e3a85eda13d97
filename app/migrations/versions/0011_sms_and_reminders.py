"""SMS and reminders (app/notify): the patient's mobile number, a reminder's minutes before the
start and the SMS gateway's HTTP status on outgoing messages

The new channel ("sms") and kind ("reminder") need no change: the enum columns are VARCHAR
without a CHECK constraint.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-10 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("patient_phone", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True)
        )
    with op.batch_alter_table("outgoing_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reminder_minutes", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("http_status", sa.Integer(), nullable=True))


def downgrade() -> None:
    # Rows of the new channel and kind would not be understood by the previous release: an
    # SMS or a reminder not sent yet is dropped (its appointment keeps its other messages).
    op.execute("DELETE FROM outgoing_message WHERE channel = 'sms' OR kind = 'reminder'")
    with op.batch_alter_table("outgoing_message", schema=None) as batch_op:
        batch_op.drop_column("http_status")
        batch_op.drop_column("reminder_minutes")
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        batch_op.drop_column("patient_phone")
