"""Initial store: raw records, canonical tables, cursors, deletions, quarantine, runs, KPIs.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)

# Frozen copy of the canonical columns at this revision (kpis/tables.py may grow; a later
# migration adds columns, this one never changes).
_CANONICAL: dict[str, tuple[str, ...]] = {
    "teams": ("id", "name", "parent_id"),
    "reps": ("id", "name", "email", "team_id", "manager_id", "is_active"),
    "accounts": ("id", "name", "owner_id", "created_at", "customer_status"),
    "leads": (
        "id", "owner_id", "created_at", "source", "status", "qualified_at", "converted_at",
        "converted_account_id", "converted_opportunity_id", "disqualified_at", "score",
    ),
    "opportunities": (
        "id", "owner_id", "account_id", "lead_id", "created_at", "close_date", "stage",
        "is_closed", "is_won", "amount", "currency", "type", "cost", "recurring_monthly_amount",
        "contract_start", "contract_end", "competitor", "competitor_price",
    ),
    "activities": (
        "id", "owner_id", "kind", "direction", "outcome", "occurred_at", "duration_minutes",
        "lead_id", "account_id", "opportunity_id",
    ),
    "quotas": ("owner_id", "period_start", "period_end", "amount", "currency"),
    "fx_rates": ("currency", "start_date", "rate"),
    "costs": ("period_start", "period_end", "team_id", "amount"),
}  # fmt: skip


def _key(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.String(100), primary_key=True)


def upgrade() -> None:
    op.create_table(
        "raw_records", _key("connection"), _key("object"), _key("record_id"),
        sa.Column("data", sa.Text, nullable=False), sa.Column("seen_at", _TS, nullable=False),
    )  # fmt: skip
    op.create_table(
        "cursors", _key("connection"), _key("object"), sa.Column("value", sa.String(200)),
        sa.Column("state", sa.Text), sa.Column("updated_at", _TS, nullable=False),
    )  # fmt: skip
    op.create_table(
        "deletions", _key("connection"), _key("object"), _key("record_id"),
        sa.Column("deleted_at", _TS, nullable=False), sa.Column("recorded_at", _TS, nullable=False),
    )  # fmt: skip
    op.create_table(
        "quarantine", _key("connection"), _key("object"), _key("record_id"),
        sa.Column("reason", sa.Text, nullable=False), sa.Column("payload", sa.Text),
        sa.Column("recorded_at", _TS, nullable=False),
    )  # fmt: skip
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("connection", sa.String(100), nullable=False, index=True),
        sa.Column("crm", sa.String(20), nullable=False),
        sa.Column("mode", sa.String(20), nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("finished_at", _TS),
        sa.Column("duration_s", sa.Float),
        sa.Column("outcome", sa.String(20)),
        sa.Column("message", sa.Text),
        sa.Column("objects", sa.Text),
        *[sa.Column(c, sa.Integer) for c in
          ("records_in", "inserted", "updated", "deleted", "quarantined", "api_calls")],
    )  # fmt: skip
    op.create_table(
        "api_usage", _key("connection"), sa.Column("used", sa.BigInteger, nullable=False),
        sa.Column("daily_limit", sa.BigInteger, nullable=False),
        sa.Column("observed_at", _TS, nullable=False),
    )  # fmt: skip
    op.create_table(
        "kpi_values",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("connection", sa.String(100), nullable=False, index=True),
        sa.Column("metric", sa.String(100), nullable=False),
        sa.Column("scope", sa.String(10), nullable=False),
        sa.Column("subject_id", sa.String(100), nullable=False),
        sa.Column("period_start", sa.Date),
        sa.Column("period_end", sa.Date),
        sa.Column("value", sa.Float),
        sa.Column("unit", sa.String(40)),
        sa.Column("numerator", sa.Float),
        sa.Column("denominator", sa.Float),
        sa.Column("records", sa.BigInteger),
        sa.Column("dimension", sa.String(200)),
        sa.Column("computed_at", _TS, nullable=False),
    )
    for name, columns in _CANONICAL.items():
        op.create_table(
            f"canonical_{name}", _key("connection"), _key("row_key"),
            *[sa.Column(c, sa.Text) for c in columns],
        )  # fmt: skip


def downgrade() -> None:
    for name in _CANONICAL:
        op.drop_table(f"canonical_{name}")
    for table in ("kpi_values", "api_usage", "sync_runs", "quarantine", "deletions", "cursors",
                  "raw_records"):  # fmt: skip
        op.drop_table(table)
