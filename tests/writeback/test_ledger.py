"""The ledger and the plan on both store back-ends (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import datetime as dt

from connectors.store import Store
from writeback import ledger
from writeback.ledger import Installed
from writeback.plan import Outcome, Row, diff, row_key, value_hash

NOW = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC)
T = "KPI_Snapshot__c"


def _row(key: str, value: float) -> Row:
    payload = {"metric": "m", "value": value}
    return Row(key, payload, value_hash(payload))


def test_ledger_records_answers_backs_off_and_parks(store: Store) -> None:
    a, b = _row("a", 1.0), _row("b", 2.0)
    assert diff(T, {"a": a, "b": b}, {}, NOW).upserts == [a, b]
    ledger.record(store, "c", T, [Outcome("a", a.hash, True, crm_id="X1"),
                                  Outcome("b", b.hash, False, error="LOCKED")], {},
                  max_failures=2, retry_base_s=60, now=NOW)  # fmt: skip
    prev = ledger.load(store, "c", T)
    assert prev["a"].value_hash == a.hash and prev["a"].crm_id == "X1"
    assert prev["b"].value_hash is None and prev["b"].failures == 1 and not prev["b"].parked
    assert prev["b"].next_attempt_at == NOW + dt.timedelta(seconds=60)
    plan = diff(T, {"a": a, "b": b}, prev, NOW)
    assert plan.upserts == [] and plan.unchanged == 1 and plan.waiting == 1
    later = NOW + dt.timedelta(seconds=61)
    assert diff(T, {"a": a, "b": b}, prev, later).upserts == [b]
    ledger.record(store, "c", T, [Outcome("b", b.hash, False, error="LOCKED")], prev,
                  max_failures=2, retry_base_s=60, now=later)  # fmt: skip
    prev = ledger.load(store, "c", T)
    assert prev["b"].parked and prev["b"].failures == 2
    assert prev["b"].next_attempt_at == later + dt.timedelta(seconds=120)
    assert ledger.parked_counts(store, "c") == {T: 1}
    assert diff(T, {"a": a, "b": b}, prev, later + dt.timedelta(days=2)).parked == 1
    # A new value of a parked row is a new chance.
    b2 = _row("b", 3.0)
    assert diff(T, {"a": a, "b": b2}, prev, later).upserts == [b2]
    # Rows the store no longer has: deleted when written, forgotten otherwise.
    plan = diff(T, {}, prev, later)
    assert [e.key for e in plan.deletes] == ["a"] and plan.forget == ["b"]
    ledger.forget(store, "c", T, ["a", "b"])
    assert ledger.load(store, "c", T) == {}


def test_closed_periods_older_than_the_store_are_history(store: Store) -> None:
    old = row_key("revenue", "org", "org", dt.date(2023, 1, 1), "month", None)
    new = row_key("revenue", "org", "org", dt.date(2024, 1, 1), "month", None)
    gone = row_key("revenue", "rep", "005X", dt.date(2024, 1, 1), "month", None)
    ledger.record(store, "c", T, [Outcome(k, "h", True, crm_id="id") for k in (old, new, gone)],
                  {}, max_failures=3, retry_base_s=1, now=NOW)  # fmt: skip
    prev = ledger.load(store, "c", T)
    plan = diff(T, {new: Row(new, {}, "h")}, prev, NOW, history=True)
    assert [e.key for e in plan.deletes] == [gone]


def test_installed_items_round_trip(store: Store) -> None:
    item = Installed("field", "User.KPI_Revenue__c", "salesforce", "00N1", {"type": "Number"})
    ledger.remember(store, "c", item)
    ledger.remember(store, "c", item)  # idempotent
    assert ledger.installed(store, "c") == [item]
    ledger.unremember(store, "c", "field", "User.KPI_Revenue__c")
    assert ledger.installed(store, "c") == []


def test_row_keys_are_deterministic_and_bounded() -> None:
    k = row_key("win_rate", "rep", "005A", dt.date(2024, 4, 1), "quarter", "Acme")
    assert k == "win_rate|rep|005A|2024-04-01|quarter|Acme"
    long = row_key("m", "org", "org", None, "month", "x" * 400)
    assert len(long) == 255 and long == row_key("m", "org", "org", None, "month", "x" * 400)
