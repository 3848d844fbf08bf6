"""Open the installer and writer of a configured connection (Salesforce or HubSpot)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from connectors.config import ConnectionConfig
from connectors.errors import ConfigError
from connectors.store import Store, utcnow
from writeback.settings import WritebackSettings
from writeback.spec import build_spec

#: A usage report this recent still holds for a new client of the same connection: within a
#: cycle, the writeback knows what the sync's last call was told.
USAGE_FRESH_S = 600.0


def open_crm(cfg: ConnectionConfig, settings: WritebackSettings, store: Store) -> tuple[Any, Any]:
    """(installer, writer) for ``cfg``, sharing one client (one login, one API budget)."""
    installer, writer = _open_crm(cfg, settings, store)
    _seed_budget(writer, store, cfg.name)
    return installer, writer


def _seed_budget(writer: Any, store: Store, connection: str) -> None:
    """Start the writer's budget guard from the connection's latest usage report, so a budget
    the sync found spent is not spent further by one more call to learn it again."""
    from connectors.sources import budget_of

    budget = budget_of(writer)
    usage = store.api_usage(connection)
    if budget is None or usage is None:
        return
    used, limit, observed_at = usage
    if utcnow() - observed_at <= dt.timedelta(seconds=USAGE_FRESH_S):
        budget.observe(used, limit)


def _open_crm(cfg: ConnectionConfig, settings: WritebackSettings, store: Store) -> tuple[Any, Any]:
    spec = build_spec(settings)
    if cfg.crm == "salesforce":
        from connectors.salesforce import SalesforceClient
        from writeback.salesforce import SalesforceInstaller, SalesforceWriter

        client = SalesforceClient(cfg)
        return (SalesforceInstaller(client, spec, settings, store, cfg.name),
                SalesforceWriter(client, spec, settings))  # fmt: skip
    if cfg.crm == "hubspot":
        from writeback.hubspot import HubSpotInstaller, HubSpotWriter, hubspot_http

        http = hubspot_http(cfg)
        return (HubSpotInstaller(http, spec, settings, store, cfg.name),
                HubSpotWriter(http, spec, settings))  # fmt: skip
    raise ConfigError(f"unknown crm {cfg.crm!r}")
