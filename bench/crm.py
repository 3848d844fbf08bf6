"""One sandbox CRM in a child process, and the ``kpisync`` commands run against it.

The child holds only the CRM being measured (a 150k-opportunity Salesforce org takes ~1.4 GB in
the server, so holding both CRMs at 1M opportunities would not fit beside the store). Every API
call is counted on the server side (``SandboxServer.counts``), so the figures are what the CRM
saw, whatever the connector reports about itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.common import start_sandbox_process

#: OAuth token requests are logins, not API requests: they are reported apart from the calls.
TOKEN_ENDPOINTS = ("/services/oauth2/token", "/oauth/v1/token")


def peak_rss_of(pid: int | str = "self") -> int:
    """The process's RSS high-water mark (``VmHWM``). Not ``ru_maxrss``: Linux carries a
    parent's high-water mark into a forked child across ``exec``, so a child of a big process
    would report the parent's peak."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


class PeakSampler:
    """Samples a child's ``VmHWM`` until it exits (a high-water mark: only the growth in the
    last sampling interval can be missed)."""

    def __init__(self, pid: int, interval_s: float = 0.1) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval_s,), daemon=True)
        self._thread.start()

    def _run(self, interval_s: float) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, peak_rss_of(self.pid))
            self._stop.wait(interval_s)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def _record_counts(app: Any, crm: str) -> dict[str, int]:
    """Records per object the CRM holds (for the minimum a full pull needs)."""
    if crm == "salesforce":
        return {name: len(table) for name, table in app.org.tables.items()}
    return {name: table.count() for name, table in app.portal.tables.items()}


def _serve(conn: Connection, crm: str, opportunities: int, seed: int, hubspot_tier: str) -> None:
    """Child process: build one CRM over a generated org and serve it until told to stop."""
    from sandbox.cli import handshake
    from sandbox.generator import generate_org, spec_for
    from sandbox.server import SandboxServer, tune_collector

    org = generate_org(spec_for(opportunities, seed))
    currency = org.spec.corporate_currency
    if crm == "salesforce":
        from sandbox.salesforce import SalesforceApp

        app: Any = SalesforceApp.from_org(org)
    else:
        from sandbox.hubspot import create_app

        app = create_app(org=org, tier=hubspot_tier)
    del org
    tune_collector()
    with SandboxServer([app], latency_ms=0) as server:
        conn.send((handshake(server, [app]), currency))
        while True:
            cmd, arg = conn.recv()
            try:
                if cmd == "latency":
                    server.faults.base_latency_ms = int(arg)
                    if crm == "hubspot":
                        app.configure({"reset_limits": True})
                    conn.send(None)
                elif cmd == "counts":
                    conn.send(server.counts().get(crm, {}))
                elif cmd == "records":
                    conn.send(_record_counts(app, crm))
                elif cmd == "edit":
                    obj, rid, fields = arg
                    conn.send(app.edit_record(obj, rid, fields))
                elif cmd == "stop":
                    break
            except Exception as exc:  # answer the parent rather than leave it waiting
                conn.send(exc)
    conn.send(peak_rss_of())


class CrmProcess:
    """One sandbox CRM served by a child process (``spawn``: no state shared with this one)."""

    def __init__(self, crm: str, opportunities: int, seed: int, hubspot_tier: str) -> None:
        self.crm = crm
        self._proc, self._conn, (self.info, self.currency) = start_sandbox_process(
            _serve, crm, opportunities, seed, hubspot_tier
        )
        self.server_peak_rss = 0

    def _ask(self, cmd: str, arg: Any = None) -> Any:
        self._conn.send((cmd, arg))
        answer = self._conn.recv()
        if isinstance(answer, Exception):
            raise answer
        return answer

    def latency(self, ms: int) -> None:
        self._ask("latency", ms)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = self._ask("counts")
        return counts

    def records(self) -> dict[str, int]:
        records: dict[str, int] = self._ask("records")
        return records

    def edit(self, obj: str, record_id: str, fields: Mapping[str, Any]) -> None:
        self._ask("edit", (obj, record_id, dict(fields)))

    def close(self) -> None:
        if self._proc.is_alive():
            self._conn.send(("stop", None))
            self.server_peak_rss = int(self._conn.recv())
        self._proc.join(timeout=30)
        if self._proc.is_alive():
            self._proc.kill()


@dataclass
class Calls:
    """API calls between two snapshots of the server's counts (logins apart)."""

    api: int = 0
    logins: int = 0
    by_endpoint: dict[str, int] = field(default_factory=dict)


def calls_between(before: Mapping[str, int], after: Mapping[str, int]) -> Calls:
    out = Calls()
    for endpoint, n in after.items():
        d = n - before.get(endpoint, 0)
        if d <= 0:
            continue
        out.by_endpoint[endpoint] = d
        if endpoint.split(" ", 1)[-1] in TOKEN_ENDPOINTS:
            out.logins += d
        else:
            out.api += d
    return out


@dataclass
class Step:
    """One ``kpisync`` command: exit code, wall time, the process's own peak RSS, output."""

    code: int
    seconds: float
    peak_rss: int
    output: str
    calls: Calls = field(default_factory=Calls)


def kpisync_exe() -> list[str]:
    """The ``kpisync`` console script of this interpreter's environment."""
    exe = Path(sys.executable).parent / "kpisync"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-c", "from service.cli import main; main()"]


def run_step(crm: CrmProcess, args: list[str], *, timeout_s: float | None = None) -> Step:
    """Run ``kpisync ARGS`` in a child process; its peak RSS is its own ``VmHWM`` (not this
    process's nor the sandbox's)."""
    before = crm.counts()
    with tempfile.TemporaryFile("w+", encoding="utf-8") as out:
        started = time.perf_counter()
        proc = subprocess.Popen([*kpisync_exe(), *args], stdout=out, stderr=subprocess.STDOUT)
        sampler = PeakSampler(proc.pid)
        timer = None
        if timeout_s is not None:
            timer = threading.Timer(timeout_s, proc.kill)
            timer.start()
        _, status = os.waitpid(proc.pid, 0)
        seconds = time.perf_counter() - started
        peak = sampler.stop()
        if timer is not None:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    return Step(
        code=proc.returncode,
        seconds=seconds,
        peak_rss=peak,
        output=text,
        calls=calls_between(before, crm.counts()),
    )


class Service:
    """``kpisync run`` (the scheduler) in a child process, stopped with SIGTERM."""

    def __init__(self, settings_file: Path, log: Path) -> None:
        self._log = log.open("w", encoding="utf-8")
        self.proc = subprocess.Popen(
            [*kpisync_exe(), "run", "--settings", str(settings_file)],
            stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self._sampler = PeakSampler(self.proc.pid, 0.5)
        self.peak_rss = 0

    def stop(self, timeout_s: float = 120.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            timer = threading.Timer(timeout_s, self.proc.kill)
            timer.start()
            _, status = os.waitpid(self.proc.pid, 0)
            timer.cancel()
            self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.peak_rss = self._sampler.stop()
        self._log.close()
        return int(self.proc.returncode or 0)
