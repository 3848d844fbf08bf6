"""``kpisync demo``: the whole job on local sandbox CRMs, and a summary a sales manager can read."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import polars as pl
from rich.console import Console
from rich.table import Table

from connectors.config import ConnectionConfig
from connectors.store import Store
from sandbox.generator import spec_for
from service.csvio import format_values, write_csv
from service.cycle import CycleResult, run_cycle
from service.settings import Settings, load_settings

SUMMARY_METRICS = (
    ("revenue", "Revenue"),
    ("quota_attainment", "Quota %"),
    ("win_rate", "Win %"),
    ("avg_deal_size", "Avg deal"),
    ("avg_sales_cycle_days", "Cycle (d)"),
    ("calls", "Calls"),
)


def _fmt(value: object, unit: str) -> str:
    if value is None:
        return "—"
    assert isinstance(value, int | float)
    if unit == "%":
        return f"{value:.1f}"
    return f"{value:,.0f}"


def summary_tables(
    kpi_values: pl.DataFrame, period_start: dt.date, team_names: dict[str, str]
) -> list[Table]:
    """The org, each team and the top reps for one period, on the headline KPIs."""
    values = kpi_values.filter(
        (pl.col("period_start") == period_start) & pl.col("dimension").is_null()
    )
    wide = values.pivot(
        on="metric", index=["scope", "subject_id"], values="value", aggregate_function="first"
    )
    units = dict(values.select("metric", "unit").unique().iter_rows())
    tables: list[Table] = []
    for scope, title, limit in (("org", "Org", 1), ("team", "Teams", 50), ("rep", "Top reps", 10)):
        rows = wide.filter(pl.col("scope") == scope)
        if scope == "rep":
            rows = rows.sort("revenue", descending=True, nulls_last=True)
        table = Table(title=f"{title} — {period_start:%B %Y}", title_justify="left")
        table.add_column("subject")
        for _, label in SUMMARY_METRICS:
            table.add_column(label, justify="right")
        for row in rows.head(limit).iter_rows(named=True):
            name = team_names.get(row["subject_id"], row["subject_id"])
            table.add_row(
                name, *[_fmt(row.get(key), units.get(key, "")) for key, _ in SUMMARY_METRICS]
            )
        tables.append(table)
    return tables


def _names(store: Store, connection: str) -> dict[str, str]:
    tables = store.canonical_text(connection)
    return {
        subject: name
        for table in ("teams", "reps")
        for subject, name in tables[table].select("id", "name").iter_rows()
    }


def _where(store: Store, cfg: ConnectionConfig, result: CycleResult) -> str:
    """One line saying where a connection's KPI values now live in its CRM."""
    from writeback.ledger import installed

    written = result.writeback
    sent = (
        ", ".join(
            f"{t.written:,} rows to {t.target}" for t in written.targets.values() if t.written
        )
        if written is not None
        else "nothing"
    )
    reports = [i for i in installed(store, cfg.name) if i.kind == "report"]
    where = f"{cfg.name}: {sent} in {written.calls if written else 0} API calls"
    if reports and cfg.instance_url:
        where += (
            f"; report '{reports[0].name}' at {cfg.instance_url}/lightning/r/Report/"
            f"{reports[0].crm_id}/view"
        )
    return where


