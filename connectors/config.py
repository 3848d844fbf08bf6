"""Typed, frozen connection settings the connectors receive (parsed by ``service.settings``).

Connectors never read files or the environment themselves: ``service.settings`` resolves every
``*_env`` / ``*_file`` key into a :class:`Secret` once, at load time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Crm = Literal["salesforce", "hubspot"]


class Secret:
    """A secret value that never shows itself in ``repr``/``str``/logs (like pydantic SecretStr)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class SyncOptions:
    """How a sync behaves (``[sync]`` defaults, overridable per connection)."""

    #: Share of the CRM's daily API allowance the org may reach before kpisync pauses.
    budget_share: float = 0.2
    #: Above this many rows an object is pulled through Bulk API 2.0 (Salesforce); below it,
    #: when a job costs fewer calls than the further REST pages.
    bulk_threshold: int = 50_000
    #: Re-read this many seconds before the cursor: late-committed SystemModstamps (G6).
    lookback_s: int = 600
    #: Client-side rate limit, calls per second (0 = none). Salesforce.
    rate_per_s: float = 20.0
    #: HubSpot: calls per rolling 10 s at most (0 = what the portal advertises in its
    #: X-HubSpot-RateLimit-Max header; a lower number leaves room for other integrations).
    hubspot_requests_per_10s: int = 0
    #: HubSpot: objects pulled side by side (1 = one after another), so calls in flight at once;
    #: the pace above holds whatever this is.
    hubspot_concurrency: int = 4
    retry_attempts: int = 8
    retry_base_s: float = 0.5
    retry_cap_s: float = 60.0
    timeout_s: float = 120.0
    #: Re-describe objects (field lists) at most this often; a quiet cycle stays ~1 call.
    describe_ttl_s: int = 86_400
    #: First poll of a Bulk API 2.0 job after this many seconds; each later wait doubles.
    bulk_poll_s: float = 2.0


@dataclass(frozen=True)
class ConnectionConfig:
    """One ``[connections.NAME]`` table."""

    name: str
    crm: Crm
    # Salesforce: instance_url (+ token_url, default {instance_url}/services/oauth2/token).
    # HubSpot: base_url (default https://api.hubapi.com).
    instance_url: str | None = None
    token_url: str | None = None
    base_url: str | None = None
    #: client_credentials | jwt | refresh_token (Salesforce); private_app | refresh_token (HubSpot)
    auth: str = "client_credentials"
    client_id: str | None = None
    client_secret: Secret | None = None
    username: str | None = None
    private_key: Secret | None = None
    refresh_token: Secret | None = None
    access_token: Secret | None = None
    jwt_audience: str = "https://login.salesforce.com"
    api_version: str = "59.0"
    #: CA bundle to trust instead of the system store (the sandbox's generated CA).
    ca_bundle: str | None = None
    options: SyncOptions = field(default_factory=SyncOptions)
