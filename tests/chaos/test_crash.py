"""Crash consistency: ``kpisync run`` killed with SIGKILL anywhere in sync, compute or writeback,
or in the middle of a store migration, ends — once restarted — with the store and the CRM report
objects of an undisturbed run: no record lost, no CRM row duplicated, nothing the ledger believes
written that the CRM does not hold.

Fast part (default ``pytest``): one round of kills over both sandbox CRMs on SQLite, and upgrades
killed mid-way on SQLite and PostgreSQL. Soak (``pytest -m soak``): rounds of kills until
``KPISYNC_SOAK_KILLS`` (default 24) kill points, on SQLite and on PostgreSQL. Each test prints the
seed of its kill plan; ``KPISYNC_CRASH_SEED=<seed>`` replays it.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.store import Store
from service import journal
from service.settings import Settings
from tests.chaos.crash import (
    NAMES,
    Child,
    Image,
    KillPoint,
    child_env,
    count_rows,
    crm_image,
    differences,
    hit_counts,
    kill_run,
    plan_kills,
    reference_durations,
    run_args,
    store_image,
)
from tests.service.conftest import Sandbox, install, open_store, pg_url, write_settings

SEED_ENV = "KPISYNC_CRASH_SEED"
SOAK_KILLS_ENV = "KPISYNC_SOAK_KILLS"
#: Kill points per round (a round starts from a fresh store and reset CRMs): the fast part is one
#: round that walks every step of both connections; soak rounds add random ones.
FAST_KILLS = 6
ROUND_KILLS = 8
SOAK_KILLS = 24
#: Debug logs carry the ``step started`` lines the kills aim at and are read back from.
SERVICE = 'log_format = "json"\nlog_level = "DEBUG"\n'
#: Current-period revenue on the Salesforce User as well: a second writeback target.
WRITEBACK = '[writeback]\nuser_fields = ["revenue"]\n\n'
MIGRATION_PAUSE_ENV = "KPISYNC_TEST_MIGRATION_PAUSE_S"
REPORT_OBJECT = {"salesforce": "KPI_Snapshot__c", "hubspot": "kpi_snapshot"}
#: Every report-object write (Salesforce sObject Collections, HubSpot batch upsert) is held
#: 100 ms before the CRM applies it: a kill during a writeback then often lands between the CRM
#: applying a batch and the ledger recording it — the window where a duplicate row would come from.
WRITE_LATENCY = {"kind": "latency_ms", "rate": 1.0, "latency_ms": 100,
                 "path": "composite/sobjects|batch/upsert"}  # fmt: skip


def _seed() -> int:
    seed = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(1_000_000))
    print(f"crash plan seed: {seed} (replay with {SEED_ENV}={seed})")
    return seed


@pytest.fixture(scope="module")
def crash_sandbox() -> Iterator[Sandbox]:
    """Both sandbox CRMs with the small org: one undisturbed cycle takes a few seconds."""
    from sandbox.cli import build_apps
    from sandbox.server import SandboxServer

    apps, currency = build_apps("small", 0)
    with SandboxServer(apps) as server:
        yield Sandbox(server, currency)


def _settings(path: Path, sandbox: Sandbox, store: str) -> Settings:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_settings(path, sandbox, WRITEBACK + store, SERVICE)


def _sqlite(path: Path) -> str:
    return f'[store]\nurl = "sqlite:///{path}"'


@dataclass(frozen=True)
class Reference:
    store: Image
    crm: Image
    durations: dict[tuple[str, str], float]


@pytest.fixture(scope="module")
def reference(crash_sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """An undisturbed run: install, then one ``kpisync run --once`` on a fresh SQLite store."""
    tmp = tmp_path_factory.mktemp("reference")
    crash_sandbox.reset()
    settings = _settings(tmp / "settings.toml", crash_sandbox, _sqlite(tmp / "s.db"))
    install(tmp / "settings.toml")
    crash_sandbox.server.faults.add_json(WRITE_LATENCY)
    child = Child(run_args(tmp / "settings.toml"), tmp / "run.log")
    assert child.wait(300) == 0, child.text()
    with open_store(settings) as store:
        ref = Reference(store_image(store), crm_image(settings, store), reference_durations(store))
    assert not ref.store.duplicates and not ref.crm.duplicates
    for name in NAMES:  # a meaningful org, every KPI value in a report row of its CRM
        values = count_rows(ref.store, f"{name}/kpi_values")
        assert values > 100
        assert count_rows(ref.crm, f"{name}/crm/{REPORT_OBJECT[name]}") == values
    print("reference step durations:", {"/".join(k): round(v, 2) for k, v in ref.durations.items()})
    return ref


StoreToml = Callable[[str], str]


@pytest.fixture
def fresh_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreToml]:
    """``fresh_store(label)``: the ``[store]`` section of a new, empty store — a SQLite file, or a
    PostgreSQL schema of its own (dropped afterwards); the backend is the test's parameter."""
    backend = str(request.param)
    url = pg_url() if backend == "postgresql" else ""
    schemas: list[str] = []

    def make(label: str) -> str:
        if backend == "sqlite":
            return _sqlite(tmp_path / f"{label}.db")
        schemas.append(f"kpisync_crash_{uuid.uuid4().hex[:12]}")
        return f'[store]\nurl = "{url}"\nschema = "{schemas[-1]}"'

    yield make
    if schemas:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            for schema in schemas:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


