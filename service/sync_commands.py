"""The store side of the command line: ``kpisync sync | status | export`` and ``compute``.

Every command reads its settings from ``--settings FILE``, else ``$KPISYNC_SETTINGS``, else
``./settings.toml``. Exit codes: 0 done, 1 a sync failed, 2 usage or settings error, 75 a sync
paused on its API budget (EX_TEMPFAIL: try again later; it resumes from its cursors).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from service.exit_codes import EXIT_FAILED, EXIT_PAUSED, EXIT_USAGE
from service.journal import status as service_status
from service.settings import Settings, SettingsError, load_settings, settings_path
from writeback.ledger import parked_counts

console = Console(stderr=True, soft_wrap=True)

SettingsOption = Annotated[
    Path | None,
    typer.Option(
        "--settings", help="Settings file. [default: $KPISYNC_SETTINGS or ./settings.toml]"
    ),
]
CrmOption = Annotated[str | None, typer.Option("--crm", help="Connection name (default: all).")]


class StatusFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


def _fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    # The message is text, not markup: "[connections.NAME]" must print as written.
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code)


def _settings(option: Path | None) -> Settings:
    try:
        return load_settings(settings_path(option))
    except SettingsError as exc:
        raise _fail(str(exc)) from None


def _store(settings: Settings) -> Any:
    from connectors.store import Store

    store = Store(settings.store.url, schema=settings.store.schema)
    store.migrate()
    return store


def _sync_bar(*, transient: bool) -> Progress:
    """The progress display of a sync: per object, records, API calls and elapsed time."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.fields[records]} records"),
        TextColumn("{task.fields[calls]} calls"),
        TimeElapsedColumn(),
        console=console,
        transient=transient,
    )


class _RichProgress:
    """One progress line per object: records, API calls, elapsed time."""

    def __init__(self, progress: Progress, connection: str) -> None:
        self.progress = progress
        self.connection = connection
        self.tasks: dict[str, TaskID] = {}

    def start(self, obj: str) -> None:
        self.tasks[obj] = self.progress.add_task(
            f"{self.connection} {obj}", total=None, records=0, calls=0
        )

    def advance(self, obj: str, records: int, calls: int) -> None:
        task = self.tasks[obj]
        done = self.progress.tasks[self.tasks[obj]].fields.get("records", 0) + records
        self.progress.update(task, advance=records, records=done, calls=calls)

    def done(self, obj: str) -> None:
        self.progress.update(self.tasks[obj], total=1, completed=1)


def sync(
    settings_file: SettingsOption = None,
    crm: CrmOption = None,
    full: Annotated[bool, typer.Option("--full", help="Re-pull everything, ignoring cursors.")] = (
        False
    ),
) -> None:
    """Pull every configured CRM connection (or --crm NAME) into the store."""
    from connectors.errors import ConnectorError
    from connectors.sources import sync as run_sync

    settings = _settings(settings_file)
    try:
        configs = settings.connection(crm)
    except SettingsError as exc:
        raise _fail(str(exc)) from None
    if not configs:
        raise _fail(f"{settings.source}: no [connections.NAME] configured")
    store = _store(settings)
    worst = 0
    for cfg in configs:
        started = time.perf_counter()
        try:
            if console.is_terminal:
                with _sync_bar(transient=False) as bar:
                    result = run_sync(store, cfg, settings.mappings, full=full,
                                      progress=_RichProgress(bar, cfg.name))  # fmt: skip
            else:
                result = run_sync(store, cfg, settings.mappings, full=full)
        except ConnectorError as exc:
            console.print(f"[red]{cfg.name}: failed[/red] — {exc}", highlight=False)
            worst = max(worst, EXIT_FAILED)
            continue
        s = result.stats
        colour = {"ok": "green", "paused": "yellow"}.get(result.outcome, "red")
        console.print(
            f"[{colour}]{cfg.name}: {result.outcome}[/{colour}] in "
            f"{time.perf_counter() - started:.1f}s — {s.records_in} records read, "
            f"{s.inserted} new, {s.updated} updated, {s.deleted} deleted, "
            f"{s.quarantined} quarantined, {s.api_calls} API calls",
            highlight=False,
        )
        for note in result.notes:
            console.print(f"  note: {note}", highlight=False)
        if result.outcome == "paused":
            console.print(f"  {result.message}", highlight=False)
            worst = max(worst, EXIT_PAUSED) if worst != EXIT_FAILED else worst
    store.close()
    if worst:
        raise typer.Exit(worst)


def status_data(settings: Settings, store: Any, names: list[str]) -> dict[str, Any]:
    """What ``kpisync status --format json`` prints (also used by tests)."""
    out: dict[str, Any] = {}
    for name in names:
        cfg = settings.connections.get(name)
        usage = store.api_usage(name)
        share = (cfg.options if cfg else settings.sync).budget_share
        out[name] = {
            "crm": cfg.crm if cfg else None,
            "cursors": {
                obj: {
                    "value": c.value,
                    "updated_at": c.updated_at.isoformat() if c.updated_at else None,
                }
                for obj, c in sorted(store.cursors(name).items())
            },
            "records": store.raw_count(name),
            "quarantine": store.quarantine_counts(name),
            "writeback_parked": parked_counts(store, name),
            **service_status(store, name),
            "api_budget": None
            if usage is None
            else {
                "used": usage[0],
                "daily_limit": usage[1],
                "share": share,
                "allowance": int(usage[1] * share),
                "observed_at": usage[2].isoformat(),
            },
            "last_runs": [
                {
                    "id": r.id,
                    "mode": r.mode,
                    "started_at": r.started_at.isoformat(),
                    "duration_s": r.duration_s,
                    "outcome": r.outcome,
                    "message": r.message,
                    "records_in": r.stats.records_in,
                    "inserted": r.stats.inserted,
                    "updated": r.stats.updated,
                    "deleted": r.stats.deleted,
                    "quarantined": r.stats.quarantined,
                    "api_calls": r.stats.api_calls,
                }
                for r in store.runs(name, limit=5)
            ],
        }
    return out


