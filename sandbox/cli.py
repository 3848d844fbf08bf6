"""``kpisync sandbox ...``: the local CRM sandbox (seed and serve)."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Local Salesforce and HubSpot sandboxes over real HTTPS, seeded with a generated org.",
    no_args_is_help=True,
)
