"""``kpisync install | uninstall | check | writeback``: the CRM side of the command line.

``install`` provisions what writeback needs in each CRM (and prints it; ``--dry-run`` only
prints), ``check`` reports what is missing or drifted, ``uninstall`` removes exactly what install
created. ``writeback`` pushes the store's KPI values (computed by ``kpisync compute``);
``--dry-run`` prints the plan. Exit codes: 0 done, 1 a CRM refused (or check found problems),
2 usage or settings error, 75 paused on the API budget.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any

import typer

from service.exit_codes import EXIT_FAILED, EXIT_PAUSED
from service.settings import Settings, SettingsError
from service.sync_commands import (
    CrmOption,
    SettingsOption,
    _fail,
    _settings,
    _store,
    console,
)

DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Print what would be done; change nothing.")
]


def _each(settings: Settings, crm: str | None, fn: Callable[[Any, Any, Any], int]) -> None:
    from connectors.errors import BudgetPaused, ConnectorError
    from writeback.crm import open_crm

    try:
        configs = settings.connection(crm)
    except SettingsError as exc:
        raise _fail(str(exc)) from None
    if not configs:
        raise _fail(f"{settings.source}: no [connections.NAME] configured")
    store = _store(settings)
    worst = 0
    try:
        for cfg in configs:
            try:
                # Opening may log in already (HubSpot OAuth refresh): a refused login is this
                # connection's failure, reported like any other.
                installer, writer = open_crm(cfg, settings.writeback, store)
                worst = max(worst, fn(cfg, installer, writer))
            except BudgetPaused as exc:
                console.print(f"[yellow]{cfg.name}: paused[/yellow] — {exc}", highlight=False)
                worst = max(worst, EXIT_PAUSED)
            except ConnectorError as exc:
                console.print(f"[red]{cfg.name}: failed[/red] — {exc}", highlight=False)
                worst = max(worst, EXIT_FAILED)
    finally:
        store.close()
    if worst:
        raise typer.Exit(worst)


def _print_actions(name: str, actions: list[Any]) -> None:
    for a in actions:
        typer.echo(f"{name}: {a.line()}")


def install(settings_file: SettingsOption = None, crm: CrmOption = None,
            dry_run: DryRun = False) -> None:  # fmt: skip
    """Create the KPI report object, fields and permissions in each CRM (idempotent)."""
    from writeback.install import Status

    def run(cfg: Any, installer: Any, writer: Any) -> int:
        acts = installer.install(dry_run=dry_run)
        _print_actions(cfg.name, acts)
        bad = [a for a in acts if a.status in (Status.CONFLICT, Status.UNAVAILABLE)]
        return EXIT_FAILED if bad else 0

    _each(_settings(settings_file), crm, run)


def uninstall(settings_file: SettingsOption = None, crm: CrmOption = None,
              dry_run: DryRun = False) -> None:  # fmt: skip
    """Remove everything install created (and nothing else)."""

    def run(cfg: Any, installer: Any, writer: Any) -> int:
        _print_actions(cfg.name, installer.uninstall(dry_run=dry_run))
        return 0

    _each(_settings(settings_file), crm, run)


def check(settings_file: SettingsOption = None, crm: CrmOption = None) -> None:
    """Report what install should have created and is missing or has drifted."""
    from writeback.install import problems

    def run(cfg: Any, installer: Any, writer: Any) -> int:
        acts = installer.check()
        _print_actions(cfg.name, acts)
        bad = problems(acts)
        typer.echo(f"{cfg.name}: {len(bad)} problem(s)")
        return EXIT_FAILED if bad else 0

    _each(_settings(settings_file), crm, run)


def writeback(
    settings_file: SettingsOption = None, crm: CrmOption = None, dry_run: DryRun = False,
    today: Annotated[str | None, typer.Option(
        "--today", help="Day whose period fills the current-period fields, YYYY-MM-DD.")] = None,
) -> None:  # fmt: skip
    """Write the store's KPI values to each CRM: only what changed since the last write."""
    from writeback.run import writeback as run_writeback

    try:
        day = dt.date.fromisoformat(today) if today else None
    except ValueError:
        raise _fail(f"--today: expected YYYY-MM-DD, got {today!r}") from None
    settings = _settings(settings_file)

    def run(cfg: Any, installer: Any, writer: Any) -> int:
        store = _store(settings)
        try:
            rep = run_writeback(store, cfg.name, writer, settings.writeback, dry_run=dry_run,
                                today=day)  # fmt: skip
        finally:
            store.close()
        verb = "plan" if dry_run else "wrote"
        for t in rep.targets.values():
            typer.echo(
                f"{cfg.name}: {verb} {t.target}: {t.planned} to upsert, {t.deletes} to delete, "
                f"{t.unchanged} unchanged, {t.waiting} waiting to retry, {t.parked} parked"
                + ("" if dry_run else f"; {t.written} written, {t.deleted} deleted, "
                   f"{t.failed} refused")
            )  # fmt: skip
            for row in t.sample if dry_run else []:
                typer.echo(f"    {row.key}  value={row.payload.get('value', row.payload)}")
            for err in t.errors[:5]:
                typer.echo(f"    refused {err}")
        typer.echo(f"{cfg.name}: {rep.calls} API calls in {rep.seconds:.1f}s")
        return EXIT_FAILED if rep.failed else 0

    _each(settings, crm, run)


def register(app: typer.Typer) -> None:
    """Attach the writeback commands to the ``kpisync`` app."""
    app.command("install")(install)
    app.command("uninstall")(uninstall)
    app.command("check")(check)
    app.command("writeback")(writeback)
