"""Several ``kpisync run`` processes on one PostgreSQL store: each connection's cycle runs in one
process at a time, every connection's cycles complete, SIGTERM stops cleanly, and a process killed
mid-cycle is taken over by the other."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from connectors.store import Store
from service import journal
from service.journal import CycleRecord
from service.settings import Settings
from tests.service.conftest import (
    Sandbox,
    assert_report_matches_store,
    install,
    open_store,
    write_settings,
)

NAMES = ("salesforce", "hubspot")
KPISYNC = str(Path(sys.executable).parent / "kpisync")


class Fleet:
    """``kpisync run`` child processes, all stopped (SIGKILL if need be) at the end."""

    def __init__(self, settings_file: Path, logs: Path) -> None:
        self.settings_file = settings_file
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KPISYNC")}
        log = (self.logs / f"run-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen([KPISYNC, "run", "--settings", str(self.settings_file)],
                                stdout=log, stderr=subprocess.STDOUT, env=env)  # fmt: skip
        self.procs.append(proc)
        return proc

    def by_holder(self, holder: str) -> subprocess.Popen[bytes]:
        return next(p for p in self.procs if holder.endswith(f":{p.pid}"))

    def log(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.logs.glob("run-*.log")))

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Callable[[Path], Fleet]]:
    made: list[Fleet] = []

    def make(settings_file: Path) -> Fleet:
        made.append(Fleet(settings_file, tmp_path))
        return made[-1]

    yield make
    for f in made:
        f.stop()


def _settings(tmp_path: Path, sandbox: Sandbox, pg: tuple[str, str], service: str) -> Settings:
    url, schema = pg
    file = tmp_path / "settings.toml"
    store = f'[store]\nurl = "{url}"\nschema = "{schema}"'
    settings = write_settings(file, sandbox, store, service + 'log_format = "json"\n')
    install(file)  # also migrates the fresh schema
    return settings


def _cycles(store: Store) -> dict[str, list[CycleRecord]]:
    return {n: sorted(journal.cycles(store, n, 1000), key=lambda c: c.id) for n in NAMES}


def _wait(what: str, until: Callable[[], bool], fleet: Fleet, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; logs:\n{fleet.log()[-4000:]}")
        time.sleep(0.2)


def _assert_no_overlap(cycles: list[CycleRecord]) -> None:
    for before, after in itertools.pairwise(cycles):
        assert before.finished_at is not None, before
        assert after.started_at >= before.finished_at, (before, after)


def test_two_processes_never_run_one_connection_at_once(
    sandbox: Sandbox, tmp_path: Path, pg_schema: tuple[str, str], fleet: Callable[[Path], Fleet]
) -> None:
    interval = 3
    settings = _settings(tmp_path, sandbox, pg_schema, f"interval_s = {interval}\n"
                         "lock_retry_s = 0.3\n")  # fmt: skip
    store = open_store(settings)
    f = fleet(tmp_path / "settings.toml")
    a, b = f.start(), f.start()

    def done() -> bool:
        cycles = _cycles(store)
        return all(sum(c.outcome == "ok" for c in cycles[n]) >= 2 for n in NAMES) and any(
            c.outcome == "running" for n in NAMES for c in cycles[n])  # fmt: skip

    _wait("two finished cycles per connection, and one in flight", done, f, 60)
    for p in (a, b):  # mid-cycle: the cycle in flight finishes its step, then the process exits
        p.send_signal(signal.SIGTERM)
    assert a.wait(30) == 0 and b.wait(30) == 0, f.log()[-4000:]
    cycles = _cycles(store)
    for name in NAMES:
        runs = cycles[name]
        assert {c.outcome for c in runs} <= {"ok", "stopped"}, runs
        _assert_no_overlap(runs)
        # One schedule for both processes: a slot is run once, not once per process.
        for before, after in itertools.pairwise(runs):
            if before.outcome == "ok":
                assert after.started_at - before.started_at >= dt.timedelta(seconds=interval - 0.5)
        if runs[-1].outcome == "ok":
            assert_report_matches_store(settings, store, name)
        else:  # stopped early: due again at once, for whichever process runs next
            due, stopped = journal.next_run(store, name), runs[-1].finished_at
            assert due is not None and stopped is not None
            assert due - stopped < dt.timedelta(seconds=1)
    assert '"signal 15: stopping"' in f.log()
    store.close()


def test_a_process_killed_mid_cycle_is_taken_over(
    sandbox: Sandbox, tmp_path: Path, pg_schema: tuple[str, str], fleet: Callable[[Path], Fleet]
) -> None:
    settings = _settings(tmp_path, sandbox, pg_schema, "interval_s = 3600\nlock_retry_s = 0.3\n")
    store = open_store(settings)
    sandbox.server.faults.add_json({"kind": "latency_ms", "rate": 1.0, "latency_ms": 80})
    f = fleet(tmp_path / "settings.toml")
    f.start(), f.start()

    def running() -> CycleRecord | None:
        return next((c for c in _cycles(store)["hubspot"] if c.outcome == "running"), None)

    _wait("a hubspot cycle in flight", lambda: running() is not None, f, 30)
    time.sleep(1.0)  # well into the sync
    victim_cycle = running()
    assert victim_cycle is not None
    victim = f.by_holder(victim_cycle.holder)
    killed_at = dt.datetime.now(dt.UTC)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    survivor = next(p for p in f.procs if p is not victim)

    def completed() -> bool:
        cycles = _cycles(store)
        return all(cycles[n] and cycles[n][-1].outcome == "ok" for n in NAMES)

    _wait("the survivor to complete every connection", completed, f, 60)
    sandbox.server.faults.clear()
    cycles = _cycles(store)
    abandoned = next(c for c in cycles["hubspot"] if c.id == victim_cycle.id)
    assert abandoned.outcome == "abandoned" and abandoned.finished_at is None
    taken = cycles["hubspot"][-1]
    assert taken.holder.endswith(f":{survivor.pid}") and taken.started_at >= killed_at
    for name in NAMES:
        _assert_no_overlap([c for c in cycles[name] if c.outcome != "abandoned"])
        assert_report_matches_store(settings, store, name)
    survivor.send_signal(signal.SIGTERM)
    assert survivor.wait(30) == 0
    store.close()
