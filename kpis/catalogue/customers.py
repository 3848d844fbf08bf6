"""Customers: winning, keeping and valuing accounts (KPIS.md "Customers")."""

from __future__ import annotations

import polars as pl

from kpis.catalogue._shape import count_where, rate
from kpis.catalogue.funnel import _lead_cohort
from kpis.context import KEYS, KpiContext, ratio, shared
from kpis.engine import KpiUnavailable
from kpis.registry import GROUP_SCOPES, Family, Unit, kpi


@shared
def _new_customers(ctx: KpiContext) -> pl.DataFrame:
    """Per subject: accounts whose first won deal closed in the period, credited to its owner."""
    first = (
        ctx.opportunities.filter(pl.col("is_won") & pl.col("account_id").is_not_null())
        .sort("close_date", "id")
        .group_by("account_id")
        .first()
        .rename({"p_close": "period_start"})
    )
    return ctx.rollup_sum(first, {"new": pl.len()})


@shared
def _retention(ctx: KpiContext) -> pl.DataFrame:
    """Per subject: customers active at the period start, and how many still are at its end."""
    cohort = ctx.customer_periods.filter(pl.col("at_start")).rename({"at_end": "still"})
    return ctx.rollup_sum(
        cohort,
        {
            "start": pl.len(),
            "kept": count_where(pl.col("still")),
            "lost": count_where(~pl.col("still")),
        },
    )


@kpi(
    "new_customers",
    label="New customers",
    family=Family.CUSTOMERS,
    unit=Unit.COUNT,
    placed_by="close date of the account's first won deal",
    formula="accounts whose first won deal (earliest close date) falls in the period; a rep is "
    "credited with the accounts whose first deal it won",
    seeds="001",
    records="new customer accounts",
    empty_is_zero=True,
)
def new_customers(ctx: KpiContext) -> pl.DataFrame:
    """Accounts won for the first time."""
    per = _new_customers(ctx)
    return per.select(*KEYS, pl.col("new").alias("value"), pl.col("new").alias("records"))


@kpi(
    "churn_rate",
    label="Customer churn rate",
    family=Family.CUSTOMERS,
    unit=Unit.PERCENT,
    placed_by="period start and end",
    formula="customers active at period start that are no longer active at its end / customers "
    "active at start * 100",
    seeds="000 001",
    records="customers active at period start",
    is_ratio=True,
)
def churn_rate(ctx: KpiContext) -> pl.DataFrame:
    """Customers lost; credited to the account owner. Active = see docs/kpi-rules.md#customers."""
    return rate(_retention(ctx), "lost", "start", "start")


@kpi(
    "retention_rate",
    label="Customer retention rate",
    family=Family.CUSTOMERS,
    unit=Unit.PERCENT,
    placed_by="period start and end",
    formula="customers active at both period start and end / customers active at start * 100 "
    "(= 100 - churn_rate)",
    seeds="001 003",
    records="customers active at period start",
    is_ratio=True,
)
def retention_rate(ctx: KpiContext) -> pl.DataFrame:
    """Seed 001's (end - new) / start, counted without the accounts that were not customers at the
    start, so a new customer that leaves again within the period cannot distort it."""
    return rate(_retention(ctx), "kept", "start", "start")


@kpi(
    "clv",
    label="Customer lifetime value",
    family=Family.CUSTOMERS,
    unit=Unit.CURRENCY,
    placed_by="close date / period start and end",
    formula="avg purchase value * purchase frequency * lifespan = avg_revenue_per_customer / "
    "(churn_rate / 100), the lifespan in periods being 1 / churn",
    seeds="000 001",
    records="won opportunities with an account",
    is_ratio=True,
    blank_when_no_records=False,
)
def clv(ctx: KpiContext) -> pl.DataFrame:
    """Undefined when nobody churned in the period (the lifespan is then unbounded)."""
    per_customer = ctx.result("avg_revenue_per_customer").select(
        *KEYS, pl.col("value").alias("arpc"), "records"
    )
    churn = ctx.result("churn_rate").select(*KEYS, (pl.col("value") / 100.0).alias("churn"))
    both = per_customer.join(churn, on=list(KEYS), how="left")
    return both.select(
        *KEYS,
        ratio(pl.col("arpc"), pl.col("churn")).alias("value"),
        pl.col("arpc").alias("numerator"),
        pl.col("churn").alias("denominator"),
        "records",
    )


@kpi(
    "cac",
    label="Customer acquisition cost",
    family=Family.CUSTOMERS,
    unit=Unit.CURRENCY,
    placed_by="period (cost prorated by days) / first won deal",
    formula="sales and marketing cost of the period / new_customers",
    seeds="001 002",
    records="cost rows + new customers",
    scopes=GROUP_SCOPES,
    is_ratio=True,
)
def cac(ctx: KpiContext) -> pl.DataFrame:
    """Team and org only: spend comes per team (and org-wide) from ``costs``."""
    rows = (
        ctx.grid(GROUP_SCOPES)
        .join(ctx.cost_by_subject, on=list(KEYS), how="left")
        .join(_new_customers(ctx), on=list(KEYS), how="left")
        .with_columns(pl.col("cost").fill_null(0.0), pl.col("cost_rows", "new").fill_null(0))
        .with_columns(records=pl.col("cost_rows") + pl.col("new"))
    )
    return rate(rows, "cost", "new", "records", scale=1.0)


@kpi(
    "customer_satisfaction",
    label="Customer satisfaction",
    family=Family.CUSTOMERS,
    unit=Unit.SCORE,
    placed_by="active customers at period end",
    formula="mean of the mapped CSAT/NPS field over the subject's active customer accounts",
    seeds="003",
    records="active customer accounts with a score",
    is_ratio=True,
)
def customer_satisfaction(ctx: KpiContext) -> pl.DataFrame:
    """Only when the CRM has a satisfaction field mapped (column ``csat`` of accounts)."""
    if not ctx.tables.has_column("accounts", "csat"):
        raise KpiUnavailable("no satisfaction field is mapped (accounts have no csat column)")
    scores = ctx.accounts.select("account_id", "owner_id", "csat")
    active = ctx.active_at_end.join(scores.filter(pl.col("csat").is_not_null()), on="account_id")
    per = ctx.rollup_sum(active, {"total": pl.col("csat").sum(), "n": pl.len()})
    return rate(per, "total", "n", "n", scale=1.0)


@kpi(
    "lead_quality",
    label="Lead quality",
    family=Family.CUSTOMERS,
    unit=Unit.PERCENT,
    placed_by="lead created date (cohort)",
    formula="leads created in the period that were qualified (at any time) / leads created * 100",
    seeds="003",
    records="leads created",
    is_ratio=True,
)
def lead_quality(ctx: KpiContext) -> pl.DataFrame:
    """qualified_leads / leads_created taken over one cohort, so it stays within 0..100."""
    return rate(_lead_cohort(ctx), "qualified_ever", "created", "created")


@kpi(
    "lead_score_avg",
    label="Average lead score",
    family=Family.CUSTOMERS,
    unit=Unit.SCORE,
    placed_by="lead created date",
    formula="mean lead score of the leads created in the period that have a score",
    seeds="003",
    records="scored leads created",
    is_ratio=True,
)
def lead_score_avg(ctx: KpiContext) -> pl.DataFrame:
    """Where the CRM scores leads."""
    return rate(_lead_cohort(ctx), "score_sum", "scored", "scored", scale=1.0)
