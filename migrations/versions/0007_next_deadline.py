"""next deadline: overdue and due-soon as one range of one index, in deadline order

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 21:00:00

A case is overdue when the nearest deadline it has still to meet is past, and due
soon when that deadline falls within the week. With the two clocks in separate
columns, those views were the union of two ranges, which the database had to
gather and sort before it could cut a page: the more cases due at once, the
slower each page. The nearest deadline is now a column the database computes
from the clocks (so nothing can leave it stale), with an index of its own: a
page of either view, read in deadline order, is one short walk of that index.

The expression and the index's condition read exactly as whistle.models has them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEXT_DEADLINE = (
    "CASE WHEN status = 'closed' THEN NULL"
    " WHEN acknowledged_on IS NULL AND (feedback_given_on IS NOT NULL OR acknowledge_by <= feedback_by)"
    " THEN acknowledge_by"
    " WHEN feedback_given_on IS NULL THEN feedback_by END"
)
RUNNING = "next_deadline IS NOT NULL"


def upgrade() -> None:
    column = sa.Column("next_deadline", sa.Date(), sa.Computed(NEXT_DEADLINE, persisted=True), nullable=True)
    if op.get_bind().dialect.name == "sqlite":
        # SQLite cannot add a stored column to a table: the table is made again with it.
        with op.batch_alter_table("report", recreate="always") as batch_op:
            batch_op.add_column(column)
    else:
        op.add_column("report", column)
    op.create_index(
        "ix_report_next_deadline",
        "report",
        ["next_deadline", "id"],
        unique=False,
        sqlite_where=sa.text(RUNNING),
        postgresql_where=sa.text(RUNNING),
    )


def downgrade() -> None:
    op.drop_index("ix_report_next_deadline", table_name="report")
    op.drop_column("report", "next_deadline")
