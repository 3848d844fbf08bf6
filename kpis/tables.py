"""The canonical tables: names, columns and types (the contract of CANONICAL.md).

Connectors write these tables, ``kpisync compute --from-csv`` reads them from CSV, and the KPI
engine reads nothing else. Columns may be added over time; none may be renamed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import polars as pl


class ColumnKind(StrEnum):
    """How a column's text is parsed (CSV conventions of the canonical format)."""

    ID = "id"
    TEXT = "text"
    TIMESTAMP = "timestamp"  # ISO 8601 in UTC with Z
    DATE = "date"  # YYYY-MM-DD
    BOOL = "bool"  # true / false
    NUMBER = "number"  # decimal text


DTYPES: dict[ColumnKind, pl.DataType] = {
    ColumnKind.ID: pl.String(),
    ColumnKind.TEXT: pl.String(),
    ColumnKind.TIMESTAMP: pl.Datetime("us", "UTC"),
    ColumnKind.DATE: pl.Date(),
    ColumnKind.BOOL: pl.Boolean(),
    ColumnKind.NUMBER: pl.Float64(),
}


@dataclass(frozen=True)
class TableSpec:
    """One canonical table: its file name, its columns in order, and which are required."""

    name: str
    columns: dict[str, ColumnKind]
    required: frozenset[str] = field(default_factory=frozenset)
    optional: dict[str, ColumnKind] = field(default_factory=dict)

    @property
    def file_name(self) -> str:
        return f"{self.name}.csv"

    def schema(self, with_optional: bool = False) -> dict[str, pl.DataType]:
        cols = dict(self.columns)
        if with_optional:
            cols.update(self.optional)
        return {name: DTYPES[kind] for name, kind in cols.items()}


_I, _T, _TS, _D, _B, _N = (
    ColumnKind.ID,
    ColumnKind.TEXT,
    ColumnKind.TIMESTAMP,
    ColumnKind.DATE,
    ColumnKind.BOOL,
    ColumnKind.NUMBER,
)

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec("teams", {"id": _I, "name": _T, "parent_id": _I}, frozenset({"id"})),
        TableSpec(
            "reps",
            {"id": _I, "name": _T, "email": _T, "team_id": _I, "manager_id": _I, "is_active": _B},
            frozenset({"id"}),
        ),
        TableSpec(
            "accounts",
            {"id": _I, "name": _T, "owner_id": _I, "created_at": _TS, "customer_status": _T},
            frozenset({"id"}),
            # A mapped satisfaction field (CSAT/NPS); present only when the CRM has one.
            optional={"csat": _N},
        ),
        TableSpec(
            "leads",
            {
                "id": _I,
                "owner_id": _I,
                "created_at": _TS,
                "source": _T,
                "status": _T,
                "qualified_at": _TS,
                "converted_at": _TS,
                "converted_account_id": _I,
                "converted_opportunity_id": _I,
                "disqualified_at": _TS,
                "score": _N,
            },
            frozenset({"id", "created_at"}),
        ),
        TableSpec(
            "opportunities",
            {
                "id": _I,
                "owner_id": _I,
                "account_id": _I,
                "lead_id": _I,
                "created_at": _TS,
                "close_date": _D,
                "stage": _T,
                "is_closed": _B,
                "is_won": _B,
                "amount": _N,
                "currency": _T,
                "type": _T,
                "cost": _N,
                "recurring_monthly_amount": _N,
                "contract_start": _D,
                "contract_end": _D,
                "competitor": _T,
                "competitor_price": _N,
            },
            frozenset({"id", "created_at", "is_closed", "is_won"}),
        ),
        TableSpec(
            "activities",
            {
                "id": _I,
                "owner_id": _I,
                "kind": _T,
                "direction": _T,
                "outcome": _T,
                "occurred_at": _TS,
                "duration_minutes": _N,
                "lead_id": _I,
                "account_id": _I,
                "opportunity_id": _I,
            },
            frozenset({"id", "kind", "occurred_at"}),
        ),
        TableSpec(
            "quotas",
            {
                "owner_id": _I,
                "period_start": _D,
                "period_end": _D,
                "amount": _N,
                "currency": _T,
            },
            frozenset({"owner_id", "period_start", "period_end", "amount"}),
        ),
        TableSpec(
            "fx_rates",
            {"currency": _T, "start_date": _D, "rate": _N},
            frozenset({"currency", "start_date", "rate"}),
        ),
        TableSpec(
            "costs",
            {"period_start": _D, "period_end": _D, "team_id": _I, "amount": _N},
            frozenset({"period_start", "period_end", "amount"}),
        ),
    )
}

OPPORTUNITY_TYPES = ("new_business", "upsell", "renewal", "other")
ACTIVITY_KINDS = ("call", "email", "meeting", "task")


def empty_table(name: str) -> pl.DataFrame:
    """An empty frame with the canonical schema of ``name``."""
    return pl.DataFrame(schema=TABLES[name].schema())


@dataclass(frozen=True)
class CanonicalTables:
    """The typed canonical tables the engine reads; a missing table is an empty one."""

    frames: dict[str, pl.DataFrame]

    def __getitem__(self, name: str) -> pl.DataFrame:
        frame = self.frames.get(name)
        return empty_table(name) if frame is None else frame

    def has_column(self, table: str, column: str) -> bool:
        return column in self[table].columns
