"""The daily API budget runs out mid-cycle: the service pauses that connection with a clear status
and exit code 75, sends nothing more that day, and resumes from its cursors when the budget's day
turns, ending where an unpaused run ends.

The budget's day is the service's injectable clock (``Runner(clock=...)``); the CRM's side of it
is the sandbox control plane (HubSpot ``reset_limits``, Salesforce ``api_usage``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.http import SALESFORCE_BUDGET_PROBE_S
from connectors.store import Store, utcnow
from service.exit_codes import EXIT_OK, EXIT_PAUSED
from service.runner import Runner
from service.settings import Settings, load_settings
from tests.service.conftest import Sandbox, crm_rows, install, kpisync, open_store

ORG_SIZE = 60
BUDGET_SHARE = 0.2


class Clock:
    """The service's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture(scope="module")
def budget_sandbox() -> Iterator[Sandbox]:
    from sandbox.cli import build_apps
    from sandbox.server import SandboxServer

    apps, currency = build_apps(ORG_SIZE, 5)
    with SandboxServer(apps) as server:
        yield Sandbox(server, currency)


def _settings(sandbox: Sandbox, tmp: Path, tag: str) -> tuple[Path, Settings]:
    file = tmp / f"{tag}.toml"
    text = sandbox.settings_toml(f'[store]\nurl = "sqlite:///{tmp / tag}.db"')
    text = text.replace("[sync]\n", f"[sync]\nbudget_share = {BUDGET_SHARE}\n", 1)
    file.write_text(text, encoding="utf-8")
    return file, load_settings(file)


def _state(settings: Settings, store: Store, name: str) -> dict[str, Any]:
    tables = {t: f.sort(f.columns).to_dicts() for t, f in store.canonical_text(name).items()}
    kpis = store.read_kpis(name)
    return {"tables": tables, "kpis": kpis.to_dicts(), "report": crm_rows(settings, store, name)}


