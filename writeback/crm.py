"""Open the installer and writer of a configured connection (Salesforce or HubSpot)."""

from __future__ import annotations

from typing import Any

from connectors.config import ConnectionConfig
from connectors.errors import ConfigError
from connectors.store import Store
from writeback.settings import WritebackSettings
from writeback.spec import build_spec


def open_crm(cfg: ConnectionConfig, settings: WritebackSettings, store: Store) -> tuple[Any, Any]:
    """(installer, writer) for ``cfg``, sharing one client (one login, one API budget)."""
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
