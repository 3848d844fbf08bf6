"""Activity and prospecting: what reps do with leads and customers (KPIS.md "Activity")."""

from __future__ import annotations

import polars as pl

from kpis.catalogue._shape import count_where, rate, total
from kpis.context import KEYS, KpiContext, shared
from kpis.registry import Family, Unit, kpi

_OUTBOUND = pl.col("direction").fill_null("") != "inbound"
_CALL = (pl.col("kind") == "call") & _OUTBOUND
_TALK = pl.col("kind").is_in(["call", "meeting"])


@shared
def _counts(ctx: KpiContext) -> pl.DataFrame:
    return ctx.rollup_sum(
        ctx.activities,
        {
            "calls": count_where(_CALL),
            "connected": count_where(_CALL & (pl.col("outcome") == "connected")),
            "emails": count_where((pl.col("kind") == "email") & _OUTBOUND),
            "meetings": count_where(pl.col("kind") == "meeting"),
            "talk_minutes": pl.col("duration_minutes").filter(_TALK).sum(),
            "effort_records": count_where(_TALK | pl.col("lead_id").is_not_null()),
        },
    )


@kpi(
    "calls",
    label="Calls",
    family=Family.ACTIVITY,
    unit=Unit.COUNT,
    placed_by="activity date",
    formula="count of logged outbound calls (direction outbound or not recorded)",
    seeds="000 001 002",
    records="calls",
    empty_is_zero=True,
)
def calls(ctx: KpiContext) -> pl.DataFrame:
    """Outbound calls logged."""
    return total(_counts(ctx), "calls", "calls")


@kpi(
    "emails",
    label="Emails",
    family=Family.ACTIVITY,
    unit=Unit.COUNT,
    placed_by="activity date",
    formula="count of sent emails (direction outbound or not recorded)",
    seeds="000 001 002",
    records="emails",
    empty_is_zero=True,
)
def emails(ctx: KpiContext) -> pl.DataFrame:
    """Emails sent."""
    return total(_counts(ctx), "emails", "emails")


@kpi(
    "meetings",
    label="Meetings",
    family=Family.ACTIVITY,
    unit=Unit.COUNT,
    placed_by="activity date",
    formula="count of meetings held or scheduled",
    seeds="000 001 002",
    records="meetings",
    empty_is_zero=True,
)
def meetings(ctx: KpiContext) -> pl.DataFrame:
    """Meetings on the calendar."""
    return total(_counts(ctx), "meetings", "meetings")


@kpi(
    "reach_rate",
    label="Reach rate",
    family=Family.ACTIVITY,
    unit=Unit.PERCENT,
    placed_by="activity date",
    formula="outbound calls with a connected outcome / outbound calls * 100",
    seeds="004",
    records="outbound calls",
    is_ratio=True,
)
def reach_rate(ctx: KpiContext) -> pl.DataFrame:
    """Seed 004: of 100 calls, about 30 reach a prospect."""
    return rate(_counts(ctx), "connected", "calls", "calls")


@shared
def _lead_activity(ctx: KpiContext) -> pl.DataFrame:
    """Activities joined to their lead: ``lead_id, occurred_at`` plus the lead's owner and dates."""
    leads = ctx.leads.select(
        pl.col("lid").alias("lead_id"), "owner_id", "created_at", "end_at", "p_created", "p_end"
    )
    acts = ctx.activities.filter(pl.col("lead_id").is_not_null()).select(
        "lead_id", "occurred_at", "date", "period_start"
    )
    return acts.lazy().join(leads.lazy(), on="lead_id", how="left").collect()


@kpi(
    "speed_to_lead_minutes",
    label="Speed to lead",
    family=Family.ACTIVITY,
    unit=Unit.MINUTES,
    placed_by="lead created date",
    formula="median minutes from lead creation to the first activity logged on it",
    seeds="004",
    records="leads created that have an activity",
)
def speed_to_lead_minutes(ctx: KpiContext) -> pl.DataFrame:
    """How fast new leads are worked (leads without any activity yet are left out)."""
    leads = ctx.leads.select(pl.col("lid").alias("lead_id"), "owner_id", "created_at", "p_created")
    first = (
        _lead_activity(ctx)
        .lazy()
        .filter(pl.col("occurred_at") >= pl.col("created_at"))
        .group_by("lead_id")
        .agg(pl.col("occurred_at").min().alias("first"))
        .join(leads.lazy(), on="lead_id")
        .select(
            "owner_id",
            pl.col("p_created").alias("period_start"),
            minutes=(pl.col("first") - pl.col("created_at")).dt.total_microseconds() / 60e6,
        )
        .collect()
    )
    per = ctx.rollup(first, [pl.col("minutes").median().alias("value"), pl.len().alias("records")])
    return per.select(*KEYS, "value", "records")


