"""on_call_requests: an appointment may be an on-call request of a specialty that no specialist
has taken yet (app/scheduling/on_call)

Revision ID: 0015
Revises: 0014
Create Date: 2027-02-01 10:00:00
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa

import app.db
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KIND = sa.Enum("booked", "on_call", name="appointmentkind", native_enum=False, length=24)
CHECK = "ck_appointment_booked_has_specialist"  # only an on-call request waits without one
EVENTS = ("on_call.requested", "on_call.claimed", "on_call.unclaimed", "on_call.escalated")


def upgrade() -> None:
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        batch_op.alter_column("specialist_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column("kind", KIND, nullable=False, server_default="booked"))
        batch_op.add_column(sa.Column("specialty_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("claim_until", app.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("claimed_at", app.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("unclaimed_at", app.db.UTCDateTime(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_appointment_specialty_id"), ["specialty_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_appointment_specialty_id_specialty"),
            "specialty",
            ["specialty_id"],
            ["id"],
        )
        batch_op.create_check_constraint(CHECK, "kind != 'booked' OR specialist_id IS NOT NULL")


def downgrade() -> None:
    # The previous release cannot hold an appointment without a specialist: open requests must
    # be taken first, and withdrawn ones wait for retention (nothing is deleted behind the
    # operator's back).
    bind = op.get_bind()
    open_requests = bind.execute(
        sa.text("SELECT count(*) FROM appointment WHERE specialist_id IS NULL")
    ).scalar_one()
    if open_requests:
        raise RuntimeError(
            f"{open_requests} appointment(s) without a specialist (on-call requests nobody "
            "took, open or withdrawn): have the open ones taken, and wait for retention to "
            "delete the withdrawn ones, before downgrading below 0015"
        )
    # Nor does it know these events: a row of one would keep its aggregate waiting. Nor the
    # message telling a GP that nobody took the request.
    bind.execute(
        sa.text("DELETE FROM outbox_event WHERE type IN :types").bindparams(
            sa.bindparam("types", expanding=True)
        ),
        {"types": list(EVENTS)},
    )
    op.execute("DELETE FROM outgoing_message WHERE kind = 'on_call_unclaimed'")
    _fit_events_to_0014(bind)
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        batch_op.drop_constraint(CHECK, type_="check")
        batch_op.drop_constraint(
            batch_op.f("fk_appointment_specialty_id_specialty"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_appointment_specialty_id"))
        batch_op.drop_column("unclaimed_at")
        batch_op.drop_column("claimed_at")
        batch_op.drop_column("claim_until")
        batch_op.drop_column("specialty_id")
        batch_op.drop_column("kind")
        batch_op.alter_column("specialist_id", existing_type=sa.Integer(), nullable=False)


def _fit_events_to_0014(bind: sa.Connection) -> None:
    """The previous release's events forbid unknown fields and want a specialist: a room event
    loses its ``specialty_id`` (always written since 0015, null for a booking), and a room or
    cancellation event of a request nobody had taken (no specialist to tell) is dropped."""
    rows = bind.execute(
        sa.text(
            "SELECT id, payload FROM outbox_event "
            "WHERE type IN ('room.state_changed', 'appointment.cancelled')"
        )
    ).all()
    for row_id, payload in rows:
        event = json.loads(payload)
        if event.get("specialist_id") is None:
            bind.execute(sa.text("DELETE FROM outbox_event WHERE id = :id"), {"id": row_id})
        elif "specialty_id" in event:
            del event["specialty_id"]
            bind.execute(
                sa.text("UPDATE outbox_event SET payload = :payload WHERE id = :id"),
                {"payload": json.dumps(event, separators=(",", ":")), "id": row_id},
            )
