"""The canonical org (CANONICAL.md tables with HubSpot ids) in HubSpot's shape.

Mapping (what connector authors must reverse):

* reps → owners (``id`` = rep id, ``userId`` = rep id + 8,000,000, inactive reps are archived
  owners) with teams; teams → ``/settings/v3/users/teams`` with ``parentTeamId``.
* accounts → companies: ``customer_status`` (custom enumeration customer / former_customer /
  prospect); ``lifecyclestage`` customer for customers and former customers.
* leads → contacts: ``hs_lead_status`` Open→NEW, Working→IN_PROGRESS, Qualified→CONNECTED,
  Unqualified→UNQUALIFIED, Converted→OPEN_DEAL; the canonical source in custom ``lead_source``;
  qualification in ``qualified_date`` and the SQL stage dates, conversion in the opportunity stage
  dates, disqualification in custom ``disqualified_date``; ``hubspotscore`` = score.
* opportunities → deals in pipeline ``default``, stage ids of HubSpot's default pipeline relabelled
  with the org's stage names; ``dealtype`` newbusiness / existingbusiness (+ custom ``is_renewal``
  for renewals; none for "other"); custom cost / recurring / contract / competitor properties.
* activities → calls / emails / meetings / tasks, ``hs_call_duration`` in ms, dispositions as
  HubSpot's outcome GUIDs; associations to the contact, company and deal.
* quotas → goal_targets (``hs_end_datetime`` is the last millisecond of the period, so the
  canonical exclusive end is ``hs_end_datetime`` + 1 ms).
* fx_rates → ``/settings/v3/currencies/exchange-rates`` (``conversionRate`` = company currency
  per unit of ``fromCurrencyCode`` = 1 / canonical rate).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from sandbox.hubspot.schema import CALL_DISPOSITIONS
from sandbox.hubspot.store import CREATED, ID, ISO, UPDATED

# Canonical stage → (HubSpot default-pipeline stage id, probability, closed, won).
STAGES: dict[str, tuple[str, str, bool, bool]] = {
    "Prospecting": ("appointmentscheduled", "0.2", False, False),
    "Qualification": ("qualifiedtobuy", "0.4", False, False),
    "Proposal": ("presentationscheduled", "0.6", False, False),
    "Negotiation": ("contractsent", "0.9", False, False),
    "Closed Won": ("closedwon", "1.0", True, True),
    "Closed Lost": ("closedlost", "0.0", True, False),
}
LEAD_STATUS = {
    "Open": "NEW",
    "Working": "IN_PROGRESS",
    "Qualified": "CONNECTED",
    "Unqualified": "UNQUALIFIED",
    "Converted": "OPEN_DEAL",
}
SOURCE = {
    "web": "ORGANIC_SEARCH",
    "referral": "REFERRALS",
    "event": "OFFLINE",
    "outbound": "OTHER_CAMPAIGNS",
    "partner": "REFERRALS",
}
DEAL_TYPE = {
    "new_business": "newbusiness",
    "upsell": "existingbusiness",
    "renewal": "existingbusiness",
}
DISPOSITION = {
    "connected": CALL_DISPOSITIONS[0][0],
    "no_answer": CALL_DISPOSITIONS[1][0],
    "voicemail": CALL_DISPOSITIONS[2][0],
    "busy": CALL_DISPOSITIONS[4][0],
}
USER_ID_OFFSET = 8_000_000
GOAL_ID_BASE = 600_000_000
ENGAGEMENT_TYPES = {"call": "calls", "email": "emails", "meeting": "meetings", "task": "tasks"}

# Association type ids (HUBSPOT_DEFINED) from HubSpot's associations v4 guide, "association type
# id values": (from, to) → (unlabeled id, primary id or None).
ASSOC_TYPES: dict[tuple[str, str], tuple[int, int | None]] = {
    ("contacts", "companies"): (279, 1),
    ("companies", "contacts"): (280, 2),
    ("deals", "contacts"): (3, None),
    ("contacts", "deals"): (4, None),
    ("deals", "companies"): (341, 5),
    ("companies", "deals"): (342, 6),
    ("contacts", "calls"): (193, None),
    ("calls", "contacts"): (194, None),
    ("companies", "calls"): (181, None),
    ("calls", "companies"): (182, None),
    ("deals", "calls"): (205, None),
    ("calls", "deals"): (206, None),
    ("contacts", "emails"): (197, None),
    ("emails", "contacts"): (198, None),
    ("companies", "emails"): (185, None),
    ("emails", "companies"): (186, None),
    ("deals", "emails"): (209, None),
    ("emails", "deals"): (210, None),
    ("contacts", "meetings"): (199, None),
    ("meetings", "contacts"): (200, None),
    ("companies", "meetings"): (187, None),
    ("meetings", "companies"): (188, None),
    ("deals", "meetings"): (211, None),
    ("meetings", "deals"): (212, None),
    ("contacts", "tasks"): (203, None),
    ("tasks", "contacts"): (204, None),
    ("companies", "tasks"): (191, None),
    ("tasks", "companies"): (192, None),
    ("deals", "tasks"): (215, None),
    ("tasks", "deals"): (216, None),
}


@dataclass
class SeedPairs:
    """Seeded associations of one (from, to) type pair; ``primary`` marks the primary label."""

    from_type: str
    to_type: str
    from_ids: np.ndarray[Any, np.dtype[np.int64]]
    to_ids: np.ndarray[Any, np.dtype[np.int64]]
    primary: bool = False


@dataclass
class HubSpotSeed:
    """Everything a portal is built from; frames are immutable and shared across resets."""

    objects: dict[str, pl.DataFrame]
    associations: list[SeedPairs]
    owners: list[dict[str, Any]]
    teams: list[dict[str, Any]]
    fx_rates: list[dict[str, Any]]
    company_currency: str = "EUR"
    extra: dict[str, Any] = field(default_factory=dict)


def _iso(col: str) -> pl.Expr:
    return pl.col(col).dt.strftime(ISO)


def _ms(col: str) -> pl.Expr:
    return pl.col(col).dt.epoch("ms")


def _date_iso(col: str) -> pl.Expr:
    # A date as HubSpot datetime text at midnight UTC.
    return pl.col(col).cast(pl.Datetime("ms", "UTC")).dt.strftime(ISO)


def _num(col: str, decimals: int = 2) -> pl.Expr:
    # HubSpot returns numbers without a trailing ".0" ("12000", "12000.5").
    return pl.col(col).round(decimals).cast(pl.Utf8).str.replace(r"\.0$", "")


def _ids(col: str) -> pl.Expr:
    return pl.col(col).cast(pl.Int64)


def _frame(
    df: pl.DataFrame, created: pl.Expr, updated: pl.Expr, props: dict[str, pl.Expr]
) -> pl.DataFrame:
    out = df.select(
        _ids("id").alias(ID),
        created.cast(pl.Int64).alias(CREATED),
        updated.cast(pl.Int64).alias(UPDATED),
        *(e.cast(pl.Utf8).alias(k) for k, e in props.items()),
    )
    return out.sort(ID)


def _map(col: str, mapping: dict[str, str]) -> pl.Expr:
    return pl.col(col).replace_strict(mapping, default=None, return_dtype=pl.Utf8)


def build_seed(tables: dict[str, pl.DataFrame], company_currency: str = "EUR") -> HubSpotSeed:
    """Canonical frames (HubSpot ids, as ``with_crm_ids(..., "hubspot")`` gives) → a seed.

    Missing tables are treated as empty, so tests can seed a handful of handmade rows.
    """
    owners, teams = _owners_and_teams(tables.get("reps"), tables.get("teams"))
    objects: dict[str, pl.DataFrame] = {}
    pairs: list[SeedPairs] = []
    opps = tables.get("opportunities")
    if (accounts := tables.get("accounts")) is not None:
        objects["companies"] = _companies(accounts)
    if opps is not None:
        objects["deals"] = _deals(opps, tables.get("fx_rates"), company_currency)
        pairs.append(_pairs(opps, "deals", "companies", "id", "account_id", primary=True))
        pairs.append(_pairs(opps, "deals", "contacts", "id", "lead_id"))
    if (leads := tables.get("leads")) is not None:
        objects["contacts"] = _contacts(leads, opps)
        pairs.append(
            _pairs(leads, "contacts", "companies", "id", "converted_account_id", primary=True)
        )
    if (acts := tables.get("activities")) is not None:
        for kind, type_name in ENGAGEMENT_TYPES.items():
            a = acts.filter(pl.col("kind") == kind)
            objects[type_name] = _engagements(a, kind)
            for other, col in (("contacts", "lead_id"), ("companies", "account_id"),
                               ("deals", "opportunity_id")):  # fmt: skip
                pairs.append(_pairs(a, type_name, other, "id", col))
    quotas = tables.get("quotas")
    if quotas is not None and len(quotas):
        objects["goal_targets"] = _goal_targets(quotas, {o["id"]: o["userId"] for o in owners})
    return HubSpotSeed(
        objects,
        [p for p in pairs if len(p.from_ids)],
        owners,
        teams,
        _fx(tables.get("fx_rates"), company_currency),
        company_currency,
    )


def _owners_and_teams(
    reps: pl.DataFrame | None, teams_df: pl.DataFrame | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    team_names: dict[str, str] = {}
    if teams_df is not None:
        team_names = {r["id"]: r["name"] for r in teams_df.iter_rows(named=True)}
    owners: list[dict[str, Any]] = []
    for row in reps.iter_rows(named=True) if reps is not None else []:
        first, _, last = (row["name"] or "").partition(" ")
        owners.append({
            "id": row["id"], "email": row["email"], "firstName": first, "lastName": last,
            # HubSpot users and owners have different ids; goal targets point at users.
            "userId": int(row["id"]) + USER_ID_OFFSET, "active": bool(row["is_active"]),
            "teamId": row["team_id"], "teamName": team_names.get(row["team_id"] or ""),
        })  # fmt: skip
    teams = [
        {"id": r["id"], "name": r["name"], "parentTeamId": r["parent_id"],
         "userIds": [o["userId"] for o in owners if o["teamId"] == r["id"]]}
        for r in (teams_df.iter_rows(named=True) if teams_df is not None else [])
    ]  # fmt: skip
    return owners, teams


def _companies(accounts: pl.DataFrame) -> pl.DataFrame:
    customer = pl.col("customer_status").is_in(["customer", "former_customer"])
    return _frame(accounts, _ms("created_at"), _ms("created_at"), {
        "name": pl.col("name"),
        "domain": pl.col("name").str.to_lowercase().str.replace_all(r"[^a-z0-9]+", "")
        + pl.lit(".example.com"),
        "hubspot_owner_id": pl.col("owner_id"),
        "customer_status": pl.col("customer_status"),
        "lifecyclestage": pl.when(customer).then(pl.lit("customer")).otherwise(pl.lit("lead")),
    })  # fmt: skip


def _home_amount(opps: pl.DataFrame, fx: pl.DataFrame | None, company_currency: str
                 ) -> tuple[pl.DataFrame, pl.Expr]:  # fmt: skip
    """Deals with the rate in force at their close date joined, and ``amount_in_home_currency``."""
    if fx is None or not len(fx):
        return opps, _num("amount")
    rates = fx.sort("start_date").rename({"currency": "_cur", "rate": "_rate"})
    joined = opps.sort("close_date").join_asof(
        rates, left_on="close_date", right_on="start_date", by_left="currency",
        by_right="_cur", strategy="backward", check_sortedness=False,
    )  # fmt: skip
    converted = (pl.col("amount") / pl.col("_rate")).round(2).cast(pl.Utf8)
    home = (
        pl.when(pl.col("currency") == company_currency)
        .then(_num("amount"))
        .otherwise(converted.str.replace(r"\.0$", ""))
    )
    return joined, home


def _deals(opps: pl.DataFrame, fx: pl.DataFrame | None, company_currency: str) -> pl.DataFrame:
    stage_id = {k: v[0] for k, v in STAGES.items()}
    prob = {v[0]: v[1] for v in STAGES.values()}
    close_ms = pl.col("close_date").cast(pl.Datetime("ms", "UTC")).dt.epoch("ms")
    # A closed deal was last modified when it closed (or created, if it closed earlier).
    updated = (
        pl.when(pl.col("is_closed"))
        .then(pl.max_horizontal(_ms("created_at"), close_ms))
        .otherwise(_ms("created_at"))
    )
    frame, home = _home_amount(opps, fx, company_currency)

    def text_bool(e: pl.Expr) -> pl.Expr:
        return e.cast(pl.Utf8).str.to_lowercase()

    return _frame(frame, _ms("created_at"), updated, {
        "dealname": pl.lit("Deal ") + pl.col("id"),
        "dealstage": _map("stage", stage_id),
        "pipeline": pl.lit("default"),
        "amount": _num("amount"),
        "amount_in_home_currency": home,
        "deal_currency_code": pl.col("currency"),
        "closedate": _date_iso("close_date"),
        "dealtype": _map("type", DEAL_TYPE),
        "is_renewal": text_bool(pl.col("type") == "renewal"),
        "hs_is_closed": text_bool(pl.col("is_closed")),
        "hs_is_closed_won": text_bool(pl.col("is_won") & pl.col("is_closed")),
        "hs_deal_stage_probability": _map("stage", stage_id).replace_strict(prob, default=None),
        "hubspot_owner_id": pl.col("owner_id"),
        "cost": _num("cost"),
        "recurring_monthly_amount": _num("recurring_monthly_amount"),
        "contract_start_date": pl.col("contract_start").cast(pl.Utf8),
        "contract_end_date": pl.col("contract_end").cast(pl.Utf8),
        "competitor": pl.col("competitor"),
        "competitor_price": _num("competitor_price"),
    })  # fmt: skip


def _contacts(leads: pl.DataFrame, opps: pl.DataFrame | None) -> pl.DataFrame:
    won_at = pl.Datetime("us", "UTC")
    if opps is not None:
        won = opps.filter(pl.col("is_won") & pl.col("is_closed")).select(
            pl.col("id").alias("converted_opportunity_id"),
            pl.col("close_date").cast(won_at).alias("_won_at"),
        )
        lf = leads.join(won, on="converted_opportunity_id", how="left")
    else:
        lf = leads.with_columns(pl.lit(None, dtype=won_at).alias("_won_at"))
    # The furthest stage reached; a disqualified lead ends in "other" (no HubSpot stage for it).
    stage = (
        pl.when(pl.col("_won_at").is_not_null()).then(pl.lit("customer"))
        .when(pl.col("converted_at").is_not_null()).then(pl.lit("opportunity"))
        .when(pl.col("disqualified_at").is_not_null()).then(pl.lit("other"))
        .when(pl.col("qualified_at").is_not_null()).then(pl.lit("salesqualifiedlead"))
        .otherwise(pl.lit("lead"))
    )  # fmt: skip
    updated = pl.max_horizontal(
        _ms("created_at"), _ms("qualified_at"), _ms("converted_at"), _ms("disqualified_at")
    )
    props: dict[str, pl.Expr] = {
        "email": pl.lit("lead") + pl.col("id") + pl.lit("@example.com"),
        "firstname": pl.lit("Lead"),
        "lastname": pl.lit("No. ") + pl.col("id").str.slice(-6),
        "lifecyclestage": stage,
        "hs_lead_status": _map("status", LEAD_STATUS),
        "lead_source": pl.col("source"),
        "hs_analytics_source": _map("source", SOURCE),
        "hubspot_owner_id": pl.col("owner_id"),
        "hubspotscore": pl.col("score").round(0).cast(pl.Int64).cast(pl.Utf8),
        "qualified_date": _iso("qualified_at"),
        "disqualified_date": _iso("disqualified_at"),
        "associatedcompanyid": pl.col("converted_account_id"),
    }
    for stage_name, col in (("lead", "created_at"), ("salesqualifiedlead", "qualified_at"),
                            ("opportunity", "converted_at"), ("customer", "_won_at")):  # fmt: skip
        props[f"hs_lifecyclestage_{stage_name}_date"] = _iso(col)
        props[f"hs_v2_date_entered_{stage_name}"] = _iso(col)
    return _frame(lf, _ms("created_at"), updated, props)


def _engagements(a: pl.DataFrame, kind: str) -> pl.DataFrame:
    props: dict[str, pl.Expr] = {
        "hs_timestamp": _iso("occurred_at"),
        "hubspot_owner_id": pl.col("owner_id"),
    }
    minutes_ms = (pl.col("duration_minutes") * 60_000).round(0).cast(pl.Int64)
    if kind == "call":
        props |= {
            "hs_call_title": pl.lit("Call"),
            "hs_call_duration": minutes_ms,
            "hs_call_direction": pl.col("direction").str.to_uppercase(),
            "hs_call_disposition": _map("outcome", DISPOSITION),
            "hs_call_status": pl.lit("COMPLETED"),
        }
    elif kind == "email":
        inbound = pl.col("direction") == "inbound"
        props |= {
            "hs_email_subject": pl.lit("Follow-up"),
            "hs_email_direction": pl.when(inbound)
            .then(pl.lit("INCOMING_EMAIL"))
            .otherwise(pl.lit("EMAIL")),
            "hs_email_status": pl.lit("SENT"),
        }
    elif kind == "meeting":
        end = pl.col("occurred_at") + pl.duration(milliseconds=minutes_ms.fill_null(0))
        outcome = (
            pl.when(pl.col("outcome").is_null()).then(pl.lit(None))
            .when(pl.col("outcome") == "connected").then(pl.lit("COMPLETED"))
            .otherwise(pl.lit("NO_SHOW"))
        )  # fmt: skip
        props |= {
            "hs_meeting_title": pl.lit("Meeting"),
            "hs_meeting_start_time": _iso("occurred_at"),
            "hs_meeting_end_time": end.dt.strftime(ISO),
            "hs_meeting_outcome": outcome,
        }
    else:
        props |= {
            "hs_task_subject": pl.lit("Task"),
            "hs_task_status": pl.lit("COMPLETED"),
            "hs_task_type": pl.lit("TODO"),
        }
    ms = _ms("occurred_at")
    return _frame(a, ms, ms, props)


def _goal_targets(quotas: pl.DataFrame, user_of: dict[str, int]) -> pl.DataFrame:
    q = quotas.with_row_index("_i").with_columns(
        (pl.col("_i").cast(pl.Int64) + GOAL_ID_BASE + 1).cast(pl.Utf8).alias("id"),
        pl.col("period_start").cast(pl.Datetime("ms", "UTC")).alias("_start"),
        # Goals end on the last millisecond of the period; the canonical end is exclusive.
        (pl.col("period_end").cast(pl.Datetime("ms", "UTC")) - pl.duration(milliseconds=1))
        .alias("_end"),
    )  # fmt: skip
    user = pl.col("owner_id").replace_strict(
        {k: str(v) for k, v in user_of.items()}, default=None, return_dtype=pl.Utf8
    )
    return _frame(q, _ms("_start"), _ms("_start"), {
        "hs_goal_name": pl.lit("Quota ") + pl.col("period_start").cast(pl.Utf8),
        "hs_target_amount": _num("amount"),
        "hs_start_datetime": _iso("_start"),
        "hs_end_datetime": _iso("_end"),
        "hs_assignee_user_id": user,
        "hs_currency": pl.col("currency"),
        "hs_kpi_metric_type": pl.lit("revenue"),
    })  # fmt: skip


def _fx(fx: pl.DataFrame | None, company_currency: str) -> list[dict[str, Any]]:
    """Exchange rates as the currencies API lists them: company-currency units per unit."""
    out: list[dict[str, Any]] = []
    if fx is None:
        return out
    for i, row in enumerate(fx.sort("start_date", "currency").iter_rows(named=True)):
        if row["currency"] == company_currency or not row["rate"]:
            continue
        out.append({
            "id": str(i + 1), "fromCurrencyCode": row["currency"],
            "toCurrencyCode": company_currency,
            "conversionRate": round(1.0 / float(row["rate"]), 6),
            "effectiveAt": row["start_date"],
        })  # fmt: skip
    return out


def _pairs(df: pl.DataFrame, ft: str, tt: str, a: str, b: str, primary: bool = False) -> SeedPairs:
    sub = df.select(pl.col(a).cast(pl.Int64), pl.col(b).cast(pl.Int64)).drop_nulls()
    return SeedPairs(
        ft, tt, sub[a].to_numpy().astype(np.int64), sub[b].to_numpy().astype(np.int64), primary
    )
