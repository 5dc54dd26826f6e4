"""one report per form: the HMAC of the report form's one-time token

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 07:10:00

A browser that reloads the receipt page sends the report form again. Each form
now carries a one-time token; the report keeps HMAC-SHA256(pepper, token), so a
second sending of the same form is recognised and makes no second report. It is
no time and says nothing of the reporter; without the pepper it cannot be tested.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A unique index rather than a constraint: SQLite adds it without rebuilding the table
    # (which its computed next_deadline column would not survive).
    op.add_column("report", sa.Column("submission_lookup", sa.LargeBinary(length=32), nullable=True))
    op.create_index(op.f("ix_report_submission_lookup"), "report", ["submission_lookup"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_report_submission_lookup"), table_name="report")
    op.drop_column("report", "submission_lookup")
