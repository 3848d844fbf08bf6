"""``kpisync demo``: a generated sample org, its KPIs, and a summary a sales manager can read."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
from rich.console import Console
from rich.table import Table

from kpis.engine import KpiRun, compute_kpis
from kpis.settings import KpiSettings
from kpis.validate import validate_tables
from sandbox.generator import generate_org, spec_for, write_canonical_csv
from service.csvio import format_values, read_canonical_csv, write_csv

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


def summary_tables(run: KpiRun, period_start: dt.date, team_names: dict[str, str]) -> list[Table]:
    """The org, each team and the top reps for one period, on the headline KPIs."""
    values = run.values.filter(
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


def run_demo(out: Path, size: str | int, seed: int, console: Console) -> KpiRun:
    """Generate an org, write its canonical CSVs, compute every KPI from them, print a summary."""
    spec = spec_for(size, seed=seed)
    console.print(
        f"Generating a sample org: {spec.n_reps} reps, {spec.n_opportunities:,} opportunities, "
        f"{spec.n_leads:,} leads, {spec.n_activities:,} activities over {spec.months} months",
        highlight=False,
    )
    org = generate_org(spec)
    csv_dir = out / "canonical"
    write_canonical_csv(org, csv_dir)
    last_day = spec.start.replace(year=spec.start.year + (spec.months // 12))
    as_of = last_day - dt.timedelta(days=1)
    settings = KpiSettings(corporate_currency=spec.corporate_currency, as_of=as_of)
    validated = validate_tables(read_canonical_csv(csv_dir), settings.corporate_currency)
    run = compute_kpis(validated.tables, settings)
    kpi_file = out / "kpis.csv"
    write_csv(format_values(run.values), kpi_file)
    names = {
        subject: name
        for table in ("teams", "reps")
        for subject, name in org.tables[table].select("id", "name").iter_rows()
    }
    latest = run.values.filter(pl.col("metric") == "revenue")["period_start"].max()
    assert isinstance(latest, dt.date)
    latest_full = min(latest, as_of.replace(day=1))
    for table in summary_tables(run, latest_full, names):
        console.print(table)
    console.print(
        f"{run.values.height:,} KPI values ({run.values['metric'].n_unique()} KPIs x rep/team/org "
        f"x month) written to {kpi_file}; the canonical CSVs are in {csv_dir}.",
        highlight=False,
    )
    if run.insights.height:
        console.print(
            f"{run.insights.height} insight(s), e.g.: {run.insights['message'][0]}", highlight=False
        )
    return run
