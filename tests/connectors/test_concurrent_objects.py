"""HubSpot objects pulled side by side (``Limits.concurrency``): the store ends exactly as after a
pull one object after another, the API's latency is paid in parallel, and a failure anywhere ends
the sync as it would end one object at a time — with no thread left behind and no cursor ahead of
what is stored."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from connectors import base
from connectors.base import SyncResult, sync_connection
from connectors.errors import AuthError
from connectors.http import RetryEvent, retry_scope
from connectors.hubspot import HubSpotSource
from connectors.sources import open_source
from connectors.store import Store
from service.settings import SettingsError, parse_settings
from tests.connectors.test_hubspot_support import CONNECTION, Portal, fresh_portal, portal
from tests.request_log import most_in_flight
from writeback.hubspot import hubspot_http

__all__ = ["fresh_portal", "portal"]  # fixtures

#: The sources' clock: cursors hold the same positions whenever a run happens.
NOW_MS = 1_760_000_000_000
WORKERS = 4
EMAIL_PROPERTIES = ("hs_timestamp", "hubspot_owner_id", "hs_email_direction")


class Crash(Exception):
    pass


def _store(tmp_path: Path, name: str) -> Store:
    store = Store(f"sqlite:///{tmp_path / name}.db")
    store.migrate()
    return store


def _pull(
    store: Store,
    p: Portal,
    concurrency: int,
    *,
    after_batch: Callable[[str, int], None] | None = None,
) -> SyncResult:
    settings = p.settings()
    settings = replace(settings, limits=replace(settings.limits, concurrency=concurrency))
    source = HubSpotSource(settings, store, clock_ms=lambda: NOW_MS)
    return sync_connection(store, CONNECTION, source, after_batch=after_batch)


def _image(store: Store) -> dict[str, Any]:
    """Everything a sync leaves in the store, run log apart."""
    cursors = store.cursors(CONNECTION)
    return {
        "canonical": {t: f.to_dicts() for t, f in store.canonical_text(CONNECTION).items()},
        "raw": {obj: dict(store.raw_records(CONNECTION, obj)) for obj in cursors},
        "quarantine": [(q.object, q.record_id, q.reason) for q in store.quarantined(CONNECTION)],
        "cursors": {obj: (c.value, c.state) for obj, c in cursors.items()},
        "deleted": {obj: store.deleted_ids(CONNECTION, obj) for obj in cursors},
    }


def _pull_threads() -> list[threading.Thread]:
    # The sandbox serves in this process too (a thread per open connection): only the sync's
    # own workers are counted.
    return [t for t in threading.enumerate() if t.name.startswith("kpisync-pull")]


@pytest.mark.parametrize("records_ahead", [None, 100], ids=["in-memory", "spilled-to-disk"])
def test_side_by_side_stores_what_one_after_another_stores(
    fresh_portal: Portal,
    tmp_path: Path,
    records_ahead: int | None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With a window of one page, emails, meetings and tasks are written ahead to disk while
    calls are stored, and read back in order."""
    if records_ahead is not None:
        monkeypatch.setattr(base, "RECORDS_AHEAD", records_ahead)
    caplog.set_level(logging.DEBUG, logger="connectors.base")
    p = fresh_portal
    # An email that reuses the id of the last call listed: the first of the two objects stored
    # keeps the activity row, so calls (declared first) must be stored first in both runs.
    kinds = p.truth["activities"].select("id", "kind")
    call_id = str(max(int(i) for i in kinds.filter(pl.col("kind") == "call")["id"]))
    email_id = kinds.filter(pl.col("kind") == "email")["id"][0]
    email = p.client().crm.objects.basic_api.get_by_id(
        "emails", email_id, properties=list(EMAIL_PROPERTIES)
    )
    props = {k: v for k, v in email.properties.items() if k in EMAIL_PROPERTIES}
    p.app.raw_put("emails", [{"id": call_id, "properties": props}])
    # Calls answer slowly: side by side, every email is fetched before the last calls are.
    p.server.faults.add_json({"kind": "latency_ms", "rate": 1.0, "latency_ms": 80,
                              "crm": "hubspot", "path": "/crm/v3/objects/calls"})  # fmt: skip

    in_order, side_by_side = _store(tmp_path, "in_order"), _store(tmp_path, "side_by_side")
    first = _pull(in_order, p, 1)
    p.clear_log()
    transactions: dict[str, int] = {}
    second = _pull(side_by_side, p, WORKERS,
                   after_batch=lambda obj, n: transactions.__setitem__(obj, n))  # fmt: skip
    log = p.log()
    # Emails wait for every call to be stored: their pages, waiting back to back, are stored
    # in fewer transactions than pages (never more records in one than STORE_RECORDS).
    email_pages = sum(e["path"] == "/crm/v3/objects/emails" for e in log)
    assert 1 <= transactions["emails"] < email_pages

    assert first.outcome == second.outcome == "ok"
    expected = _image(in_order)
    assert ("emails", call_id, f"id {call_id} is already held by a calls record") in expected[
        "quarantine"
    ]
    assert len(expected["cursors"]) == 12
    assert _image(side_by_side) == expected
    for figure in ("records_in", "inserted", "updated", "deleted", "quarantined"):
        assert getattr(second.stats, figure) == getattr(first.stats, figure), figure
    # Every call counted once, as the sandbox counted it, and charged to the object that made it.
    assert second.stats.api_calls == len(log) == first.stats.api_calls
    calls = {name: s.api_calls for name, s in second.per_object.items()}
    assert calls == {name: s.api_calls for name, s in first.per_object.items()}
    assert calls["calls"] == sum(e["path"] == "/crm/v3/objects/calls" for e in log)
    assert sum(calls.values()) == len(log)
    assert _pull_threads() == []
    spilled = {r.args[0] for r in caplog.records if "written ahead to disk" in r.getMessage()}
    if records_ahead is None:
        assert spilled == set()
    else:  # tasks may start only once calls are stored, with nothing left to wait for
        assert "emails" in spilled and spilled <= {"emails", "meetings", "tasks"}
    in_order.close()
    side_by_side.close()


