"""A whole service cycle (sync → compute → writeback, both CRMs) under ~30 % injected faults.

The same org is run twice on fresh stores: once fault-free, once with seeded fault rules of all
six kinds (5xx, rate-limit storms, dropped connections, expired sessions, lock errors and partial
batch failures). The faulted cycle must complete, leave the same store and the same CRM report
objects (the rows refused by a validation failure excepted: they are retried by a later cycle,
which the test runs), stay within the API budget and a bound the retry policy implies, and
account for every fault the sandbox injected in its logs and on ``/metrics``.
"""

from __future__ import annotations

import collections
import logging
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from prometheus_client.parser import text_string_to_metric_families

from connectors.http import RETRY_REASONS
from connectors.store import Store
from sandbox.faults import RECORD_KINDS
from service.observability import HttpEndpoint
from service.runner import Runner
from service.settings import Settings, load_settings
from tests.service.conftest import Sandbox, crm_rows, install, open_store

NAMES = ("salesforce", "hubspot")
#: Opportunities in the generated org: enough for several batches per object, quick to sync.
ORG_SIZE = 60
#: The Salesforce org's daily allowance and kpisync's share of it (the configured budget).
SF_DAILY = 20_000
BUDGET_SHARE = 0.2

#: ~30 % of the calls fail: each rate rule is drawn for every call it matches (request-level kinds)
#: or every record of a write (lock_error, partial_batch_failure), from its own seed. A cycle of
#: this org is some 60 calls, so count rules make sure that each kind also strikes each CRM at
#: least once, mid-cycle: a lost session during writeback, a connection dropped on a read.
FAULT_RULES: list[dict[str, Any]] = [
    {"kind": "http_5xx", "rate": 0.12, "statuses": [500, 502, 503, 504], "seed": 11},
    {"kind": "rate_limit_storm", "rate": 0.06, "seed": 12},
    {"kind": "drop_connection", "rate": 0.08, "seed": 13},
    {"kind": "expired_session", "rate": 0.08, "seed": 14},
    {"kind": "lock_error", "rate": 0.05, "seed": 15},
    {"kind": "partial_batch_failure", "rate": 0.03, "seed": 16},
    {"kind": "expired_session", "count": 1, "crm": "salesforce", "path": "/composite/sobjects"},
    {"kind": "expired_session", "count": 1, "crm": "hubspot", "path": "/batch/upsert"},
    # The Salesforce sync's reads ride in Composite calls (describes, first pages, the quiet
    # cycle's Get Updated): ``/composite$``, not the writes' ``/composite/sobjects``.
    {"kind": "drop_connection", "count": 1, "crm": "salesforce", "path": "/composite$"},
    {"kind": "drop_connection", "count": 1, "crm": "hubspot", "path": "/search"},
    {"kind": "rate_limit_storm", "count": 1, "crm": "salesforce", "path": "/query"},
]
#: The retry reason each request-level fault kind must be logged and counted under.
REASON_OF_KIND = {
    "http_5xx": "server_error",
    "rate_limit_storm": "rate_limited",
    "drop_connection": "connection",
    "expired_session": "expired_session",
    "lock_error": "lock_error",
}


@pytest.fixture(scope="module")
def chaos_sandbox() -> Iterator[Sandbox]:
    from sandbox.cli import build_apps
    from sandbox.server import SandboxServer

    apps, currency = build_apps(ORG_SIZE, 7)
    with SandboxServer(apps) as server:
        yield Sandbox(server, currency)


def _settings(
    sandbox: Sandbox, path: Path, db: Path, *, oauth: bool, refused_retry_s: float = 300
) -> Settings:
    """Both CRMs; HubSpot through OAuth when ``oauth`` (expired sessions are an OAuth matter:
    a private-app token does not expire). ``refused_retry_s``: the backoff of a refused row
    (0 makes the next cycle, run at once, send it again)."""
    text = sandbox.settings_toml(f'[store]\nurl = "sqlite:///{db}"')
    text += f"\n[writeback]\nretry_base_s = {refused_retry_s}\n"
    text = text.replace("[sync]\n", f"[sync]\nbudget_share = {BUDGET_SHARE}\n", 1)
    if oauth:
        hs = sandbox.hs.connection_info()
        token_line = f'access_token = "{hs["access_token"]}"'
        assert token_line in text
        text = text.replace(token_line, f'client_id = "{hs["client_id"]}"\n'
                            f'client_secret = "{hs["client_secret"]}"\n'
                            f'refresh_token = "{hs["refresh_token"]}"')  # fmt: skip
    path.write_text(text, encoding="utf-8")
    return load_settings(path)


