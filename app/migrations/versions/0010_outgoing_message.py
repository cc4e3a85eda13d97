"""outgoing_message: e-mail jobs (app/notify); how the GP asked Konsil to reach the patient, and
the join link sealed while Konsil is to send it

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import app.db
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=24)


def upgrade() -> None:
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "patient_channels",
                sqlmodel.sql.sqltypes.AutoString(length=40),
                server_default="",
                nullable=False,
            )
        )
        batch_op.add_column(
            sa.Column(
                "patient_language",
                sqlmodel.sql.sqltypes.AutoString(length=2),
                server_default="de",
                nullable=False,
            )
        )
    with op.batch_alter_table("join_token", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sealed", sa.Text(), nullable=True))
    op.create_table(
        "outgoing_message",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("appointment_id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column(
            "kind",
            _enum("kind", "invitation", "rescheduled", "new_link", "cancelled", "report_ready"),
            nullable=False,
        ),
        sa.Column("channel", _enum("channel", "email"), nullable=False),
        sa.Column("recipient", _enum("recipient", "patient", "gp"), nullable=False),
        sa.Column("language", sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
        sa.Column("join_token_id", sa.Integer(), nullable=True),
        sa.Column("resend_of", sa.Integer(), nullable=True),
        sa.Column(
            "status",
            _enum("status", "queued", "sending", "sent", "failed", "superseded"),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("available_at", app.db.UTCDateTime(), nullable=False),
        sa.Column("lease_until", app.db.UTCDateTime(), nullable=True),
        sa.Column("claim", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(), nullable=False),
        sa.Column("sent_at", app.db.UTCDateTime(), nullable=True),
        sa.Column("failed_at", app.db.UTCDateTime(), nullable=True),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("smtp_code", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["appointment_id"], ["appointment.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    with op.batch_alter_table("outgoing_message", schema=None) as batch_op:
        batch_op.create_index("ix_outgoing_message_due", ["status", "available_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_outgoing_message_appointment_id"), ["appointment_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("outgoing_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outgoing_message_appointment_id"))
        batch_op.drop_index("ix_outgoing_message_due")
    op.drop_table("outgoing_message")
    with op.batch_alter_table("join_token", schema=None) as batch_op:
        batch_op.drop_column("sealed")
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        batch_op.drop_column("patient_language")
        batch_op.drop_column("patient_channels")
