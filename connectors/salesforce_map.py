"""Salesforce objects → canonical tables, as data (overridable by ``[mappings.salesforce]``).

The mapping mirrors ``sandbox/salesforce/seed.py`` (how the canonical org is written INTO
Salesforce), read in the other direction:

===========================  ===================================================================
UserRole → teams             Id, Name, ParentRoleId
User → reps                  Id, Name, Email, UserRoleId, ManagerId, IsActive
Account → accounts           Type → customer_status through ``customer_status_values``
Lead → leads                 Status, LeadSource; dates from the mapped custom fields;
                             converted_at from ConvertedDate (a date in Salesforce), refined to
                             the converted opportunity's CreatedDate when it falls on that day —
                             conversion creates the opportunity, so that is the conversion time
Opportunity → opportunities  Type through ``opportunity_types`` (unlisted → other);
                             currency = CurrencyIsoCode (corporate currency when single-currency)
OpportunityCompetitor        fills ``competitor``/``competitor_price`` of its opportunity
Task, Event → activities     TaskSubtype → kind; CallType → direction; CallDisposition →
                             outcome (``connected_call_dispositions`` → "connected"); WhoId
                             (00Q) → lead_id; WhatId (006) → opportunity_id; AccountId
ForecastingQuota → quotas    QuotaOwnerId, StartDate (+ ``quota_period_months``), QuotaAmount
DatedConversionRate → fx     IsoCode, StartDate, ConversionRate
CurrencyType                 stored raw only (dated rates are the canonical source)
===========================  ===================================================================

Fields come from ``describe``: a mapped custom field the org lacks leaves its column empty (and
is reported), an optional object the org lacks (no forecasting, no multi-currency) is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from connectors import values as v
from connectors.base import ObjectSpec, RawRecord
from connectors.errors import SkippableRecord
from connectors.store import CanonicalRow

LEAD_PREFIX, OPPORTUNITY_PREFIX = "00Q", "006"


@dataclass(frozen=True)
class SalesforceMapping:
    """``[mappings.salesforce]``: every key optional; defaults follow settings.example.toml."""

    qualified_lead_statuses: tuple[str, ...] = ("Qualified",)
    disqualified_lead_statuses: tuple[str, ...] = ("Unqualified",)
    opportunity_types: Mapping[str, str] = field(
        default_factory=lambda: {
            "New Customer": "new_business",
            "Existing Customer - Upgrade": "upsell",
            "Existing Customer - Replacement": "upsell",
            "Renewal": "renewal",
        }
    )
    connected_call_dispositions: tuple[str, ...] = ("Connected",)
    customer_status_values: Mapping[str, str] = field(
        default_factory=lambda: {
            "Customer": "customer",
            "Former Customer": "former_customer",
            "Prospect": "prospect",
        }
    )
    account_status_field: str = "Type"
    lead_qualified_at_field: str = "Qualified_Date__c"
    lead_disqualified_at_field: str = "Disqualified_Date__c"
    lead_score_field: str = "Lead_Score__c"
    opportunity_lead_field: str = "Lead__c"
    opportunity_cost_field: str = "Cost__c"
    opportunity_recurring_field: str = "Recurring_Monthly_Amount__c"
    opportunity_contract_start_field: str = "Contract_Start__c"
    opportunity_contract_end_field: str = "Contract_End__c"
    competitor_price_field: str = "Competitor_Price__c"
    quota_period_months: int = 1

    @classmethod
    def from_settings(cls, table: Mapping[str, Any]) -> SalesforceMapping:
        """Build from the TOML table; ``ValueError("key: problem")`` on a bad key or value."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in table.items():
            if key not in known:
                raise ValueError(f"{key}: unknown mapping key")
            default = getattr(cls(), key)
            if isinstance(default, tuple):
                if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                    raise ValueError(f"{key}: expected a list of strings")
                values[key] = tuple(value)
            elif isinstance(default, Mapping):
                if not isinstance(value, dict) or not all(
                    isinstance(x, str) for x in value.values()
                ):
                    raise ValueError(f"{key}: expected a table of strings")
                values[key] = dict(value)
            elif isinstance(default, bool) or type(value) is not type(default):
                raise ValueError(f"{key}: expected {type(default).__name__}, got {value!r}")
            else:
                values[key] = value
        for canonical in values.get("opportunity_types", {}).values():
            if canonical not in ("new_business", "upsell", "renewal", "other"):
                raise ValueError(f"opportunity_types: {canonical!r} is not a canonical type")
        return cls(**values)


def _get(record: RawRecord, name: str) -> Any:
    return record.get(name)


def _read(
    record: RawRecord, name: str, parse: Callable[[Any], str | None], what: str
) -> str | None:
    """``parse`` of one field; a value it cannot read is a quarantine reason naming the field."""
    value = record.get(name)
    if value is None:
        return None  # every parser reads a null as null; most custom fields are empty
    try:
        return parse(value)
    except (ValueError, OverflowError):
        raise SkippableRecord(f"{name}: cannot read {str(value)[:40]!r} as {what}") from None


