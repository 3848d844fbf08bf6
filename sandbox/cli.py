"""``kpisync sandbox ...``: the local CRM sandbox (seed and serve)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(
    help="Local Salesforce and HubSpot sandboxes over real HTTPS, seeded with a generated org.",
    no_args_is_help=True,
)


def _size(value: str) -> str | int:
    """``small|medium|large`` or a number of opportunities."""
    return int(value) if value.isdigit() else value


@app.command()
def seed(
    size: str = typer.Option("small", help="small, medium, large or a number of opportunities"),
    seed: int = typer.Option(0, help="random seed: the same seed gives the same org"),
    crm: str = typer.Option("salesforce", help="whose ids to write: salesforce or hubspot"),
    out: Path = typer.Option(..., help="directory for the canonical CSV files"),
) -> None:
    """Write the generated org as canonical CSVs, with the ids that CRM's sandbox gives them."""
    from sandbox.generator import generate_org, spec_for, with_crm_ids, write_canonical_csv

    if crm not in ("salesforce", "hubspot"):
        raise typer.BadParameter("--crm must be salesforce or hubspot")
    org = with_crm_ids(generate_org(spec_for(_size(size), seed)), crm)  # type: ignore[arg-type]
    paths = write_canonical_csv(org, out)
    for table, path in paths.items():
        typer.echo(f"{table}: {path}", err=True)


def build_apps(
    size: str | int, seed: int, *, salesforce_api_budget: int | None = None
) -> tuple[list[Any], str]:
    """The sandbox CRM apps over one generated org, and the org's corporate currency."""
    from sandbox.generator import generate_org, spec_for
    from sandbox.salesforce import SalesforceApp

    org = generate_org(spec_for(size, seed))
    sf_kw: dict[str, Any] = {}
    if salesforce_api_budget is not None:
        sf_kw["daily_api_requests"] = salesforce_api_budget
    apps: list[Any] = [SalesforceApp.from_org(org, **sf_kw)]
    try:
        from sandbox.hubspot import create_app
    except ImportError:  # the HubSpot sandbox is optional
        create_app = None  # type: ignore[assignment]
    if create_app is not None:
        apps.append(create_app(org=org))
    return apps, org.spec.corporate_currency


def handshake(server: Any, apps: list[Any]) -> dict[str, Any]:
    """The JSON line ``serve`` prints once the CRMs accept connections."""
    out: dict[str, Any] = {}
    for a in apps:
        out[a.name] = a.connection_info()
    out["ca_bundle"] = server.ca_bundle
    out["control_url"] = server.control_url()
    return out


def _toml_str(value: Any) -> str:
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def settings_toml(info: dict[str, Any], corporate_currency: str) -> str:
    """A kpisync settings file pointing at the sandbox (throwaway sandbox credentials only)."""
    lines = ["[kpi]", f"corporate_currency = {_toml_str(corporate_currency)}",
             'timezone = "UTC"', ""]  # fmt: skip
    sf = info.get("salesforce")
    if sf:
        lines += [
            "[connections.salesforce]", 'crm = "salesforce"',
            f"instance_url = {_toml_str(sf['instance_url'])}",
            f"token_url = {_toml_str(sf['token_url'])}",
            f"client_id = {_toml_str(sf['client_id'])}",
            f"client_secret = {_toml_str(sf['client_secret'])}",
            f"ca_bundle = {_toml_str(info['ca_bundle'])}", "",
        ]  # fmt: skip
    hs = info.get("hubspot")
    if hs:
        lines += [
            "[connections.hubspot]", 'crm = "hubspot"',
            f"base_url = {_toml_str(hs['base_url'])}",
            f"access_token = {_toml_str(hs['access_token'])}",
            f"ca_bundle = {_toml_str(info['ca_bundle'])}", "",
        ]  # fmt: skip
    return "\n".join(lines)


@app.command()
def serve(
    size: str = typer.Option("small", help="small, medium, large or a number of opportunities"),
    seed: int = typer.Option(0, help="random seed of the generated org"),
    latency_ms: int = typer.Option(0, help="latency added to every CRM call"),
    write_settings: Path | None = typer.Option(None, help="write a kpisync settings TOML here"),
    salesforce_port: int = typer.Option(0, help="port for Salesforce (0 = any free port)"),
    hubspot_port: int = typer.Option(0, help="port for HubSpot (0 = any free port)"),
    salesforce_api_budget: int | None = typer.Option(
        None, help="Salesforce daily API request budget (default 1,000,000)"
    ),
) -> None:
    """Run the sandbox CRMs until SIGTERM/SIGINT; print one JSON line once they are up."""
    from sandbox.server import SandboxServer, tune_collector

    apps, currency = build_apps(_size(size), seed, salesforce_api_budget=salesforce_api_budget)
    tune_collector()
    server = SandboxServer(
        apps, latency_ms=latency_ms,
        ports={"salesforce": salesforce_port, "hubspot": hubspot_port},
    )  # fmt: skip
    server.start()
    info = handshake(server, apps)
    if write_settings is not None:
        write_settings.parent.mkdir(parents=True, exist_ok=True)
        write_settings.write_text(settings_toml(info, currency), encoding="utf-8")
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
    server.run_until_signal()
