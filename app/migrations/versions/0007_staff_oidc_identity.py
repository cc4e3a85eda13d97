"""staff_oidc_identity: single sign-on identities (issuer, subject) on staff accounts, SSO-only
accounts without a password, and the provider that authenticated a session

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("staff_user", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("oidc_issuer", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True)
        )
        batch_op.add_column(
            sa.Column("oidc_subject", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True)
        )
        batch_op.alter_column(
            "password_hash",
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=200),
            nullable=True,
        )
        batch_op.create_unique_constraint(
            "uq_staff_user_oidc_identity", ["oidc_issuer", "oidc_subject"]
        )
    with op.batch_alter_table("auth_session", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("oidc_issuer", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("auth_session", schema=None) as batch_op:
        batch_op.drop_column("oidc_issuer")
    # SSO-only accounts get a password nobody knows (an unusable hash): they stay, but can only
    # log in again once an admin sets a password.
    op.execute("UPDATE staff_user SET password_hash = '!' WHERE password_hash IS NULL")
    with op.batch_alter_table("staff_user", schema=None) as batch_op:
        batch_op.drop_constraint("uq_staff_user_oidc_identity", type_="unique")
        batch_op.alter_column(
            "password_hash",
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=200),
            nullable=False,
        )
        batch_op.drop_column("oidc_subject")
        batch_op.drop_column("oidc_issuer")
