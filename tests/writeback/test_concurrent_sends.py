"""HubSpot writeback with several batch upserts in flight (``concurrent_sends``), against the
HubSpot sandbox with the real hubspot-api-client: it writes and records what one call after
another writes and records, overlaps the sandbox's latency without ever having more calls sent
but unrecorded than it declares, and ends on a crash, a spent budget or refused rows as one call
after another does, with no thread left behind."""

from __future__ import annotations

import datetime as dt
import math
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from connectors.config import ConnectionConfig, Secret
from connectors.errors import BudgetPaused
from connectors.http import RetryEvent, retry_scope
from connectors.store import Store
from kpis.settings import PeriodType
from tests.connectors.conftest import FAST
from tests.connectors.test_hubspot_support import (  # noqa: F401  (fixtures)
    CONNECTION,
    Portal,
    fresh_portal,
    portal,
    sync,
)
from tests.request_log import most_in_flight
from tests.writeback.conftest import TODAY, WB, compute
from tests.writeback.test_hubspot import HsKit
from writeback import ledger
from writeback.crm import open_crm
from writeback.hubspot import HubSpotWriter
from writeback.plan import Outcome
from writeback.run import Report, writeback

TARGET = "kpi_snapshot"
NOW = dt.datetime(2024, 11, 15, 12, 0, tzinfo=dt.UTC)
WORKERS = 4
UPSERT = "/batch/upsert"
PROPS = ("kpi_key", "metric", "scope", "subject_id", "rep", "team", "period_start", "period_end",
         "period_type", "dimension", "value", "unit", "numerator", "denominator",
         "computed_at")  # fmt: skip


class Crash(Exception):
    pass


