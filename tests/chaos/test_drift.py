"""Schema drift between two cycles: a mapped field deleted, or its field-level security removed, in
the Salesforce org — a field the sync reads, and a field writeback writes.

Each time: a clear error naming the connection's object and field, that connection's cycle
failed (status shows it), the other connection (HubSpot, same settings) unaffected, no write
anywhere else, the stored data untouched; once the field is back, the next cycle recovers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from connectors.store import Store
from service.exit_codes import EXIT_FAILED, EXIT_OK
from service.runner import Runner
from service.settings import Settings
from tests.service.conftest import (
    Sandbox,
    assert_report_matches_store,
    install,
    kpisync,
    open_store,
    write_settings,
)

ORG_SIZE = 40
SF = "salesforce"
WRITES = ("POST", "PATCH", "PUT", "DELETE")


@pytest.fixture(scope="module")
def drift_sandbox() -> Iterator[Sandbox]:
    from sandbox.cli import build_apps
    from sandbox.server import SandboxServer

    apps, currency = build_apps(ORG_SIZE, 9)
    with SandboxServer(apps) as server:
        yield Sandbox(server, currency)


def _tables(store: Store, name: str) -> dict[str, pl.DataFrame]:
    return {t: f.sort(f.columns) for t, f in store.canonical_text(name).items()}


def _last_cycle(file: Path, name: str) -> dict[str, Any]:
    code, out = kpisync("status", "--settings", str(file), "--crm", name, "--format", "json")
    assert code == 0, out
    cycle: dict[str, Any] = json.loads(out)[name]["last_cycles"][0]
    return cycle


def _sf_writes(sandbox: Sandbox) -> list[dict[str, Any]]:
    """Write requests in the sandbox log: not logins, nor composite (a POST carrying the sync's
    GET subrequests)."""
    reads = ("/oauth2/token", "/composite/batch", "/composite")
    return [e for e in sandbox.server.requests_log(SF) if e["method"] in WRITES
            and not e["path"].endswith(reads)]  # fmt: skip


def _drifted_cycle(
    sandbox: Sandbox, settings: Settings, file: Path, names: list[str]
) -> dict[str, Any]:
    """One cycle of ``names`` after the drift: Salesforce fails, the rest completes."""
    sandbox.server._stats.clear()
    assert Runner(settings, names).once() == EXIT_FAILED
    for other in names:
        if other != SF:
            assert _last_cycle(file, other)["outcome"] == "ok", other
    cycle = _last_cycle(file, SF)
    assert cycle["outcome"] == "failed", cycle
    return cycle


@pytest.mark.parametrize(
    ("drift", "restore", "field", "names"),
    [
        # With the other CRM's connection in the same run: it must complete.
        ("delete_fields", "undelete_fields", "Opportunity.Cost__c", [SF, "hubspot"]),
        ("revoke_fls", "grant_fls", "Lead.Lead_Score__c", [SF]),
    ],
)
def test_a_field_the_sync_reads_gone_fails_that_connection_cleanly(
    drift_sandbox: Sandbox, tmp_path: Path, drift: str, restore: str, field: str,
    names: list[str],
) -> None:  # fmt: skip
    sandbox = drift_sandbox
    sandbox.reset()
    file = tmp_path / "settings.toml"
    settings = write_settings(file, sandbox, f'[store]\nurl = "sqlite:///{tmp_path / "s.db"}"')
    install(file, *(["--crm", SF] if names == [SF] else []))
    assert Runner(settings, names).once() == EXIT_OK
    store = open_store(settings)
    before = _tables(store, SF)

    sandbox.sf.configure({drift: [field]})
    obj, name = field.split(".")
    # A quiet cycle asks which objects changed and reads none: the drift shows when the object
    # is read, so one of its records changes (its modstamp only: the stored rows stay as they are).
    record = sandbox.sf.org.tables[obj].frame()["Id"][0]
    sandbox.sf.edit_record(obj, record, {})
    cycle = _drifted_cycle(sandbox, settings, file, names)
    assert cycle["failed_step"] == "sync"
    assert field in cycle["message"] and "no longer readable" in cycle["message"], cycle
    assert f"No such column '{name}' on entity '{obj}'" in cycle["message"], cycle
    # Nothing was written to the org, and the stored rows are as they were.
    assert _sf_writes(sandbox) == []
    after = _tables(store, SF)
    for table, frame in before.items():
        assert after[table].equals(frame), table

    sandbox.sf.configure({restore: [field]})
    assert Runner(settings, [SF]).once() == EXIT_OK
    assert _last_cycle(file, SF)["outcome"] == "ok"
    for table, frame in before.items():
        assert _tables(store, SF)[table].equals(frame), table
    store.close()


def test_a_kpi_field_writeback_writes_deleted_fails_that_connection_cleanly(
    drift_sandbox: Sandbox, tmp_path: Path
) -> None:
    sandbox = drift_sandbox
    sandbox.reset()
    file = tmp_path / "settings.toml"
    settings = write_settings(file, sandbox, f'[store]\nurl = "sqlite:///{tmp_path / "s.db"}"')
    install(file, "--crm", SF)
    assert Runner(settings, [SF]).once() == EXIT_OK
    store = open_store(settings)
    # A won deal is worth more, so the next cycle has KPI rows to write.
    won = store.table_text(SF, "opportunities", with_key=True).filter(
        (pl.col("is_won") == "true") & pl.col("amount").is_not_null()
    )
    row = won.sort("row_key").row(0, named=True)
    sandbox.sf.edit_record("Opportunity", row["row_key"], {"Amount": float(row["amount"]) + 9e5})

    sandbox.sf.configure({"delete_fields": ["KPI_Snapshot__c.Value__c"]})
    cycle = _drifted_cycle(sandbox, settings, file, [SF])
    assert cycle["failed_step"] == "writeback"
    message = cycle["message"]
    assert "KPI_Snapshot__c" in message and "INVALID_FIELD" in message, message
    assert "No such column 'Value__c' on sobject of type KPI_Snapshot__c" in message, message
    # One refused call to the report object, no other write and no batch-splitting storm.
    writes = _sf_writes(sandbox)
    assert len(writes) == 1, writes
    assert "/composite/sobjects/KPI_Snapshot__c/" in writes[0]["path"], writes
    assert writes[0]["status"] == 400, writes

    sandbox.sf.configure({"undelete_fields": ["KPI_Snapshot__c.Value__c"]})
    assert Runner(settings, [SF]).once() == EXIT_OK
    assert_report_matches_store(settings, store, SF)
    store.close()
