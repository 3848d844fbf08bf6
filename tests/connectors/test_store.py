"""The store contract, on SQLite and PostgreSQL: one transaction per batch, cursors with it."""

from __future__ import annotations

import datetime as dt
from typing import Any

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


def _kpi_values(rows: list[tuple[str, str, float | None, str | None]]) -> pl.DataFrame:
    """(metric, subject, value, dimension) rows of monthly January 2025 values."""
    n = len(rows)
    return pl.DataFrame(
        {"metric": [r[0] for r in rows], "scope": ["rep"] * n, "subject_id": [r[1] for r in rows],
         "period_start": [dt.date(2025, 1, 1)] * n, "period_end": [dt.date(2025, 2, 1)] * n,
         "value": [r[2] for r in rows], "unit": ["ratio"] * n, "numerator": [r[2] for r in rows],
         "denominator": [1.0] * n, "records": [1] * n, "dimension": [r[3] for r in rows]},
    )  # fmt: skip


def _stored(store: Store) -> dict[tuple[str, str, str | None], tuple[int, float | None, Any]]:
    """(metric, subject, dimension) -> (row id, value, computed_at) as the table holds them."""
    t = sa.table("kpi_values", sa.column("id"), sa.column("metric"), sa.column("subject_id"),
                 sa.column("dimension"), sa.column("value"), sa.column("computed_at"))  # fmt: skip
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.id, t.c.metric, t.c.subject_id, t.c.dimension,
                                      t.c.value, t.c.computed_at)).all()  # fmt: skip
    return {(r[1], r[2], r[3]): (r[0], r[4], r[5]) for r in rows}


def test_write_kpis_writes_only_the_difference(store: Store) -> None:
    first = dt.datetime(2025, 3, 1, 8, 0, tzinfo=dt.UTC)
    later = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)
    before = _kpi_values([("win_rate", "005A", 0.5, None), ("win_rate", "005B", 0.25, None),
                          ("win_rate", "005A", 0.1, "Web"), ("win_rate", "005A", None, "Ads"),
                          ("win_rate", "005C", 0.9, None)])  # fmt: skip
    assert store.write_kpis(C, before, first) == 5
    kept = _stored(store)
    # One value changed, one null became a number (null-safe comparison), one row gone, one
    # new, and the rows with a null dimension still match their stored selves.
    after = _kpi_values([("win_rate", "005A", 0.5, None), ("win_rate", "005B", 0.75, None),
                         ("win_rate", "005A", 0.1, "Web"), ("win_rate", "005A", 0.2, "Ads"),
                         ("win_rate", "005D", 0.3, None)])  # fmt: skip
    assert store.write_kpis(C, after, later) == 5
    now = _stored(store)
    assert set(now) == {("win_rate", "005A", None), ("win_rate", "005B", None),
                        ("win_rate", "005A", "Web"), ("win_rate", "005A", "Ads"),
                        ("win_rate", "005D", None)}  # fmt: skip
    for unchanged in [("win_rate", "005A", None), ("win_rate", "005A", "Web")]:
        assert now[unchanged] == kept[unchanged]  # same row, same time: not rewritten
    for changed in [("win_rate", "005B", None), ("win_rate", "005A", "Ads")]:
        assert now[changed][0] == kept[changed][0]  # updated in place
        assert now[changed][2] != kept[changed][2]
    assert now[("win_rate", "005B", None)][1] == 0.75
    assert now[("win_rate", "005A", "Ads")][1] == 0.2
    got = store.read_kpis(C).sort(["subject_id", "dimension"], nulls_last=False)
    assert got.equals(_kpi_values([("win_rate", "005A", 0.5, None),
                                   ("win_rate", "005A", 0.2, "Ads"),
                                   ("win_rate", "005A", 0.1, "Web"),
                                   ("win_rate", "005B", 0.75, None),
                                   ("win_rate", "005D", 0.3, None)]))  # fmt: skip
    # Another connection's values are never touched.
    store.write_kpis("other", before, first)
    store.write_kpis(C, after.head(1), later)
    assert store.read_kpis("other").height == 5
    assert store.read_kpis(C).height == 1
