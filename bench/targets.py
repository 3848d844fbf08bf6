"""The targets suite: API calls, freshness and the machine, at 10k, 100k and 1M opportunities.

    python -m bench                      # = python -m bench targets (every size, both CRMs)
    python -m bench targets [--sizes 10k,100k,1m] [--crm salesforce|hubspot|both|none] [--quick]
                            [--interval-s 30] [--max-case-s 5400] [--no-save]

Sizes are opportunity (deal) counts; the org shape is ``sandbox.generator.spec_for``: leads = n,
activities = 5n, reps = n/500 (5..2,000), 24 months. For each size and CRM a child process
serves that CRM alone over a freshly generated org, and this process measures:

* **pipeline, 0 ms**: ``kpisync install``, then ``kpisync sync`` (a full pull into a fresh SQLite
  store), ``kpisync compute`` and ``kpisync writeback`` as child processes: wall time of the three
  and the largest peak RSS of them (``wait4``: the kpisync process only, not the sandbox);
* **API calls** as the CRM counted them (OAuth logins apart): the full pull against the minimum
  the API allows for the records it holds (:func:`salesforce_minimum`, :func:`hubspot_minimum`);
  a quiet incremental ``kpisync sync``; writeback of the initial load, of a 1 % change of the KPI
  values, and of nothing changed, against ceil(N/200) (Salesforce) / ceil(N/100) (HubSpot) / 0;
* **baseline** in this process: a naive one-call-per-page sequential loop (``bench.naive``);
* **freshness**: ``kpisync run`` with a short interval; once it is idle a won deal is edited in
  the CRM and the deal owner's KPI rows in the CRM's report object are polled until they change;
* **pipeline, 100 ms**: the same three commands on a fresh store with 100 ms added to every call;
* **engine**: ``bench.engine`` (the catalogue vs a plain pandas baseline) on the same org shape.

Then one table (figure | size | measured | target | baseline | verdict) and, per figure, how it
grows per 10x of size (worse than linear is flagged), written to ``bench/results.md``
(section ``targets``, or ``targets-<crm>`` with one ``--crm``; ``--crm none`` measures the engine
alone, section ``targets-engine``). A CRM size whose sandbox org would not fit in this machine's
available memory is reported as not run, with the estimate. ``--quick`` skips the 100 ms
pipeline, the freshness wait and the naive baseline (for a smoke run); a verdict is only given for
what ran.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import math
import re
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import Report, gib
from bench.crm import CrmProcess, Service, Step, calls_between, run_step

SIZES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000}
DEFAULT_SIZES = "10k,100k,1m"
CRMS = ("salesforce", "hubspot")

# REST query pages hold at most 2,000 records: "The default is 2,000; the minimum is 200, and the
# maximum is 2,000" (developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/
# headers_queryoptions.htm).
SF_REST_PAGE = 2000
# Bulk API 2.0 results: ``maxRecords`` has no documented maximum ("The maximum number of records
# to retrieve per set of results for the query. The request is still subject to the size
# limits"; if omitted "the server uses a default value based on the service",
# developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_job_results.htm).
# The minimum is computed with the set size the sandbox serves when it is omitted (its stand-in
# for the service's default); a query job costs its create (query_create_job.htm), at least one
# status read before its results may be read (query_walkthrough.htm: monitor the job's state,
# "Repeat this step until the state is JobComplete"; results need "the state JobComplete",
# query_get_job_results.htm) and one call per result set.
SF_BULK_PAGE = 50_000
SF_BULK_JOB = 2
# A Composite request "counts as a single call toward your API limits" for up to 25 subrequests,
# of which "up to 5 ... can be sObject Collections or query operations"; it carries "all sObject
# resources (/services/data/vXX.X/sobjects/)", sObject Describe among them (developer.salesforce.
# com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite_post.htm). So the
# describes of 25 objects are one call (an object the user cannot see answers 404 there, so no
# Describe Global is needed), and the first query pages of 5 objects are one call. composite/batch
# charges every subrequest ("Each subrequest counts against rate limits", resources_composite_
# batch.htm), so it saves nothing. Describes come first: the query's field list needs them.
SF_BATCH = 25
SF_QUERIES_PER_CALL = 5
# CRM v3 list pages return at most 100 records (``limit`` max 100: developers.hubspot.com/docs/
# api/crm/understanding-the-crm, "Paging").
HS_PAGE = 100
#: Calls a HubSpot full pull may spend beyond ceil(records/100) per object: the metadata objects
#: (owners, teams, pipelines, exchange rates), whose counts do not grow with the org.
HS_CONSTANT = 10
WRITE_BATCH = {"salesforce": 200, "hubspot": 100}
TOLERANCE = 0.05
PIPELINE_S = 180.0
PIPELINE_BYTES = 4 * 2**30
ENGINE_S = 10.0
#: A figure growing more than this per 10x of size is worse than linear (noise allowance 15 %).
LINEAR_LIMIT = 11.5


def salesforce_minimum(records: Mapping[str, int]) -> tuple[int, str]:
    """The fewest calls a full pull of these objects can take, and how it is made up.

    ceil(objects / 25) Composite calls for the describes; ceil(objects / 5) Composite calls for
    the first query pages (each object's first page is what reports its row count, totalSize);
    then per object the cheaper of the further REST pages (ceil(n / 2,000) - 1) and a Bulk API
    2.0 job (create + one status poll + ceil(n / 50,000) result sets).
    """
    n_obj = len(records)
    meta = math.ceil(n_obj / SF_BATCH)
    first = math.ceil(n_obj / SF_QUERIES_PER_CALL)
    bulk = 0
    extra = 0
    for n in records.values():
        more_rest = max(0, math.ceil(n / SF_REST_PAGE) - 1)
        via_bulk = SF_BULK_JOB + math.ceil(n / SF_BULK_PAGE)
        if via_bulk < more_rest:
            bulk += 1
        extra += min(more_rest, via_bulk)
    total = meta + first + extra
    how = (f"{meta} describe + {first} first-page Composite + {extra} more "
           f"({bulk} Bulk API 2.0 job(s) at {SF_BULK_PAGE:,}/set)")  # fmt: skip
    return total, how


def hubspot_minimum(records: Mapping[str, int]) -> tuple[int, str]:
    """sum over objects of ceil(records/100); the target adds :data:`HS_CONSTANT`."""
    total = sum(math.ceil(n / HS_PAGE) for n in records.values())
    return total, f"sum ceil(n/100) over {len(records)} objects"


# ------------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------------
@dataclass
class Figure:
    key: str  # figure name without the size (rows of one key form a scaling line)
    size: str
    measured: str
    target: str = ""
    baseline: str = ""
    verdict: str = ""
    value: float | None = None  # the number whose growth is checked


@dataclass
class Targets(Report):
    figures: list[Figure] = field(default_factory=list)
    shape: list[str] = field(default_factory=list)

    def fig(
        self, key: str, size: str, measured: str, target: str = "", baseline: str = "",
        met: bool | None = None, value: float | None = None, why: str = "",
    ) -> None:  # fmt: skip
        verdict = "" if met is None else ("met" if met else "MISSED")
        if why:
            verdict = f"{verdict}; {why}" if verdict else why
        self.figures.append(Figure(key, size, measured, target, baseline, verdict, value))

    def scaling(self) -> list[tuple[str, list[str], list[str], str]]:
        """Per figure: value per size, growth per 10x, and a flag when worse than linear."""
        sizes = [s for s in SIZES if any(f.size == s for f in self.figures)]
        lines: list[tuple[str, list[str], list[str], str]] = []
        for key in dict.fromkeys(f.key for f in self.figures):
            by_size = {f.size: f.value for f in self.figures if f.key == key}
            if sum(v is not None for v in by_size.values()) < 2:
                continue
            values = [by_size.get(s) for s in sizes]
            growth: list[str] = []
            flag = ""
            for a, b in itertools.pairwise(values):
                if a is None or b is None:
                    growth.append("")
                    continue
                g = b / a if a > 0 else (1.0 if b == 0 else math.inf)
                growth.append(f"x{g:.2f}")
                if g > LINEAR_LIMIT:
                    flag = "WORSE THAN LINEAR"
            lines.append((key, [_num(v) for v in values], growth, flag))
        return lines

    def markdown(self) -> str:
        lines = [f"## {self.title}", "", f"_Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC._",
                 "", *[f"- {s}" for s in self.shape], "",
                 "| figure | size | measured | target | baseline (same process) | verdict |",
                 "|---|---|---|---|---|---|"]  # fmt: skip
        lines += [f"| {f.key} | {f.size} | {f.measured} | {f.target} | {f.baseline} | {f.verdict} |"
                  for f in self.figures]  # fmt: skip
        scale = self.scaling()
        if scale:
            sizes = [s for s in SIZES if any(f.size == s for f in self.figures)]
            steps = [f"{a}→{b}" for a, b in itertools.pairwise(sizes)]
            lines += ["", "Scaling (growth per 10x of size; linear = x10):", "",
                      "| figure | " + " | ".join(sizes) + " | " + " | ".join(steps) + " | flag |",
                      "|---|" + "---|" * (len(sizes) + len(steps) + 1)]  # fmt: skip
            lines += [f"| {k} | " + " | ".join(v) + " | " + " | ".join(g) + f" | {flag} |"
                      for k, v, g, flag in scale]  # fmt: skip
        lines += ["", *[f"- {n}" for n in self.notes], ""]
        return "\n".join(lines)

    def print(self) -> None:
        print()
        print(self.markdown())


def _num(v: float | None) -> str:
    if v is None:
        return ""
    return f"{v:,.0f}" if v >= 100 or v == int(v) else f"{v:,.2f}"


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


# ------------------------------------------------------------------------------------------------
# One CRM at one size
# ------------------------------------------------------------------------------------------------
@dataclass
class Options:
    interval_s: int
    max_case_s: float
    quick: bool
    seed: int
    hubspot_tier: str


def _settings_text(crm: CrmProcess, store: Path, interval_s: int, prefix: str = "") -> str:
    """Settings for the sandbox CRM; ``prefix`` names a second set of report objects (install
    leaves objects another store's install created alone, as it must)."""
    from sandbox.cli import settings_toml

    return (f"{settings_toml(crm.info, crm.currency)}\n[store]\nurl = \"sqlite:///{store}\"\n\n"
            f"[service]\ninterval_s = {interval_s}\n\n"
            f"[writeback]\nprefix = \"{prefix}\"\n")  # fmt: skip


def _written(step: Step) -> int:
    return sum(int(n) for n in re.findall(r"; (\d+) written", step.output))


def _check(step: Step, what: str) -> None:
    if step.code != 0:
        tail = "\n".join(step.output.strip().splitlines()[-15:])
        raise RuntimeError(f"{what} exited {step.code}:\n{tail}")


@dataclass
class Pipeline:
    sync: Step
    compute: Step
    writeback: Step

    @property
    def seconds(self) -> float:
        return self.sync.seconds + self.compute.seconds + self.writeback.seconds

    @property
    def peak_rss(self) -> int:
        return max(self.sync.peak_rss, self.compute.peak_rss, self.writeback.peak_rss)


def pipeline(crm: CrmProcess, settings: Path) -> Pipeline:
    """install, then sync + compute + writeback, each a ``kpisync`` child process."""
    s = ["--settings", str(settings)]
    _check(run_step(crm, ["install", *s]), "kpisync install")
    sync = run_step(crm, ["sync", *s])
    _check(sync, "kpisync sync")
    compute = run_step(crm, ["compute", *s])
    _check(compute, "kpisync compute")
    write = run_step(crm, ["writeback", *s])
    _check(write, "kpisync writeback")
    return Pipeline(sync, compute, write)


def _pulled_objects(crm: str, settings: Any) -> list[str]:
    """The CRM objects the connector pulls with the default mappings."""
    cfg = settings.connections[crm]
    if crm == "salesforce":
        from connectors.salesforce import SalesforceSource
        from connectors.salesforce_map import SalesforceMapping

        return [
            s.name for s in SalesforceSource(cfg, SalesforceMapping.from_settings({})).objects()
        ]
    from connectors.hubspot_mapping import OBJECTS

    return [o.name for o in OBJECTS]


class ReportReader:
    """A rep's rows of the CRM's KPI report object, read through the CRM's API."""

    def __init__(self, settings: Any, crm: str, store: Any) -> None:
        self.crm = crm
        self.cfg = settings.connections[crm]
        if crm == "salesforce":
            from connectors.salesforce import SalesforceClient

            self.sf = SalesforceClient(self.cfg).sf
        else:
            from hubspot import HubSpot

            from writeback import ledger

            c = self.cfg
            self.hs = HubSpot(access_token=c.access_token.get(), host=c.base_url,
                              base_url=c.base_url, ssl_ca_cert=c.ca_bundle)  # fmt: skip
            self.object_type = ledger.installed(store, crm)[0].crm_id

    def rows(self, subject_id: str) -> dict[str, Any]:
        if self.crm == "salesforce":
            from simple_salesforce.format import format_soql

            soql = format_soql("SELECT Key__c, Value__c FROM KPI_Snapshot__c "
                               "WHERE Subject_Id__c = {}", subject_id)  # fmt: skip
            return {r["Key__c"]: r["Value__c"] for r in self.sf.query_all(soql)["records"]}
        out: dict[str, Any] = {}
        after: str | None = None
        while True:
            body: dict[str, Any] = {
                "filterGroups": [{"filters": [
                    {"propertyName": "subject_id", "operator": "EQ", "value": subject_id}]}],
                "properties": ["kpi_key", "value"], "limit": 100,
            }  # fmt: skip
            if after:
                body["after"] = after
            page = self.hs.crm.objects.search_api.do_search(self.object_type, body)
            for r in page.results:
                out[r.properties["kpi_key"]] = r.properties["value"]
            if page.paging is None or page.paging.next is None:
                return out
            after = page.paging.next.after


def _won_deal(store: Any, crm: str) -> tuple[str, str, float]:
    """(CRM id, owner, amount) of a won deal with an amount."""
    import polars as pl

    t = store.table_text(crm, "opportunities", with_key=True)
    won = t.filter((pl.col("is_won") == "true") & pl.col("amount").is_not_null()
                   & pl.col("owner_id").is_not_null()).sort("row_key")  # fmt: skip
    row = won.row(won.height // 2, named=True)
    return row["row_key"], row["owner_id"], float(row["amount"])


def freshness(crm: CrmProcess, settings_file: Path, interval_s: int) -> tuple[float, str]:
    """Seconds from a deal edit in the CRM to its owner's KPI rows changing in the CRM."""
    from connectors.store import Store
    from service import journal
    from service.settings import load_settings

    settings = load_settings(settings_file)
    name = crm.crm
    store = Store(settings.store.url, schema=settings.store.schema)
    service = Service(settings_file, settings_file.with_suffix(".log"))
    try:
        started = dt.datetime.now(dt.UTC)
        deadline = time.monotonic() + 3600
        while True:  # idle: a cycle of this service finished
            cycles = journal.cycles(store, name, 1)
            if cycles and cycles[0].started_at >= started and cycles[0].finished_at is not None:
                break
            if service.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("kpisync run did not finish its first cycle")
            time.sleep(0.5)
        deal, owner, amount = _won_deal(store, name)
        reader = ReportReader(settings, name, store)
        before = reader.rows(owner)
        edited = time.monotonic()
        if name == "salesforce":
            crm.edit("Opportunity", deal, {"Amount": amount + 250_000})
        else:
            crm.edit("deals", deal, {"amount": str(amount + 250_000)})
        limit = edited + interval_s + 600
        while time.monotonic() < limit:
            time.sleep(1.0)
            now = reader.rows(owner)
            if now != before:
                latency = time.monotonic() - edited
                changed = sum(1 for k in now if now[k] != before.get(k))
                # The cycle that carried the edit: an edit made just after a cycle's sync waits
                # an interval plus one such cycle (the worst case).
                time.sleep(0.5)
                last = journal.cycles(store, name, 1)
                took = ""
                if last and last[0].finished_at is not None:
                    cycle_s = (last[0].finished_at - last[0].started_at).total_seconds()
                    took = f"; that cycle took {cycle_s:,.1f} s (worst case interval + cycle)"
                return latency, f"{changed} of the rep's {len(now)} rows changed{took}"
        raise RuntimeError(f"the rep's KPI rows did not change within {interval_s + 600} s")
    finally:
        service.stop()
        store.close()


def change_kpis(store: Any, name: str, share: float) -> int:
    """Change ``share`` of the connection's stored KPI values (every 1/share-th row)."""
    import polars as pl

    values = store.read_kpis(name)
    step = max(1, round(1 / share))
    mask = (pl.int_range(pl.len()) % step == 0) & pl.col("value").is_not_null()
    changed = values.with_columns(
        value=pl.when(mask).then(pl.col("value") + 1).otherwise(pl.col("value"))
    )
    store.write_kpis(name, changed)
    return int(values.select(mask.sum()).item())


def in_process_writeback(crm: CrmProcess, settings: Any) -> tuple[int, int]:
    """(calls as the CRM counted them, rows written) of one ``writeback`` run in this process."""
    from connectors.store import Store
    from writeback.crm import open_crm
    from writeback.run import writeback

    cfg = settings.connections[crm.crm]
    store = Store(settings.store.url, schema=settings.store.schema)
    try:
        _, writer = open_crm(cfg, settings.writeback, store)
        before = crm.counts()
        rep = writeback(store, cfg.name, writer, settings.writeback)
        calls = calls_between(before, crm.counts()).api
    finally:
        store.close()
    return calls, sum(t.written for t in rep.targets.values())


#: The sandbox keeps its whole org in memory: its peak RSS per opportunity, measured at 100k
#: (Salesforce 1,385 MiB for a 757k-record org, its peak during the writeback's Bulk ingest;
#: HubSpot 709 MiB), plus what the kpisync pipeline itself needs beside it (its compute step,
#: 883 MiB at 100k, linear), with a tenth more for the growth measured from 10k to 100k.
SANDBOX_BYTES_PER_OPP = {"salesforce": 16_000, "hubspot": 8_200}
PIPELINE_BYTES_PER_OPP = 10_200


def mem_available() -> int:
    """``MemAvailable`` of this machine (Linux), in bytes."""
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def measure_crm(
    name: str, size: str, opts: Options, out: Targets, say: Callable[[str], None]
) -> None:
    from connectors.store import Store
    from service.settings import load_settings

    n = SIZES[size]
    need = n * (SANDBOX_BYTES_PER_OPP[name] + PIPELINE_BYTES_PER_OPP)
    have = mem_available()
    if need > have:
        why = (f"not run: the sandbox holds the whole org in memory; ~{gib(need)} needed "
               f"with the pipeline, {gib(have)} available")  # fmt: skip
        say(f"{size} {name}: {why}")
        out.fig(f"{name}: full pull, API calls", size, "not run", "", "", None, None, why)
        return
    say(f"{size} {name}: generating the org and starting the sandbox")
    crm = CrmProcess(name, n, opts.seed, opts.hubspot_tier)
    try:
        with tempfile.TemporaryDirectory(prefix="kpisync-bench-") as tmp:
            file0 = Path(tmp) / "zero.toml"
            file0.write_text(_settings_text(crm, Path(tmp) / "zero.db", opts.interval_s), "utf-8")
            settings = load_settings(file0)

            say(f"{size} {name}: pipeline at 0 ms")
            p0 = pipeline(crm, file0)
            held = crm.records()
            pulled = {o: held[o] for o in _pulled_objects(name, settings) if o in held}
            records = sum(pulled.values())
            out.shape.append(
                f"{size} {name}: {records:,} records in the pulled objects ("
                + ", ".join(f"{o} {c:,}" for o, c in pulled.items())
                + ")"
            )

            # -- full pull: calls vs the minimum ------------------------------------------------
            calls = p0.sync.calls.api
            if name == "salesforce":
                minimum, how = salesforce_minimum(pulled)
                bound = minimum * (1 + TOLERANCE)
                target = f"≤ {bound:,.0f} (min {minimum:,}: {how}; +5 %)"
            else:
                minimum, how = hubspot_minimum(pulled)
                bound = minimum * (1 + TOLERANCE) + HS_CONSTANT
                target = f"≤ {bound:,.0f} ({how} = {minimum:,}; +5 % + {HS_CONSTANT})"
            base = ""
            if not opts.quick:
                from bench.naive import naive_sync

                say(f"{size} {name}: naive baseline sync")
                before = crm.counts()
                naive = naive_sync(settings.connections[name], Path(tmp) / "naive.db")
                nc = calls_between(before, crm.counts()).api
                base = (f"naive loop: {nc:,} calls, {naive.seconds:,.1f} s, "
                        f"{naive.records:,} records")  # fmt: skip
            by_endpoint = sorted(p0.sync.calls.by_endpoint.items())
            out.notes.append(f"{size} {name}: full pull calls by endpoint: "
                             + ", ".join(f"{e} {c}" for e, c in by_endpoint) + ".")  # fmt: skip
            out.fig(f"{name}: full pull, API calls", size,
                    f"{calls:,} calls, {p0.sync.seconds:,.1f} s ({p0.sync.calls.logins} logins)",
                    target, base, calls <= bound, calls)  # fmt: skip

            # -- writeback: initial load -----------------------------------------------------
            written = _written(p0.writeback)
            want = math.ceil(written / WRITE_BATCH[name])
            wcalls = p0.writeback.calls.api
            out.fig(f"{name}: writeback initial load, API calls", size,
                    f"{wcalls:,} calls for {written:,} rows",
                    f"ceil(N/{WRITE_BATCH[name]}) = {want:,}", "", wcalls <= want,
                    wcalls)  # fmt: skip

            # -- pipeline 0 ms ---------------------------------------------------------------
            out.fig(f"{name}: pipeline 0 ms, wall time", size,
                    f"{p0.seconds:,.1f} s (sync {p0.sync.seconds:,.1f} + compute "
                    f"{p0.compute.seconds:,.1f} + writeback {p0.writeback.seconds:,.1f})",
                    f"< {PIPELINE_S:.0f} s", "", p0.seconds < PIPELINE_S, p0.seconds)  # fmt: skip
            out.fig(f"{name}: pipeline 0 ms, peak RSS", size,
                    f"{gib(p0.peak_rss)} (sync {_mib(p0.sync.peak_rss)}, compute "
                    f"{_mib(p0.compute.peak_rss)}, writeback {_mib(p0.writeback.peak_rss)})",
                    "< 4 GiB", "", p0.peak_rss < PIPELINE_BYTES, p0.peak_rss / 2**20)  # fmt: skip

            # -- quiet incremental cycle -----------------------------------------------------
            say(f"{size} {name}: quiet incremental sync")
            quiet = run_step(crm, ["sync", "--settings", str(file0)])
            _check(quiet, "kpisync sync (quiet)")
            q = quiet.calls.api
            qbound = 1 if name == "salesforce" else len(pulled)
            out.fig(f"{name}: quiet incremental sync, API calls", size,
                    f"{q} calls, {quiet.seconds:,.1f} s",
                    "≤ 1" if name == "salesforce" else f"≤ 1 per object = {qbound}",
                    f"full pull: {calls:,} calls", q <= qbound, q)  # fmt: skip

            # -- writeback of a 1 % change, then of nothing ----------------------------------
            store = Store(settings.store.url, schema=settings.store.schema)
            try:
                changed = change_kpis(store, name, 0.01)
            finally:
                store.close()
            c1, w1 = in_process_writeback(crm, settings)
            want1 = math.ceil(w1 / WRITE_BATCH[name])
            out.fig(f"{name}: writeback of a 1 % change, API calls", size,
                    f"{c1:,} calls for {w1:,} rows ({changed:,} values changed)",
                    f"ceil(N/{WRITE_BATCH[name]}) = {want1:,}", f"initial load: {wcalls:,} calls",
                    c1 <= want1 and w1 == changed, c1)  # fmt: skip
            c0, w0 = in_process_writeback(crm, settings)
            out.fig(
                f"{name}: writeback with nothing changed, API calls",
                size,
                f"{c0} calls ({w0} rows)",
                "0",
                "",
                c0 == 0,
                c0,
            )

            # -- freshness -------------------------------------------------------------------
            if not opts.quick:
                say(f"{size} {name}: freshness (kpisync run, interval {opts.interval_s} s)")
                latency, what = freshness(crm, file0, opts.interval_s)
                bound_s = opts.interval_s + 10
                out.fig(f"{name}: freshness, deal edit → rep's KPI rows in the CRM", size,
                        f"{latency:,.1f} s ({what})", f"≤ {bound_s} s (interval + 10 s)",
                        f"{records:,} records", latency <= bound_s, latency)  # fmt: skip

            # -- pipeline at 100 ms ----------------------------------------------------------
            if not opts.quick:
                total_calls = calls + wcalls
                estimate = p0.seconds + total_calls * 0.1
                key = f"{name}: pipeline 100 ms, wall time"
                if estimate > opts.max_case_s:
                    out.fig(key, size, "not run", f"< 2 x 0 ms = {2 * p0.seconds:,.0f} s",
                            f"0 ms: {p0.seconds:,.1f} s", None, None,
                            f"estimated {estimate:,.0f} s sequential > --max-case-s")  # fmt: skip
                else:
                    say(f"{size} {name}: pipeline at 100 ms")
                    crm.latency(100)
                    file1 = Path(tmp) / "latency.toml"
                    file1.write_text(
                        _settings_text(crm, Path(tmp) / "latency.db", opts.interval_s, "KS_"),
                        "utf-8",
                    )
                    p1 = pipeline(crm, file1)
                    crm.latency(0)
                    ratio = p1.seconds / max(p0.seconds, 1e-9)
                    out.fig(key, size,
                            f"{p1.seconds:,.1f} s = {ratio:.2f}x (sync {p1.sync.seconds:,.1f}, "
                            f"writeback {p1.writeback.seconds:,.1f}); peak {gib(p1.peak_rss)}",
                            f"< 2 x 0 ms = {2 * p0.seconds:,.0f} s", f"0 ms: {p0.seconds:,.1f} s",
                            ratio < 2, p1.seconds)  # fmt: skip
    finally:
        crm.close()
    out.notes.append(f"{size} {name}: sandbox server peak RSS {_mib(crm.server_peak_rss)} "
                     "(a separate process, not counted in the pipeline's peak).")  # fmt: skip


def measure_engine(size: str, seed: int, out: Targets) -> None:
    from bench.engine import engine_figures

    e = engine_figures(SIZES[size], seed)
    out.fig("engine: the catalogue (rep/team/org)", size,
            f"{e.engine_s:.2f} s, peak {gib(e.engine_peak)}", f"< {ENGINE_S:.0f} s",
            f"pandas, 3 KPIs: {e.pandas_s:.2f} s", e.engine_s < ENGINE_S, e.engine_s)  # fmt: skip


# ------------------------------------------------------------------------------------------------
# Wall-time estimate
# ------------------------------------------------------------------------------------------------
#: Seconds per opportunity of one CRM's whole block (pipeline, naive baseline, quiet cycle,
#: writebacks, 100 ms pipeline) and the fixed cost of a block (process starts, install), from the
#: 10k run and the earlier 150k-opportunity sync and 100k-row writeback runs on this 2-core
#: machine: Salesforce ~7k records/s of sync and ~750 KPI rows/s of writeback, HubSpot paced at
#: ~9 calls/s. A rough guide, printed before the run starts.
SECONDS_PER_OPP = {"salesforce": 0.012, "hubspot": 0.03}
FIXED_S = {"salesforce": 300.0, "hubspot": 400.0}


def estimate_s(sizes: list[str], crms: list[str], opts: Options) -> float:
    total = 0.0
    for size in sizes:
        n = SIZES[size]
        total += 2 + 2e-5 * n  # engine
        for crm in crms:
            per = SECONDS_PER_OPP[crm] * n
            total += FIXED_S[crm] + (per / 3 if opts.quick else per)
            if not opts.quick:
                total += opts.interval_s + 10
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench targets",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="10k, 100k, 1m (opportunities)")
    parser.add_argument("--crm", choices=("salesforce", "hubspot", "both", "none"),
                        default="both", help="none: the engine figure alone")  # fmt: skip
    parser.add_argument("--quick", action="store_true",
                        help="no naive baseline, freshness or 100 ms pipeline")  # fmt: skip
    parser.add_argument("--interval-s", type=int, default=30, help="kpisync run interval")
    parser.add_argument("--max-case-s", type=float, default=5400.0,
                        help="skip a 100 ms pipeline estimated to take longer")  # fmt: skip
    parser.add_argument("--hubspot-tier", default="unlimited")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-save", action="store_true", help="do not update bench/results.md")
    args = parser.parse_args(argv)
    sizes = [s.strip().lower() for s in args.sizes.split(",") if s.strip()]
    for s in sizes:
        if s not in SIZES:
            parser.error(f"--sizes: {s!r} is not one of {', '.join(SIZES)}")
    crms = {"both": list(CRMS), "none": []}.get(args.crm, [args.crm])
    opts = Options(args.interval_s, args.max_case_s, args.quick, args.seed, args.hubspot_tier)

    from sandbox.generator import spec_for

    report = Targets("Targets: API calls, freshness, machine")
    for size in sizes:
        s = spec_for(SIZES[size], args.seed)
        report.shape.append(
            f"{size}: org shape {s.n_opportunities:,} opportunities, {s.n_leads:,} leads, "
            f"{s.n_activities:,} activities, {s.n_reps:,} reps, {s.months} months"
        )
    for line in report.shape:
        print(line)
    wall = estimate_s(sizes, crms, opts)
    print(f"estimated wall time: {wall / 60:,.0f} min ({', '.join(sizes)}; {', '.join(crms)}"
          f"{'; quick' if opts.quick else ''})", flush=True)  # fmt: skip
    started = time.perf_counter()

    def say(text: str) -> None:
        print(f"[{time.perf_counter() - started:7.0f} s] {text}", file=sys.stderr, flush=True)

    for size in sizes:
        say(f"{size}: engine")
        measure_engine(size, args.seed, report)
        for crm in crms:
            measure_crm(crm, size, opts, report, say)
    report.notes.append(
        f"Whole run {(time.perf_counter() - started) / 60:,.1f} min (estimate {wall / 60:,.0f} "
        f"min). API calls are the sandbox's own count of requests, OAuth token requests apart. "
        f"Freshness: the edit is made right after a cycle ends, so it waits almost a whole "
        f"interval ({opts.interval_s} s) before the next cycle picks it up."
    )
    report.print()
    if not args.no_save:
        # One section per CRM measured alone, so a Salesforce run does not replace a HubSpot one.
        section = {"both": "targets", "none": "targets-engine"}.get(args.crm)
        report.save(section or f"targets-{args.crm}")