def _assert_same_state(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got["tables"] == want["tables"]
    assert got["report"] == want["report"]
    assert len(got["kpis"]) == len(want["kpis"])
    for g, w in zip(got["kpis"], want["kpis"], strict=True):
        assert g.keys() == w.keys()
        for k, value in w.items():
            if isinstance(value, float):
                assert g[k] == pytest.approx(value, rel=1e-9), k  # summation order
            else:
                assert g[k] == value, k


def _status(file: Path, name: str) -> tuple[dict[str, Any], str]:
    code, out = kpisync("status", "--settings", str(file), "--crm", name, "--format", "json")
    assert code == 0, out
    code, table = kpisync("status", "--settings", str(file), "--crm", name)
    assert code == 0, table
    info: dict[str, Any] = json.loads(out)[name]
    return info, table


def _reference(sandbox: Sandbox, tmp: Path, name: str) -> tuple[dict[str, Any], int, int]:
    """The end state of an unpaused cycle of the fresh org, its sync's API calls and the
    records it read."""
    sandbox.reset()
    file, settings = _settings(sandbox, tmp, f"{name}-reference")
    install(file, "--crm", name)
    assert Runner(settings, [name]).once() == EXIT_OK
    store = open_store(settings)
    state = _state(settings, store, name)
    run = store.runs(name, limit=1)[0]
    store.close()
    return state, run.stats.api_calls, run.stats.records_in


def test_hubspot_pauses_mid_sync_and_resumes_next_day_where_it_left_off(
    budget_sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox, name = budget_sandbox, "hubspot"
    want, _, read_unpaused = _reference(sandbox, tmp_path, name)

    sandbox.reset()
    file, settings = _settings(sandbox, tmp_path, "paused")
    install(file, "--crm", name)
    # A day of 50 calls, 20 % of it for kpisync: 10 calls, spent part-way through the pull.
    sandbox.hs.configure({"daily": 50, "reset_limits": True})
    sandbox.server._stats.clear()
    clock = Clock()
    with caplog.at_level(logging.INFO):
        assert Runner(settings, [name], clock=clock).once() == EXIT_PAUSED
    # Not one call past the share (searches carry no usage headers, list pages do).
    assert _calls(sandbox) == int(50 * BUDGET_SHARE)
    store = open_store(settings)
    paused_run = store.runs(name, limit=1)[0]
    stored = store.raw_count(name)
    store.close()
    assert paused_run.outcome == "paused" and 0 < paused_run.stats.records_in < read_unpaused
    assert sum(stored.values()) == paused_run.stats.records_in  # every page read was kept
    midnight = dt.datetime.combine(clock.now.date() + dt.timedelta(days=1), dt.time(),
                                   tzinfo=dt.UTC)  # fmt: skip

    # The status says paused, why, and when it resumes: the next midnight of the portal's day.
    info, table = _status(file, name)
    assert info["paused"] is not None, info
    assert "API budget spent" in info["paused"]["reason"], info["paused"]
    assert dt.datetime.fromisoformat(info["paused"]["resumes_at"]) == midnight
    assert info["last_cycles"][0]["outcome"] == "paused"
    assert "paused" in table and "API budget spent" in table and midnight.isoformat() in table
    pauses = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(pauses) <= 2, [r.getMessage() for r in pauses]  # the pause, said once per step

    # Later the same day: nothing is sent, nothing is logged above INFO, still 75.
    caplog.clear()
    sandbox.server._stats.clear()
    clock.now = midnight - dt.timedelta(minutes=1)
    with caplog.at_level(logging.INFO):
        assert Runner(settings, [name], clock=clock).once() == EXIT_PAUSED
    assert _calls(sandbox) == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    # Each next day the portal's budget is back (10 calls again): the cycle goes on from the
    # stored cursors, pausing again whenever the day's share is spent, until it completes.
    days, code = 0, EXIT_PAUSED
    while code == EXIT_PAUSED:
        days += 1
        assert days <= 6, "no progress from one day to the next"
        sandbox.hs.configure({"reset_limits": True})
        sandbox.server._stats.clear()
        clock.now = midnight + dt.timedelta(minutes=1)
        code = Runner(settings, [name], clock=clock).once()
        assert _calls(sandbox) <= int(50 * BUDGET_SHARE)
        midnight += dt.timedelta(days=1)
    assert code == EXIT_OK and days >= 2, days
    store = open_store(settings)
    reads = sum(r.stats.records_in for r in store.runs(name, limit=days + 1))
    # Records already stored are not read again: the days together read what one unpaused
    # cycle reads.
    assert reads == read_unpaused, (reads, read_unpaused)
    _assert_same_state(_state(settings, store, name), want)
    assert _status(file, name)[0]["paused"] is None
    store.close()


def _calls(sandbox: Sandbox) -> int:
    return sum(sum(c.values()) for c in sandbox.server.counts().values())


def test_salesforce_respects_sforce_limit_info_and_probes_its_rolling_window(
    budget_sandbox: Sandbox, tmp_path: Path
) -> None:
    sandbox, name = budget_sandbox, "salesforce"
    want, sync_calls, _ = _reference(sandbox, tmp_path, name)

    sandbox.reset()
    file, settings = _settings(sandbox, tmp_path, "paused")
    install(file, "--crm", name)
    # The org has used all but (sync + 1) calls of kpisync's share: the sync completes and the
    # writeback pauses after its first call, which the Sforce-Limit-Info header says spent it.
    daily = 10_000
    allowance = int(daily * BUDGET_SHARE)
    sandbox.sf.configure({"daily_api_requests": daily, "api_usage": allowance - sync_calls - 1})
    clock = Clock()
    assert Runner(settings, [name], clock=clock).once() == EXIT_PAUSED
    assert sandbox.sf.configure({})["api_usage"] == allowance  # not one call past the share
    info, table = _status(file, name)
    assert info["last_cycles"][0]["failed_step"] == "writeback"
    resumes = clock.now + dt.timedelta(seconds=SALESFORCE_BUDGET_PROBE_S)
    assert dt.datetime.fromisoformat(info["paused"]["resumes_at"]) == resumes
    assert resumes.isoformat() in table

    # Within the hour nothing is sent; after it one call looks, and the window has not rolled.
    sandbox.server._stats.clear()
    clock.now = resumes - dt.timedelta(minutes=1)
    assert Runner(settings, [name], clock=clock).once() == EXIT_PAUSED
    assert _calls(sandbox) == 0
    clock.now = resumes + dt.timedelta(minutes=1)
    assert Runner(settings, [name], clock=clock).once() == EXIT_PAUSED
    assert sandbox.sf.configure({})["api_usage"] == allowance + 1

    # The rolling window frees the allowance: the next probe resumes and finishes the cycle.
    sandbox.sf.configure({"api_usage": 0})
    clock.now += dt.timedelta(seconds=SALESFORCE_BUDGET_PROBE_S + 60)
    assert Runner(settings, [name], clock=clock).once() == EXIT_OK
    store = open_store(settings)
    _assert_same_state(_state(settings, store, name), want)
    store.close()
