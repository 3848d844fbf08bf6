"""Targets: quotas and how the reps, teams and org stand against them (KPIS.md "Targets")."""

from __future__ import annotations

import datetime as dt

import polars as pl

from kpis.catalogue._shape import rate, total
from kpis.context import KEYS, KpiContext, ratio, shared
from kpis.registry import GROUP_SCOPES, Family, Unit, kpi


@kpi(
    "quota",
    label="Quota",
    family=Family.TARGETS,
    unit=Unit.CURRENCY,
    placed_by="quota month",
    formula="sum of the subject's reps' quotas for the period; multi-month quotas split by "
    "seasonality weights and planned growth; converted at the rate of the quota's start",
    seeds="004",
    records="quota rows",
    empty_is_zero=True,
)
def quota(ctx: KpiContext) -> pl.DataFrame:
    """The target for the period (CRM quota objects, goals or a quota CSV)."""
    months = ctx.quota_months.with_columns(period_start=ctx.period_of(pl.col("month")))
    per = ctx.rollup(
        months,
        [pl.col("amount_c").sum().alias("quota"), pl.col("quota_row").n_unique().alias("rows")],
    )
    return total(per, "quota", "rows")


@shared
def _attainment_base(ctx: KpiContext) -> pl.DataFrame:
    """Per subject: revenue and quota of its reps with a quota (reps without count in neither)."""
    return ctx.rollup_sum(
        ctx.rep_targets,
        {
            "revenue": pl.col("revenue").sum(),
            "quota": pl.col("quota").sum(),
            "won": pl.col("won").sum(),
            "quota_rows": pl.col("quota_rows").sum(),
            "reps": pl.len(),
            "hit": (pl.col("revenue") >= pl.col("quota")).cast(pl.Int64).sum(),
        },
    )


@kpi(
    "quota_attainment",
    label="Quota attainment",
    family=Family.TARGETS,
    unit=Unit.PERCENT,
    placed_by="close date / quota month",
    formula="revenue / quota * 100; for a team or the org, over the reps that have a quota",
    seeds="000",
    records="won opportunities + quota rows of reps with a quota",
    is_ratio=True,
)
def quota_attainment(ctx: KpiContext) -> pl.DataFrame:
    """How much of the target was reached."""
    base = _attainment_base(ctx).with_columns(records=pl.col("won") + pl.col("quota_rows"))
    return rate(base, "revenue", "quota", "records")


def _to_date(ctx: KpiContext) -> pl.DataFrame:
    """Per period: the exclusive end of "to date" (as_of + 1 day, capped at the period end)."""
    # Pure: "today" comes from the caller; without it, the last day of the data serves.
    as_of: dt.date = ctx.settings.as_of or ctx.period_frame["last_day"][-1]
    frame = ctx.period_frame.filter(pl.col("period_start") <= as_of)
    return frame.with_columns(
        to_date_end=pl.min_horizontal(pl.col("period_end"), pl.lit(as_of + dt.timedelta(days=1)))
    )


@kpi(
    "monthly_sales_progress",
    label="Sales progress to date",
    family=Family.TARGETS,
    unit=Unit.PERCENT,
    placed_by="close date up to today",
    formula="revenue closed from the period start up to today / the period's quota * 100, over "
    "reps with a quota; compare with monthly_sales_expected to read ahead/behind",
    seeds="000",
    records="won opportunities to date",
    is_ratio=True,
)
def monthly_sales_progress(ctx: KpiContext) -> pl.DataFrame:
    """Month-to-date revenue against the month's target (periods that have started)."""
    to_date = _to_date(ctx).select("period_start", "to_date_end")
    with_quota = ctx.rep_targets.select("owner_id", "period_start", "quota")
    won = (
        ctx.won.rename({"p_close": "period_start"})
        .join(to_date, on="period_start")
        .filter(pl.col("close_date") < pl.col("to_date_end"))
        .join(with_quota.select("owner_id", "period_start"), on=["owner_id", "period_start"])
    )
    won_per = ctx.rollup_sum(won, {"revenue": pl.col("amount_c").sum(), "won": pl.len()})
    quota_per = ctx.rollup_sum(
        with_quota.join(to_date, on="period_start"), {"quota": pl.col("quota").sum()}
    )
    both = quota_per.join(won_per, on=list(KEYS), how="left").with_columns(
        pl.col("revenue").fill_null(0.0), pl.col("won").fill_null(0)
    )
    return rate(both, "revenue", "quota", "won")


@kpi(
    "monthly_sales_expected",
    label="Expected progress by today",
    family=Family.TARGETS,
    unit=Unit.PERCENT,
    placed_by="calendar",
    formula="days elapsed in the period up to and including today / days in the period * 100 "
    "(the linear 'expected by today' share)",
    seeds="000",
    records="none (calendar)",
    is_ratio=True,
    blank_when_no_records=False,
)
def monthly_sales_expected(ctx: KpiContext) -> pl.DataFrame:
    """Where progress should be if sales came in evenly over the period."""
    to_date = _to_date(ctx).with_columns(
        elapsed=(pl.col("to_date_end") - pl.col("period_start")).dt.total_days(),
        length=(pl.col("period_end") - pl.col("period_start")).dt.total_days(),
    )
    rows = ctx.grid().join(to_date, on="period_start")
    return rows.with_columns(records=pl.lit(0, dtype=pl.Int64)).pipe(
        rate, "elapsed", "length", "records"
    )


@kpi(
    "pct_reps_hitting_quota",
    label="Reps at or above quota",
    family=Family.TARGETS,
    unit=Unit.PERCENT,
    placed_by="close date / quota month",
    formula="reps with quota_attainment >= 100 / reps with a quota * 100; below the insight "
    "threshold (60 %) raises 'targets may be too ambitious'",
    seeds="000",
    records="reps with a quota",
    scopes=GROUP_SCOPES,
    is_ratio=True,
)
def pct_reps_hitting_quota(ctx: KpiContext) -> pl.DataFrame:
    """Team and org only: how widely the target is reached."""
    return rate(_attainment_base(ctx), "hit", "reps", "reps")


@kpi(
    "pipeline_coverage",
    label="Pipeline coverage",
    family=Family.TARGETS,
    unit=Unit.MULTIPLE,
    placed_by="expected close date",
    formula="open pipeline due in the period / (quota - revenue), over reps with a quota; "
    "undefined once the quota is met",
    seeds="",
    records="open opportunities due in the period",
    is_ratio=True,
)
def pipeline_coverage(ctx: KpiContext) -> pl.DataFrame:
    """Whether enough open pipeline is due to close the gap to quota (beyond the seeds)."""
    open_opps = (
        ctx.opportunities.filter(~pl.col("is_closed") & pl.col("amount_c").is_not_null())
        .rename({"p_close": "period_start"})
        .join(ctx.rep_targets.select("owner_id", "period_start"), on=["owner_id", "period_start"])
    )
    pipe = ctx.rollup_sum(open_opps, {"pipeline": pl.col("amount_c").sum(), "open": pl.len()})
    base = (
        _attainment_base(ctx)
        .join(pipe, on=list(KEYS), how="left")
        .with_columns(
            pl.col("pipeline").fill_null(0.0),
            pl.col("open").fill_null(0),
            remaining=pl.col("quota") - pl.col("revenue"),
        )
    )
    return base.select(
        *KEYS,
        pl.when(pl.col("remaining") > 0)
        .then(ratio(pl.col("pipeline"), pl.col("remaining")))
        .alias("value"),
        pl.col("pipeline").alias("numerator"),
        pl.col("remaining").alias("denominator"),
        pl.col("open").alias("records"),
    )
