"""Build the right :class:`~connectors.base.Source` for a configured connection."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from connectors.base import AfterBatch, Progress, SyncResult, sync_connection
from connectors.config import ConnectionConfig
from connectors.errors import ConfigError
from connectors.http import BudgetGuard, RetryPolicy
from connectors.store import Store


def open_source(
    cfg: ConnectionConfig, mappings: Mapping[str, Mapping[str, Any]], store: Store
) -> Any:
    """A ready Source for ``cfg`` (HubSpot's is built by ``connectors.hubspot``)."""
    if cfg.crm == "salesforce":
        from connectors.salesforce import SalesforceSource
        from connectors.salesforce_map import SalesforceMapping

        try:
            mapping = SalesforceMapping.from_settings(mappings.get("salesforce", {}))
        except ValueError as exc:
            raise ConfigError(f"mappings.salesforce.{exc}", crm="salesforce") from None
        return SalesforceSource(cfg, mapping)
    if cfg.crm == "hubspot":
        return _hubspot_source(cfg, mappings.get("hubspot", {}), store)
    raise ConfigError(f"unknown crm {cfg.crm!r}")


def hubspot_access(cfg: ConnectionConfig) -> tuple[Any, Any]:
    """(credentials, limits) of a HubSpot connection: what sync and writeback both build their
    :class:`~connectors.hubspot_http.HubSpotHttp` from, so an admin's caps hold for both."""
    from connectors.hubspot_http import HubSpotCredentials, Limits

    def secret(value: Any) -> str | None:
        return None if value is None else str(value.get())

    o = cfg.options
    credentials = HubSpotCredentials(
        access_token=secret(cfg.access_token), client_id=cfg.client_id,
        client_secret=secret(cfg.client_secret), refresh_token=secret(cfg.refresh_token),
    )  # fmt: skip
    limits = Limits(
        budget_share=o.budget_share, timeout_s=o.timeout_s,
        max_requests_per_10s=o.hubspot_requests_per_10s, concurrency=o.hubspot_concurrency,
        retry=RetryPolicy(o.retry_attempts, o.retry_base_s, o.retry_cap_s),
    )  # fmt: skip
    return credentials, limits


def _hubspot_source(cfg: ConnectionConfig, mapping: Mapping[str, Any], store: Store) -> Any:
    from connectors.hubspot import HubSpotSettings, HubSpotSource
    from connectors.hubspot_mapping import HubSpotMapping

    credentials, limits = hubspot_access(cfg)
    settings = HubSpotSettings(
        connection=cfg.name, credentials=credentials, base_url=cfg.base_url,
        ca_bundle=cfg.ca_bundle, limits=limits, mapping=HubSpotMapping.from_settings(mapping),
    )  # fmt: skip
    return HubSpotSource(settings, store)


def budget_of(source: Any) -> BudgetGuard | None:
    """The budget guard behind a source's choke point, if it exposes one."""
    for holder in ("client", "http"):
        guard = getattr(getattr(source, holder, None), "guard", None)
        budget = getattr(guard, "budget", None)
        if isinstance(budget, BudgetGuard):
            return budget
    return None


def sync(
    store: Store,
    cfg: ConnectionConfig,
    mappings: Mapping[str, Mapping[str, Any]],
    *,
    full: bool = False,
    progress: Progress | None = None,
    after_batch: AfterBatch | None = None,
    source_factory: Callable[..., Any] = open_source,
) -> SyncResult:
    """One sync of one connection; the CRM's last usage report is kept for ``status``."""
    source = source_factory(cfg, mappings, store)
    try:
        return sync_connection(
            store, cfg.name, source, full=full, progress=progress, after_batch=after_batch
        )
    finally:
        budget = budget_of(source)
        if budget is not None and budget.used is not None and budget.limit is not None:
            store.record_api_usage(cfg.name, used=budget.used, limit=budget.limit)
