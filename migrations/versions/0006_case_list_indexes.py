"""case list indexes: keyset pages on every view, and deadlines that are always set

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 15:00:00

The case list reads one page at a time from where the last ended, so each view
and sort needs an index that starts with its filter and ends with its order:
(filter..., key, id). Partial indexes hold only open cases, or only running
deadlines, so the day-to-day views stay small however many closed cases there
are. Their conditions must read exactly as the queries' do (whistle.services.cases).

Both deadlines have been set on every report since 0002, so they become NOT NULL.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "status != 'closed'"
#: name: (columns, partial condition or None)
REPORT_INDEXES: dict[str, tuple[list[str], str | None]] = {
    "ix_report_received": (["received_on", "id"], None),
    "ix_report_status_received": (["status", "received_on", "id"], None),
    "ix_report_priority_received": (["priority", "received_on", "id"], None),
    "ix_report_acknowledge_by_id": (["acknowledge_by", "id"], None),
    "ix_report_feedback_by_id": (["feedback_by", "id"], None),
    "ix_report_open_assignee": (["assignee_id", "received_on", "id"], OPEN),
    "ix_report_open_priority": (["priority", "received_on", "id"], OPEN),
    "ix_report_acknowledge_running": (["acknowledge_by", "id"], f"{OPEN} AND acknowledged_on IS NULL"),
    "ix_report_feedback_running": (["feedback_by", "id"], f"{OPEN} AND feedback_given_on IS NULL"),
}
REPLACED = [
    "ix_report_received_on",
    "ix_report_status",
    "ix_report_priority",
    "ix_report_acknowledge_by",
    "ix_report_feedback_by",
]


def _where(condition: str | None) -> dict[str, object]:
    if condition is None:
        return {}
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


def upgrade() -> None:
    with op.batch_alter_table("report", schema=None) as batch_op:
        for name in REPLACED:
            batch_op.drop_index(name)
        batch_op.alter_column("acknowledge_by", existing_type=sa.Date(), nullable=False)
        batch_op.alter_column("feedback_by", existing_type=sa.Date(), nullable=False)
    for name, (columns, condition) in REPORT_INDEXES.items():
        op.create_index(name, "report", columns, unique=False, **_where(condition))
    with op.batch_alter_table("key_wrap", schema=None) as batch_op:
        batch_op.drop_index("ix_key_wrap_officer_id")
        batch_op.create_index("ix_key_wrap_officer", ["officer_id", "purpose", "report_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("key_wrap", schema=None) as batch_op:
        batch_op.drop_index("ix_key_wrap_officer")
        batch_op.create_index("ix_key_wrap_officer_id", ["officer_id"], unique=False)
    for name in REPORT_INDEXES:
        op.drop_index(name, table_name="report")
    with op.batch_alter_table("report", schema=None) as batch_op:
        batch_op.alter_column("acknowledge_by", existing_type=sa.Date(), nullable=True)
        batch_op.alter_column("feedback_by", existing_type=sa.Date(), nullable=True)
        for name in REPLACED:
            batch_op.create_index(name, [name.removeprefix("ix_report_")], unique=False)
