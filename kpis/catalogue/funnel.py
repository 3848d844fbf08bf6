"""Conversion and funnel: leads to opportunities to wins (KPIS.md "Conversion and funnel")."""

from __future__ import annotations

import polars as pl

from kpis.catalogue._shape import count_where, rate, total
from kpis.context import KEYS, KpiContext, ratio, shared
from kpis.registry import Family, Unit, kpi


@shared
def _lead_cohort(ctx: KpiContext) -> pl.DataFrame:
    """Per subject and creation period: leads created and what became of them."""
    leads = ctx.leads.rename({"p_created": "period_start"})
    return ctx.rollup_sum(
        leads,
        {
            "created": pl.len(),
            "converted": count_where(pl.col("converted_at").is_not_null()),
            "customers": count_where(pl.col("converted_won")),
            "qualified_ever": count_where(pl.col("qualified_at").is_not_null()),
            "scored": count_where(pl.col("score").is_not_null()),
            "score_sum": pl.col("score").sum(),
        },
    )


@shared
def _qualified(ctx: KpiContext) -> pl.DataFrame:
    leads = ctx.leads.filter(pl.col("p_qualified").is_not_null()).rename(
        {"p_qualified": "period_start"}
    )
    return ctx.rollup_sum(
        leads, {"qualified": pl.len(), "qualified_won": count_where(pl.col("converted_won"))}
    )


@shared
def _created(ctx: KpiContext) -> pl.DataFrame:
    """Per subject and creation period: opportunities created and how many were won."""
    return ctx.rollup_sum(
        ctx.opportunities.rename({"p_created": "period_start"}),
        {"n": pl.len(), "won": count_where(pl.col("is_won"))},
    )


@shared
def _closed(ctx: KpiContext) -> pl.DataFrame:
    closed = ctx.closed.rename({"p_close": "period_start"})
    return ctx.rollup_sum(
        closed,
        {
            "closed": pl.len(),
            "won": count_where(pl.col("is_won")),
            "lost": count_where(~pl.col("is_won")),
        },
    )


@kpi(
    "leads_created",
    label="Leads created",
    family=Family.FUNNEL,
    unit=Unit.COUNT,
    placed_by="lead created date",
    formula="count of leads",
    seeds="003",
    records="leads",
    empty_is_zero=True,
)
def leads_created(ctx: KpiContext) -> pl.DataFrame:
    """New leads (CRM lead records, or contacts entering the lead stage or later)."""
    return total(_lead_cohort(ctx), "created", "created")


@kpi(
    "qualified_leads",
    label="Qualified leads",
    family=Family.FUNNEL,
    unit=Unit.COUNT,
    placed_by="qualified date",
    formula="leads that reached the qualified status/stage in the period",
    seeds="001 003",
    records="qualified leads",
    empty_is_zero=True,
)
def qualified_leads(ctx: KpiContext) -> pl.DataFrame:
    """Which lead statuses / lifecycle stages mean 'qualified' is a connector setting."""
    return total(_qualified(ctx), "qualified", "qualified")


@kpi(
    "lead_conversion_rate",
    label="Lead conversion rate",
    family=Family.FUNNEL,
    unit=Unit.PERCENT,
    placed_by="lead created date (cohort)",
    formula="leads created in the period that were converted (at any time up to now) / leads "
    "created * 100",
    seeds="000 001 003",
    records="leads created",
    is_ratio=True,
)
def lead_conversion_rate(ctx: KpiContext) -> pl.DataFrame:
    """Seed 000's worked example: 200 leads, 50 converted = 25 %."""
    return rate(_lead_cohort(ctx), "converted", "created", "created")


@kpi(
    "lead_to_customer_rate",
    label="Lead-to-customer rate",
    family=Family.FUNNEL,
    unit=Unit.PERCENT,
    placed_by="lead created date (cohort)",
    formula="leads of the cohort whose converted opportunity is won / leads created * 100",
    seeds="000",
    records="leads created",
    is_ratio=True,
)
def lead_to_customer_rate(ctx: KpiContext) -> pl.DataFrame:
    """Leads that became paying customers."""
    return rate(_lead_cohort(ctx), "customers", "created", "created")