def test_side_by_side_pays_the_latency_in_parallel(fresh_portal: Portal, tmp_path: Path) -> None:
    p = fresh_portal
    p.server.faults.base_latency_ms = 50
    try:
        seconds = {}
        for workers in (1, WORKERS):
            store = _store(tmp_path, f"w{workers}")
            p.clear_log()
            started = time.perf_counter()
            _pull(store, p, workers)
            seconds[workers] = time.perf_counter() - started
            store.close()
        log = p.log()
    finally:
        p.server.faults.base_latency_ms = 0

    # The sandbox saw several requests at once (one object after another, it never does) ...
    assert most_in_flight(log) >= WORKERS - 1
    # ... and the pull took well under the time of one call after another.
    assert seconds[WORKERS] < 0.7 * seconds[1], seconds


def test_retries_in_the_workers_are_reported_as_the_connection_s(
    fresh_portal: Portal, tmp_path: Path
) -> None:
    p = fresh_portal
    p.server.faults.add_json({"kind": "http_5xx", "count": 3, "statuses": [503],
                              "crm": "hubspot", "path": "/crm/v3/objects/"})  # fmt: skip
    seen: list[tuple[str | None, str, str]] = []

    def observe(connection: str | None, event: RetryEvent) -> None:
        seen.append((connection, event.reason, threading.current_thread().name))

    store = _store(tmp_path, "retried")
    with retry_scope(CONNECTION, observe):
        assert _pull(store, p, WORKERS).outcome == "ok"
    store.close()
    # The service counts retries per connection through its retry scope: the worker threads
    # carry it as the calling thread does.
    assert len(seen) == 3
    assert all(c == CONNECTION and r == "server_error" for c, r, _ in seen), seen
    assert all(t.startswith("kpisync-pull") for _, _, t in seen), seen


def _fail_by_scope(p: Portal) -> Callable[[], object]:
    # Deals are not optional: a portal refusing their scope fails the sync (403 MISSING_SCOPES).
    p.app.configure({"unscoped_objects": ["deals"]})
    return lambda: p.app.configure({"unscoped_objects": []})


def _pause_on_budget(p: Portal) -> Callable[[], object]:
    # 20 % of 100 daily calls: the budget is spent part-way through the pull.
    p.app.configure({"daily": 100, "reset_limits": True})
    return lambda: p.app.configure({"tier": "unlimited", "reset_limits": True})


def _no_fault(p: Portal) -> Callable[[], object]:
    return lambda: None


