"""Writeback of 100k KPI rows to the sandbox CRMs: calls and time, initial vs after a 1 % change.

    python -m bench writeback [--rows 100000] [--crm salesforce|hubspot|both] [--change 0.01]

Fills a store with ``--rows`` KPI values (every catalogue KPI for the sandbox org's reps over
enough months), installs the report object, writes everything once (the initial load), then
changes ``--change`` of the values and writes again. The baseline of the incremental run is the
initial run in the same process: the ratio shows what the ledger diff saves. An unchanged third
run must cost zero calls.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import tempfile
from pathlib import Path
from typing import Any

import polars as pl

from bench.common import Report, measured
from connectors.config import ConnectionConfig, Secret, SyncOptions
from connectors.store import Store
from kpis.registry import catalogue
from writeback.crm import open_crm
from writeback.run import writeback
from writeback.settings import WritebackSettings

SETTINGS = WritebackSettings(retry_base_s=0.0)
OPTIONS = SyncOptions(rate_per_s=0, retry_base_s=0.05, retry_cap_s=1.0)


def kpi_rows(rep_ids: list[str], rows: int) -> pl.DataFrame:
    """``rows`` KPI values in the store's format: metric x rep x month."""
    metrics = [d.key for d in catalogue().values() if not d.by_dimension]
    months = math.ceil(rows / (len(metrics) * len(rep_ids)))
    starts = [dt.date(2015 + m // 12, m % 12 + 1, 1) for m in range(months + 1)]
    grid = (
        pl.DataFrame({"metric": metrics})
        .join(pl.DataFrame({"subject_id": rep_ids}), how="cross")
        .join(pl.DataFrame({"period_start": starts[:-1], "period_end": starts[1:]}), how="cross")
        .head(rows)
    )
    n = grid.height
    return grid.with_columns(
        scope=pl.lit("rep"),
        value=pl.int_range(n, eager=True).cast(pl.Float64) * 1.5,
        unit=pl.lit("count"),
        numerator=pl.lit(None, dtype=pl.Float64),
        denominator=pl.lit(None, dtype=pl.Float64),
        records=pl.lit(1, dtype=pl.Int64),
        dimension=pl.lit(None, dtype=pl.String),
    )


def _salesforce(server: Any, app: Any) -> ConnectionConfig:
    i = app.connection_info()
    return ConnectionConfig(
        name="sf", crm="salesforce", instance_url=i["instance_url"], token_url=i["token_url"],
        client_id=i["client_id"], client_secret=Secret(i["client_secret"]),
        ca_bundle=server.ca_bundle, options=OPTIONS,
    )  # fmt: skip


def bench_crm(crm: str, rows: int, change: float, report: Report) -> None:
    from sandbox.generator import generate_org, spec_for, with_crm_ids

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'bench.db'}")
        store.migrate()
        if crm == "salesforce":
            from sandbox.salesforce.testing import build_sandbox
            from sandbox.server import SandboxServer

            app, tables = build_sandbox("small", 11)
            server: Any = SandboxServer([app]).__enter__()
            cfg = _salesforce(server, app)
            reps = tables["reps"]["id"].to_list()
        else:
            from sandbox.hubspot import create_app
            from sandbox.hubspot.testing import start_server

            org = generate_org(spec_for("small", 3))
            reps = with_crm_ids(org, "hubspot").tables["reps"]["id"].to_list()
            happ = create_app(org=org, tier="unlimited")
            server = start_server(happ)
            cfg = ConnectionConfig(
                name="hs", crm="hubspot", base_url=server.url("hubspot"), auth="private_app",
                access_token=Secret(str(happ.auth.config.private_app_token)),
                ca_bundle=server.ca_bundle, options=OPTIONS,
            )  # fmt: skip
        try:
            values = kpi_rows(reps, rows)
            store.write_kpis(cfg.name, values)
            installer, writer = open_crm(cfg, SETTINGS, store)
            installer.install()
            with measured() as first_m:
                first = writeback(store, cfg.name, writer, SETTINGS)
            step = max(1, round(1 / change))
            changed = values.with_columns(
                value=pl.when(pl.int_range(pl.len()) % step == 0)
                .then(pl.col("value") + 1)
                .otherwise(pl.col("value"))
            )
            store.write_kpis(cfg.name, changed)
            with measured() as second_m:
                second = writeback(store, cfg.name, writer, SETTINGS)
            third = writeback(store, cfg.name, writer, SETTINGS)
        finally:
            if crm == "salesforce":
                server.__exit__(None, None, None)
            else:
                server.stop()
            store.close()
    sent2 = sum(t.written for t in second.targets.values())
    report.add(f"{crm}: initial {rows:,} rows", f"{first.calls} calls, {first_m.seconds:.1f} s",
               f"{math.ceil(rows / (200 if crm == 'salesforce' else 100))} calls", "",
               "ok" if first.failed == 0 else f"{first.failed} refused")  # fmt: skip
    report.add(f"{crm}: after a {change:.0%} change ({sent2:,} rows)",
               f"{second.calls} calls, {second_m.seconds:.1f} s", "",
               f"{first.calls} calls, {first_m.seconds:.1f} s",
               f"{second.calls / max(1, first.calls):.1%} of the calls, "
               f"{second_m.seconds / max(1e-9, first_m.seconds):.1%} of the time")  # fmt: skip
    report.add(f"{crm}: unchanged cycle", f"{third.calls} calls", "0 calls", "",
               "ok" if third.calls == 0 else "FAIL")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench writeback", description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--crm", choices=("salesforce", "hubspot", "both"), default="both")
    parser.add_argument("--change", type=float, default=0.01)
    parser.add_argument("--no-save", action="store_true", help="do not update bench/results.md")
    args = parser.parse_args(argv)
    report = Report("Writeback to the sandbox CRMs")
    for crm in ("salesforce", "hubspot") if args.crm == "both" else (args.crm,):
        bench_crm(crm, args.rows, args.change, report)
    report.notes.append(
        "Times are dominated by the sandbox servers (in-process emulators); the call counts are "
        "what a real org or portal would be charged."
    )
    report.print()
    if not args.no_save:
        report.save("writeback")


if __name__ == "__main__":
    main()
