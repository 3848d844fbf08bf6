"""Writeback: the ledger of what was written to each CRM, and what install created there.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def _key(name: str, length: int = 100) -> sa.Column[str]:
    return sa.Column(name, sa.String(length), primary_key=True)


def upgrade() -> None:
    op.create_table(
        "writeback_ledger", _key("connection"), _key("target"), _key("row_key", 300),
        sa.Column("value_hash", sa.String(64)), sa.Column("crm_id", sa.String(100)),
        sa.Column("written_at", _TS), sa.Column("pending_hash", sa.String(64)),
        sa.Column("failures", sa.Integer, nullable=False), sa.Column("last_error", sa.Text),
        sa.Column("next_attempt_at", _TS), sa.Column("parked", sa.Boolean, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )  # fmt: skip
    op.create_table(
        "writeback_installed", _key("connection"), _key("kind", 40), _key("name", 200),
        sa.Column("crm", sa.String(20), nullable=False), sa.Column("crm_id", sa.String(100)),
        sa.Column("detail", sa.Text), sa.Column("created_at", _TS, nullable=False),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("writeback_installed")
    op.drop_table("writeback_ledger")
