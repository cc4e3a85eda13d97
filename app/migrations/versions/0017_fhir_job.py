"""fhir_job: the asynchronous FHIR requests (``$book`` with ``Prefer: respond-async``) and
how each ended; no health data

Revision ID: 0017
Revises: 0016
Create Date: 2027-03-01 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import app.db
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fhir_job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(), nullable=False),
        sa.Column("finished_at", app.db.UTCDateTime(), nullable=True),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("appointment_id", sa.Integer(), nullable=True),
        sa.Column("issue_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("diagnostics", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["owner_id"], ["staff_user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_fhir_job_owner_id", "fhir_job", ["owner_id"])
    op.create_index("ix_fhir_job_created_at", "fhir_job", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_fhir_job_created_at", table_name="fhir_job")
    op.drop_index("ix_fhir_job_owner_id", table_name="fhir_job")
    op.drop_table("fhir_job")
