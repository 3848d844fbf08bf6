"""``kpisync run --once`` against both sandbox CRMs: the report objects follow the CRM's edits, and
the exit code says whether every cycle fully succeeded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from connectors.store import Store
from service.settings import Settings
from tests.service.conftest import (
    Sandbox,
    assert_report_matches_store,
    crm_rows,
    install,
    kpisync,
    open_store,
    write_settings,
)

NAMES = ("salesforce", "hubspot")


def _won(store: Store, name: str, skip: int = 0) -> tuple[str, float]:
    """(CRM id, amount) of a won deal of the connection, from the store."""
    t = store.table_text(name, "opportunities", with_key=True)
    won = t.filter((pl.col("is_won") == "true") & pl.col("amount").is_not_null()).sort("row_key")
    row = won.row(skip, named=True)
    return row["row_key"], float(row["amount"])


def _org_revenue(settings: Settings, store: Store, name: str) -> dict[str, Any]:
    rows = crm_rows(settings, store, name)
    return {k: r["value"] for k, r in rows.items()
            if r["metric"] == "revenue" and r["scope"] == "org"}  # fmt: skip


def _status(settings_file: Path) -> dict[str, Any]:
    code, out = kpisync("status", "--settings", str(settings_file), "--format", "json")
    assert code == 0, out
    data: dict[str, Any] = json.loads(out)
    return data


def test_cycles_with_edits_between_keep_the_report_objects_correct(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    file = tmp_path / "settings.toml"
    settings = write_settings(file, sandbox, f'[store]\nurl = "sqlite:///{tmp_path / "s.db"}"')
    install(file)
    code, out = kpisync("run", "--once", "--settings", str(file))
    assert code == 0, out
    store = open_store(settings)
    revenue = {}
    for name in NAMES:
        assert assert_report_matches_store(settings, store, name) > 100
        revenue[name] = _org_revenue(settings, store, name)
    status = _status(file)
    for name in NAMES:
        assert status[name]["last_cycles"][0]["outcome"] == "ok"
        assert status[name]["last_cycles"][0]["written"] > 100
        assert status[name]["next_run_at"] is not None

    # Cycle 2: one won deal per CRM is worth more.
    sf_id, sf_amount = _won(store, "salesforce")
    sandbox.sf.edit_record("Opportunity", sf_id, {"Amount": sf_amount + 250_000})
    hs_id, hs_amount = _won(store, "hubspot")
    sandbox.hs.edit_record("deals", hs_id, {"amount": str(hs_amount + 250_000)})
    code, out = kpisync("run", "--once", "--settings", str(file))
    assert code == 0, out
    for name in NAMES:
        assert_report_matches_store(settings, store, name)
        now = _org_revenue(settings, store, name)
        assert now != revenue[name], f"{name}: org revenue did not follow the edit"
        revenue[name] = now

    # Cycle 3: a won deal is deleted in each CRM.
    sandbox.sf.delete_record("Opportunity", _won(store, "salesforce", skip=1)[0])
    sandbox.hs.delete_record("deals", _won(store, "hubspot", skip=1)[0])
    code, out = kpisync("run", "--once", "--settings", str(file))
    assert code == 0, out
    for name in NAMES:
        assert_report_matches_store(settings, store, name)
        assert _org_revenue(settings, store, name) != revenue[name], name
    cycles = _status(file)["salesforce"]["last_cycles"]
    assert [c["outcome"] for c in cycles] == ["ok"] * 3
    store.close()


def test_exit_code_says_whether_every_cycle_succeeded(sandbox: Sandbox, tmp_path: Path) -> None:
    file = tmp_path / "settings.toml"
    write_settings(file, sandbox, f'[store]\nurl = "sqlite:///{tmp_path / "s.db"}"')
    s = ("--settings", str(file))
    # Salesforce's org has spent its API budget; nothing is installed in HubSpot.
    sandbox.sf.configure({"api_usage": 990_000, "daily_api_requests": 1_000_000})
    code, out = kpisync("run", "--once", *s)
    assert code == 1, out
    status = _status(file)
    assert status["salesforce"]["last_cycles"][0]["outcome"] == "paused"
    hs = status["hubspot"]["last_cycles"][0]
    assert (hs["outcome"], hs["failed_step"]) == ("failed", "writeback")
    assert kpisync("run", "--once", "--crm", "salesforce", *s)[0] == 75
    install(file, "--crm", "hubspot")
    assert kpisync("run", "--once", "--crm", "hubspot", *s)[0] == 0
    code, out = kpisync("run", "--once", "--crm", "nope", *s)
    assert code == 2 and "connections.nope" in out
