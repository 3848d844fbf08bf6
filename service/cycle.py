"""One cycle of one connection: sync → compute → writeback.

The background service (``kpisync run``), ``kpisync demo`` and the tests all run this same
function. Each step is crash-safe on its own (cursors advance with the batches they cover, the
KPI values of a connection are replaced in one transaction, the writeback ledger records only
what the CRM confirmed), so a cycle cut short anywhere is simply run again.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import polars as pl

from connectors.base import Progress, SyncResult
from connectors.config import ConnectionConfig
from connectors.errors import BudgetPaused, ConnectorError
from connectors.store import Store
from kpis.engine import KpiRun, compute_kpis
from service.settings import Settings

log = logging.getLogger("kpisync.cycle")

STEPS = ("sync", "compute", "writeback")


@dataclass
class CycleResult:
    """What one cycle did; ``outcome`` is ``ok``, ``paused`` (API budget) or ``failed``."""

    connection: str
    outcome: str = "ok"
    failed_step: str | None = None
    message: str = ""
    sync: SyncResult | None = None
    kpi_values: int = 0
    writeback: Any = None  # writeback.run.Report
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def compute_into_store(
    store: Store, settings: Settings, connection: str, as_of: dt.date | None = None
) -> tuple[int, KpiRun]:
    """Compute the KPIs of ``connection`` from its canonical tables into the store."""
    from connectors.contract import read_checked

    # The rows the engine leaves out are kept in the store's quarantine, for `kpisync status`.
    tables = read_checked(store, connection, settings.kpi.corporate_currency)
    kpi = replace(settings.kpi, as_of=as_of or dt.date.today())
    run = compute_kpis(tables, kpi)
    return int(store.write_kpis(connection, run.values)), run


def run_cycle(
    store: Store,
    settings: Settings,
    cfg: ConnectionConfig,
    *,
    full: bool = False,
    writeback: bool = True,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    as_of: dt.date | None = None,
) -> CycleResult:
    """Sync, compute and write back one connection; never raises for a CRM failure.

    ``should_stop`` is asked between steps (a SIGTERM finishes the step in flight, then stops:
    the next cycle starts from the checkpoint that step left).
    """
    from connectors.sources import sync as run_sync

    result = CycleResult(cfg.name)
    step = "sync"
    try:
        _step_started(cfg.name, step)
        started = time.perf_counter()
        result.sync = run_sync(store, cfg, settings.mappings, full=full, progress=progress)
        result.seconds["sync"] = time.perf_counter() - started
        if result.sync.outcome != "ok":
            result.outcome, result.failed_step = result.sync.outcome, "sync"
            result.message = result.sync.message
            return result
        if should_stop():
            result.outcome, result.message = "stopped", "stopped after sync"
            return result
        step = "compute"
        _step_started(cfg.name, step)
        started = time.perf_counter()
        result.kpi_values, _ = compute_into_store(store, settings, cfg.name, as_of)
        result.seconds["compute"] = time.perf_counter() - started
        if should_stop():
            result.outcome, result.message = "stopped", "stopped after compute"
            return result
        if not writeback:
            return result
        step = "writeback"
        _step_started(cfg.name, step)
        started = time.perf_counter()
        result.writeback = _writeback(store, settings, cfg)
        result.seconds["writeback"] = time.perf_counter() - started
        if result.writeback.failed:
            # Rows the CRM refused are retried in later cycles (writeback.ledger); the cycle
            # itself completed, so it is reported, not failed.
            result.message = f"{result.writeback.failed} KPI rows refused by the CRM"
    except BudgetPaused as exc:  # writeback found the API budget spent: resume next cycle
        result.outcome, result.failed_step, result.message = "paused", step, str(exc)
        log.warning("%s: %s paused: %s", cfg.name, step, exc)
    except ConnectorError as exc:
        result.outcome, result.failed_step, result.message = "failed", step, str(exc)
        log.warning("%s: %s failed: %s", cfg.name, step, exc)
    except (pl.exceptions.PolarsError, ValueError, KeyError) as exc:
        result.outcome, result.failed_step = "failed", step
        result.message = f"{type(exc).__name__}: {exc}"
        log.exception("%s: %s failed", cfg.name, step)
    return result


def _step_started(connection: str, step: str) -> None:
    # One debug line per step boundary: with log_level = "DEBUG" the log shows which step a
    # cycle was in when its process died (the cycle log only records finished cycles' timings).
    log.debug("%s: %s started", connection, step, extra={"connection": connection, "step": step})


def _writeback(store: Store, settings: Settings, cfg: ConnectionConfig) -> Any:
    from writeback.crm import open_crm
    from writeback.run import writeback as run_writeback

    _, writer = open_crm(cfg, settings.writeback, store)
    return run_writeback(store, cfg.name, writer, settings.writeback)
