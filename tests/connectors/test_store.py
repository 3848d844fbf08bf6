"""The store contract, on SQLite and PostgreSQL: one transaction per batch, cursors with it."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
import sqlalchemy as sa

from connectors.store import Cursor, RunStats, Store

C = "conn"
OPP = {"id": "006A", "owner_id": "005A", "created_at": "2025-01-02T03:04:05Z",
       "close_date": "2025-02-01", "is_closed": "true", "is_won": "true", "amount": "1250.5",
       "currency": "EUR", "stage": "Closed Won"}  # fmt: skip


def test_migrate_is_idempotent_and_creates_every_table(store: Store) -> None:
    store.migrate()
    names = set(sa.inspect(store.engine).get_table_names())
    assert {"raw_records", "cursors", "deletions", "quarantine", "sync_runs", "kpi_values",
            "api_usage", "alembic_version"} <= names  # fmt: skip
    assert {f"canonical_{t}" for t in ("teams", "reps", "accounts", "leads", "opportunities",
            "activities", "quotas", "fx_rates", "costs")} <= names  # fmt: skip


def test_batch_writes_records_rows_and_cursor_together(store: Store) -> None:
    with store.batch(C) as b:
        assert b.upsert_raw("Opportunity", [("006A", {"Id": "006A", "Amount": 1250.5})]) == (1, 0)
        b.upsert_rows("opportunities", [("006A", OPP)])
        b.set_cursor("Opportunity", Cursor("2025-01-02T03:04:05Z", {"fields": ["Id"]}))
    assert store.cursor(C, "Opportunity") is not None
    assert store.cursor(C, "Opportunity").value == "2025-01-02T03:04:05Z"  # type: ignore[union-attr]
    typed = store.read_canonical(C)["opportunities"]
    assert typed.height == 1
    assert typed["amount"][0] == 1250.5
    assert typed["created_at"][0] == dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert typed["is_won"][0] is True
    # Same record again: no update; a change: one update.
    with store.batch(C) as b:
        assert b.upsert_raw("Opportunity", [("006A", {"Id": "006A", "Amount": 1250.5})]) == (0, 0)
        assert b.upsert_raw("Opportunity", [("006A", {"Id": "006A", "Amount": 9})]) == (0, 1)


def test_a_failed_batch_leaves_neither_rows_nor_cursor(store: Store) -> None:
    with pytest.raises(RuntimeError), store.batch(C) as b:
        b.upsert_raw("Opportunity", [("006A", {"Id": "006A"})])
        b.upsert_rows("opportunities", [("006A", OPP)])
        b.set_cursor("Opportunity", Cursor("2025-01-02T03:04:05Z"))
        raise RuntimeError("crash between the rows and the commit")
    assert store.cursors(C) == {}
    assert store.canonical_text(C)["opportunities"].height == 0
    assert list(store.raw_records(C, "Opportunity")) == []


def test_partial_rows_fill_columns_and_update_never_creates(store: Store) -> None:
    with store.batch(C) as b:
        b.upsert_rows("opportunities", [("006A", OPP)])
        b.update_rows(
            "opportunities",
            [
                ("006A", {"competitor": "Acme", "competitor_price": "9"}),
                ("006Z", {"competitor": "Ghost", "competitor_price": None}),
            ],
        )
        # The owner object comes back: its own columns change, the competitor stays.
        b.upsert_rows("opportunities", [("006A", {**OPP, "amount": "99"})])
    rows = store.canonical_text(C)["opportunities"]
    assert rows["id"].to_list() == ["006A"]
    assert rows.row(0, named=True)["competitor"] == "Acme"
    assert rows.row(0, named=True)["amount"] == "99"
    with pytest.raises(ValueError, match="unknown canonical column"), store.batch(C) as b:
        b.upsert_rows("opportunities", [("006A", {"nope": "1"})])


def test_deletions_quarantine_and_connections_are_separate(store: Store) -> None:
    with store.batch(C) as b:
        b.upsert_raw("Opportunity", [("006A", {"Id": "006A"}), ("006B", {"Id": "006B"})])
        b.upsert_rows("opportunities", [("006A", OPP), ("006B", {**OPP, "id": "006B"})])
        b.quarantine("Opportunity", "006C", "amount: cannot read 'x'", {"Id": "006C"})
    with store.batch("other") as b:
        b.upsert_rows("opportunities", [("006A", OPP)])
    with store.batch(C) as b:
        assert b.delete("Opportunity", ["006B"], table="opportunities") == 1
    assert store.canonical_text(C)["opportunities"]["id"].to_list() == ["006A"]
    assert store.canonical_text("other")["opportunities"].height == 1
    assert store.deleted_ids(C, "Opportunity") == {"006B"}
    assert store.quarantine_counts(C) == {"Opportunity": 1}
    entry = store.quarantined(C)[0]
    assert (entry.record_id, entry.reason, entry.payload) == (
        "006C", "amount: cannot read 'x'", {"Id": "006C"})  # fmt: skip
    with store.batch(C) as b:
        b.release("Opportunity", ["006C"])
        # A deleted record that comes back is alive again.
        b.upsert_raw("Opportunity", [("006B", {"Id": "006B"})])
    assert store.quarantine_counts(C) == {}
    assert store.deleted_ids(C, "Opportunity") == set()


def test_run_log_usage_and_kpis(store: Store) -> None:
    run = store.start_run(C, crm="salesforce", mode="full")
    store.finish_run(run, RunStats(objects=["Lead"], records_in=5, inserted=4, updated=1,
                                   api_calls=3), outcome="ok")  # fmt: skip
    [rec] = store.runs(C)
    assert (rec.outcome, rec.stats.records_in, rec.stats.api_calls, rec.mode) == (
        "ok",
        5,
        3,
        "full",
    )
    assert rec.duration_s is not None and rec.duration_s >= 0
    store.record_api_usage(C, used=10, limit=100)
    store.record_api_usage(C, used=12, limit=100)
    assert store.api_usage(C)[:2] == (12, 100)  # type: ignore[index]
    values = pl.DataFrame(
        {"metric": ["win_rate"], "scope": ["org"], "subject_id": ["org"],
         "period_start": [dt.date(2025, 1, 1)], "period_end": [dt.date(2025, 2, 1)],
         "value": [0.5], "unit": ["ratio"], "numerator": [1.0], "denominator": [2.0],
         "records": [2], "dimension": [None]},
    )  # fmt: skip
    assert store.write_kpis(C, values) == 1
    assert store.write_kpis(C, values) == 1  # replaces, never appends
    got = store.read_kpis(C)
    assert got.height == 1 and got["value"][0] == 0.5
    assert got["period_start"][0] == dt.date(2025, 1, 1)
    assert set(store.connections()) == {C}
