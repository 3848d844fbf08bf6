"""Results: revenue and what is derived from it (KPIS.md "Results")."""

from __future__ import annotations

import polars as pl

from kpis.catalogue._shape import count_where, rate, total
from kpis.context import KEYS, KpiContext, ratio, shared
from kpis.registry import GROUP_SCOPES, Family, Unit, kpi


@shared
def _won_totals(ctx: KpiContext) -> pl.DataFrame:
    won = ctx.won.rename({"p_close": "period_start"})
    return ctx.rollup_sum(
        won,
        {
            "revenue": pl.col("amount_c").sum(),
            "won": pl.len(),
            "upsell": pl.col("amount_c").filter(pl.col("type") == "upsell").sum(),
            "upsell_n": count_where(pl.col("type") == "upsell"),
        },
    )


@kpi(
    "revenue",
    label="Revenue",
    family=Family.RESULTS,
    unit=Unit.CURRENCY,
    placed_by="close date",
    formula="sum of converted amount of closed-won opportunities",
    seeds="001 003 004 000",
    records="won opportunities",
    empty_is_zero=True,
)
def revenue(ctx: KpiContext) -> pl.DataFrame:
    """Closed-won business in the corporate currency, converted at the rate on the close date."""
    return total(_won_totals(ctx), "revenue", "won")


@kpi(
    "deals_won",
    label="Deals won",
    family=Family.RESULTS,
    unit=Unit.COUNT,
    placed_by="close date",
    formula="count of closed-won opportunities",
    seeds="003",
    records="won opportunities",
    empty_is_zero=True,
)
def deals_won(ctx: KpiContext) -> pl.DataFrame:
    """The number of sales."""
    return total(_won_totals(ctx), "won", "won")


@kpi(
    "avg_deal_size",
    label="Average deal size",
    family=Family.RESULTS,
    unit=Unit.CURRENCY,
    placed_by="close date",
    formula="revenue / deals_won",
    seeds="000 001 002 003",
    records="won opportunities",
    is_ratio=True,
)
def avg_deal_size(ctx: KpiContext) -> pl.DataFrame:
    """Average order / transaction value of the deals won in the period."""
    return rate(_won_totals(ctx), "revenue", "won", "won", scale=1.0)


@kpi(
    "bookings",
    label="Bookings",
    family=Family.RESULTS,
    unit=Unit.CURRENCY,
    placed_by="close date",
    formula="sum of converted amount of opportunities closed-won in the period, "
    "future-dated contracts included",
    seeds="001",
    records="won opportunities",
    empty_is_zero=True,
)
def bookings(ctx: KpiContext) -> pl.DataFrame:
    """What was signed in the period, whenever its contract starts. Placed by close date like
    revenue, so the two agree as the catalogue defines them; bookings is kept as its own key because
    seed 001 reports it under that name."""
    return total(_won_totals(ctx), "revenue", "won")


@kpi(
    "revenue_growth_mom",
    label="Revenue growth vs previous period",
    family=Family.RESULTS,
    unit=Unit.PERCENT,
    placed_by="close date",
    formula="(revenue(p) - revenue(p-1)) / revenue(p-1) * 100, p-1 = the previous period of "
    "the same type",
    seeds="001 000",
    records="won opportunities of both periods",
    is_ratio=True,
)
def revenue_growth_mom(ctx: KpiContext) -> pl.DataFrame:
    """Month-over-month growth (quarter-over-quarter, year-over-year for those period types)."""
    current = _won_totals(ctx).select(*KEYS, "revenue", "won")
    previous = current.select(
        "scope",
        "subject_id",
        ctx.period_end(pl.col("period_start")).alias("period_start"),
        pl.col("revenue").alias("prev_revenue"),
        pl.col("won").alias("prev_won"),
    )
    both = (
        ctx.grid()
        .join(current, on=list(KEYS), how="left")
        .join(previous, on=list(KEYS), how="left")
    )
    both = both.with_columns(
        pl.col("revenue", "prev_revenue").fill_null(0.0), pl.col("won", "prev_won").fill_null(0)
    )
    return both.select(
        *KEYS,
        ratio(pl.col("revenue") - pl.col("prev_revenue"), pl.col("prev_revenue"), 100.0).alias(
            "value"
        ),
        (pl.col("revenue") - pl.col("prev_revenue")).alias("numerator"),
        pl.col("prev_revenue").alias("denominator"),
        (pl.col("won") + pl.col("prev_won")).alias("records"),
    )