def _crash_round(
    sandbox: Sandbox, tmp: Path, store_toml: str, rng: random.Random, kills: int, ref: Reference
) -> list[KillPoint]:
    """Fresh store, reset CRMs; ``kills`` killed runs, one that completes, one more clean run;
    then store and CRMs must equal the reference."""
    sandbox.reset()
    file = tmp / "settings.toml"
    settings = _settings(file, sandbox, store_toml)
    install(file)
    sandbox.server.faults.add_json(WRITE_LATENCY)
    points = plan_kills(rng, kills, ref.durations)
    for i, point in enumerate(points):
        kill_run(file, tmp / f"kill-{i}.log", point)
        print(f"  kill {i}: {point.describe()}")
    for what in ("completing", "clean"):
        began = time.monotonic()
        child = Child(run_args(file), tmp / f"{what}.log")
        assert child.wait(300) == 0, f"{what} run:\n{child.text()}"
        print(f"  {what} run: {time.monotonic() - began:.1f}s")
    with open_store(settings) as store:
        for name in NAMES:
            cycles = journal.cycles(store, name, 1000)
            # Every cycle a kill cut short was marked abandoned by the next run.
            assert not [c for c in cycles if c.outcome == "running"], cycles
            # ... and so was every sync run they cut short: `kpisync status` shows none running.
            assert not [r for r in store.runs(name, 1000) if r.outcome == "running"]
            # The clean run found nothing to send: the ledger agrees with the CRM.
            assert (cycles[0].outcome, cycles[0].written) == ("ok", 0), cycles[0]
        found = differences(ref.store, store_image(store))
        found += differences(ref.crm, crm_image(settings, store))
    plan = "\n".join(f"  {p.describe()}" for p in points)
    assert not found, "after the crashes:\n" + "\n".join(found) + f"\nkills:\n{plan}"
    return points


def _crash_rounds(
    sandbox: Sandbox, tmp: Path, fresh_store: StoreToml, kills: int, ref: Reference
) -> list[KillPoint]:
    """Rounds of :func:`_crash_round` until ``kills`` kill points; each step hit at least once."""
    rng = random.Random(_seed())
    points: list[KillPoint] = []
    started = time.monotonic()
    n = 0
    while len(points) < kills:
        count = min(ROUND_KILLS, kills - len(points))
        print(f"round {n}: {count} kills")
        points += _crash_round(sandbox, tmp / f"round-{n}", fresh_store(f"round-{n}"), rng, count,
                               ref)  # fmt: skip
        n += 1
    hits = hit_counts(points)
    print(f"{len(points)} kill points, per step: {dict(hits)}; {time.monotonic() - started:.0f}s")
    for step in ("sync", "compute", "writeback"):
        assert hits[step] >= 1, f"no kill landed in {step}: {dict(hits)}"
    return points


@pytest.mark.parametrize("fresh_store", ["sqlite"], indirect=True)
def test_kill_9_anywhere_in_a_cycle_loses_and_duplicates_nothing(
    crash_sandbox: Sandbox, reference: Reference, tmp_path: Path, fresh_store: StoreToml
) -> None:
    _crash_rounds(crash_sandbox, tmp_path, fresh_store, FAST_KILLS, reference)


