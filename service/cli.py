"""The ``kpisync`` command line: one entry point for admins, managers and CI."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="kpisync",
    help=(
        "kpisync pulls leads, deals, activities and quotas from Salesforce and HubSpot, computes "
        "sales KPIs per rep, team and org, and writes them back into native CRM reports."
    ),
    no_args_is_help=True,
    add_completion=False,
)


def _register_subcommands() -> None:
    """Attach the command groups that live in other layers."""
    from sandbox.cli import app as sandbox_app

    app.add_typer(sandbox_app, name="sandbox")


_register_subcommands()
