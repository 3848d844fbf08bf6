"""The store's tables as SQLAlchemy Core metadata (the current schema; migrations build it).

Kept apart from ``store.py`` so the Alembic migrations and the store agree on one definition of
the *current* schema; each migration still spells out its own DDL, so old migrations never change
when this file does.
"""

from __future__ import annotations

import polars as pl
import sqlalchemy as sa

from kpis.tables import TABLES

metadata = sa.MetaData()
_TS = sa.DateTime(timezone=True)


def _conn() -> sa.Column[str]:
    return sa.Column("connection", sa.String(100), primary_key=True)


raw_records = sa.Table(
    "raw_records",
    metadata,
    _conn(),
    sa.Column("object", sa.String(100), primary_key=True),
    sa.Column("record_id", sa.String(100), primary_key=True),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("seen_at", _TS, nullable=False),
)

cursors = sa.Table(
    "cursors",
    metadata,
    _conn(),
    sa.Column("object", sa.String(100), primary_key=True),
    sa.Column("value", sa.String(200)),
    sa.Column("state", sa.Text),
    sa.Column("updated_at", _TS, nullable=False),
)

deletions = sa.Table(
    "deletions",
    metadata,
    _conn(),
    sa.Column("object", sa.String(100), primary_key=True),
    sa.Column("record_id", sa.String(100), primary_key=True),
    sa.Column("deleted_at", _TS, nullable=False),
    sa.Column("recorded_at", _TS, nullable=False),
)

quarantine = sa.Table(
    "quarantine",
    metadata,
    _conn(),
    sa.Column("object", sa.String(100), primary_key=True),
    sa.Column("record_id", sa.String(100), primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("payload", sa.Text),
    sa.Column("recorded_at", _TS, nullable=False),
)

sync_runs = sa.Table(
    "sync_runs",
    metadata,
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
    sa.Column("records_in", sa.Integer),
    sa.Column("inserted", sa.Integer),
    sa.Column("updated", sa.Integer),
    sa.Column("deleted", sa.Integer),
    sa.Column("quarantined", sa.Integer),
    sa.Column("api_calls", sa.Integer),
)

api_usage = sa.Table(
    "api_usage",
    metadata,
    _conn(),
    sa.Column("used", sa.BigInteger, nullable=False),
    sa.Column("daily_limit", sa.BigInteger, nullable=False),
    sa.Column("observed_at", _TS, nullable=False),
)

KPI_SCHEMA: dict[str, pl.DataType] = {
    "metric": pl.String(),
    "scope": pl.String(),
    "subject_id": pl.String(),
    "period_start": pl.Date(),
    "period_end": pl.Date(),
    "value": pl.Float64(),
    "unit": pl.String(),
    "numerator": pl.Float64(),
    "denominator": pl.Float64(),
    "records": pl.Int64(),
    "dimension": pl.String(),
}
KPI_COLUMNS = tuple(KPI_SCHEMA)

kpi_values = sa.Table(
    "kpi_values",
    metadata,
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


def canonical_columns(table: str) -> list[str]:
    """The canonical columns a store table holds (the required set of CANONICAL.md)."""
    return list(TABLES[table].columns)


def _canonical_table(name: str) -> sa.Table:
    return sa.Table(
        f"canonical_{name}",
        metadata,
        _conn(),
        sa.Column("row_key", sa.String(100), primary_key=True),
        *[sa.Column(c, sa.Text) for c in canonical_columns(name)],
    )


canonical: dict[str, sa.Table] = {name: _canonical_table(name) for name in TABLES}

# -- writeback (migration 0002) -----------------------------------------------------------------
# What kpisync last wrote to each CRM target, one row per KPI row key: the hash of the values the
# CRM confirmed, the CRM's record id, and the failure state of a row the CRM refused.
writeback_ledger = sa.Table(
    "writeback_ledger",
    metadata,
    _conn(),
    sa.Column("target", sa.String(100), primary_key=True),
    sa.Column("row_key", sa.String(300), primary_key=True),
    sa.Column("value_hash", sa.String(64)),
    sa.Column("crm_id", sa.String(100)),
    sa.Column("written_at", _TS),
    sa.Column("pending_hash", sa.String(64)),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("next_attempt_at", _TS),
    sa.Column("parked", sa.Boolean, nullable=False),
    sa.Column("updated_at", _TS, nullable=False),
)

# Everything ``kpisync install`` created in a CRM, so uninstall removes exactly that.
writeback_installed = sa.Table(
    "writeback_installed",
    metadata,
    _conn(),
    sa.Column("kind", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("crm", sa.String(20), nullable=False),
    sa.Column("crm_id", sa.String(100)),
    sa.Column("detail", sa.Text),
    sa.Column("created_at", _TS, nullable=False),
)

# -- service (migration 0003) -------------------------------------------------------------------
# One row per cycle ``kpisync run`` started (sync → compute → writeback of one connection), by the
# process that held the connection's lock (``holder``: host:pid). A row still ``running`` whose
# connection is no longer locked was cut short by a process that died.
service_cycles = sa.Table(
    "service_cycles",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("connection", sa.String(100), nullable=False, index=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("started_at", _TS, nullable=False),
    sa.Column("finished_at", _TS),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("failed_step", sa.String(20)),
    sa.Column("message", sa.Text),
    sa.Column("seconds", sa.Text),
    sa.Column("kpi_values", sa.Integer),
    sa.Column("written", sa.Integer),
)

# When each connection's next cycle is due: shared by every ``kpisync run`` process on the store.
service_schedule = sa.Table(
    "service_schedule",
    metadata,
    sa.Column("connection", sa.String(100), primary_key=True),
    sa.Column("next_run_at", _TS),
    sa.Column("updated_at", _TS, nullable=False),
)
