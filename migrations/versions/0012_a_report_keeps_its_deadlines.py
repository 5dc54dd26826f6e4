"""a report keeps its deadlines: the feedback period it was given

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 07:20:00

The receipt promises two days. They used to be worked out again from the
current settings whenever a case changed, so a period an administrator changed
later moved the days a reporter had been given. A report now keeps the day to
acknowledge by (already stored) and the feedback period in force when it arrived.

Reports already stored get the period that gives the feedback day they hold;
one whose stored day fits no period of 1 to 12 months gets three.
"""

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from dateutil.relativedelta import relativedelta

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

report = sa.table(
    "report",
    sa.column("id", sa.BigInteger()),
    sa.column("acknowledge_by", sa.Date()),
    sa.column("acknowledged_on", sa.Date()),
    sa.column("feedback_by", sa.Date()),
    sa.column("feedback_months", sa.SmallInteger()),
)


def _period(start: dt.date, feedback_by: dt.date) -> int:
    return next((months for months in range(1, 13) if start + relativedelta(months=months) == feedback_by), 3)


def upgrade() -> None:
    op.add_column(
        "report", sa.Column("feedback_months", sa.SmallInteger(), server_default="3", nullable=False)
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(report.c.id, report.c.acknowledge_by, report.c.acknowledged_on, report.c.feedback_by)
    )
    for row in rows.all():
        months = _period(row.acknowledged_on or row.acknowledge_by, row.feedback_by)
        bind.execute(sa.update(report).where(report.c.id == row.id).values(feedback_months=months))


def downgrade() -> None:
    op.drop_column("report", "feedback_months")
