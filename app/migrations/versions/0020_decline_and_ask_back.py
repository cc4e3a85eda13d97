"""decline_and_ask_back: who cancelled an appointment and why (a specialist declines), the
messages between the booking GP and the specialist, and since when a question waits

Revision ID: 0020
Revises: 0019
Create Date: 2027-03-04 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import app.db
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cancelled_by", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=True)
        )
        batch_op.add_column(sa.Column("cancel_reason", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("question_open_since", app.db.UTCDateTime(), nullable=True)
        )
    op.create_table(
        "consult_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["appointment_id"], ["appointment.id"]),
        sa.ForeignKeyConstraint(["author_id"], ["staff_user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_consult_message_appointment_id", "consult_message", ["appointment_id"])


def downgrade() -> None:
    op.drop_index("ix_consult_message_appointment_id", table_name="consult_message")
    op.drop_table("consult_message")
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        batch_op.drop_column("question_open_since")
        batch_op.drop_column("cancel_reason")
        batch_op.drop_column("cancelled_by")
