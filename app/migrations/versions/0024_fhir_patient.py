"""fhir_patient: Patients a FHIR client created (POST Patient) to book by reference; the
patient fields a booking needs, kept 7 days (retention kind fhir_patients)

Revision ID: 0024
Revises: 0023
Create Date: 2027-03-10 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import app.db
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fhir_patient",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("fhir_client", sa.Integer(), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(), nullable=False),
        sa.Column("patient_name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("patient_birth_date", sa.Date(), nullable=False),
        sa.Column("patient_contact", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
        sa.Column(
            "patient_insurance_number", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True
        ),
        sa.Column("patient_sex", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.ForeignKeyConstraint(["owner_id"], ["staff_user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_fhir_patient_owner_id", "fhir_patient", ["owner_id"])
    op.create_index("ix_fhir_patient_created_at", "fhir_patient", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_fhir_patient_created_at", table_name="fhir_patient")
    op.drop_index("ix_fhir_patient_owner_id", table_name="fhir_patient")
    op.drop_table("fhir_patient")
