"""written_telekonsil: an appointment may be a written Telekonsil (kind 'written', no video;
app/scheduling/written.py), and a question back e-mails the GP (message kind
'question_asked'). Kinds are VARCHAR without a database constraint, so the upgrade changes no
table; the downgrade refuses while written requests exist, which the previous release could not
read, and deletes the events and messages it does not know.

Revision ID: 0022
Revises: 0021
Create Date: 2027-02-27 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENTS = ("written.requested", "written.claimed", "conversation.question_asked")


def upgrade() -> None:
    pass  # nothing to change: see the module's docstring


def downgrade() -> None:
    # Nothing is deleted behind the operator's back: written requests are answered, withdrawn
    # or left to retention first.
    bind = op.get_bind()
    written = bind.execute(
        sa.text("SELECT count(*) FROM appointment WHERE kind = 'written'")
    ).scalar_one()
    if written:
        raise RuntimeError(
            f"{written} written Telekonsil request(s): wait for retention to delete them "
            "before downgrading below 0022"
        )
    # A row of an event the previous release does not know would keep its aggregate waiting;
    # a message of a kind it does not know would not load.
    bind.execute(
        sa.text("DELETE FROM outbox_event WHERE type IN :types").bindparams(
            sa.bindparam("types", expanding=True)
        ),
        {"types": list(EVENTS)},
    )
    op.execute("DELETE FROM outgoing_message WHERE kind = 'question_asked'")
