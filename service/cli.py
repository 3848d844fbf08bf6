"""The ``kpisync`` command line: one entry point for admins, managers and CI."""

from __future__ import annotations

import datetime as dt
import gc
import sys
import time
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kpis.engine import KpiRun
from service.exit_codes import EXIT_USAGE

app = typer.Typer(
    name="kpisync",
    help=(
        "kpisync pulls leads, deals, activities and quotas from Salesforce and HubSpot, computes "
        "sales KPIs per rep, team and org, and writes them back into native CRM reports."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, soft_wrap=True)

#: Collector thresholds for kpisync's work: millions of short-lived records (dicts without
#: cycles). At Python's default (a collection every 700 allocations, a full one every 100 of
#: those) the collector walks every record held in memory again and again: a quarter of a
#: 100k-deal HubSpot pull's CPU, measured with ``bench.targets``.
GC_THRESHOLDS = (50_000, 20, 100)


@app.callback()
def _process(ctx: typer.Context) -> None:
    """Process-wide settings every command runs with."""
    gc.set_threshold(*GC_THRESHOLDS)


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    MARKDOWN = "markdown"


class PeriodOption(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    # The message is text, not markup: "[connections.NAME]" must print as written.
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code)


@app.command("kpis")
def list_kpis(
    output: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="table, json or markdown.")
    ] = OutputFormat.TABLE,
) -> None:
    """List every KPI of the catalogue: key, unit, scopes, formula and the seeds that ask for it."""
    from kpis.docs import render_json, render_markdown
    from kpis.registry import catalogue

    if output is OutputFormat.JSON:
        typer.echo(render_json())
        return
    if output is OutputFormat.MARKDOWN:
        typer.echo(render_markdown(), nl=False)
        return
    table = Table("key", "unit", "scopes", "placed by", "formula", show_lines=False)
    for d in catalogue().values():
        table.add_row(
            d.key, d.unit.value, ",".join(s.value for s in d.scopes), d.placed_by, d.formula
        )
    Console().print(table)


@app.command("compute")
def compute(
    from_csv: Annotated[
        Path | None,
        typer.Option(
            "--from-csv", help="Directory with canonical CSV files (instead of the store)."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="KPI output CSV file (required with --from-csv).")
    ] = None,
    crm: Annotated[
        str | None, typer.Option("--crm", help="Store mode: only this connection.")
    ] = None,
    settings_file: Annotated[
        Path | None,
        typer.Option(
            "--settings",
            help="Settings file. [default: $KPISYNC_SETTINGS or ./settings.toml; "
            "with --from-csv none]",
        ),
    ] = None,
    currency: Annotated[
        str | None, typer.Option(help="Corporate currency (ISO code). [default: EUR]")
    ] = None,
    period: Annotated[
        PeriodOption | None, typer.Option(help="Period type. [default: month]")
    ] = None,
    timezone: Annotated[
        str | None, typer.Option(help="The org's time zone (IANA name). [default: UTC]")
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="'Today' for progress KPIs, YYYY-MM-DD. [default: today]"),
    ] = None,
    metric: Annotated[
        list[str] | None, typer.Option("--metric", "-m", help="Only these KPIs (repeatable).")
    ] = None,
) -> None:
    """Compute the KPI catalogue: from the store (after `kpisync sync`) or from CSV files.

    Store mode (no --from-csv): every configured connection, or --crm NAME, is computed from the
    store's canonical tables into the store (what `kpisync writeback` sends), and to --out if
    given (one file per connection when there are several).

    CSV mode (--from-csv DIR, no CRM needed): writes OUT (the KPI rows), OUT.insights.csv and
    OUT.quarantine.csv (rows left out, with file, line and reason). A missing file or column is an
    error (exit code 2); a bad row is quarantined and the run goes on.
    """
    from kpis.engine import compute_kpis
    from kpis.settings import KpiSettingsError, PeriodType
    from kpis.validate import StructureError, validate_tables
    from service.csvio import format_values, read_canonical_csv, write_csv
    from service.settings import Settings, SettingsError, load_settings

    if from_csv is None:
        if metric or currency or period or timezone:
            raise fail("--metric/--currency/--period/--timezone go with --from-csv; in store "
                       "mode the settings file's [kpi] table decides")  # fmt: skip
        from service.sync_commands import compute_store

        compute_store(crm=crm, out=out, settings_file=settings_file, as_of=as_of)
        return
    if out is None:
        raise fail("--out is required with --from-csv")
    try:
        base = load_settings(settings_file) if settings_file else Settings()
    except SettingsError as exc:
        raise fail(str(exc)) from None
    try:
        as_of_date = dt.date.fromisoformat(as_of) if as_of else dt.date.today()
    except ValueError:
        raise fail(f"--as-of: expected YYYY-MM-DD, got {as_of!r}") from None
    try:
        settings = replace(
            base.kpi,
            corporate_currency=(currency or base.kpi.corporate_currency).upper(),
            timezone=timezone or base.kpi.timezone,
            period=PeriodType(period.value) if period else base.kpi.period,
            as_of=as_of_date,
        )
    except KpiSettingsError as exc:
        raise fail(str(exc)) from None
    started = time.perf_counter()
    try:
        raw = read_canonical_csv(from_csv)
        validated = validate_tables(raw, settings.corporate_currency)
        run = compute_kpis(validated.tables, settings, metric or None)
    except (StructureError, KeyError, ValueError) as exc:
        raise fail(str(exc).strip("'\"")) from None
    write_csv(format_values(run.values), out)
    insights_path = out.with_suffix(".insights.csv")
    quarantine_path = out.with_suffix(".quarantine.csv")
    write_csv(
        run.insights.with_columns(pl.col("period_start", "period_end").dt.to_string("%Y-%m-%d")),
        insights_path,
    )
    write_csv(validated.quarantine, quarantine_path)
    _print_summary(run, validated.quarantine, out, time.perf_counter() - started)