def _ts(record: RawRecord, name: str) -> str | None:
    return _read(record, name, v.timestamp, "a timestamp")


def _day(record: RawRecord, name: str) -> str | None:
    return _read(record, name, v.date, "a date")


def _num(record: RawRecord, name: str) -> str | None:
    return _read(record, name, v.number, "a number")


def _flag(record: RawRecord, name: str) -> str | None:
    return _read(record, name, v.boolean, "a boolean")


def _prefixed(value: Any, prefix: str) -> str | None:
    s = v.text(value)
    return s if s is not None and s.startswith(prefix) else None


def build_objects(m: SalesforceMapping) -> list[ObjectSpec]:
    """The objects to sync, in dependency order (an opportunity before its competitor)."""
    connected = {d.lower() for d in m.connected_call_dispositions}

    def team(r: RawRecord) -> CanonicalRow:
        return {"id": v.text(r["Id"]), "name": v.text(r.get("Name")),
                "parent_id": v.text(r.get("ParentRoleId"))}  # fmt: skip

    def rep(r: RawRecord) -> CanonicalRow:
        return {
            "id": v.text(r["Id"]), "name": v.text(r.get("Name")), "email": v.text(r.get("Email")),
            "team_id": v.text(r.get("UserRoleId")), "manager_id": v.text(r.get("ManagerId")),
            "is_active": _flag(r, "IsActive"),
        }  # fmt: skip

    def account(r: RawRecord) -> CanonicalRow:
        status = v.text(r.get(m.account_status_field))
        return {
            "id": v.text(r["Id"]), "name": v.text(r.get("Name")),
            "owner_id": v.text(r.get("OwnerId")), "created_at": _ts(r, "CreatedDate"),
            "customer_status": None if status is None else m.customer_status_values.get(status),
        }  # fmt: skip

    def lead(r: RawRecord) -> CanonicalRow:
        converted = _flag(r, "IsConverted") == "true"
        return {
            "id": v.text(r["Id"]), "owner_id": v.text(r.get("OwnerId")),
            "created_at": _ts(r, "CreatedDate"),
            "source": v.text(r.get("LeadSource")), "status": v.text(r.get("Status")),
            "qualified_at": _ts(r, m.lead_qualified_at_field),
            # ConvertedDate is a date; Salesforce.finish() refines it (see module docstring).
            "converted_at": _ts(r, "ConvertedDate") if converted else None,
            "converted_account_id": v.text(r.get("ConvertedAccountId")),
            "converted_opportunity_id": v.text(r.get("ConvertedOpportunityId")),
            "disqualified_at": _ts(r, m.lead_disqualified_at_field),
            "score": _num(r, m.lead_score_field),
        }  # fmt: skip

    def opportunity(r: RawRecord) -> CanonicalRow:
        raw_type = v.text(r.get("Type"))
        is_closed = _flag(r, "IsClosed")
        is_won = _flag(r, "IsWon")
        if is_won == "true" and is_closed != "true":
            raise SkippableRecord("IsWon without IsClosed", object="Opportunity",
                                  record_id=v.text(r.get("Id")))  # fmt: skip
        return {
            "id": v.text(r["Id"]), "owner_id": v.text(r.get("OwnerId")),
            "account_id": v.text(r.get("AccountId")),
            "lead_id": v.text(r.get(m.opportunity_lead_field)),
            "created_at": _ts(r, "CreatedDate"),
            "close_date": _day(r, "CloseDate"), "stage": v.text(r.get("StageName")),
            "is_closed": is_closed, "is_won": is_won, "amount": _num(r, "Amount"),
            "currency": v.text(r.get("CurrencyIsoCode")),
            "type": None if raw_type is None else m.opportunity_types.get(raw_type, "other"),
            "cost": _num(r, m.opportunity_cost_field),
            "recurring_monthly_amount": _num(r, m.opportunity_recurring_field),
            "contract_start": _day(r, m.opportunity_contract_start_field),
            "contract_end": _day(r, m.opportunity_contract_end_field),
        }  # fmt: skip

    def competitor(r: RawRecord) -> CanonicalRow:
        return {"competitor": v.text(r.get("CompetitorName")),
                "competitor_price": _num(r, m.competitor_price_field)}  # fmt: skip

    def direction(value: Any) -> str | None:
        d = v.text(value)
        return d.lower() if d and d.lower() in ("inbound", "outbound") else None

    def task(r: RawRecord) -> CanonicalRow:
        subtype = (v.text(r.get("TaskSubtype")) or "Task").lower()
        kind = {"call": "call", "email": "email", "listemail": "email"}.get(subtype, "task")
        outcome = v.text(r.get("CallDisposition"))
        if outcome is not None and outcome.lower() in connected:
            outcome = "connected"
        seconds = _num(r, "CallDurationInSeconds")
        occurred = (_ts(r, "CompletedDateTime") or _ts(r, "ActivityDate")
                    or _ts(r, "CreatedDate"))  # fmt: skip
        return {
            "id": v.text(r["Id"]), "owner_id": v.text(r.get("OwnerId")), "kind": kind,
            "direction": direction(r.get("CallType")), "outcome": outcome,
            "occurred_at": occurred,
            "duration_minutes": None if seconds is None or kind != "call"
            else v.number(float(seconds) / 60),
            "lead_id": _prefixed(r.get("WhoId"), LEAD_PREFIX),
            "account_id": v.text(r.get("AccountId")),
            "opportunity_id": _prefixed(r.get("WhatId"), OPPORTUNITY_PREFIX),
        }  # fmt: skip

    def event(r: RawRecord) -> CanonicalRow:
        occurred = _ts(r, "StartDateTime") or _ts(r, "ActivityDateTime")
        return {
            "id": v.text(r["Id"]), "owner_id": v.text(r.get("OwnerId")), "kind": "meeting",
            "direction": None, "outcome": None, "occurred_at": occurred,
            "duration_minutes": _num(r, "DurationInMinutes"),
            "lead_id": _prefixed(r.get("WhoId"), LEAD_PREFIX),
            "account_id": v.text(r.get("AccountId")),
            "opportunity_id": _prefixed(r.get("WhatId"), OPPORTUNITY_PREFIX),
        }  # fmt: skip

    def quota(r: RawRecord) -> CanonicalRow:
        start = _day(r, "StartDate")
        if start is None:
            raise SkippableRecord("StartDate is empty")
        try:
            end = v.add_months(start, m.quota_period_months)
        except ValueError:
            raise SkippableRecord(f"StartDate: {start} plus the quota period is past year 9999"
                                  ) from None  # fmt: skip
        return {
            "owner_id": v.text(r.get("QuotaOwnerId")), "period_start": start,
            "period_end": end,
            "amount": _num(r, "QuotaAmount"), "currency": v.text(r.get("CurrencyIsoCode")),
        }  # fmt: skip

    def fx(r: RawRecord) -> CanonicalRow:
        return {"currency": v.text(r.get("IsoCode")), "start_date": _day(r, "StartDate"),
                "rate": _num(r, "ConversionRate")}  # fmt: skip

    system = ("Id", "IsDeleted", "SystemModstamp", "CreatedDate", "LastModifiedDate")
    S = ObjectSpec
    return [
        S("UserRole", "teams", fields=(*system, "Name", "ParentRoleId"), normalise=team),
        S(
            "User",
            "reps",
            fields=(*system, "Name", "Email", "UserRoleId", "ManagerId", "IsActive"),
            normalise=rep,
        ),
        S(
            "Account",
            "accounts",
            fields=(*system, "Name", "OwnerId", m.account_status_field),
            normalise=account,
        ),
        S(
            "Opportunity",
            "opportunities",
            fields=(
                *system,
                "OwnerId",
                "AccountId",
                "StageName",
                "IsClosed",
                "IsWon",
                "Amount",
                "CloseDate",
                "Type",
                "CurrencyIsoCode",
                m.opportunity_lead_field,
                m.opportunity_cost_field,
                m.opportunity_recurring_field,
                m.opportunity_contract_start_field,
                m.opportunity_contract_end_field,
            ),
            normalise=opportunity,
        ),
        S(
            "OpportunityCompetitor",
            "opportunities",
            fields=(*system, "OpportunityId", "CompetitorName", m.competitor_price_field),
            normalise=competitor,
            mode="update",
            row_key=lambda r: v.text(r.get("OpportunityId")),
            cleared=("competitor", "competitor_price"),
            optional=True,
        ),
        S(
            "Lead",
            "leads",
            fields=(
                *system,
                "OwnerId",
                "LeadSource",
                "Status",
                "IsConverted",
                "ConvertedDate",
                "ConvertedAccountId",
                "ConvertedOpportunityId",
                m.lead_qualified_at_field,
                m.lead_disqualified_at_field,
                m.lead_score_field,
            ),
            normalise=lead,
        ),
        S(
            "Task",
            "activities",
            fields=(
                *system,
                "OwnerId",
                "TaskSubtype",
                "CallType",
                "CallDisposition",
                "CallDurationInSeconds",
                "CompletedDateTime",
                "ActivityDate",
                "WhoId",
                "WhatId",
                "AccountId",
            ),
            normalise=task,
        ),
        S(
            "Event",
            "activities",
            fields=(
                *system,
                "OwnerId",
                "StartDateTime",
                "ActivityDateTime",
                "DurationInMinutes",
                "WhoId",
                "WhatId",
                "AccountId",
            ),
            normalise=event,
        ),
        S(
            "ForecastingQuota",
            "quotas",
            fields=(
                *system,
                "QuotaOwnerId",
                "StartDate",
                "QuotaAmount",
                "CurrencyIsoCode",
            ),
            normalise=quota,
            optional=True,
        ),
        S(
            "DatedConversionRate",
            "fx_rates",
            fields=(*system, "IsoCode", "StartDate", "ConversionRate"),
            normalise=fx,
            optional=True,
        ),
        S(
            "CurrencyType",
            None,
            fields=(*system, "IsoCode", "ConversionRate", "IsCorporate", "IsActive"),
            optional=True,
        ),
    ]
