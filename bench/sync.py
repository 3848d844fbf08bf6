"""Sync throughput from the sandbox CRMs: records/s, API calls per 10k records, peak memory.

    python -m bench sync [--sizes 100k,1m] [--latencies 0,100] [--crm salesforce|hubspot|both]
                         [--hubspot-tier unlimited] [--max-case-s 480] [--max-sync-s 420]
                         [--no-save]

For each size the sandbox serves one generated org (``100k`` = 15,000 opportunities, ``1m`` =
150,000; the generator adds ~1 lead and ~5 activities per opportunity, so 7 canonical rows per
opportunity; a plain number is an opportunity count) from a child process, so the figures of
this process are the connector's alone (and the server does not share its interpreter lock).
Each CRM gets a full sync (first run) into a fresh SQLite store, then a quiet incremental cycle.
Salesforce reports which objects went through Bulk API 2.0 (``SyncOptions.bulk_threshold``).
Each size is saved as its own section (``sync-100k``; ``sync-1m-salesforce`` with ``--crm``).

Baselines in the same process: the 100 ms run of a size against its 0 ms run, and the quiet
cycle against the full sync. A case whose estimated time (0 ms time + calls x latency) exceeds
``--max-case-s`` is not run; the output says so.

The connection options are the defaults (client rate limits included). HubSpot's portal tier is
``unlimited`` by default so the sandbox never throttles; the connector still paces itself at
``connectors.hubspot_http.Limits.requests_per_10s``, and each HubSpot row gives the ceiling that
pacing (and an Enterprise portal's 190 calls / 10 s) imposes at the calls per record measured.
A full sync running past ``--max-sync-s`` is stopped and reported as partial.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.common import Report, measured, rss_bytes, start_sandbox_process

SIZES = {"100k": 15_000, "1m": 150_000}
ENTERPRISE_CALLS_PER_S = 19.0  # HubSpot Enterprise: 190 calls per rolling 10 s


def _hubspot_ceiling(per_10k: float) -> str:
    """The rates the connector's own pacing and an Enterprise portal allow at these calls."""
    from connectors.hubspot_http import Limits

    per_10s = Limits().requests_per_10s
    client = per_10s / 10.0 * 10_000 / max(per_10k, 1e-9)
    enterprise = ENTERPRISE_CALLS_PER_S * 10_000 / max(per_10k, 1e-9)
    return (
        f"ceiling {client:,.0f} rec/s from the client pacing (Limits.requests_per_10s = "
        f"{per_10s}), {enterprise:,.0f} rec/s at Enterprise's 190/10 s"
    )


