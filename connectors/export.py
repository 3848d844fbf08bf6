"""The store's canonical tables as the CSV files of CANONICAL.md (``kpisync export``).

Formatting is the one ``sandbox.generator.write_canonical_csv`` uses (timestamps
``%Y-%m-%dT%H:%M:%SZ``, dates ``%Y-%m-%d``, money with 2 decimals, exchange rates with 6), so an
export of a synced sandbox org compares byte for byte with ``kpisync sandbox seed --out`` once
rows are in the same order.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from kpis.tables import TABLES

# Sort keys of the export: the CRM ids where a table has them, the natural key otherwise.
SORT_KEYS: dict[str, tuple[str, ...]] = {
    "quotas": ("owner_id", "period_start", "currency"),
    "fx_rates": ("currency", "start_date"),
    "costs": ("period_start", "team_id"),
}


def sort_key(table: str) -> tuple[str, ...]:
    return SORT_KEYS.get(table, ("id",))


def write_tables_csv(frames: dict[str, pl.DataFrame], out_dir: Path) -> dict[str, Path]:
    """Write one ``<table>.csv`` per canonical table (typed frames), sorted; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for table in TABLES:
        frame = frames[table].sort(list(sort_key(table)), nulls_last=True, maintain_order=True)
        path = out_dir / f"{table}.csv"
        tmp = path.with_suffix(".csv.tmp")
        frame.write_csv(
            tmp,
            datetime_format="%Y-%m-%dT%H:%M:%SZ",
            date_format="%Y-%m-%d",
            float_precision=6 if table == "fx_rates" else 2,
        )
        tmp.replace(path)  # readers never see a half-written file
        paths[table] = path
    return paths
