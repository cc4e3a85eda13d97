"""specialist_delay: the specialist's late notice for the day (app/rooms); delay_notice: what
each patient was last told of it by message (app/notify/delays.py)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-15 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import app.db
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "specialist_delay",
        sa.Column("specialist_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=True),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=140), nullable=True),
        sa.Column("updated_at", app.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["specialist_id"], ["staff_user.id"]),
        sa.PrimaryKeyConstraint("specialist_id"),
    )
    op.create_table(
        "delay_notice",
        sa.Column("appointment_id", sa.Integer(), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("updated_at", app.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["appointment_id"], ["appointment.id"]),
        sa.PrimaryKeyConstraint("appointment_id"),
    )


def downgrade() -> None:
    # The previous release knows neither the message kind nor the event: rows of them would
    # break its message list, its sender and its dispatcher.
    op.execute("DELETE FROM outgoing_message WHERE kind = 'delay'")
    op.execute("DELETE FROM outbox_event WHERE type = 'delay.changed'")
    op.drop_table("delay_notice")
    op.drop_table("specialist_delay")
