"""exclusions hold: reset links bound to their officer, reset notices, kept figures' readers

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 06:40:00

An invitation to a new officer could be used on an account made after it, and
replaced that officer's keys: a reset link now names the officer it resets, and
every other link only ever makes a new officer; links already made for an
existing officer's email are cancelled. An officer whose password an
administrator reset is emailed about it once. The figures kept after a case is
deleted now count only for the officers who could open the case; those kept
before this change count, as they did, for every officer.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("invitation") as batch_op:
        batch_op.add_column(sa.Column("officer_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_invitation_officer_id_officer"),
            "officer",
            ["officer_id"],
            ["id"],
            ondelete="CASCADE",
        )
    # A link made before this change for an email that has an officer cannot be told apart from a
    # stale first invitation that would take the account over: it is cancelled (a reset in flight
    # must be made again).
    op.execute("DELETE FROM invitation WHERE email IN (SELECT email FROM officer)")
    with op.batch_alter_table("officer") as batch_op:
        batch_op.add_column(
            sa.Column("reset_notice_due", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.create_table(
        "closed_case_reader",
        sa.Column("figures_id", sa.Integer(), nullable=False),
        sa.Column("officer_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["figures_id"],
            ["closed_case_figures.id"],
            name=op.f("fk_closed_case_reader_figures_id_closed_case_figures"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["officer_id"],
            ["officer.id"],
            name=op.f("fk_closed_case_reader_officer_id_officer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("figures_id", "officer_id", name=op.f("pk_closed_case_reader")),
    )
    op.create_index(
        op.f("ix_closed_case_reader_officer_id"), "closed_case_reader", ["officer_id"], unique=False
    )
    op.execute(
        "INSERT INTO closed_case_reader (figures_id, officer_id)"
        " SELECT closed_case_figures.id, officer.id FROM closed_case_figures CROSS JOIN officer"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_closed_case_reader_officer_id"), table_name="closed_case_reader")
    op.drop_table("closed_case_reader")
    with op.batch_alter_table("officer") as batch_op:
        batch_op.drop_column("reset_notice_due")
    with op.batch_alter_table("invitation") as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_invitation_officer_id_officer"), type_="foreignkey")
        batch_op.drop_column("officer_id")