def status(
    settings_file: SettingsOption = None,
    crm: CrmOption = None,
    output: Annotated[
        StatusFormat, typer.Option("--format", "-f", help="table or json.")
    ] = StatusFormat.TABLE,
) -> None:
    """Cursors, last runs, API budget used and quarantine counts per connection."""
    settings = _settings(settings_file)
    if not settings.connections and crm is None:
        # Nothing configured (an empty file): opening the default store would create it.
        raise _fail(f"{settings.source}: no [connections.NAME] configured (or give --crm NAME)")
    store = _store(settings)
    names = [crm] if crm else sorted(set(settings.connections) | set(store.connections()))
    data = status_data(settings, store, names)
    store.close()
    if output is StatusFormat.JSON:
        typer.echo(json.dumps(data, indent=2))
        return
    out = Console(soft_wrap=True)
    for name, info in data.items():
        out.print(f"[bold]{name}[/bold] ({info['crm'] or 'not configured'})", highlight=False)
        budget = info["api_budget"]
        if budget:
            out.print(f"  API budget: {budget['used']} / {budget['daily_limit']} used today "
                      f"(pause at {budget['allowance']}, {budget['share']:.0%})",
                      highlight=False)  # fmt: skip
        table = Table("object", "records", "quarantined", "cursor", "updated")
        # Quarantine entries of the KPI engine's checks (``canonical.<table>``) have no cursor.
        objects = sorted(set(info["cursors"]) | set(info["records"]) | set(info["quarantine"]))
        for obj in objects:
            c = info["cursors"].get(obj, {})
            table.add_row(obj, str(info["records"].get(obj, 0)),
                          str(info["quarantine"].get(obj, 0)), str(c.get("value") or ""),
                          str(c.get("updated_at") or "")[:19])  # fmt: skip
        out.print(table)
        out.print(f"  next scheduled cycle: {info['next_run_at'] or 'none'}", highlight=False)
        for c in info["last_cycles"]:
            out.print(f"  cycle {c['id']} {c['started_at'][:19]} {c['holder']}: {c['outcome']} "
                      f"{c['message'] or ''}", highlight=False)  # fmt: skip
        for r in info["last_runs"]:
            out.print(f"  run {r['id']} {r['started_at'][:19]} {r['mode']}: {r['outcome']} "
                      f"({r['records_in']} read, {r['api_calls']} calls, "
                      f"{(r['duration_s'] or 0):.1f}s) {r['message'] or ''}",
                      highlight=False)  # fmt: skip


def export(
    crm: Annotated[str, typer.Option("--crm", help="Connection name.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the canonical CSV files.")],
    settings_file: SettingsOption = None,
) -> None:
    """Write the store's canonical tables of one connection as the CSVs of CANONICAL.md."""
    from connectors.export import write_tables_csv

    settings = _settings(settings_file)
    store = _store(settings)
    tables = store.read_canonical(crm, settings.kpi.corporate_currency)
    store.close()
    for table, path in write_tables_csv(dict(tables.frames), out).items():
        console.print(f"{table}: {path} ({tables[table].height} rows)", highlight=False)


def compute_from_store(
    settings: Settings, connection: str, out: Path | None, as_of: dt.date | None
) -> int:
    """Compute the KPIs of ``connection`` from the store into the store (and ``out``)."""
    from service.csvio import format_values, write_csv
    from service.cycle import compute_into_store

    store = _store(settings)
    try:
        rows, run = compute_into_store(store, settings, connection, as_of)
    finally:
        store.close()
    if out is not None:
        write_csv(format_values(run.values), out)
    return rows


def compute_store(
    crm: CrmOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the KPIs here.")] = None,
    settings_file: SettingsOption = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="'Today' for progress KPIs, YYYY-MM-DD.")
    ] = None,
) -> None:
    """Compute the KPIs from the store's canonical tables into the store (and --out CSV)."""
    settings = _settings(settings_file)
    try:
        day = dt.date.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise _fail(f"--as-of: expected YYYY-MM-DD, got {as_of!r}") from None
    names = [crm] if crm else list(settings.connections)
    if not names:
        raise _fail(f"{settings.source}: no [connections.NAME] configured (or give --crm NAME)")
    for name in names:
        target = out
        if out is not None and len(names) > 1:
            target = out.with_name(f"{out.stem}.{name}{out.suffix}")
        rows = compute_from_store(settings, name, target, day)
        where = f" and {target}" if target else ""
        console.print(f"{name}: {rows} KPI values written to the store{where}", highlight=False)


def register(app: typer.Typer) -> None:
    """Attach the store commands to the ``kpisync`` app."""
    app.command("sync")(sync)
    app.command("status")(status)
    app.command("export")(export)
