"""doctor_numbers: the LANR of a staff account (GPs and specialists) and the BSNR of a
practice, both optional

Revision ID: 0019
Revises: 0018
Create Date: 2027-03-03 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("staff_user", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("lanr", sqlmodel.sql.sqltypes.AutoString(length=9), nullable=True)
        )
    with op.batch_alter_table("practice", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("bsnr", sqlmodel.sql.sqltypes.AutoString(length=9), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("practice", schema=None) as batch_op:
        batch_op.drop_column("bsnr")
    with op.batch_alter_table("staff_user", schema=None) as batch_op:
        batch_op.drop_column("lanr")
