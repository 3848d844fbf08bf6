"""``kpisync run``: the background service.

Per connection, one APScheduler job on the configured trigger (``[service] interval_s`` or
``cron``) runs :func:`service.cycle.run_cycle` (sync → compute → writeback). Each job
(``max_instances=1``, ``coalesce=True``: missed runs become one) does, when it fires:

1. take the connection's lock (:mod:`service.locks`) without waiting. Held by another process →
   try again in ``lock_retry_s``: either that process finishes (and has moved the shared
   ``next_run_at`` on) or it died, its lock went with its database session, and this process
   takes the connection over;
2. with the lock, read the connection's shared ``next_run_at`` (:mod:`service.journal`). Still in
   the future → another process already ran this slot: sleep until then. Otherwise mark cycles
   left ``running`` by a dead process as ``abandoned``, run the cycle, log it, set ``next_run_at``
   from the trigger (a slot missed while a cycle ran long is coalesced into one run now);
3. release the lock and re-arm the job for ``next_run_at``, so every process follows one schedule.

SIGTERM/SIGINT: no new cycle starts; a cycle in flight finishes its current step (each step is
crash-safe: cursors advance with their batches, the ledger records only confirmed writes) and
stops; its connection is marked due now, so the next process to run picks up from there.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from types import FrameType
from typing import Any

import sqlalchemy as sa
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from connectors.base import Progress
from connectors.config import ConnectionConfig
from connectors.http import budget_resumes_at, retry_scope
from connectors.store import Store, utcnow
from service import journal, locks
from service.cycle import CycleResult, run_cycle
from service.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_PAUSED
from service.observability import HttpEndpoint, Metrics, safe_url
from service.settings import Settings

log = logging.getLogger("kpisync.service")


#: ``run --once`` exit code per cycle outcome; ``failed`` wins over the rest.
_EXIT = {"ok": EXIT_OK, "failed": EXIT_FAILED, "paused": EXIT_PAUSED, "stopped": EXIT_PAUSED}

ProgressFor = Callable[[str], AbstractContextManager[Progress | None]]


def holder_id() -> str:
    """How the cycle log names this process: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Runner:
    """The service for the ``names`` connections (all when None) of ``settings``."""

    def __init__(
        self,
        settings: Settings,
        names: list[str] | None = None,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.settings = settings
        #: Decides the API budget's day (when a paused connection resumes); tests move it.
        self.clock = clock
        configs = settings.connection(None)
        if names:
            configs = [c for n in names for c in settings.connection(n)]
        self.configs: dict[str, ConnectionConfig] = {c.name: c for c in configs}
        self.store = Store(settings.store.url, schema=settings.store.schema)
        self.stopping = threading.Event()
        self.metrics = Metrics()
        self.holder = holder_id()
        self.scheduler: BackgroundScheduler | None = None
        self.last_outcome: dict[str, str] = {}

    # -- schedule ---------------------------------------------------------------------------
    def trigger(self) -> BaseTrigger:
        svc = self.settings.service
        if svc.cron:
            return CronTrigger.from_crontab(svc.cron, timezone=self.settings.kpi.timezone)
        return IntervalTrigger(seconds=svc.interval_s, timezone=dt.UTC)

    def next_after(self, started: dt.datetime, now: dt.datetime) -> dt.datetime:
        """When the cycle after one that started at ``started`` is due (never in the past)."""
        svc = self.settings.service
        if svc.cron:
            fire = self.trigger().get_next_fire_time(None, now)
            assert fire is not None
            return fire.astimezone(dt.UTC)  # type: ignore[no-any-return]
        return max(started + dt.timedelta(seconds=svc.interval_s), now)

    # -- one cycle, lock held ---------------------------------------------------------------
    def cycle(
        self, cfg: ConnectionConfig, lock: locks.ConnectionLock, progress: Progress | None = None
    ) -> CycleResult:
        """Run and record one cycle of ``cfg``; the caller holds ``lock``."""
        name = cfg.name
        resumes = self.paused_until(name)
        if resumes is not None:
            # Paused on its API budget: not one call before the budget's day turns.
            log.info("%s: paused on its API budget until %s; nothing sent", name,
                     resumes.isoformat(timespec="seconds"), extra={"connection": name})  # fmt: skip
            self.metrics.cycles.labels(name, "paused").inc()
            self.last_outcome[name] = "paused"
            message = f"API budget spent; resumes at {resumes.isoformat()}"
            return CycleResult(name, outcome="paused", failed_step="sync", message=message)
        taken_over = journal.abandon_unfinished(self.store, name)
        if taken_over:
            log.warning("%s: taking over %d cycle(s) a stopped process left unfinished", name,
                        taken_over, extra={"connection": name})  # fmt: skip
        started = utcnow()
        cycle_id = journal.start(self.store, name, self.holder)
        extra = {"connection": name, "cycle": cycle_id, "holder": self.holder}
        log.info("%s: cycle %d started", name, cycle_id, extra=extra)
        self.metrics.running.labels(name).set(1)
        try:
            with retry_scope(name, self.metrics.retried):
                result = run_cycle(
                    self.store, self.settings, cfg, progress=progress,
                    should_stop=lambda: self.stopping.is_set() or not lock.alive(),
                )  # fmt: skip
        except Exception as exc:  # a bug or a lost store must not take the scheduler down
            log.exception("%s: cycle %d crashed", name, cycle_id, extra=extra)
            result = CycleResult(name, outcome="failed", failed_step="cycle",
                                 message=f"{type(exc).__name__}: {exc}")  # fmt: skip
        finally:
            self.metrics.running.labels(name).set(0)
        now = utcnow()
        due = now if result.outcome == "stopped" else self.next_after(started, now)
        if result.outcome == "paused":
            # The budget is spent until its day turns: the next cycle is due then. HubSpot's day
            # is the portal's, whose time zone is the one its reports are in: [kpi] timezone.
            due = budget_resumes_at(cfg.crm, self.clock(), tz=self.settings.kpi.timezone)
            result.message = f"{result.message}; resumes at {due.isoformat()}"
        written = None
        if result.writeback is not None:
            written = sum(t.written for t in result.writeback.targets.values())
        journal.finish(
            self.store, cycle_id, outcome=result.outcome, failed_step=result.failed_step,
            message=result.message, seconds=result.seconds, kpi_values=result.kpi_values,
            written=written,
        )  # fmt: skip
        if lock.alive():
            journal.set_next_run(self.store, name, due)
        self.metrics.next_run.labels(name).set(due.timestamp())
        usage = self.store.api_usage(name)
        self.metrics.observe(result, usage[:2] if usage else None, cfg.options.budget_share)
        self.last_outcome[name] = result.outcome
        level = logging.INFO if result.outcome in ("ok", "stopped") else logging.WARNING
        steps = ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items())
        log.log(level, "%s: cycle %d %s (%s)%s; next %s", name, cycle_id, result.outcome, steps,
                f" — {result.message}" if result.message else "", due.isoformat(timespec="seconds"),
                extra={**extra, "outcome": result.outcome, "seconds": result.seconds})  # fmt: skip
        return result

    def paused_until(self, name: str) -> dt.datetime | None:
        """When ``name``'s API budget comes back, while its last cycle paused on it."""
        last = journal.cycles(self.store, name, 1)
        if not last or last[0].outcome != "paused":
            return None
        due = journal.next_run(self.store, name)
        return due if due is not None and due > self.clock() else None

    # -- the scheduled job ------------------------------------------------------------------
    def job(self, name: str) -> None:
        """What the scheduler runs for ``name`` (see the module docstring)."""
        if self.stopping.is_set():
            return
        retry = dt.timedelta(seconds=self.settings.service.lock_retry_s)
        lock = locks.connection_lock(self.store, name)
        try:
            if not lock.acquire():
                log.debug("%s: held by another process", name, extra={"connection": name})
                self._arm(name, utcnow() + retry)
                return
        except sa.exc.DBAPIError as exc:
            log.error("%s: cannot reach the store: %s", name, exc.__class__.__name__,
                      extra={"connection": name})  # fmt: skip
            self._arm(name, utcnow() + retry)
            return
        try:
            due = journal.next_run(self.store, name)
            if due is not None and due > utcnow():
                self._arm(name, due)  # another process ran this slot
                return
            self.cycle(self.configs[name], lock)
            self._arm(name, journal.next_run(self.store, name) or utcnow() + retry)
        except sa.exc.DBAPIError:
            log.exception("%s: store error", name, extra={"connection": name})
            self._arm(name, utcnow() + retry)
        finally:
            lock.release()

    def _arm(self, name: str, when: dt.datetime) -> None:
        if self.scheduler is None or self.stopping.is_set():
            return
        with contextlib.suppress(Exception):  # the scheduler is shutting down
            self.scheduler.modify_job(name, next_run_time=when)

    # -- entry points -----------------------------------------------------------------------
    def prepare(self) -> None:
        locks.migrate(self.store)

    def once(self, progress_for: ProgressFor | None = None) -> int:
        """One cycle of every connection, now; the exit code (0, 1 or 75)."""
        self.prepare()
        codes: list[int] = []
        for name, cfg in self.configs.items():
            if self.stopping.is_set():
                codes.append(EXIT_PAUSED)
                continue
            lock = locks.connection_lock(self.store, name)
            if not self._wait_for(lock):
                wait = self.settings.service.lock_wait_s
                log.error("%s: another process held it for more than %.0fs (lock_wait_s)", name,
                          wait, extra={"connection": name})  # fmt: skip
                codes.append(EXIT_PAUSED if self.stopping.is_set() else EXIT_FAILED)
                continue
            try:
                with progress_for(name) if progress_for else _no_progress() as progress:
                    result = self.cycle(cfg, lock, progress)
            finally:
                lock.release()
            codes.append(_EXIT.get(result.outcome, EXIT_FAILED))
        self.store.close()
        if EXIT_FAILED in codes:
            return EXIT_FAILED
        return max(codes, default=EXIT_OK)

    def _wait_for(self, lock: locks.ConnectionLock) -> bool:
        deadline = time.monotonic() + self.settings.service.lock_wait_s
        while not lock.acquire():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            log.info("%s: running in another process; waiting", lock.name,
                     extra={"connection": lock.name})  # fmt: skip
            if self.stopping.wait(min(self.settings.service.lock_retry_s, left)):
                return False
        return True

    def health(self) -> tuple[bool, dict[str, Any]]:
        running = self.scheduler is not None and self.scheduler.running
        ok = running and not self.stopping.is_set()
        return ok, {"holder": self.holder, "stopping": self.stopping.is_set(),
                    "connections": dict(self.last_outcome)}  # fmt: skip

    def serve(self) -> int:
        """Run until :attr:`stopping` is set (SIGTERM/SIGINT); 0 after a clean stop."""
        self.prepare()
        svc = self.settings.service
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max(1, len(self.configs)))},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=dt.UTC,
        )
        now = utcnow()
        for name in self.configs:
            first = max(journal.next_run(self.store, name) or now, now)
            scheduler.add_job(self.job, self.trigger(), args=[name], id=name,
                              name=f"cycle {name}", next_run_time=first)  # fmt: skip
            self.metrics.next_run.labels(name).set(first.timestamp())
        self.scheduler = scheduler
        endpoint = None
        if svc.metrics_port:
            endpoint = HttpEndpoint(svc.metrics_host, svc.metrics_port, self.metrics, self.health)
            endpoint.start()
        scheduler.start()
        schedule = f"cron {svc.cron!r}" if svc.cron else f"every {svc.interval_s}s"
        log.info("kpisync run: %s, %s, store %s%s", ", ".join(self.configs) or "no connections",
                 schedule, safe_url(self.settings.store.url),
                 f", metrics on {svc.metrics_host}:{endpoint.port}" if endpoint else "",
                 extra={"holder": self.holder})  # fmt: skip
        while not self.stopping.wait(1.0):
            pass
        log.info("stopping: letting the cycles in flight finish their step",
                 extra={"holder": self.holder})  # fmt: skip
        scheduler.shutdown(wait=True)
        if endpoint is not None:
            endpoint.stop()
        self.store.close()
        log.info("stopped", extra={"holder": self.holder})
        return EXIT_OK


@contextlib.contextmanager
def _no_progress() -> Iterator[None]:
    yield None


@contextlib.contextmanager
def stop_on_signals(runner: Runner) -> Iterator[None]:
    """SIGTERM and SIGINT set ``runner.stopping`` (main thread only; restored afterwards)."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if runner.stopping.is_set():
            log.info("already stopping (signal %d)", signum)
        else:
            log.info("signal %d: stopping", signum)
        runner.stopping.set()

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
