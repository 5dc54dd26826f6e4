"""nothing dates a reporter: random row keys, sealed message positions, a history step number

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 07:20:00

Reporters' rows share tables with officers' rows whose exact times are audited.
With increasing keys, an officer reply audited at 01:28:57, a reporter's reply
and an officer reply audited at 01:29:05 placed the reporter's reply in an
8-second window. Every row key is now random (whistle.db.random_id): 64-bit on
PostgreSQL, SQLite's INTEGER key (the rowid itself) on SQLite. The audit log keeps
its increasing keys: it holds officers' and the system's actions only, and its
order is its hash chain.

What used to come from key order now comes from elsewhere: a conversation's
order from each message's sealed position, a case history's order from its step
number. Rows written before this migration keep their keys (and so their order
among themselves); the README says so.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Every row key and every column that refers to one, table by table.
KEYS = {
    "officer": ["id"],
    "label": ["id"],
    "closed_case_figures": ["id"],
    "setup_token": ["id"],
    "report": ["id", "assignee_id"],
    "invitation": ["id", "invited_by", "officer_id"],
    "server_session": ["id", "officer_id"],
    "attachment": ["id", "report_id"],
    "case_notice": ["id", "officer_id", "report_id"],
    "key_wrap": ["id", "report_id", "officer_id"],
    "message": ["id", "report_id", "officer_id"],
    "note": ["id", "report_id", "officer_id"],
    "status_change": ["id", "report_id", "officer_id"],
    "report_label": ["report_id", "label_id"],
    "closed_case_reader": ["figures_id", "officer_id"],
}
#: Tables whose key PostgreSQL filled from a sequence; keys now come from the application only.
SEQUENCED = [table for table, columns in KEYS.items() if columns[0] == "id"]


def upgrade() -> None:
    with op.batch_alter_table("message") as batch_op:
        batch_op.add_column(sa.Column("position_sealed", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("status_change") as batch_op:
        batch_op.add_column(sa.Column("seq", sa.Integer(), server_default="0", nullable=False))
    op.execute(
        "UPDATE status_change SET seq = (SELECT count(*) FROM status_change AS earlier"
        " WHERE earlier.report_id = status_change.report_id AND earlier.id < status_change.id)"
    )
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite's INTEGER holds 64 bits already
    for table, columns in KEYS.items():
        for column in columns:
            op.alter_column(table, column, type_=sa.BigInteger(), existing_type=sa.Integer())
    for table in SEQUENCED:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN id DROP DEFAULT")
        op.execute(f"DROP SEQUENCE IF EXISTS {table}_id_seq")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, columns in KEYS.items():
            for column in columns:
                op.alter_column(table, column, type_=sa.Integer(), existing_type=sa.BigInteger())
    with op.batch_alter_table("status_change") as batch_op:
        batch_op.drop_column("seq")
    with op.batch_alter_table("message") as batch_op:
        batch_op.drop_column("position_sealed")