@app.command("demo")
def demo(
    out: Annotated[
        Path, typer.Option(help="Directory for the settings, store and KPI copy of the demo.")
    ] = Path("kpisync-demo"),
    size: Annotated[
        str, typer.Option(help="small, medium, large, or a number of opportunities.")
    ] = "small",
    seed: Annotated[int, typer.Option(help="Seed of the generated org.")] = 1,
    latency_ms: Annotated[
        int, typer.Option("--latency-ms", help="Latency the sandbox CRMs add to every call.")
    ] = 0,
) -> None:
    """Run kpisync end to end on local sandbox CRMs and print the KPI summary.

    Starts a Salesforce and a HubSpot sandbox (real HTTPS on 127.0.0.1) holding the same
    generated org (reps in a team tree, leads, deals in several currencies, activities, quotas),
    installs the KPI fields and report objects in both, syncs them into a SQLite store, computes
    every KPI for every rep, team and the org, writes the values back, and prints the headline
    numbers per team and rep and where the values now live in each CRM.
    """
    from service.demo import DemoFailed, run_demo

    chosen: str | int = int(size) if size.isdigit() else size
    try:
        run_demo(out, chosen, seed, Console(), latency_ms=latency_ms)
    except DemoFailed as exc:
        raise fail(str(exc), code=1) from None
    except ValueError as exc:
        raise fail(str(exc)) from None


def _print_summary(run: KpiRun, quarantine: pl.DataFrame, out: Path, seconds: float) -> None:
    values = run.values
    console.print(
        f"[green]wrote[/green] {values.height:,} KPI values "
        f"({values['metric'].n_unique()} KPIs) to {out} in {seconds:.1f} s",
        highlight=False,
    )
    if quarantine.height:
        console.print(
            f"[yellow]quarantined[/yellow] {quarantine.height:,} rows "
            f"(see {out.with_suffix('.quarantine.csv')}):",
            highlight=False,
        )
        counts = quarantine.group_by("table", "reason").len().sort("len", descending=True)
        for row in counts.head(10).iter_rows(named=True):
            console.print(f"  {row['table']}: {row['reason']} × {row['len']}", highlight=False)
    for key, reason in run.unavailable.items():
        console.print(f"[dim]not computed:[/dim] {key} — {reason}", highlight=False)
    if run.insights.height:
        console.print(
            f"[yellow]insights[/yellow] ({run.insights.height}; "
            f"see {out.with_suffix('.insights.csv')}):",
            highlight=False,
        )
        for row in run.insights.head(10).iter_rows(named=True):
            console.print(
                f"  {row['scope']} {row['subject_id']} {row['period_start']}: {row['message']}",
                highlight=False,
            )


def _register_subcommands() -> None:
    """Attach the command groups that live in other layers."""
    from sandbox.cli import app as sandbox_app

    app.add_typer(sandbox_app, name="sandbox")
    from service.sync_commands import register

    register(app)
    __import__("service.writeback_commands").writeback_commands.register(app)
    __import__("service.run_commands").run_commands.register(app)


_register_subcommands()


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
