"""Fuzzed CRM records: malformed variants of real records of a sandbox org, with what the canonical
contract says must become of each.

Every fuzzed record starts from a record the org was seeded with (so it has owners, accounts and
dates inside the KPI periods: were it wrongly accepted, the KPIs would change) and breaks one
thing. ``expect`` is the quarantine reason the record must get — a text naming the field and the
problem — or ``None`` when the contract holds the value legitimate and the record must be stored
(``note`` says why). Records are written through the sandbox's raw control-plane endpoint, as an
import or a broken integration would leave them.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

CATEGORIES = (
    "null_required",
    "wrong_type",
    "unknown_picklist",
    "unknown_currency",
    "long_string",
    "extreme_date",
    "negative_amount",
    "nan_amount",
    "unicode",
    "duplicate_id",
)
LONG = "x" * 100_000  # a 100 kB string
UNICODE_TEXTS = (
    "Zoë Ångström-Łukasiewicz",
    "株式会社テスト 🚀",
    "שלום \u200f עולם",  # right-to-left with a right-to-left mark
    "e\u0301\u0301\u0301 combining",
    "zero\u200bwidth\ufeffjoiners",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 👩‍👩‍👧‍👦",
)
#: How many records each base case is written as (spread over owners), to reach > 1,000.
COPIES = 16


@dataclass
class Fuzz:
    """One fuzzed record; ``record_id`` is filled in once the sandbox stored it."""

    crm: str
    object: str
    category: str
    record: dict[str, Any]
    #: Expected quarantine reason (a substring), or None: stored.
    expect: str | None
    #: Where the quarantine entry is: the CRM object, or ``canonical.<table>`` for the rows
    #: the KPI engine refuses as a whole table (a currency without a rate).
    quarantine_object: str | None = None
    note: str = ""
    record_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return self.quarantine_object or self.object


def _json(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


_SF_SYSTEM = ("Id", "IsDeleted", "CreatedById", "LastModifiedDate", "LastModifiedById",
              "SystemModstamp")  # fmt: skip


def _sf_templates(
    app: Any, obj: str, n: int, where: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    out = []
    for row in app.org.tables[obj].frame().iter_rows(named=True):
        if where(row):
            out.append({k: _json(v) for k, v in row.items() if k not in _SF_SYSTEM})
        if len(out) == n:
            break
    assert out, f"no {obj} template"
    return out


def salesforce_cases(app: Any) -> list[Fuzz]:
    """Fuzzed Salesforce records (types the platform itself enforces are left out: see
    ``test_salesforce_refuses_wrongly_typed_values``)."""

    def anyrow(row: dict[str, Any]) -> bool:
        return True

    opps = _sf_templates(app, "Opportunity", COPIES, lambda r: not r["IsClosed"])
    leads = _sf_templates(app, "Lead", COPIES, lambda r: not r["IsConverted"])
    accounts = _sf_templates(app, "Account", COPIES, anyrow)
    tasks = _sf_templates(app, "Task", COPIES, lambda r: r["TaskSubtype"] == "Call")
    events = _sf_templates(app, "Event", COPIES, anyrow)
    quotas = _sf_templates(app, "ForecastingQuota", COPIES, anyrow)
    users = _sf_templates(app, "User", COPIES, lambda r: r["UserRoleId"] is not None)
    base: list[tuple[str, list[dict[str, Any]], str, dict[str, Any], str | None, str | None, str]]
    base = [
        # -- nulls where the contract requires a value
        ("Opportunity", opps, "null_required", {"CreatedDate": None}, "created_at is required",
         None, ""),
        ("Opportunity", opps, "null_required", {"IsClosed": None}, "is_closed is required",
         None, ""),
        ("Lead", leads, "null_required", {"CreatedDate": None}, "created_at is required", None,
         ""),
        ("Task", tasks, "null_required",
         {"CompletedDateTime": None, "ActivityDate": None, "CreatedDate": None},
         "occurred_at is required", None, ""),
        ("Event", events, "null_required", {"StartDateTime": None, "ActivityDateTime": None},
         "occurred_at is required", None, ""),
        ("ForecastingQuota", quotas, "null_required", {"QuotaAmount": None},
         "amount is required", None, ""),
        ("ForecastingQuota", quotas, "null_required", {"StartDate": None},
         "StartDate is empty", None, ""),
        ("ForecastingQuota", quotas, "null_required", {"QuotaOwnerId": None},
         "owner_id is required", None, ""),
        # -- picklist values the org does not define (an import skips picklist checks)
        ("Opportunity", opps, "unknown_picklist", {"Type": "Barter Deal"}, None, None,
         "an unlisted Opportunity.Type is canonical type 'other' (salesforce_map)"),
        ("Opportunity", opps, "unknown_picklist", {"StageName": "Stage 7 (legacy)"}, None, None,
         "stage is free text in the contract"),
        ("Account", accounts, "unknown_picklist", {"Type": "Reseller"}, None, None,
         "an unmapped Account.Type leaves customer_status empty (customer_status_values)"),
        ("Lead", leads, "unknown_picklist", {"Status": "Nurture"}, None, None,
         "lead status is free text in the contract"),
        ("Task", tasks, "unknown_picklist", {"CallType": "Sideways"}, None, None,
         "an unknown CallType is no direction (outbound, inbound or empty)"),
        # -- currencies without an exchange rate: only the whole table can tell
        ("Opportunity", opps, "unknown_currency", {"CurrencyIsoCode": "XTS"},
         "unknown currency XTS", "canonical.opportunities", ""),
        ("ForecastingQuota", quotas, "unknown_currency", {"CurrencyIsoCode": "ZZZ"},
         "unknown currency ZZZ", "canonical.quotas", ""),
        # -- 100 kB strings
        ("Opportunity", opps, "long_string", {"StageName": LONG}, "stage is longer than 10000",
         None, ""),
        ("Account", accounts, "long_string", {"Name": LONG}, "name is longer than 10000", None,
         ""),
        ("Lead", leads, "long_string", {"LeadSource": LONG}, "source is longer than 10000", None,
         ""),
        ("Task", tasks, "long_string", {"CallDisposition": LONG},
         "outcome is longer than 10000", None, ""),
        ("User", users, "long_string", {"Email": LONG + "@example.com"},
         "email is longer than 10000", None, ""),
        # -- dates in year 0001 and 9999
        ("Opportunity", opps, "extreme_date", {"CloseDate": "0001-01-01"},
         "close_date is outside 1900..2199", None, ""),
        ("Opportunity", opps, "extreme_date", {"CreatedDate": "9999-12-31T00:00:00.000+0000"},
         "created_at is outside 1900..2199", None, ""),
        ("Lead", leads, "extreme_date", {"CreatedDate": "0001-01-01T00:00:00.000+0000"},
         "created_at is outside 1900..2199", None, ""),
        ("Account", accounts, "extreme_date", {"CreatedDate": "9999-12-31T23:59:59.000+0000"},
         "created_at is outside 1900..2199", None, ""),
        ("Task", tasks, "extreme_date", {"CompletedDateTime": "9999-12-31T00:00:00.000+0000"},
         "occurred_at is outside 1900..2199", None, ""),
        ("Event", events, "extreme_date", {"StartDateTime": "0001-01-01T00:00:00.000+0000"},
         "occurred_at is outside 1900..2199", None, ""),
        ("ForecastingQuota", quotas, "extreme_date", {"StartDate": "9999-12-01"},
         "StartDate: 9999-12-01 plus the quota period is past year 9999", None, ""),
        ("ForecastingQuota", quotas, "extreme_date", {"StartDate": "0001-01-01"},
         "period_start is outside 1900..2199", None, ""),
        # -- negative money (the contract has no credit notes: kpis.validate refuses them)
        ("Opportunity", opps, "negative_amount", {"Amount": -5000.0}, "amount is negative",
         None, ""),
        ("Opportunity", opps, "negative_amount", {"Cost__c": -1.0}, "cost is negative", None,
         ""),
        ("ForecastingQuota", quotas, "negative_amount", {"QuotaAmount": -1200.0},
         "amount is negative", None, ""),
        # -- unicode edge cases: legitimate text, stored as given; NUL cannot be stored
        ("Account", accounts, "unicode", {"Name": "{text}"}, None, None,
         "any Unicode text is a legitimate name"),
        ("Lead", leads, "unicode", {"LeadSource": "{text}"}, None, None,
         "any Unicode text is a legitimate source"),
        # (User.Name is what the platform derives from FirstName and LastName.)
        ("User", users, "unicode", {"FirstName": "{text}", "LastName": None, "Name": "{text}"},
         None, None, "any Unicode text is a legitimate name"),
        ("Account", accounts, "unicode", {"Name": "Acme\x00Corp"},
         "name contains a NUL character", None, ""),
    ]  # fmt: skip
    cases: list[Fuzz] = []
    for obj, templates, category, change, expect, where, note in base:
        for i, template in enumerate(templates[:COPIES]):
            values = {**template, **_fill(change, i)}
            if obj == "User":
                values["Username"] = f"fuzz{len(cases)}@example.com"
            cases.append(Fuzz("salesforce", obj, category, values, expect, where, note))
    return cases


def _fill(change: dict[str, Any], i: int) -> dict[str, Any]:
    text = UNICODE_TEXTS[i % len(UNICODE_TEXTS)] + f" #{i}"
    return {k: (text if v == "{text}" else v) for k, v in change.items()}


def _hs_templates(app: Any, obj: str, n: int, assoc: tuple[str, ...]) -> list[dict[str, Any]]:
    table = app.portal.tables[obj]
    out = []
    for row in itertools.islice(table.base.iter_rows(named=True), n):
        props = {k: v for k, v in row.items() if not k.startswith("_") and k != "id"}
        links = {
            to: [str(t) for t, _ in app.portal.assoc.targets(obj, to, row["id"])] for to in assoc
        }
        created = dt.datetime.fromtimestamp(row["_created_ms"] / 1000, dt.UTC)
        out.append({"properties": props, "createdAt": created.isoformat(),
                    "associations": {k: v for k, v in links.items() if v}})  # fmt: skip
    assert out, f"no {obj} template"
    return out


def hubspot_cases(app: Any) -> list[Fuzz]:
    """Fuzzed HubSpot records (every HubSpot value is a string, so wrong types arrive too)."""
    engagement = ("contacts", "companies", "deals")
    deals = _hs_templates(app, "deals", COPIES, ("companies", "contacts"))
    contacts = _hs_templates(app, "contacts", COPIES, ("deals",))
    companies = _hs_templates(app, "companies", COPIES, ())
    calls = _hs_templates(app, "calls", COPIES, engagement)
    meetings = _hs_templates(app, "meetings", COPIES, engagement)
    goals = _hs_templates(app, "goal_targets", COPIES, ())
    open_deal = {"dealstage": "appointmentscheduled", "hs_is_closed": "false",
                 "hs_is_closed_won": "false"}  # fmt: skip
    base: list[tuple[str, list[dict[str, Any]], str, dict[str, Any], str | None, str | None, str]]
    base = [
        # -- nulls where a value is required
        ("calls", calls, "null_required", {"hs_timestamp": None}, "call has no hs_timestamp",
         None, ""),
        ("meetings", meetings, "null_required", {"hs_timestamp": None},
         "meeting has no hs_timestamp", None, ""),
        ("goal_targets", goals, "null_required", {"hs_target_amount": None},
         "goal target without hs_target_amount", None, ""),
        ("goal_targets", goals, "null_required", {"hs_start_datetime": None},
         "goal target without start or end", None, ""),
        # -- wrong types: text where a number, date or boolean belongs
        ("deals", deals, "wrong_type", {"amount": "twelve thousand"},
         "amount: not a number: 'twelve thousand'", None, ""),
        ("deals", deals, "wrong_type", {"closedate": "next tuesday"},
         "closedate: not a datetime: 'next tuesday'", None, ""),
        ("deals", deals, "wrong_type", {"hs_is_closed": "maybe"},
         "hs_is_closed: not a boolean: 'maybe'", None, ""),
        ("contacts", contacts, "wrong_type", {"hubspotscore": "high"},
         "hubspotscore: not a number: 'high'", None, ""),
        ("calls", calls, "wrong_type", {"hs_call_duration": "5 min"},
         "hs_call_duration: not a number: '5 min'", None, ""),
        ("goal_targets", goals, "wrong_type", {"hs_target_amount": "lots"},
         "hs_target_amount: not a number: 'lots'", None, ""),
        # -- option values the portal does not define
        ("companies", companies, "unknown_picklist", {"customer_status": "partner"},
         "customer status 'partner' is not customer/former_customer/prospect", None, ""),
        ("deals", deals, "unknown_picklist", {"dealtype": "barter"}, None, None,
         "an unlisted dealtype is canonical type 'other' (HubSpotMapping.deal_types)"),
        ("deals", deals, "unknown_picklist", {**open_deal, "dealstage": "legacy-stage-7"}, None,
         None, "a stage the pipelines do not know is an open deal labelled by its id"),
        ("contacts", contacts, "unknown_picklist", {"hs_lead_status": "NURTURE"}, None, None,
         "lead status is free text in the contract"),
        ("calls", calls, "unknown_picklist", {"hs_call_direction": "SIDEWAYS"}, None, None,
         "an unknown call direction is no direction (outbound, inbound or empty)"),
        # -- currencies without an exchange rate
        ("deals", deals, "unknown_currency", {"deal_currency_code": "XTS"},
         "unknown currency XTS", "canonical.opportunities", ""),
        ("goal_targets", goals, "unknown_currency", {"hs_currency": "ZZZ"},
         "unknown currency ZZZ", "canonical.quotas", ""),
        # -- 100 kB strings
        ("companies", companies, "long_string", {"name": LONG}, "name is longer than 10000",
         None, ""),
        ("contacts", contacts, "long_string", {"lead_source": LONG},
         "source is longer than 10000", None, ""),
        ("deals", deals, "long_string", {**open_deal, "dealstage": LONG},
         "stage is longer than 10000", None, ""),
        # -- dates in year 0001 and 9999
        ("deals", deals, "extreme_date", {"closedate": "0001-01-01T00:00:00.000Z"},
         "close_date is outside 1900..2199", None, ""),
        ("contacts", contacts, "extreme_date", {"createdate": "0001-01-01T00:00:00.000Z"},
         "created_at is outside 1900..2199", None, ""),
        ("calls", calls, "extreme_date", {"hs_timestamp": "9999-12-31T00:00:00.000Z"},
         "occurred_at is outside 1900..2199", None, ""),
        ("goal_targets", goals, "extreme_date",
         {"hs_start_datetime": "0001-01-01T00:00:00.000Z",
          "hs_end_datetime": "0001-01-31T23:59:59.999Z"},
         "period_start is outside 1900..2199", None, ""),
        # -- negative and non-finite amounts
        ("deals", deals, "negative_amount", {"amount": "-5000"}, "amount is negative", None, ""),
        ("deals", deals, "negative_amount", {"cost": "-1"}, "cost is negative", None, ""),
        ("goal_targets", goals, "negative_amount", {"hs_target_amount": "-1200"},
         "amount is negative", None, ""),
        ("deals", deals, "nan_amount", {"amount": "NaN"}, "amount: not a finite number: 'NaN'",
         None, ""),
        ("deals", deals, "nan_amount", {"amount": "-Infinity"},
         "amount: not a finite number: '-Infinity'", None, ""),
        ("goal_targets", goals, "nan_amount", {"hs_target_amount": "NaN"},
         "hs_target_amount: not a finite number", None, ""),
        # -- unicode edge cases
        ("companies", companies, "unicode", {"name": "{text}"}, None, None,
         "any Unicode text is a legitimate name"),
        ("contacts", contacts, "unicode", {"lead_source": "{text}"}, None, None,
         "any Unicode text is a legitimate source"),
        ("companies", companies, "unicode", {"name": "broken \ud800 surrogate"},
         "name is not valid Unicode (a lone surrogate)", None, ""),
        ("companies", companies, "unicode", {"name": "Acme\x00Corp"},
         "name contains a NUL character", None, ""),
    ]  # fmt: skip
    cases: list[Fuzz] = []
    for obj, templates, category, change, expect, where, note in base:
        for i, template in enumerate(templates[:COPIES]):
            record = {**template, "properties": {**template["properties"], **_fill(change, i)}}
            if "createdate" in change:
                record["createdAt"] = change["createdate"]
            cases.append(Fuzz("hubspot", obj, category, record, expect, where, note))
    return cases


def hubspot_id_collisions(app: Any, n: int) -> Iterator[Fuzz]:
    """Emails claiming the ids of existing calls (one engagement id space: an import that reuses
    ids). The call keeps its row; the email is quarantined."""
    calls = app.portal.tables["calls"].base
    emails = _hs_templates(app, "emails", n, ("contacts", "companies", "deals"))
    for rid, template in zip(calls["id"].to_list()[:n], emails, strict=False):
        record = {**template, "id": str(rid)}
        yield Fuzz("hubspot", "emails", "duplicate_id", record,
                   f"id {rid} is already held by a calls record")  # fmt: skip
