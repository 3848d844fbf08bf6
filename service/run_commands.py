"""``kpisync run``: the background service, or one cycle with ``--once``.

Exit codes of ``run --once``: 0 every connection's cycle fully succeeded, 1 one failed (or another
process held it longer than ``[service] lock_wait_s``), 2 usage or settings error, 75 one paused on
its API budget or was stopped by a signal (EX_TEMPFAIL: it resumes from its checkpoints). The
service itself exits 0 after a clean stop on SIGTERM/SIGINT.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

import typer

from service.settings import SettingsError
from service.sync_commands import (
    CrmOption,
    SettingsOption,
    _fail,
    _RichProgress,
    _settings,
    _sync_bar,
    console,
)


def run(
    settings_file: SettingsOption = None,
    crm: CrmOption = None,
    once: Annotated[
        bool, typer.Option("--once", help="Run one cycle of each connection now, then exit.")
    ] = False,
) -> None:
    """Run sync → compute → writeback for every connection (or --crm NAME) on the schedule of
    [service] (interval_s or cron), until SIGTERM. Several processes may share one PostgreSQL
    store: each connection's cycle runs in one of them at a time."""
    from service.observability import setup_logging
    from service.runner import Runner, stop_on_signals

    settings = _settings(settings_file)
    setup_logging(settings.service.log_format, settings.service.log_level)
    try:
        runner = Runner(settings, [crm] if crm else None)
    except SettingsError as exc:
        raise _fail(str(exc)) from None
    if not runner.configs:
        raise _fail(f"{settings.source}: no [connections.NAME] configured")
    interactive = once and console.is_terminal and settings.service.log_format == "human"

    @contextlib.contextmanager
    def progress_for(name: str) -> Iterator[_RichProgress | None]:
        with _sync_bar(transient=True) as bar:
            yield _RichProgress(bar, name)

    with stop_on_signals(runner):
        code = runner.once(progress_for if interactive else None) if once else runner.serve()
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Attach ``kpisync run`` to the ``kpisync`` app."""
    app.command("run")(run)
