"""Logs, Prometheus metrics and the health endpoint of ``kpisync run``.

* :func:`setup_logging` — one line per event on stderr, ``human`` or ``json`` (one JSON object a
  line, with ``connection``/``cycle`` fields when the event has them). Nothing logged carries a
  secret: settings are never logged, and store URLs only with the password masked
  (:func:`safe_url`).
* :class:`Metrics` — counters and gauges in a registry of their own (no process-global state).
* :class:`HttpEndpoint` — ``GET /metrics`` (Prometheus text format) and ``GET /healthz`` (200 while
  the scheduler runs, 503 once it stops or is shutting down; JSON body with each connection's last
  outcome) for process supervisors and load balancers.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["HttpEndpoint", "Metrics", "safe_url", "setup_logging"]

#: ``extra=`` fields a log line may carry, in this order.
_FIELDS = ("connection", "cycle", "holder", "outcome", "step", "seconds", "crm", "call", "reason")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _FIELDS:
            if hasattr(record, key):
                out[key] = getattr(record, key)
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(fmt: str = "human", level: str = "INFO") -> None:
    """Route the ``kpisync`` loggers (and APScheduler's warnings) to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("kpisync").setLevel(level)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def safe_url(url: str) -> str:
    """A database URL fit for a log line (password masked)."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


class Metrics:
    """What ``/metrics`` exposes; updated by the runner after every cycle."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.cycles = Counter("kpisync_cycles", "Cycles run, by outcome (ok, paused, failed, "
                              "stopped).", ["connection", "outcome"], registry=r)  # fmt: skip
        self.errors = Counter("kpisync_errors", "Failed cycles, by the step that failed.",
                              ["connection", "step"], registry=r)  # fmt: skip
        self.duration = Histogram(
            "kpisync_step_duration_seconds", "Duration of each cycle step.",
            ["connection", "step"], registry=r,
            buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
        )  # fmt: skip
        self.records = Counter("kpisync_records", "CRM records synced, by what happened to them "
                               "(read, inserted, updated, deleted, quarantined).",
                               ["connection", "kind"], registry=r)  # fmt: skip
        self.api_calls = Counter("kpisync_api_calls", "CRM API calls, by step.",
                                 ["connection", "step"], registry=r)  # fmt: skip
        self.retries = Counter("kpisync_api_retries", "CRM calls (or refused rows) tried again, "
                               "by reason (server_error, rate_limited, expired_session, "
                               "connection, lock_error).", ["connection", "reason"],
                               registry=r)  # fmt: skip
        self.written = Counter("kpisync_writeback_rows", "KPI rows written to the CRM, or "
                               "refused.", ["connection", "result"], registry=r)  # fmt: skip
        self.budget_used = Gauge("kpisync_api_budget_used", "CRM API calls used today (the "
                                 "CRM's own count).", ["connection"], registry=r)  # fmt: skip
        self.budget_limit = Gauge("kpisync_api_budget_limit", "The CRM's daily API allowance.",
                                  ["connection"], registry=r)  # fmt: skip
        self.budget_allowance = Gauge("kpisync_api_budget_allowance", "Calls kpisync may reach "
                                      "before it pauses (limit x budget_share).", ["connection"],
                                      registry=r)  # fmt: skip
        self.last_success = Gauge("kpisync_last_success_timestamp_seconds", "End of the last "
                                  "cycle that fully succeeded.", ["connection"],
                                  registry=r)  # fmt: skip
        self.running = Gauge("kpisync_cycle_running", "1 while this process runs the connection's "
                             "cycle.", ["connection"], registry=r)  # fmt: skip
        self.next_run = Gauge("kpisync_next_run_timestamp_seconds", "When the connection's next "
                              "cycle is due.", ["connection"], registry=r)  # fmt: skip

    def observe(self, result: Any, budget: tuple[int, int] | None, share: float) -> None:
        """Count one finished cycle (a ``service.cycle.CycleResult``)."""
        name = result.connection
        self.cycles.labels(name, result.outcome).inc()
        if result.outcome == "failed":
            self.errors.labels(name, result.failed_step or "unknown").inc()
        for step, seconds in result.seconds.items():
            self.duration.labels(name, step).observe(seconds)
        if result.sync is not None:
            s = result.sync.stats
            for kind, n in (("read", s.records_in), ("inserted", s.inserted),
                            ("updated", s.updated), ("deleted", s.deleted),
                            ("quarantined", s.quarantined)):  # fmt: skip
                self.records.labels(name, kind).inc(n)
            self.api_calls.labels(name, "sync").inc(s.api_calls)
        if result.writeback is not None:
            wb = result.writeback
            self.api_calls.labels(name, "writeback").inc(wb.calls)
            self.written.labels(name, "written").inc(sum(t.written for t in wb.targets.values()))
            self.written.labels(name, "refused").inc(wb.failed)
        if result.outcome == "ok":
            self.last_success.labels(name).set_to_current_time()
        if budget is not None:
            self.budget_used.labels(name).set(budget[0])
            self.budget_limit.labels(name).set(budget[1])
            self.budget_allowance.labels(name).set(int(budget[1] * share))

    def retried(self, connection: str | None, event: Any) -> None:
        """Count one retry (a ``connectors.http.RetryEvent``); the observer of a retry scope."""
        self.retries.labels(connection or "", event.reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class HttpEndpoint:
    """``/metrics`` and ``/healthz`` on a background thread."""

    def __init__(
        self, host: str, port: int, metrics: Metrics, health: Callable[[], tuple[bool, Any]]
    ) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, endpoint.metrics.render())
                elif path in ("/healthz", "/health"):
                    ok, detail = endpoint.health()
                    body = json.dumps({"status": "ok" if ok else "unavailable", **detail})
                    self._send(200 if ok else 503, "application/json", body.encode())
                else:
                    self._send(404, "text/plain", b"not found\n")

            def _send(self, status: int, ctype: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Scrapes are not worth a log line each."""

        self.metrics = metrics
        self.health = health
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       name="kpisync-http")  # fmt: skip

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> HttpEndpoint:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