@kpi(
    "qualified_lead_conversion_rate",
    label="Qualified-lead win rate",
    family=Family.FUNNEL,
    unit=Unit.PERCENT,
    placed_by="qualified date (cohort)",
    formula="leads qualified in the period whose converted opportunity is won / leads qualified "
    "in the period * 100",
    seeds="003 004",
    records="leads qualified",
    is_ratio=True,
)
def qualified_lead_conversion_rate(ctx: KpiContext) -> pl.DataFrame:
    """Seed 004's opportunity-win ratio."""
    return rate(_qualified(ctx), "qualified_won", "qualified", "qualified")


@kpi(
    "opportunities_created",
    label="Opportunities created",
    family=Family.FUNNEL,
    unit=Unit.COUNT,
    placed_by="opportunity created date",
    formula="count of opportunities created",
    seeds="002",
    records="opportunities",
    empty_is_zero=True,
)
def opportunities_created(ctx: KpiContext) -> pl.DataFrame:
    """New pipeline, by count."""
    return total(_created(ctx), "n", "n")


@kpi(
    "win_rate",
    label="Win rate",
    family=Family.FUNNEL,
    unit=Unit.PERCENT,
    placed_by="close date",
    formula="won / (won + lost) * 100 over opportunities closed in the period",
    seeds="000 002",
    records="closed opportunities",
    is_ratio=True,
)
def win_rate(ctx: KpiContext) -> pl.DataFrame:
    """Share of decided opportunities that were won."""
    return rate(_closed(ctx), "won", "closed", "closed")


@kpi(
    "win_rate_created",
    label="Win rate of created opportunities",
    family=Family.FUNNEL,
    unit=Unit.PERCENT,
    placed_by="opportunity created date (cohort)",
    formula="opportunities created in the period and won (at any time up to now) / opportunities "
    "created * 100",
    seeds="000",
    records="opportunities created",
    is_ratio=True,
)
def win_rate_created(ctx: KpiContext) -> pl.DataFrame:
    """Seed 000's 'closed deals / opportunities created'."""
    return rate(_created(ctx), "won", "n", "n")


@shared
def _cycles(ctx: KpiContext) -> pl.DataFrame:
    """Per subject and close period: won deals and the days from first contact to close."""
    lead_start = ctx.leads.select(
        pl.col("lid").alias("lead_id"), pl.col("created_date").alias("ls")
    )
    won = ctx.won.join(lead_start, on="lead_id", how="left").with_columns(
        days=(pl.col("close_date") - pl.coalesce("ls", "created_date")).dt.total_days()
    )
    return ctx.rollup_sum(
        won.rename({"p_close": "period_start"}),
        {
            "days": pl.col("days").sum(),
            "won": pl.len(),
            "revenue": pl.col("amount_c").sum(),
        },
    )


@kpi(
    "avg_sales_cycle_days",
    label="Average sales cycle",
    family=Family.FUNNEL,
    unit=Unit.DAYS,
    placed_by="close date",
    formula="sum(close date - start date) / won deals; start = creation of the source lead when "
    "there is one (first contact), else the opportunity's creation",
    seeds="000 001 003",
    records="won opportunities",
    is_ratio=True,
)
def avg_sales_cycle_days(ctx: KpiContext) -> pl.DataFrame:
    """How long winning takes."""
    return rate(_cycles(ctx), "days", "won", "won", scale=1.0)


@kpi(
    "pipeline_velocity",
    label="Pipeline velocity",
    family=Family.FUNNEL,
    unit=Unit.CURRENCY_PER_DAY,
    placed_by="snapshot at period end",
    formula="open opportunities at period end * win_rate * avg_deal_size / avg_sales_cycle_days",
    seeds="001 002",
    records="opportunities open at period end",
)
def pipeline_velocity(ctx: KpiContext) -> pl.DataFrame:
    """Money the pipeline is expected to turn into per day."""
    opps = ctx.opportunities.with_columns(
        open_until=pl.when(pl.col("is_closed")).then(pl.col("close_date")).otherwise(None)
    )
    # Open at the end of a period: created on or before its last day, not closed by then.
    open_at_end = ctx.covering_counts(opps, "created_date", "open_until", "last_day")
    opened = ctx.rollup_sum(open_at_end, {"open": pl.col("n").sum()})
    parts = [
        ctx.result(key).select(*KEYS, pl.col("value").alias(key))
        for key in ("win_rate", "avg_deal_size", "avg_sales_cycle_days")
    ]
    rows = (
        ctx.grid().join(opened, on=list(KEYS), how="left").with_columns(pl.col("open").fill_null(0))
    )
    for part in parts:
        rows = rows.join(part, on=list(KEYS), how="left")
    expected = pl.col("open") * pl.col("win_rate") / 100.0 * pl.col("avg_deal_size")
    return rows.select(
        *KEYS,
        ratio(expected, pl.col("avg_sales_cycle_days")).alias("value"),
        expected.alias("numerator"),
        pl.col("avg_sales_cycle_days").alias("denominator"),
        pl.col("open").alias("records"),
    )


