"""audit times sealed: the day in clear, the exact time for the organisation's recovery key

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 07:30:00

An officer's exact time in the audit log is an anchor: against it, a reporter's
action can be dated. New entries keep only their day in clear; the exact time is
sealed for the organisation's offline recovery key (``whistle audit times``).
Entries written before keep their exact time (it is part of their hash, which an
administrator may have noted to compare later); the README says so.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_event") as batch_op:
        batch_op.add_column(sa.Column("day", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("time_sealed", sa.LargeBinary(), nullable=True))
        batch_op.alter_column("at", existing_type=sa.DateTime(timezone=True), nullable=True)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE audit_event SET day = CAST(at AT TIME ZONE 'UTC' AS date)")
    else:
        op.execute("UPDATE audit_event SET day = date(at)")


def downgrade() -> None:
    # The entries since keep only their day: their hashes no longer verify after a downgrade.
    op.execute("UPDATE audit_event SET at = day WHERE at IS NULL")
    with op.batch_alter_table("audit_event") as batch_op:
        batch_op.alter_column("at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.drop_column("time_sealed")
        batch_op.drop_column("day")
