"""guest_invitation: a consultation's fourth participant (interpreter, carer) with a
single-use link, and the guest session kind

Revision ID: 0013
Revises: 0012
Create Date: 2027-01-10 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import app.db
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "guest_invitation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "interpreter",
                "sign_language",
                "carer",
                "other",
                name="guestkind",
                native_enum=False,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("valid_from", app.db.UTCDateTime(), nullable=False),
        sa.Column("valid_until", app.db.UTCDateTime(), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("revoked_at", app.db.UTCDateTime(), nullable=True),
        sa.Column("redeemed_at", app.db.UTCDateTime(), nullable=True),
        sa.Column("session_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("admitted_at", app.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["appointment_id"], ["appointment.id"]),
        sa.ForeignKeyConstraint(["created_by"], ["staff_user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("guest_invitation", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_guest_invitation_appointment_id"), ["appointment_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_guest_invitation_token_hash"), ["token_hash"], unique=True
        )


def downgrade() -> None:
    # The previous release knows neither the session kind nor the event: rows of them would
    # break its session lookups and its dispatcher.
    op.execute("DELETE FROM auth_session WHERE kind = 'guest'")
    op.execute("DELETE FROM outbox_event WHERE type = 'guest.changed'")
    with op.batch_alter_table("guest_invitation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_guest_invitation_token_hash"))
        batch_op.drop_index(batch_op.f("ix_guest_invitation_appointment_id"))
    op.drop_table("guest_invitation")
