"""fhir_job.fhir_client: the FHIR system client that opened the job (null for a staff
session), so a client may poll its own jobs with the scope that booked them

Revision ID: 0023
Revises: 0022
Create Date: 2027-03-10 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("fhir_job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fhir_client", sa.Integer(), nullable=True))


def downgrade() -> None:
    # The previous release polls by the GP and the read scope only: the column can go.
    with op.batch_alter_table("fhir_job", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("fhir_client")