@kpi(
    "closed_value_velocity",
    label="Closed value velocity",
    family=Family.FUNNEL,
    unit=Unit.CURRENCY_PER_DAY,
    placed_by="close date",
    formula="value of won deals / avg_sales_cycle_days (seed 001's literal formula)",
    seeds="001",
    records="won opportunities",
    is_ratio=True,
)
def closed_value_velocity(ctx: KpiContext) -> pl.DataFrame:
    """Won value per day of sales cycle."""
    cycles = _cycles(ctx).with_columns(avg_days=ratio(pl.col("days"), pl.col("won")))
    return rate(cycles, "revenue", "avg_days", "won", scale=1.0)


@kpi(
    "drop_off_rate",
    label="Opportunity drop-off rate",
    family=Family.FUNNEL,
    unit=Unit.PERCENT,
    placed_by="close date",
    formula="opportunities closed lost / opportunities closed * 100",
    seeds="003",
    records="closed opportunities",
    is_ratio=True,
)
def drop_off_rate(ctx: KpiContext) -> pl.DataFrame:
    """Opportunities that left the funnel before purchase."""
    return rate(_closed(ctx), "lost", "closed", "closed")


@kpi(
    "lead_drop_off_rate",
    label="Lead drop-off rate",
    family=Family.FUNNEL,
    unit=Unit.PERCENT,
    placed_by="disqualified date, else converted date",
    formula="leads disqualified / leads that left the lead stage (disqualified or converted) * 100",
    seeds="003",
    records="leads disqualified or converted",
    is_ratio=True,
)
def lead_drop_off_rate(ctx: KpiContext) -> pl.DataFrame:
    """Leads that left the funnel before becoming an opportunity."""
    ended = ctx.leads.filter(pl.col("p_end").is_not_null()).rename({"p_end": "period_start"})
    per = ctx.rollup_sum(
        ended, {"ended": pl.len(), "dropped": count_where(pl.col("disqualified_at").is_not_null())}
    )
    return rate(per, "dropped", "ended", "ended")


@shared
def _competed(ctx: KpiContext) -> pl.DataFrame:
    return ctx.closed.filter(pl.col("competitor").is_not_null()).rename(
        {"p_close": "period_start", "competitor": "dimension"}
    )


@kpi(
    "competitor_win_rate",
    label="Win rate against competitor",
    family=Family.FUNNEL,
    unit=Unit.PERCENT,
    placed_by="close date",
    formula="won / closed * 100 over opportunities with that competitor (one row per competitor)",
    seeds="000",
    records="closed opportunities with the competitor",
    is_ratio=True,
    by_dimension="competitor",
)
def competitor_win_rate(ctx: KpiContext) -> pl.DataFrame:
    """Per named competitor, in the ``dimension`` column."""
    per = ctx.rollup_sum(
        _competed(ctx),
        {"closed": pl.len(), "won": count_where(pl.col("is_won"))},
        keys=("period_start", "dimension"),
    )
    return rate(per, "won", "closed", "closed")


@kpi(
    "competitor_price_gap",
    label="Price gap to competitor",
    family=Family.FUNNEL,
    unit=Unit.CURRENCY,
    placed_by="close date",
    formula="average (our amount - competitor price) over closed opportunities where the "
    "competitor's price is recorded (one row per competitor)",
    seeds="000",
    records="closed opportunities with a competitor price",
    is_ratio=True,
    by_dimension="competitor",
)
def competitor_price_gap(ctx: KpiContext) -> pl.DataFrame:
    """Positive: we were more expensive."""
    priced = _competed(ctx).filter(pl.col("competitor_price_c").is_not_null())
    per = ctx.rollup_sum(
        priced,
        {"gap": (pl.col("amount_c") - pl.col("competitor_price_c")).sum(), "n": pl.len()},
        keys=("period_start", "dimension"),
    )
    return rate(per, "gap", "n", "n", scale=1.0)
