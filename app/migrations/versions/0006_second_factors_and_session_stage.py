"""second factors (TOTP, WebAuthn), recovery codes; session stage, idle time and re-auth

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 04:51:32
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import app.db
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Server defaults, so that a process of the previous release, which does not know the new
# columns, can still open sessions during a rolling upgrade.
NOW = sa.text("CURRENT_TIMESTAMP")
STAGE = sa.Enum("full", "second_factor", "enrol", name="sessionstage", native_enum=False, length=24)


def upgrade() -> None:
    op.create_table(
        "recovery_code",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("used_at", app.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["staff_user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("recovery_code", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recovery_code_user_id"), ["user_id"], unique=False)

    op.create_table(
        "second_factor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("totp", "webauthn", name="factorkind", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=True),
        sa.Column("credential_id", sqlmodel.sql.sqltypes.AutoString(length=1400), nullable=True),
        sa.Column("public_key", sa.Text(), nullable=True),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("confirmed_at", app.db.UTCDateTime(), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(), nullable=False),
        sa.Column("last_used_at", app.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["staff_user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("credential_id"),
    )
    with op.batch_alter_table("second_factor", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_second_factor_user_id"), ["user_id"], unique=False)

    # SQLite cannot add a column with a CURRENT_TIMESTAMP default to a table with rows: rebuild
    # it there (nothing references auth_session); PostgreSQL alters it in place.
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table(
        "auth_session", schema=None, recreate="always" if sqlite else "auto"
    ) as batch_op:
        batch_op.add_column(
            sa.Column("last_seen_at", app.db.UTCDateTime(), nullable=False, server_default=NOW)
        )
        batch_op.add_column(sa.Column("stage", STAGE, nullable=False, server_default="full"))
        batch_op.add_column(
            sa.Column("verified_at", app.db.UTCDateTime(), nullable=False, server_default=NOW)
        )
        batch_op.add_column(
            sa.Column(
                "user_agent",
                sqlmodel.sql.sqltypes.AutoString(length=200),
                nullable=False,
                server_default="",
            )
        )
        batch_op.add_column(
            sa.Column(
                "ip", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False, server_default=""
            )
        )
        batch_op.add_column(
            sa.Column("challenge", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True)
        )


def downgrade() -> None:
    # SQLite's own DROP COLUMN: rebuilding auth_session is not needed for dropped columns.
    with op.batch_alter_table("auth_session", schema=None, recreate="never") as batch_op:
        for column in ("challenge", "ip", "user_agent", "verified_at", "stage", "last_seen_at"):
            batch_op.drop_column(column)
    with op.batch_alter_table("second_factor", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_second_factor_user_id"))
    op.drop_table("second_factor")
    with op.batch_alter_table("recovery_code", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recovery_code_user_id"))
    op.drop_table("recovery_code")