@kpi(
    "follow_up_attempts",
    label="Follow-up attempts per lead",
    family=Family.ACTIVITY,
    unit=Unit.COUNT,
    placed_by="lead conversion or disqualification date",
    formula="activities logged on a lead before it was converted or disqualified, averaged over "
    "the leads that ended in the period",
    seeds="004",
    records="leads converted or disqualified",
    is_ratio=True,
)
def follow_up_attempts(ctx: KpiContext) -> pl.DataFrame:
    """Persistence: how many touches a lead gets before a decision."""
    attempts = (
        _lead_activity(ctx)
        .filter(pl.col("end_at").is_not_null() & (pl.col("occurred_at") < pl.col("end_at")))
        .group_by("lead_id")
        .agg(pl.len().alias("attempts"))
    )
    ended = (
        ctx.leads.filter(pl.col("p_end").is_not_null())
        .select(pl.col("lid").alias("lead_id"), "owner_id", pl.col("p_end").alias("period_start"))
        .join(attempts, on="lead_id", how="left")
    )
    per = ctx.rollup_sum(
        ended, {"attempts": pl.col("attempts").fill_null(0).sum(), "leads": pl.len()}
    )
    return rate(per, "attempts", "leads", "leads", scale=1.0)


@kpi(
    "over_contacted_leads",
    label="Over-contacted leads",
    family=Family.ACTIVITY,
    unit=Unit.COUNT,
    placed_by="activity date",
    formula="leads with more than 4 activities on one day (the threshold is a setting)",
    seeds="004",
    records="activities on those lead-days",
    empty_is_zero=True,
)
def over_contacted_leads(ctx: KpiContext) -> pl.DataFrame:
    """Seed 004 warns against contacting a lead more than four times a day."""
    limit = ctx.settings.over_contact_per_day
    # The owner follows from the lead, so it is attached after the (small) filter, not grouped on.
    days = (
        ctx.activities.lazy()
        .filter(pl.col("lead_id").is_not_null())
        .group_by("lead_id", "date")
        .agg(pl.len().alias("n"), pl.col("period_start").first())
        .filter(pl.col("n") > limit)
        .collect()
        .join(
            ctx.leads.select(pl.col("lid").alias("lead_id"), "owner_id"), on="lead_id", how="left"
        )
    )
    per_lead = days.group_by("lead_id", "owner_id", "period_start").agg(pl.col("n").sum())
    per = ctx.rollup_sum(per_lead, {"leads": pl.len(), "acts": pl.col("n").sum()})
    return total(per, "leads", "acts")


@kpi(
    "time_per_lead_minutes",
    label="Time per lead",
    family=Family.ACTIVITY,
    unit=Unit.MINUTES,
    placed_by="activity date",
    formula="logged call and meeting minutes / distinct leads worked (leads with an activity)",
    seeds="003",
    records="activities that are calls or meetings or are on a lead",
    is_ratio=True,
)
def time_per_lead_minutes(ctx: KpiContext) -> pl.DataFrame:
    """Effort per lead; a team counts a lead once however many reps worked it."""
    with_lead = ctx.activities.filter(pl.col("lead_id").is_not_null())
    leads = ctx.rollup_distinct(with_lead, "lead_id").rename({"distinct": "leads"})
    per = (
        _counts(ctx)
        .join(leads, on=list(KEYS), how="left")
        .with_columns(pl.col("leads").fill_null(0))
        .rename({"talk_minutes": "minutes", "effort_records": "records"})
    )
    return rate(per, "minutes", "leads", "records", scale=1.0)


@kpi(
    "engagement",
    label="Customer engagement",
    family=Family.ACTIVITY,
    unit=Unit.COUNT,
    placed_by="activity date",
    formula="activities on active customer accounts / (active customer accounts at period end * "
    "months in the period)",
    seeds="003",
    records="activities on active customer accounts",
    is_ratio=True,
)
def engagement(ctx: KpiContext) -> pl.DataFrame:
    """Activities per active customer per month, credited to the account owner."""
    active = ctx.customer_periods.filter(pl.col("at_end")).select(
        "account_id", "period_start", "owner_id"
    )
    # Cut the activities to customer accounts on the account alone first (one cheap key), then
    # count per account and period and match the periods on the small result.
    customers = active.select("account_id").unique()
    touches = (
        ctx.activities.lazy()
        .select("account_id", "period_start")
        .join(customers.lazy(), on="account_id", how="semi")
        .group_by("account_id", "period_start")
        .agg(pl.len().alias("acts"))
        .collect()
    )
    accounts = active.join(touches, on=["account_id", "period_start"], how="left")
    per = ctx.rollup_sum(
        accounts, {"acts": pl.col("acts").fill_null(0).sum(), "accounts": pl.len()}
    ).with_columns(account_months=pl.col("accounts") * ctx.period_type.months)
    return rate(per, "acts", "account_months", "acts", scale=1.0)
