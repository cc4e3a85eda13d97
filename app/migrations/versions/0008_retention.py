"""retention: audit rows reduced to ids (reduced_at), and the permit that lets only the
retention job change the append-only audit table

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

import app.db
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of app.audit.models' triggers as of this revision.
GUARDED_SQLITE = [
    "CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event "
    "WHEN NOT EXISTS (SELECT 1 FROM audit_permit) "
    "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END",
    "CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event "
    "WHEN NOT EXISTS (SELECT 1 FROM audit_permit) "
    "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END",
]
GUARDED_POSTGRESQL = [
    "CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$ "
    "BEGIN "
    "IF EXISTS (SELECT 1 FROM audit_permit) THEN "
    "IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; RETURN NEW; "
    "END IF; "
    "RAISE EXCEPTION 'audit_event is append-only'; END; $$ LANGUAGE plpgsql",
]
STRICT_SQLITE = [
    "CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event "
    "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END",
    "CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event "
    "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END",
]
STRICT_POSTGRESQL = [
    "CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$ "
    "BEGIN RAISE EXCEPTION 'audit_event is append-only'; END; $$ LANGUAGE plpgsql",
]
DROP_SQLITE = [
    "DROP TRIGGER IF EXISTS audit_event_no_update",
    "DROP TRIGGER IF EXISTS audit_event_no_delete",
]


def upgrade() -> None:
    op.create_table(
        "audit_permit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    # SQLite rebuilds the table for a batch change: the triggers go first and come back after.
    for statement in DROP_SQLITE if sqlite else []:
        op.execute(statement)
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reduced_at", app.db.UTCDateTime(), nullable=True))
        batch_op.create_index("ix_audit_event_reduced", ["reduced_at", "at"], unique=False)
    for statement in GUARDED_SQLITE if sqlite else GUARDED_POSTGRESQL:
        op.execute(statement)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in DROP_SQLITE if sqlite else []:
        op.execute(statement)
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_event_reduced")
        batch_op.drop_column("reduced_at")
    for statement in STRICT_SQLITE if sqlite else STRICT_POSTGRESQL:
        op.execute(statement)
    op.drop_table("audit_permit")