@pytest.fixture(scope="module")
def kpis_db(portal: Portal, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """A store file holding one sync of the (reset) portal and its yearly KPIs (966 rows)."""
    portal.reset()
    path = tmp_path_factory.mktemp("concurrent_sends") / "kpis.db"
    s = Store(f"sqlite:///{path}")
    s.migrate()
    sync(s, portal)
    compute(s, CONNECTION, PeriodType.YEAR)
    s.close()  # the last connection closing checkpoints the WAL into the file
    return path


class Kit(HsKit):
    """An installed report object and a writer opened as ``kpisync`` opens it, with
    ``hubspot_concurrency = workers``."""

    def __init__(self, portal: Portal, store: Store, workers: int) -> None:  # noqa: F811
        super().__init__(portal, store)
        cfg = ConnectionConfig(
            name=CONNECTION, crm="hubspot", base_url=portal.base_url, auth="private_app",
            access_token=Secret(portal.token), ca_bundle=portal.server.ca_bundle,
            options=replace(FAST, rate_per_s=0, hubspot_concurrency=workers),
        )  # fmt: skip
        installer, writer = open_crm(cfg, WB, store)
        assert isinstance(writer, HubSpotWriter)
        self.installer, self.writer = installer, writer
        assert writer.concurrent_sends == workers
        installer.install()

    def write(self, **kw: Any) -> Report:
        return writeback(self.store, CONNECTION, self.writer, WB, today=TODAY, now=NOW, **kw)

    def rows(self) -> int:
        return self.store.read_kpis(CONNECTION).height

    def crm_image(self) -> dict[str, tuple[str | None, dict[str, Any]]]:
        """Every report record by key: (record id, the properties kpisync writes)."""
        ot = ledger.installed(self.store, CONNECTION)[0].crm_id
        api = self.portal.client().crm.objects.basic_api
        out: dict[str, tuple[str | None, dict[str, Any]]] = {}
        after = None
        while True:
            page = api.get_page(ot, limit=100, after=after, properties=list(PROPS))
            for r in page.results:
                key = r.properties["kpi_key"]
                assert key not in out, f"duplicate record for {key}"
                out[key] = (str(r.id), {p: r.properties.get(p) for p in PROPS})
            if page.paging is None or page.paging.next is None:
                return out
            after = page.paging.next.after

    def ledger_image(self) -> dict[str, ledger.LedgerEntry]:
        return ledger.load(self.store, CONNECTION, TARGET)


@pytest.fixture
def kit(
    fresh_portal: Portal,  # noqa: F811
    kpis_db: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Kit]:
    """A copy of the synced store, the report object installed, the writer opened with
    ``WORKERS`` sends (or the test's ``param``)."""
    path = tmp_path / "store.db"
    shutil.copyfile(kpis_db, path)
    s = Store(f"sqlite:///{path}")
    try:
        yield Kit(fresh_portal, s, getattr(request, "param", WORKERS))
    finally:
        fresh_portal.server.faults.base_latency_ms = 0
        s.close()


def _write_threads() -> list[threading.Thread]:
    # The sandbox serves in this process too (a thread per connection): only the writeback's
    # own workers are counted.
    return [t for t in threading.enumerate() if t.name.startswith("kpisync-write")]


def _upserts(p: Portal) -> list[dict[str, Any]]:
    return [e for e in p.log() if e["path"].endswith(UPSERT)]


def _keys(calls: list[list[str]]) -> set[str]:
    return {k for keys in calls for k in keys}


def test_side_by_side_writes_and_records_what_one_after_another_does(
    fresh_portal: Portal,  # noqa: F811
    kpis_db: Path,
    tmp_path: Path,
) -> None:
    p = fresh_portal
    crm: dict[int, dict[str, dict[str, Any]]] = {}
    led: dict[int, dict[str, ledger.LedgerEntry]] = {}
    order: dict[int, list[list[str]]] = {}
    for workers in (1, WORKERS):
        p.reset()
        path = tmp_path / f"w{workers}.db"
        shutil.copyfile(kpis_db, path)
        store = Store(f"sqlite:///{path}")
        try:
            k = Kit(p, store, workers)
            n = k.rows()
            calls: list[list[str]] = []
            p.clear_log()
            report = k.write(before_record=lambda t, o, c=calls: c.append([x.key for x in o]))
            assert report.failed == 0 and report.targets[TARGET].written == n
            assert report.calls == len(_upserts(p)) == len(p.log()) == math.ceil(n / 100)
            assert len(calls) == report.calls
            image = k.crm_image()
            entries = k.ledger_image()
            assert set(entries) == set(image) and len(image) == n
            # The ledger holds the id of the record the CRM holds under each key.
            assert all(e.crm_id == image[key][0] for key, e in entries.items())
            crm[workers] = {key: props for key, (_, props) in image.items()}
            # Record ids are handed out in the order the calls reach the CRM: not compared.
            led[workers] = {key: replace(e, crm_id=None) for key, e in entries.items()}
            order[workers] = calls
            p.clear_log()
            assert k.write().calls == 0 and p.log() == []
        finally:
            store.close()
    assert crm[WORKERS] == crm[1]
    assert led[WORKERS] == led[1]
    # Answers are recorded call by call in the order the calls were submitted.
    assert order[WORKERS] == order[1]
    assert _write_threads() == []


def test_calls_overlap_the_latency_and_never_run_ahead_of_the_record(kit: Kit) -> None:
    p = kit.portal
    n = kit.rows()
    p.server.faults.base_latency_ms = 50
    ahead: list[int] = []

    def record(target: str, outcomes: list[Outcome]) -> None:
        # Sent so far, minus this call: never more than WORKERS calls sent but unrecorded.
        ahead.append(len(_upserts(p)) - len(ahead))
        time.sleep(0.02)  # a slow store: calls not bounded by the records would pile up

    p.clear_log()
    report = kit.write(before_record=record)
    log = _upserts(p)
    assert report.failed == 0 and report.calls == len(log) == math.ceil(n / 100)
    assert max(ahead) <= WORKERS
    assert 3 <= most_in_flight(log) <= WORKERS
    # One call after another, the calls would take at least the sum of their durations.
    span = max(e["time"] for e in log) - min(e["time"] - e["duration_ms"] / 1000 for e in log)
    assert span < 0.7 * sum(e["duration_ms"] for e in log) / 1000
    assert _write_threads() == []
    kit.assert_in_step()


def test_a_crash_while_recording_stops_the_sends_and_the_next_run_converges(kit: Kit) -> None:
    p = kit.portal
    n = kit.rows()
    p.server.faults.base_latency_ms = 30  # calls in flight when the crash comes
    seen: list[list[str]] = []

    def crash_on_third(target: str, outcomes: list[Outcome]) -> None:
        seen.append([o.key for o in outcomes])
        if len(seen) == 3:
            raise Crash("killed between a send and its record")

    p.clear_log()
    with pytest.raises(Crash):
        kit.write(before_record=crash_on_third)
    assert _write_threads() == []
    sent = len(_upserts(p))
    # The third call and at most WORKERS - 1 after it were sent; none is sent after the crash.
    assert 3 <= sent <= 2 + WORKERS
    time.sleep(0.2)
    assert len(_upserts(p)) == sent and len(seen) == 3
    # Only the two recorded calls are in the ledger; the CRM may hold more.
    entries = kit.ledger_image()
    assert set(entries) == _keys(seen[:2]) and len(entries) == 200
    assert all(e.value_hash and e.crm_id for e in entries.values())
    assert len(kit.crm_image()) >= 300

    again = kit.write()
    assert again.failed == 0 and again.targets[TARGET].written == n - 200
    assert again.calls == math.ceil((n - 200) / 100)
    kit.assert_in_step()  # every key once: the re-sent rows upserted the same records
    assert len(kit.crm_image()) == len(kit.ledger_image()) == n
    assert kit.write().calls == 0


def test_a_spent_budget_pauses_as_one_after_another_does(kit: Kit) -> None:
    p = kit.portal
    n = kit.rows()
    p.server.faults.base_latency_ms = 30
    # 20 % of 25 daily calls: the budget is spent after 5 of the writeback's calls.
    p.app.configure({"daily": 25, "reset_limits": True})
    recorded: list[list[str]] = []
    p.clear_log()
    try:
        with pytest.raises(BudgetPaused):
            kit.write(before_record=lambda t, o: recorded.append([x.key for x in o]))
    finally:
        p.app.configure({"tier": "unlimited", "reset_limits": True})
    assert _write_threads() == []
    # Not one call past the share, however many were in flight when it was reached.
    assert len(_upserts(p)) == 5
    entries = kit.ledger_image()
    assert set(entries) == _keys(recorded) and len(recorded) <= 5
    kit.writer.http.guard.budget.observe(0, 1_000_000)  # a new day
    rest = kit.write()
    assert rest.failed == 0 and rest.targets[TARGET].written == n - len(entries)
    kit.assert_in_step()


def test_refused_and_locked_rows_converge_with_their_errors(kit: Kit) -> None:
    p = kit.portal
    n = kit.rows()
    p.server.faults.base_latency_ms = 10
    for rule in (
        {"kind": "partial_batch_failure", "rate": 0.05, "seed": 4, "path": UPSERT},
        {"kind": "lock_error", "rate": 0.1, "seed": 5, "path": UPSERT},
        {"kind": "http_5xx", "count": 2, "statuses": [503], "path": UPSERT},
    ):
        p.server.faults.add_json({"crm": "hubspot", **rule})
    retries: list[tuple[str, str]] = []

    def observe(connection: str | None, event: RetryEvent) -> None:
        retries.append((event.reason, threading.current_thread().name))

    with retry_scope(CONNECTION, observe):
        first = kit.write()
    tr = first.targets[TARGET]
    assert first.failed == tr.failed == len(tr.errors) > 0
    assert tr.written + tr.failed == n
    # A row locked in every round is refused as locked; the others as the CRM refused them.
    assert all("failed validation" in e or "is locked" in e for e in tr.errors), tr.errors[:3]
    assert any("failed validation" in e for e in tr.errors)
    reasons = [r for r, _ in retries]
    # Locked rows re-sent in the run (counted in the calling thread), the 503s retried in the
    # worker threads: both reach the caller's retry scope.
    assert reasons.count("server_error") == 2
    assert reasons.count("lock_error") > 0
    assert all(name.startswith("kpisync-write") for r, name in retries if r == "server_error")
    failed = {e.split(":", 1)[0] for e in tr.errors}
    entries = kit.ledger_image()
    assert {k for k, e in entries.items() if e.failures} == failed
    assert all(e.failures == 1 and not e.value_hash for k, e in entries.items() if k in failed)

    p.server.faults.clear()
    second = kit.write()
    assert second.failed == 0 and second.targets[TARGET].written == len(failed)
    kit.assert_in_step()
    assert all(not e.failures and e.value_hash for e in kit.ledger_image().values())
    assert _write_threads() == []


@pytest.mark.parametrize("kit", [1], indirect=True)
def test_one_send_at_a_time_starts_no_thread(kit: Kit) -> None:
    p = kit.portal
    p.server.faults.base_latency_ms = 20
    threads: list[int] = []
    report = kit.write(before_record=lambda t, o: threads.append(len(_write_threads())))
    assert report.failed == 0 and report.calls == math.ceil(kit.rows() / 100)
    assert set(threads) == {0}
    assert most_in_flight(_upserts(p)) == 1