def run_demo(
    out: Path, size: str | int, seed: int, console: Console, *, latency_ms: int = 0
) -> dict[str, CycleResult]:
    """The whole job on local sandbox CRMs: install, sync, compute and write back, both CRMs.

    Starts the Salesforce and HubSpot sandboxes with a generated org, writes a settings file
    pointing at them (``OUT/settings.toml``, throwaway sandbox credentials) and a fresh SQLite
    store (``OUT/kpisync.db``), then runs what ``kpisync install`` and ``kpisync run --once`` do.
    """
    from sandbox.cli import build_apps, handshake, settings_toml
    from sandbox.server import SandboxServer

    spec = spec_for(size, seed=seed)
    console.print(
        f"Generating a sample org: {spec.n_reps} reps, {spec.n_opportunities:,} opportunities, "
        f"{spec.n_leads:,} leads, {spec.n_activities:,} activities over {spec.months} months",
        highlight=False,
    )
    out.mkdir(parents=True, exist_ok=True)
    apps, currency = build_apps(size, seed)
    last_day = spec.start.replace(year=spec.start.year + (spec.months // 12))
    as_of = last_day - dt.timedelta(days=1)
    db = out / "kpisync.db"
    for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        stale.unlink(missing_ok=True)  # a new sandbox org: the old ledger would not match it
    with SandboxServer(apps, latency_ms=latency_ms) as server:
        info = handshake(server, apps)
        settings_file = out / "settings.toml"
        settings_file.write_text(
            settings_toml(info, currency) + f"\n[store]\nurl = {json.dumps(f'sqlite:///{db}')}\n",
            encoding="utf-8",
        )
        settings = load_settings(settings_file)
        console.print(
            f"Sandbox CRMs up: Salesforce at {info['salesforce']['instance_url']}, HubSpot at "
            f"{info['hubspot']['base_url']}; settings in {settings_file}",
            highlight=False,
        )
        store = Store(settings.store.url)
        store.migrate()
        results: dict[str, CycleResult] = {}
        try:
            for cfg in settings.connections.values():
                results[cfg.name] = _demo_connection(store, settings, cfg, as_of, console)
            lines = [_where(store, settings.connections[n], r) for n, r in results.items()]
            first = next(iter(results))
            values = store.read_kpis(first)
            names = _names(store, first)
        finally:
            store.close()
    failed = [r for r in results.values() if not r.ok]
    for r in failed:
        console.print(f"[red]{r.connection}: {r.failed_step} failed[/red] — {r.message}")
    if values.height:
        latest = values.filter(pl.col("metric") == "revenue")["period_start"].max()
        assert isinstance(latest, dt.date)
        latest_full = min(latest, as_of.replace(day=1))
        console.print(f"KPIs as synced from {first}:", highlight=False)
        for table in summary_tables(values, latest_full, names):
            console.print(table)
        kpi_file = out / "kpis.csv"
        write_csv(format_values(values), kpi_file)
        console.print(
            f"{values.height:,} KPI values ({values['metric'].n_unique()} KPIs x rep/team/org x "
            f"month) per CRM; a copy is in {kpi_file}.",
            highlight=False,
        )
    console.print("Where the values now live:", highlight=False)
    for line in lines:
        console.print(f"  {line}", highlight=False)
    if failed:
        raise DemoFailed(", ".join(f"{r.connection}: {r.message}" for r in failed))
    return results


class DemoFailed(RuntimeError):
    """A step of the demo failed (the message says which and why)."""


def _demo_connection(
    store: Store, settings: Settings, cfg: ConnectionConfig, as_of: dt.date, console: Console
) -> CycleResult:
    from writeback.crm import open_crm
    from writeback.install import problems

    started = time.perf_counter()
    installer, _ = open_crm(cfg, settings.writeback, store)
    actions = installer.install()
    bad = problems(actions)
    created = sum(1 for a in actions if a.status.value == "create")
    console.print(
        f"{cfg.name}: installed {created} fields/objects"
        + (f" ({len(bad)} problems: {bad[0].line()})" if bad else ""),
        highlight=False,
    )
    result = run_cycle(store, settings, cfg, as_of=as_of)
    s = result.sync.stats if result.sync else None
    if s is not None:
        console.print(
            f"{cfg.name}: synced {s.records_in:,} records in {s.api_calls} API calls, "
            f"computed {result.kpi_values:,} KPI values, wrote back in "
            f"{result.seconds.get('writeback', 0):.1f}s ({time.perf_counter() - started:.1f}s)",
            highlight=False,
        )
    return result
