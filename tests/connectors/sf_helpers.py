"""Helpers shared by the Salesforce connector tests."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import polars as pl

from connectors.base import SyncResult, sync_connection
from connectors.export import sort_key, write_tables_csv
from connectors.salesforce import SalesforceSource
from connectors.store import Store
from kpis.tables import TABLES

# Salesforce has no sales & marketing spend object (sandbox/salesforce/seed.py: "costs — not in
# Salesforce"); every other table must come back exactly.
NOT_IN_SALESFORCE = {"costs"}


def seed_csvs(canonical: dict[str, pl.DataFrame], out: Path) -> Path:
    """``kpisync sandbox seed --out`` for the sandbox's org (the generator's own writer)."""
    from sandbox.generator import write_canonical_csv

    write_canonical_csv(SimpleNamespace(tables=canonical), out)  # type: ignore[arg-type]
    return out


def export_csvs(store: Store, connection: str, out: Path) -> Path:
    write_tables_csv(dict(store.read_canonical(connection).frames), out)
    return out


def read_sorted(directory: Path, table: str) -> pl.DataFrame:
    frame = pl.read_csv(directory / f"{table}.csv", infer_schema=False)
    return frame.sort(list(sort_key(table)), nulls_last=True, maintain_order=True)


def assert_same_tables(expected: Path, got: Path) -> None:
    for table in TABLES:
        if table in NOT_IN_SALESFORCE:
            assert read_sorted(got, table).height == 0
            continue
        a, b = read_sorted(expected, table), read_sorted(got, table)
        assert a.columns == b.columns, table
        assert a.height == b.height, f"{table}: {a.height} expected, {b.height} synced"
        for column in a.columns:
            diff = (a[column].fill_null("∅") != b[column].fill_null("∅")).arg_true()
            assert diff.len() == 0, (
                f"{table}.{column}: {diff.len()} rows differ, first: "
                f"{a.row(diff[0], named=True)} vs {b.row(diff[0], named=True)}"
            )


def run(store: Store, source: SalesforceSource, **kw: Any) -> SyncResult:
    result = sync_connection(store, "sf", source, **kw)
    assert result.outcome == "ok", result.message
    return result
