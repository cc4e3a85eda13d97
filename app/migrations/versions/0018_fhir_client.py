"""fhir_client: the FHIR system clients a doctor registers (SMART Backend Services): their
public keys, scopes, the staff account each acts as and its role then

Revision ID: 0018
Revises: 0017
Create Date: 2027-03-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import app.db
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fhir_client",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("jwks", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(), nullable=False),
        sa.Column("last_used_at", app.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["staff_user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_id"),
    )
    op.create_index("ix_fhir_client_account_id", "fhir_client", ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_fhir_client_account_id", table_name="fhir_client")
    op.drop_table("fhir_client")
