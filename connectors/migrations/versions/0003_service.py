"""Service: the log of cycles ``kpisync run`` ran, and each connection's next scheduled run.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "service_cycles",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("connection", sa.String(100), nullable=False, index=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("started_at", _TS, nullable=False), sa.Column("finished_at", _TS),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("failed_step", sa.String(20)),
        sa.Column("message", sa.Text), sa.Column("seconds", sa.Text),
        sa.Column("kpi_values", sa.Integer), sa.Column("written", sa.Integer),
    )  # fmt: skip
    op.create_table(
        "service_schedule",
        sa.Column("connection", sa.String(100), primary_key=True),
        sa.Column("next_run_at", _TS), sa.Column("updated_at", _TS, nullable=False),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("service_schedule")
    op.drop_table("service_cycles")