def _crash_in_calls(obj: str, n: int) -> None:
    if obj == "calls" and n == 2:
        raise Crash("stopped after the second page of calls")


@pytest.mark.parametrize(
    ("fault", "after_batch", "outcome", "raised"),
    [
        (_fail_by_scope, None, "failed", AuthError),
        (_pause_on_budget, None, "paused", None),
        (_no_fault, _crash_in_calls, "failed", Crash),
    ],
    ids=["scope-refused", "budget-spent", "crash-while-storing"],
)
def test_a_failure_ends_the_sync_as_one_after_another_does(
    fresh_portal: Portal,
    tmp_path: Path,
    fault: Callable[[Portal], Callable[[], object]],
    after_batch: Callable[[str, int], None] | None,
    outcome: str,
    raised: type[Exception] | None,
) -> None:
    p = fresh_portal
    clean = _store(tmp_path, "clean")
    _pull(clean, p, 1)
    p.server.faults.base_latency_ms = 30  # calls in flight when the failure comes
    ended: dict[int, tuple[str | None, str | None, str]] = {}
    sent: dict[int, int] = {}
    stores: dict[int, Store] = {}
    try:
        for workers in (1, WORKERS):
            undo = fault(p)
            stores[workers] = store = _store(tmp_path, f"w{workers}")
            p.clear_log()
            try:
                if raised is None:
                    result = _pull(store, p, workers, after_batch=after_batch)
                    error = ""
                else:
                    with pytest.raises(raised) as info:
                        _pull(store, p, workers, after_batch=after_batch)
                    error = str(info.value)
            finally:
                undo()
            returned = time.time()
            assert _pull_threads() == [], workers
            run = store.runs(CONNECTION, limit=1)[0]
            ended[workers] = (run.outcome, run.message, error)
            log = p.log()
            sent[workers] = len(log)
            # Stopped at once: once the CRM refused a call (or the sync returned), no request
            # started but those on their way then (a 20 ms margin for the refusal to arrive).
            refused = [e["time"] for e in log if e["status"] == 403]
            failed_at = min(refused) + 0.02 if refused else returned
            late = [e for e in log if e["time"] - e["duration_ms"] / 1000 > failed_at]
            assert late == [], workers
            if raised is None:
                assert result.outcome == outcome
    finally:
        p.server.faults.base_latency_ms = 0

    assert ended[1][0] == ended[WORKERS][0] == outcome
    if outcome == "paused":
        assert "API budget spent" in str(ended[WORKERS][1])
        # Not one call past the share, however many were in flight when it was reached.
        assert sent[1] == sent[WORKERS] == 20
    else:
        assert ended[WORKERS] == ended[1]
    # No cursor got ahead of its records: the next run ends where an uninterrupted one ends.
    want = _image(clean)
    for workers, store in stores.items():
        assert _pull(store, p, workers).outcome == "ok"
        assert _image(store) == want, workers
        store.close()
    clean.close()


def test_the_concurrency_comes_from_the_sync_settings(tmp_path: Path) -> None:
    data = {
        "sync": {"hubspot_concurrency": 2},
        "connections": {"hs": {"crm": "hubspot", "access_token": "pat-na1-x",
                               "base_url": "https://127.0.0.1:9"},
                        "one": {"crm": "hubspot", "access_token": "pat-na1-y",
                                "base_url": "https://127.0.0.1:9", "hubspot_concurrency": 1}},
    }  # fmt: skip
    settings = parse_settings(data, env={})
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    assert open_source(settings.connections["hs"], {}, store).concurrent_objects == 2
    assert open_source(settings.connections["one"], {}, store).concurrent_objects == 1
    assert parse_settings({}, env={}).sync.hubspot_concurrency == 4
    # Writeback's client takes the same limits as the sync's: concurrency and the admin's cap.
    capped = parse_settings({**data, "sync": {"hubspot_concurrency": 3,
                                              "hubspot_requests_per_10s": 40}}, env={})  # fmt: skip
    for name, workers in (("hs", 3), ("one", 1)):
        http = hubspot_http(capped.connections[name])
        assert (http.limits.concurrency, http.limits.max_requests_per_10s) == (workers, 40)
    for bad in (0, 17, 2.5):
        with pytest.raises(SettingsError, match=r"sync\.hubspot_concurrency"):
            parse_settings({"sync": {"hubspot_concurrency": bad}}, env={})
    store.close()
