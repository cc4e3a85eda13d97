"""specialist_presence: a specialist's own presence toggle (on duty / away) and the session
that set it (app/presence)

Revision ID: 0014
Revises: 0013
Create Date: 2027-01-20 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import app.db
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "specialist_presence",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("on_duty", "away", name="chosen", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("session_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("updated_at", app.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["staff_user.id"]),
        sa.PrimaryKeyConstraint("user_id"),
    )


def downgrade() -> None:
    # The previous release knows neither the table nor the event: a row of the event would
    # keep its aggregate waiting in its dispatcher.
    op.execute("DELETE FROM outbox_event WHERE type = 'presence.changed'")
    op.drop_table("specialist_presence")