def _serve(conn: Connection, opportunities: int, seed: int, hubspot_tier: str) -> None:
    """Child process: serve both sandbox CRMs until told to stop."""
    from sandbox.cli import build_apps, handshake
    from sandbox.server import SandboxServer

    apps, currency = build_apps(opportunities, seed)
    for app in apps:
        if app.name == "hubspot":
            app.configure({"tier": hubspot_tier})
    with SandboxServer(apps, latency_ms=0) as server:
        conn.send((handshake(server, apps), currency))
        while True:
            cmd, arg = conn.recv()
            if cmd == "latency":
                server.faults.base_latency_ms = int(arg)
                for app in apps:
                    if app.name == "hubspot":
                        app.configure({"reset_limits": True})
                conn.send(None)
            elif cmd == "stop":
                break
    conn.send(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


class Sandbox:
    """The sandbox CRMs in a child process."""

    def __init__(self, opportunities: int, seed: int, hubspot_tier: str) -> None:
        self._proc, self._conn, (self.info, self.currency) = start_sandbox_process(
            _serve, opportunities, seed, hubspot_tier
        )
        self.server_peak_rss = 0

    def latency(self, ms: int) -> None:
        self._conn.send(("latency", ms))
        self._conn.recv()

    def close(self) -> None:
        if self._proc.is_alive():
            self._conn.send(("stop", None))
            self.server_peak_rss = int(self._conn.recv())
        self._proc.join(timeout=30)


@dataclass
class Run:
    rows: int = 0
    records_in: int = 0
    calls: int = 0
    seconds: float = 0.0
    rss_growth: int = 0
    peak_rss: int = 0
    outcome: str = "ok"
    quarantined: int = 0
    bulk: dict[str, int] = field(default_factory=dict)
    per_object: dict[str, tuple[int, float]] = field(default_factory=dict)
    rss_after: dict[str, int] = field(default_factory=dict)


def _recording_factory(bulk_objects: set[str]) -> Callable[..., Any]:
    """``open_source``, noting every object a Salesforce source pulls through Bulk API 2.0."""
    from connectors.sources import open_source

    def factory(cfg: Any, mappings: Mapping[str, Mapping[str, Any]], store: Any) -> Any:
        source = open_source(cfg, mappings, store)
        client = getattr(source, "client", None)
        inner = getattr(client, "bulk_pages", None)
        if inner is not None:

            def bulk_pages(obj: str, soql: str, page_size: int) -> Iterator[str]:
                bulk_objects.add(obj)
                yield from inner(obj, soql, page_size)

            setattr(client, "bulk_pages", bulk_pages)  # noqa: B010 - an instance override
        return source

    return factory


class _Deadline(Exception):
    """The full sync ran past ``--max-sync-s``: stopped, and reported as partial."""


class Recorder:
    """Progress of one sync: records, calls and seconds per object; stops at a deadline."""

    def __init__(self, max_seconds: float | None) -> None:
        self.started = time.perf_counter()
        self.max_seconds = max_seconds
        self.calls = 0
        self.per_object: dict[str, list[float]] = {}  # name -> [records, seconds]
        self.rss_after: dict[str, int] = {}
        self._t = self.started

    def start(self, obj: str) -> None:
        self._t = time.perf_counter()
        self.per_object.setdefault(obj, [0, 0.0])

    def advance(self, obj: str, records: int, calls: int) -> None:
        now = time.perf_counter()
        entry = self.per_object.setdefault(obj, [0, 0.0])
        entry[0] += records
        entry[1] += now - self._t
        self._t = now
        self.calls = calls
        if self.max_seconds is not None and now - self.started > self.max_seconds:
            raise _Deadline

    def done(self, obj: str) -> None:
        self.rss_after[obj] = rss_bytes()

    def records(self) -> int:
        return int(sum(r for r, _ in self.per_object.values()))


def one_sync(
    store: Any, cfg: Any, mappings: Any, *, full: bool, max_seconds: float | None = None
) -> Run:
    from connectors.sources import sync

    bulk: set[str] = set()
    rec = Recorder(max_seconds)
    before = rss_bytes()
    with measured() as m:
        try:
            result = sync(store, cfg, mappings, full=full, progress=rec,
                          source_factory=_recording_factory(bulk))  # fmt: skip
        except _Deadline:
            result = None
    per_object = {o: (int(r), t) for o, (r, t) in rec.per_object.items() if r}
    if result is None:
        return Run(
            rows=rec.records(), records_in=rec.records(), calls=rec.calls, seconds=m.seconds,
            rss_growth=max(0, m.peak_rss - before), peak_rss=m.peak_rss,
            outcome=f"stopped after {max_seconds:.0f} s (partial)",
            bulk={o: per_object.get(o, (0, 0.0))[0] for o in sorted(bulk)}, per_object=per_object,
            rss_after=rec.rss_after,
        )  # fmt: skip
    s = result.stats
    return Run(
        rows=s.inserted + s.updated + s.deleted, records_in=s.records_in, calls=s.api_calls,
        seconds=m.seconds, rss_growth=max(0, m.peak_rss - before), peak_rss=m.peak_rss,
        outcome=result.outcome, quarantined=s.quarantined,
        bulk={o: result.per_object[o].records_in for o in sorted(bulk) if o in result.per_object},
        per_object=per_object, rss_after=rec.rss_after,
    )  # fmt: skip


def full_and_quiet(sandbox: Sandbox, crm: str, max_seconds: float | None) -> tuple[Run, Run | None]:
    """A first (full) sync into a fresh store, then an incremental cycle with nothing changed."""
    from connectors.store import Store
    from sandbox.cli import settings_toml
    from service.settings import load_settings

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "settings.toml"
        path.write_text(settings_toml(sandbox.info, sandbox.currency), encoding="utf-8")
        settings = load_settings(path)
        store = Store(f"sqlite:///{Path(tmp) / 'bench.db'}")
        store.migrate()
        try:
            cfg = settings.connections[crm]
            full = one_sync(store, cfg, settings.mappings, full=True, max_seconds=max_seconds)
            quiet = None
            if full.outcome == "ok":
                quiet = one_sync(store, cfg, settings.mappings, full=False)
        finally:
            store.close()
    return full, quiet


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def _rate(run: Run) -> str:
    return f"{run.rows / max(run.seconds, 1e-9):,.0f} rec/s ({run.seconds:,.1f} s)"


def _per_10k(run: Run) -> float:
    return run.calls * 10_000 / max(1, run.rows)


def _path(crm: str, run: Run) -> str:
    if crm != "salesforce":
        return "REST list/search pages"
    if not run.bulk:
        return "REST query/queryMore"
    return "Bulk API 2.0 for " + ", ".join(f"{o} ({n:,})" for o, n in run.bulk.items())


def _label(size: str) -> str:
    return size if size in SIZES else f"{int(size):,} opps"


def _objects(run: Run) -> str:
    return ", ".join(
        f"{o} {n:,} @ {n / max(t, 1e-9):,.0f}/s"
        + (f" (RSS after: {_mib(run.rss_after[o])})" if o in run.rss_after else "")
        for o, (n, t) in run.per_object.items()
    )


def bench_size(
    size: str, latencies: list[int], crms: list[str], tier: str, limits: tuple[float, float],
    seed: int,
) -> Report:  # fmt: skip
    max_case_s, max_sync_s = limits
    opportunities = SIZES.get(size) or int(size)
    report = Report(f"Sync from the sandbox CRMs, {_label(size)} ({opportunities:,} opportunities)")
    sandbox = Sandbox(opportunities, seed, tier)
    base: dict[str, Run] = {}
    try:
        for latency in latencies:
            sandbox.latency(latency)
            for crm in crms:
                case = f"{crm}, {latency} ms"
                if crm in base and latency:
                    b = base[crm]
                    estimate = b.seconds + b.calls * latency / 1000
                    why = ""
                    if b.outcome != "ok":
                        why = f"the 0 ms run did not finish ({b.outcome})"
                    elif estimate > max_case_s:
                        why = (
                            f"estimated {estimate / 60:.0f} min (0 ms time + {b.calls:,} calls x "
                            f"{latency} ms) > the {max_case_s / 60:.0f} min budget of a case"
                        )
                    if why:
                        report.add(f"{case}: full sync", "not run", "", "", why)
                        continue
                full, quiet = full_and_quiet(sandbox, crm, max_sync_s)
                ref = base.get(crm) if latency else None
                if latency == 0 or crm not in base:
                    base.setdefault(crm, full)
                per_10k = _per_10k(full)
                verdict = (
                    f"{full.rows:,} records, {full.calls:,} calls = {per_10k:.1f} calls/10k; "
                    f"{_path(crm, full)}; peak RSS {_mib(full.peak_rss)} "
                    f"(+{_mib(full.rss_growth)} during the sync)"
                )
                if crm == "hubspot":
                    verdict += "; " + _hubspot_ceiling(per_10k)
                if full.outcome != "ok" or full.quarantined:
                    verdict += f"; outcome {full.outcome}, {full.quarantined:,} quarantined"
                baseline = ""
                if ref is not None:
                    ratio = (full.rows / max(full.seconds, 1e-9)) / (
                        ref.rows / max(ref.seconds, 1e-9)
                    )
                    baseline = f"0 ms: {_rate(ref)}; this run at {ratio:.2f}x that rate"
                report.add(f"{case}: full sync", _rate(full), "", baseline, verdict)
                report.notes.append(f"{case}, full sync per object: {_objects(full)}.")
                if quiet is None:
                    continue
                report.add(
                    f"{case}: quiet incremental cycle",
                    f"{quiet.calls:,} calls, {quiet.seconds:,.2f} s",
                    "~1 call" if crm == "salesforce" else "~1 per object",
                    f"full: {full.calls:,} calls, {full.seconds:,.1f} s",
                    f"{quiet.calls / max(1, full.calls):.1%} of the calls, "
                    f"{quiet.seconds / max(full.seconds, 1e-9):.1%} of the time; "
                    f"{quiet.records_in:,} records re-read; outcome {quiet.outcome}",
                )
    finally:
        sandbox.close()
    report.notes.append(
        f"Peak RSS is this process (connector + store); the sandbox server ran in a child "
        f"process (peak RSS {_mib(sandbox.server_peak_rss)}). Records = records the full sync "
        f"stored. HubSpot portal tier: {tier}. A full sync running past {max_sync_s:.0f} s is "
        f"stopped and reported as partial (its rate is over what it stored)."
    )
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench sync", description=__doc__)
    parser.add_argument("--sizes", default="100k,1m", help="100k, 1m or opportunity counts")
    parser.add_argument("--latencies", default="0,100", help="added sandbox latency, ms")
    parser.add_argument("--crm", choices=("salesforce", "hubspot", "both"), default="both")
    parser.add_argument("--hubspot-tier", default="unlimited")
    parser.add_argument("--max-case-s", type=float, default=480.0,
                        help="skip a latency case estimated to take longer")  # fmt: skip
    parser.add_argument("--max-sync-s", type=float, default=420.0,
                        help="stop a full sync after this long (reported as partial)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-save", action="store_true", help="do not update bench/results.md")
    args = parser.parse_args(argv)
    sizes = [s.strip().lower() for s in args.sizes.split(",") if s.strip()]
    for s in sizes:
        if s not in SIZES and not s.isdigit():
            parser.error(f"--sizes: {s!r} is not one of {', '.join(SIZES)} or a number")
    latencies = sorted({int(x) for x in args.latencies.split(",") if x.strip()})
    crms = ["salesforce", "hubspot"] if args.crm == "both" else [args.crm]
    for size in sizes:
        limits = (args.max_case_s, args.max_sync_s)
        report = bench_size(size, latencies, crms, args.hubspot_tier, limits, args.seed)
        report.print()
        if not args.no_save:
            report.save(f"sync-{size}" + ("" if args.crm == "both" else f"-{args.crm}"))


if __name__ == "__main__":
    main()
