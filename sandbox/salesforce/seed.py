"""Canonical tables (``sandbox.generator``) → the sandbox org's sObject frames.

Mapping (all vectorised polars; ids come ready-made from ``with_crm_ids(..., "salesforce")``):

===============  ==============================================================================
teams            UserRole (Name, DeveloperName, ParentRoleId)
reps             User (Name, First/LastName, Email, Username, IsActive, UserRoleId, ManagerId)
accounts         Account; customer_status → Type: customer → "Customer",
                 former_customer → "Former Customer", prospect → "Prospect"
leads            Lead: status and source pass through (Status, LeadSource); qualified_at →
                 ``Qualified_Date__c``; disqualified_at → ``Disqualified_Date__c`` (Status
                 "Unqualified"); converted_at → IsConverted + ConvertedDate (a *date*, as in
                 Salesforce); ConvertedAccountId/ConvertedOpportunityId; score → ``Lead_Score__c``
opportunities    Opportunity: stage → StageName (IsClosed/IsWon as generated); type → Type
                 (new_business "New Customer", upsell "Existing Customer - Upgrade", renewal
                 "Renewal", other "Other"); currency → CurrencyIsoCode; cost → ``Cost__c``;
                 ``Recurring_Monthly_Amount__c``, ``Contract_Start__c``, ``Contract_End__c``;
                 lead_id → ``Lead__c`` (and the lead's ConvertedOpportunityId);
                 competitor/competitor_price → one OpportunityCompetitor row (CompetitorName,
                 ``Competitor_Price__c``)
activities       call/email/task → Task (TaskSubtype Call/Email/Task; direction → CallType
                 Inbound/Outbound — also on email tasks; outcome → CallDisposition;
                 duration → CallDurationInSeconds; occurred_at → CompletedDateTime and
                 ActivityDate); meeting → Event (StartDateTime, EndDateTime, DurationInMinutes);
                 lead → WhoId, opportunity (else account) → WhatId, account → AccountId
quotas           ForecastingQuota (QuotaOwnerId, StartDate, QuotaAmount, CurrencyIsoCode);
                 quotas are monthly: period_end = StartDate + 1 month
fx_rates         DatedConversionRate (IsoCode, ConversionRate, StartDate, NextStartDate) and
                 CurrencyType (one per currency, the corporate one with IsCorporate and rate 1)
costs            not in Salesforce
===============  ==============================================================================

``SystemModstamp``/``LastModifiedDate`` of seeded rows are the last change the data implies
(e.g. a lead's conversion, a deal's close), never later than the seed time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import polars as pl

OPPORTUNITY_TYPE = {
    "new_business": "New Customer",
    "upsell": "Existing Customer - Upgrade",
    "renewal": "Renewal",
    "other": "Other",
}
ACCOUNT_TYPE = {
    "customer": "Customer",
    "former_customer": "Former Customer",
    "prospect": "Prospect",
}
STAGE_PROBABILITY = {
    "Prospecting": 10.0,
    "Qualification": 20.0,
    "Needs Analysis": 20.0,
    "Value Proposition": 50.0,
    "Proposal": 65.0,
    "Proposal/Price Quote": 75.0,
    "Negotiation": 80.0,
    "Negotiation/Review": 90.0,
}

_DT = pl.Datetime("us", "UTC")


def _ids(prefix: str, n: int) -> pl.Series:
    from sandbox.generator import salesforce_id

    return salesforce_id(prefix, np.arange(1, n + 1, dtype=np.int64))


def _cap(e: pl.Expr, now: datetime) -> pl.Expr:
    return pl.min_horizontal(e, pl.lit(now, dtype=_DT))


def _system(
    frame: pl.DataFrame, created: pl.Expr, modified: pl.Expr, by: pl.Expr, now: datetime
) -> pl.DataFrame:
    return frame.with_columns(
        IsDeleted=pl.lit(False),
        CreatedDate=_cap(created, now),
        CreatedById=by,
        LastModifiedDate=_cap(pl.max_horizontal(created, modified), now),
        LastModifiedById=by,
        SystemModstamp=_cap(pl.max_horizontal(created, modified), now),
    )


def _end_of_day(d: pl.Expr) -> pl.Expr:
    return d.cast(pl.Datetime("us")).dt.replace_time_zone("UTC") + pl.duration(hours=23, minutes=59)


def seed_frames(
    tables: dict[str, pl.DataFrame],
    *,
    corporate_currency: str,
    api_user_id: str,
    now: datetime | None = None,
    org_start: date | None = None,
) -> dict[str, pl.DataFrame]:
    """Salesforce frames by sObject name, from the canonical tables of one generated org."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    start = datetime.combine(org_start or date(2024, 1, 1), datetime.min.time(), tzinfo=UTC)
    start_lit = pl.lit(start, dtype=_DT)
    api_user = pl.lit(api_user_id)
    out: dict[str, pl.DataFrame] = {}

    teams = tables["teams"]
    out["UserRole"] = _system(
        teams.select(
            Id=pl.col("id"),
            Name=pl.col("name"),
            DeveloperName=pl.col("name").str.replace_all(r"[^A-Za-z0-9]+", "_"),
            ParentRoleId=pl.col("parent_id"),
        ),
        start_lit, start_lit, api_user, now,
    )  # fmt: skip

    reps = tables["reps"]
    first = pl.col("name").str.split(" ").list.first()
    out["User"] = _system(
        reps.select(
            Id=pl.col("id"),
            Username=pl.col("email") + ".sandbox",
            Name=pl.col("name"),
            FirstName=first,
            LastName=pl.col("name").str.split(" ").list.slice(1).list.join(" "),
            Email=pl.col("email"),
            Alias=pl.col("email").str.slice(0, 8),
            IsActive=pl.col("is_active"),
            UserRoleId=pl.col("team_id"),
            ManagerId=pl.col("manager_id"),
            UserType=pl.lit("Standard"),
            TimeZoneSidKey=pl.lit("GMT"),
            DefaultCurrencyIsoCode=pl.lit(corporate_currency),
        ),
        start_lit, start_lit, api_user, now,
    )  # fmt: skip

    acc = tables["accounts"]
    out["Account"] = _system(
        acc.select(
            Id=pl.col("id"),
            Name=pl.col("name"),
            Type=pl.col("customer_status").replace_strict(ACCOUNT_TYPE, default=None),
            OwnerId=pl.col("owner_id"),
            CurrencyIsoCode=pl.lit(corporate_currency),
            created=pl.col("created_at"),
        ),
        pl.col("created"), pl.col("created"), pl.col("OwnerId"), now,
    ).drop("created")  # fmt: skip

    leads = tables["leads"]
    n = pl.int_range(1, pl.len() + 1).cast(pl.Utf8)
    out["Lead"] = _system(
        leads.select(
            Id=pl.col("id"),
            LastName=pl.lit("Prospect ") + n,
            Name=pl.lit("Prospect ") + n,
            Company=pl.lit("Company ") + n,
            Status=pl.col("status"),
            LeadSource=pl.col("source"),
            IsConverted=pl.col("converted_at").is_not_null(),
            ConvertedDate=pl.col("converted_at").dt.date(),
            ConvertedAccountId=pl.col("converted_account_id"),
            ConvertedOpportunityId=pl.col("converted_opportunity_id"),
            OwnerId=pl.col("owner_id"),
            Qualified_Date__c=pl.col("qualified_at"),
            Disqualified_Date__c=pl.col("disqualified_at"),
            Lead_Score__c=pl.col("score"),
            CurrencyIsoCode=pl.lit(corporate_currency),
            created=pl.col("created_at"),
            modified=pl.max_horizontal(
                "created_at", "qualified_at", "converted_at", "disqualified_at"
            ),
        ),
        pl.col("created"), pl.col("modified"), pl.col("OwnerId"), now,
    ).drop("created", "modified")  # fmt: skip

    opp = tables["opportunities"]
    close_eod = _end_of_day(pl.col("close_date"))
    stage_prob = pl.col("stage").replace_strict(STAGE_PROBABILITY, default=50.0,
                                                return_dtype=pl.Float64)  # fmt: skip
    out["Opportunity"] = _system(
        opp.select(
            Id=pl.col("id"),
            Name=pl.lit("Deal ") + pl.int_range(1, pl.len() + 1).cast(pl.Utf8),
            AccountId=pl.col("account_id"),
            OwnerId=pl.col("owner_id"),
            StageName=pl.col("stage"),
            IsClosed=pl.col("is_closed"),
            IsWon=pl.col("is_won"),
            Amount=pl.col("amount"),
            CloseDate=pl.col("close_date"),
            Type=pl.col("type").replace_strict(OPPORTUNITY_TYPE, default=None),
            Probability=pl.when(pl.col("is_won")).then(100.0)
            .when(pl.col("is_closed")).then(0.0).otherwise(stage_prob),
            ForecastCategory=pl.when(pl.col("is_won")).then(pl.lit("Closed"))
            .when(pl.col("is_closed")).then(pl.lit("Omitted")).otherwise(pl.lit("Pipeline")),
            ForecastCategoryName=pl.when(pl.col("is_won")).then(pl.lit("Closed"))
            .when(pl.col("is_closed")).then(pl.lit("Omitted")).otherwise(pl.lit("Pipeline")),
            FiscalYear=pl.col("close_date").dt.year().cast(pl.Int64),
            FiscalQuarter=pl.col("close_date").dt.quarter().cast(pl.Int64),
            CurrencyIsoCode=pl.col("currency"),
            Cost__c=pl.col("cost"),
            Recurring_Monthly_Amount__c=pl.col("recurring_monthly_amount"),
            Contract_Start__c=pl.col("contract_start"),
            Contract_End__c=pl.col("contract_end"),
            Lead__c=pl.col("lead_id"),
            created=pl.col("created_at"),
            modified=pl.when(pl.col("is_closed")).then(close_eod)
            .otherwise(pl.col("created_at")),
        ),
        pl.col("created"), pl.col("modified"), pl.col("OwnerId"), now,
    ).drop("created", "modified")  # fmt: skip

    comp = opp.filter(pl.col("competitor").is_not_null())
    out["OpportunityCompetitor"] = _system(
        comp.select(
            Id=_ids("00J", comp.height),
            OpportunityId=pl.col("id"),
            CompetitorName=pl.col("competitor"),
            Competitor_Price__c=pl.col("competitor_price"),
            CurrencyIsoCode=pl.col("currency"),
            created=pl.col("created_at"),
            owner=pl.col("owner_id"),
        ),
        pl.col("created"), pl.col("created"), pl.col("owner"), now,
    ).drop("created", "owner")  # fmt: skip

    act = tables["activities"]
    what = pl.coalesce("opportunity_id", "account_id")
    # Title-casing maps call/email/task and inbound/outbound to the picklist values without a
    # per-row dictionary lookup (millions of activities at the large size).
    direction = pl.col("direction").str.to_titlecase()
    tasks = act.filter(pl.col("kind") != "meeting")
    subtype = pl.col("kind").str.to_titlecase()
    out["Task"] = _system(
        tasks.select(
            Id=pl.col("id"),
            Subject=subtype,
            TaskSubtype=subtype,
            Type=pl.when(pl.col("kind") == "task").then(pl.lit("Other")).otherwise(subtype),
            Status=pl.lit("Completed"),
            IsClosed=pl.lit(True),
            ActivityDate=pl.col("occurred_at").dt.date(),
            CompletedDateTime=pl.col("occurred_at"),
            CallDurationInSeconds=pl.when(pl.col("kind") == "call")
            .then((pl.col("duration_minutes") * 60).round(0).cast(pl.Int64)),
            CallType=direction,
            CallDisposition=pl.col("outcome"),
            WhoId=pl.col("lead_id"),
            WhatId=what,
            AccountId=pl.col("account_id"),
            OwnerId=pl.col("owner_id"),
            created=pl.col("occurred_at"),
        ),
        pl.col("created"), pl.col("created"), pl.col("OwnerId"), now,
    ).drop("created")  # fmt: skip

    meetings = act.filter(pl.col("kind") == "meeting")
    minutes = pl.col("duration_minutes").fill_null(30).round(0).cast(pl.Int64)
    out["Event"] = _system(
        meetings.select(
            Id=pl.col("id"),
            Subject=pl.lit("Meeting"),
            EventSubtype=pl.lit("Event"),
            Type=pl.lit("Meeting"),
            ActivityDate=pl.col("occurred_at").dt.date(),
            ActivityDateTime=pl.col("occurred_at"),
            StartDateTime=pl.col("occurred_at"),
            EndDateTime=pl.col("occurred_at") + pl.duration(minutes=minutes),
            DurationInMinutes=minutes,
            WhoId=pl.col("lead_id"),
            WhatId=what,
            AccountId=pl.col("account_id"),
            OwnerId=pl.col("owner_id"),
            created=pl.col("occurred_at"),
        ),
        pl.col("created"), pl.col("created"), pl.col("OwnerId"), now,
    ).drop("created")  # fmt: skip

    quotas = tables["quotas"]
    out["ForecastingQuota"] = _system(
        quotas.select(
            Id=_ids("0J9", quotas.height),
            QuotaOwnerId=pl.col("owner_id"),
            StartDate=pl.col("period_start"),
            QuotaAmount=pl.col("amount"),
            IsAmount=pl.lit(True),
            IsQuantity=pl.lit(False),
            CurrencyIsoCode=pl.col("currency"),
        ),
        start_lit, start_lit, api_user, now,
    )  # fmt: skip

    fx = tables["fx_rates"].sort("currency", "start_date")
    out["DatedConversionRate"] = _system(
        fx.select(
            Id=_ids("04w", fx.height),
            IsoCode=pl.col("currency"),
            ConversionRate=pl.col("rate"),
            StartDate=pl.col("start_date"),
            NextStartDate=pl.col("start_date").shift(-1).over("currency")
            .fill_null(date(9999, 12, 31)),
        ),
        start_lit, start_lit, api_user, now,
    )  # fmt: skip

    latest = fx.group_by("currency", maintain_order=True).agg(pl.col("rate").last())
    cur_rows: list[dict[str, Any]] = [
        {"IsoCode": corporate_currency, "ConversionRate": 1.0, "IsCorporate": True}
    ]
    cur_rows += [
        {"IsoCode": c, "ConversionRate": r, "IsCorporate": False}
        for c, r in latest.iter_rows()
        if c != corporate_currency
    ]
    ct = pl.DataFrame(cur_rows)
    out["CurrencyType"] = _system(
        ct.with_columns(
            Id=_ids("02A", ct.height), DecimalPlaces=pl.lit(2, dtype=pl.Int64),
            IsActive=pl.lit(True),
        ),
        start_lit, start_lit, api_user, now,
    )  # fmt: skip
    return out