@pytest.mark.soak
@pytest.mark.parametrize("fresh_store", ["sqlite", "postgresql"], indirect=True)
def test_soak_kill_9_in_cycles(
    crash_sandbox: Sandbox, reference: Reference, tmp_path: Path, fresh_store: StoreToml
) -> None:
    kills = int(os.environ.get(SOAK_KILLS_ENV) or SOAK_KILLS)
    _crash_rounds(crash_sandbox, tmp_path, fresh_store, kills, reference)


# -- migrations ---------------------------------------------------------------------------------
def _revision(store: Store) -> str | None:
    """The store's Alembic revision (None: no version table, or an empty one)."""
    with store.engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def _tables(store: Store) -> set[str]:
    with store.engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names())


def _head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(Store.__module__.replace(".", "/")).parent /
                                                   "migrations"))  # fmt: skip
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def _kill_mid_upgrade(file: Path, log: Path, revision: str) -> None:
    """``kpisync run --once`` killed once ``revision`` is applied but not committed (the
    migration environment's test-only pause holds the upgrade open there)."""
    env = child_env(**{MIGRATION_PAUSE_ENV: "120"})
    child = Child(run_args(file, "--crm", "salesforce"), log, env)
    applied = f"migration {revision} applied"
    assert child.wait_for(applied, lambda e: applied in str(e.get("message")), 120), child.text()
    child.kill()


@pytest.mark.parametrize("fresh_store", ["sqlite", "postgresql"], indirect=True)
def test_upgrade_killed_mid_way_restarts_at_head_with_nothing_lost(
    crash_sandbox: Sandbox, tmp_path: Path, fresh_store: StoreToml
) -> None:
    from service.cycle import run_cycle
    from writeback.crm import open_crm

    crash_sandbox.reset()
    file = tmp_path / "settings.toml"
    settings = _settings(file, crash_sandbox, fresh_store("store"))
    cfg = settings.connections["salesforce"]
    # A store as revision 0002 left it: installed, synced, computed, written back.
    with open_store(settings) as store:
        store.migrate("0002")
        installer, _ = open_crm(cfg, settings.writeback, store)
        installer.install()
        assert run_cycle(store, settings, cfg).ok
        before = store_image(store, ["salesforce"])
        tables = _tables(store)
    assert count_rows(before, "salesforce/ledger/KPI_Snapshot__c") > 100

    _kill_mid_upgrade(file, tmp_path / "killed.log", "0003")
    with open_store(settings) as store:  # the upgrade left nothing half-done
        assert (_revision(store), _tables(store)) == ("0002", tables)

    restart = Child(run_args(file, "--crm", "salesforce"), tmp_path / "restart.log")
    assert restart.wait(300) == 0, restart.text()
    with open_store(settings) as store:
        assert _revision(store) == _head()
        assert not differences(before, store_image(store, ["salesforce"]))
        # The ledger written before the upgrade is whole: the first cycle after it sent nothing.
        cycle = journal.cycles(store, "salesforce", 1)[0]
        assert (cycle.outcome, cycle.written) == ("ok", 0), cycle
        crm = crm_image(settings, store, ["salesforce"])
        assert not crm.duplicates
        assert set(crm.sections["salesforce/crm/KPI_Snapshot__c"]) == set(
            before.sections["salesforce/ledger/KPI_Snapshot__c"])  # fmt: skip
        assert all(crm.sections["salesforce/ledger-vs-crm/KPI_Snapshot__c"].values())


@pytest.mark.parametrize("fresh_store", ["sqlite", "postgresql"], indirect=True)
def test_first_migration_killed_mid_way_leaves_an_empty_store(
    tmp_path: Path, crash_sandbox: Sandbox, fresh_store: StoreToml
) -> None:
    file = tmp_path / "settings.toml"
    settings = _settings(file, crash_sandbox, fresh_store("store"))
    _kill_mid_upgrade(file, tmp_path / "killed.log", "0001")  # 0002 and 0003 still to come
    with open_store(settings) as store:
        assert _revision(store) is None
        assert _tables(store) <= {"alembic_version"}
        store.migrate()
        assert _revision(store) == _head()
        assert store.connections() == []
