"""telekonsil_request: the particulars of a Telekonsil request on the appointment (insurance
number, sex, diagnosis with ICD-10-GM code and certainty, medication, answer deadline, recorded
consent); all optional, so bookings made before keep working

Revision ID: 0016
Revises: 0015
Create Date: 2027-02-15 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import app.db
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEX = sa.Enum(
    "female", "male", "diverse", "unknown", name="patientsex", native_enum=False, length=24
)
CERTAINTY = sa.Enum("G", "V", "Z", "A", name="certainty", native_enum=False, length=24)
COLUMNS = (
    "consent_recorded_at",
    "answer_by",
    "medication",
    "diagnosis_text",
    "diagnosis_certainty",
    "diagnosis_code",
    "patient_sex",
    "patient_insurance_number",
)


def upgrade() -> None:
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "patient_insurance_number",
                sqlmodel.sql.sqltypes.AutoString(length=10),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("patient_sex", SEX, nullable=True))
        batch_op.add_column(
            sa.Column("diagnosis_code", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True)
        )
        batch_op.add_column(sa.Column("diagnosis_certainty", CERTAINTY, nullable=True))
        batch_op.add_column(
            sa.Column("diagnosis_text", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True)
        )
        batch_op.add_column(sa.Column("medication", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("answer_by", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("consent_recorded_at", app.db.UTCDateTime(), nullable=True))


def downgrade() -> None:
    # The previous release has no place for these particulars: they are dropped with their
    # columns (the bookings themselves stay).
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        for column in COLUMNS:
            batch_op.drop_column(column)