def _fresh_org(sandbox: Sandbox) -> None:
    sandbox.reset()
    sandbox.sf.configure({"api_usage": 0, "daily_api_requests": SF_DAILY})


def _calls(sandbox: Sandbox) -> dict[str, int]:
    counts = sandbox.server.counts()
    return {crm: sum(counts.get(crm, {}).values()) for crm in NAMES}


def _store_state(store: Store, name: str) -> dict[str, pl.DataFrame]:
    """The canonical tables and KPI values of a connection, in a comparable order."""
    out = {t: f.sort(f.columns) for t, f in store.canonical_text(name).items()}
    kpis = store.read_kpis(name)
    out["kpis"] = kpis.sort([c for c in kpis.columns if kpis[c].dtype != pl.List])
    return out


def _metric(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample of ``name`` in a Prometheus text exposition."""
    out: list[tuple[dict[str, str], float]] = []
    for family in text_string_to_metric_families(text):
        out += [(dict(s.labels), float(s.value)) for s in family.samples if s.name == name]
    return out


def _scrape(runner: Runner) -> str:
    endpoint = HttpEndpoint("127.0.0.1", 0, runner.metrics, runner.health).start()
    try:
        url = f"http://127.0.0.1:{endpoint.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as r:
            return str(r.read().decode())
    finally:
        endpoint.stop()


def test_a_cycle_under_thirty_percent_faults_ends_as_a_fault_free_one(
    chaos_sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = chaos_sandbox
    # The reference: the same org, no faults.
    _fresh_org(sandbox)
    clean_file, clean_db = tmp_path / "clean.toml", tmp_path / "clean.db"
    clean = _settings(sandbox, clean_file, clean_db, oauth=False)
    install(clean_file)
    sandbox.server._stats.clear()
    assert Runner(clean).once() == 0
    clean_calls = _calls(sandbox)
    clean_store = open_store(clean)
    want_store = {n: _store_state(clean_store, n) for n in NAMES}
    want_report = {n: crm_rows(clean, clean_store, n) for n in NAMES}
    clean_store.close()

    # The same org again, faulted for the whole cycle.
    _fresh_org(sandbox)
    file, db = tmp_path / "faulted.toml", tmp_path / "faulted.db"
    settings = _settings(sandbox, file, db, oauth=True, refused_retry_s=0)
    install(file)
    sandbox.server._stats.clear()
    for rule in FAULT_RULES:
        sandbox.server.faults.add_json(rule)
    runner = Runner(settings)
    with caplog.at_level(logging.INFO, logger="kpisync.api"):
        code = runner.once()
    rules = sandbox.server.faults.rules()
    log = sandbox.server.requests_log()
    sandbox.server.faults.clear()
    assert code == 0, [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]

    # What the sandbox injected, by kind; record faults in an answer that a dropped connection
    # cut off never reached the client (the whole write was retried instead).
    fired: collections.Counter[str] = collections.Counter()
    for r in rules:
        fired[r["kind"]] += r["fired"]
    from_log: collections.Counter[str] = collections.Counter()
    unseen: collections.Counter[str] = collections.Counter()
    for entry in log:
        for f in entry["faults"]:
            kind = "http_5xx" if f.startswith("http_") else f
            from_log[kind] += 1
            if "drop_connection" in entry["faults"] and kind in RECORD_KINDS:
                unseen[kind] += 1
    assert dict(from_log) == {k: n for k, n in fired.items() if n}, (from_log, fired)
    faulted_calls = _calls(sandbox)
    assert all(fired[k] > 0 for k in REASON_OF_KIND), (fired, faulted_calls)  # all exercised
    # A connection dropped on a Salesforce read: the Composite rule struck a call the cycle
    # really makes.
    composite_drops = [r["fired"] for r in rules if r["path"] == "/composite$"]
    assert composite_drops == [1], rules
    calls = sum(faulted_calls.values())
    request_faults = sum(fired[k] for k in ("http_5xx", "rate_limit_storm", "drop_connection",
                                            "expired_session"))  # fmt: skip
    assert request_faults >= 0.25 * calls, (request_faults, calls)  # ~30 % of the calls failed

    # Every fault is accounted for: a retry logged and counted under its reason ... An expired
    # session is expired for real: calls already in flight with the old token (HubSpot pages and
    # batch upserts go side by side) are answered 401 without a fault of their own, and are
    # retried under the same reason.
    genuine_401 = sum(1 for e in log if e["status"] == 401 and not e["faults"])
    expected = {REASON_OF_KIND[k]: fired[k] - unseen[k] for k in REASON_OF_KIND}
    expected[REASON_OF_KIND["expired_session"]] += genuine_401
    lines = [r for r in caplog.records if r.name == "kpisync.api"]
    by_reason = collections.Counter(str(getattr(r, "reason", "")) for r in lines)
    assert dict(by_reason) == {k: n for k, n in expected.items() if n}
    for r in lines:
        message = r.getMessage()
        assert getattr(r, "connection", None) in NAMES, message
        crm = getattr(r, "crm", "")
        assert message.startswith(f"{r.connection}: {crm}: retry "), message  # type: ignore[attr-defined]
        assert str(getattr(r, "call", "")) in message and r.reason in message, message  # type: ignore[attr-defined]
        assert "secret" not in message.lower() and "Bearer" not in message, message
    text = _scrape(runner)
    retries = _metric(text, "kpisync_api_retries_total")
    per_reason: collections.Counter[str] = collections.Counter()
    for labels, value in retries:
        assert labels["connection"] in NAMES and labels["reason"] in RETRY_REASONS, labels
        per_reason[labels["reason"]] += int(value)
    assert {k: n for k, n in per_reason.items() if n} == {k: n for k, n in expected.items() if n}
    # ... or a row refused by validation, reported as refused and left for a later cycle.
    refused = _metric(text, "kpisync_writeback_rows_total")
    n_refused = int(sum(v for labels, v in refused if labels["result"] == "refused"))
    assert n_refused == fired["partial_batch_failure"] - unseen["partial_batch_failure"]

    # Within the configured budget, and within what the retry policy implies: each failed call
    # is sent once more (a retry), an expired session costs one login or token refresh on top,
    # and locked rows are re-sent in one more call per batch at most.
    assert runner.store is not None
    sf_used = sandbox.sf.configure({})["api_usage"]
    assert sf_used <= SF_DAILY * BUDGET_SHARE
    upper = sum(clean_calls.values()) + request_faults + fired["expired_session"] + (
        fired["lock_error"]) + 2 * genuine_401  # fmt: skip
    assert sum(clean_calls.values()) + request_faults <= calls <= upper, (clean_calls, calls)

    # The same store as the fault-free run, and the same report objects less the refused rows.
    store = open_store(settings)
    reader = _settings(sandbox, tmp_path / "reader.toml", db, oauth=False)
    for name in NAMES:
        got = _store_state(store, name)
        assert set(got) == set(want_store[name])
        for table, frame in want_store[name].items():
            # Sums over rows stored in another order may differ in the last bit.
            assert_frame_equal(got[table], frame, rel_tol=1e-9)
    missing = 0
    for name in NAMES:
        rows = crm_rows(reader, store, name)
        assert set(rows) <= set(want_report[name])
        missing += len(want_report[name]) - len(rows)
        assert all(rows[k] == want_report[name][k] for k in rows), name
    assert missing == n_refused

    # The next cycle (no faults; refused rows due again at once) completes the report objects.
    store.close()
    assert Runner(settings).once() == 0
    store = open_store(settings)
    for name in NAMES:
        assert crm_rows(reader, store, name) == want_report[name], name
    store.close()