@kpi(
    "avg_revenue_per_customer",
    label="Average revenue per customer",
    family=Family.RESULTS,
    unit=Unit.CURRENCY,
    placed_by="close date",
    formula="revenue / distinct accounts with a won deal, over won deals that have an account",
    seeds="001",
    records="won opportunities with an account",
    is_ratio=True,
)
def avg_revenue_per_customer(ctx: KpiContext) -> pl.DataFrame:
    """Revenue per paying customer; a team counts an account once however many reps sold to it."""
    won = ctx.won.filter(pl.col("account_id").is_not_null()).rename({"p_close": "period_start"})
    per = ctx.rollup(
        won,
        [
            pl.col("amount_c").sum().alias("revenue"),
            pl.col("account_id").n_unique().alias("customers"),
            pl.len().alias("deals"),
        ],
    )
    return rate(per, "revenue", "customers", "deals", scale=1.0)


@kpi(
    "mrr",
    label="Monthly recurring revenue",
    family=Family.RESULTS,
    unit=Unit.CURRENCY,
    placed_by="active span (snapshot on the period's last day)",
    formula="sum of converted recurring_monthly_amount of won deals whose contract covers the "
    "period's last day (contract_start <= day < contract_end, closed on or before it)",
    seeds="001",
    records="active recurring deals",
    empty_is_zero=True,
)
def mrr(ctx: KpiContext) -> pl.DataFrame:
    """Recurring revenue in force at the end of the period."""
    deals = ctx.won.filter(
        pl.col("recurring_c").is_not_null() & pl.col("contract_start").is_not_null()
    ).with_columns(active_from=pl.max_horizontal("contract_start", "close_date"))
    active = ctx.covering_periods(deals, "active_from", "contract_end", "last_day")
    per = ctx.rollup_sum(active, {"mrr": pl.col("recurring_c").sum(), "deals": pl.len()})
    return total(per, "mrr", "deals")


@kpi(
    "upsell_cross_sell_revenue",
    label="Upsell and cross-sell revenue",
    family=Family.RESULTS,
    unit=Unit.CURRENCY,
    placed_by="close date",
    formula="revenue of won opportunities of type upsell (existing-customer upgrade, add-on, "
    "cross-sell; the CRM type mapping is a setting)",
    seeds="001",
    records="won upsell opportunities",
    empty_is_zero=True,
)
def upsell_cross_sell_revenue(ctx: KpiContext) -> pl.DataFrame:
    """Revenue from existing customers buying more."""
    return total(_won_totals(ctx), "upsell", "upsell_n")


@kpi(
    "profit_margin",
    label="Profit margin",
    family=Family.RESULTS,
    unit=Unit.PERCENT,
    placed_by="close date",
    formula="sum(amount - cost) / sum(amount) * 100 over won deals that have a cost",
    seeds="001",
    records="won opportunities with a cost",
    is_ratio=True,
)
def profit_margin(ctx: KpiContext) -> pl.DataFrame:
    """Margin on the deals whose cost is known; undefined when none has one."""
    won = ctx.won.filter(pl.col("cost_c").is_not_null()).rename({"p_close": "period_start"})
    per = ctx.rollup_sum(
        won,
        {
            "profit": (pl.col("amount_c") - pl.col("cost_c")).sum(),
            "amount": pl.col("amount_c").sum(),
            "deals": pl.len(),
        },
    )
    return rate(per, "profit", "amount", "deals")


@kpi(
    "roi",
    label="Return on sales and marketing spend",
    family=Family.RESULTS,
    unit=Unit.PERCENT,
    placed_by="close date (cost prorated by days)",
    formula="(revenue - sales_and_marketing_cost) / sales_and_marketing_cost * 100",
    seeds="003",
    records="won opportunities + cost rows",
    scopes=GROUP_SCOPES,
    is_ratio=True,
)
def roi(ctx: KpiContext) -> pl.DataFrame:
    """Team and org only: spend comes per team (and org-wide) from ``costs``."""
    won = _won_totals(ctx).select(*KEYS, "revenue", "won")
    both = (
        ctx.grid(GROUP_SCOPES)
        .join(won, on=list(KEYS), how="left")
        .join(ctx.cost_by_subject, on=list(KEYS), how="left")
        .with_columns(
            pl.col("revenue", "cost").fill_null(0.0), pl.col("won", "cost_rows").fill_null(0)
        )
    )
    return both.select(
        *KEYS,
        ratio(pl.col("revenue") - pl.col("cost"), pl.col("cost"), 100.0).alias("value"),
        (pl.col("revenue") - pl.col("cost")).alias("numerator"),
        pl.col("cost").alias("denominator"),
        (pl.col("won") + pl.col("cost_rows")).alias("records"),
    )
