"""The ``[writeback]`` options (parsed and checked by ``service.settings``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class WritebackSettings:
    """How install and writeback behave; the same for every connection."""

    #: Namespace of everything install creates (``KS_`` gives ``KS_KPI_Snapshot__c``,
    #: ``ks_kpi_snapshot``); empty keeps the documented default names.
    prefix: str = ""
    #: KPI keys written as current-period fields on the Salesforce User (rep-scope KPIs).
    user_fields: tuple[str, ...] = ()
    #: Salesforce users (User ids or usernames) given the permission set, besides the API user.
    assignees: tuple[str, ...] = ()
    #: A row the CRM refused this many times is parked (shown by ``kpisync status``).
    max_failures: int = 5
    #: Backoff of a refused row: retried after base * 2**(failures-1) seconds, capped at a day.
    retry_base_s: float = 300.0
    #: Rows refused as locked are re-sent within the same run this many times.
    lock_retries: int = 2
    #: Metric -> KPI whose value is its target (``revenue = "quota"`` fills Target__c).
    targets: dict[str, str] = field(default_factory=dict)
    #: Existing CRM fields the admin lets writeback write (``"User.Revenue_KPI__c"``), besides
    #: the ones install created.
    mapped_fields: tuple[str, ...] = ()
