"""The KPI engine: canonical tables in, KPI values out (pure; no I/O, no CRM names)."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from kpis.context import KEYS, KpiContext
from kpis.registry import Scope, catalogue
from kpis.settings import KpiSettings
from kpis.tables import CanonicalTables

OUTPUT_COLUMNS = (
    "metric",
    "scope",
    "subject_id",
    "period_start",
    "period_end",
    "value",
    "unit",
    "numerator",
    "denominator",
    "records",
    "dimension",
)
OUTPUT_SCHEMA: dict[str, pl.DataType] = {
    "metric": pl.String(),
    "scope": pl.String(),
    "subject_id": pl.String(),
    "period_start": pl.Date(),
    "period_end": pl.Date(),
    "value": pl.Float64(),
    "unit": pl.String(),
    "numerator": pl.Float64(),
    "denominator": pl.Float64(),
    "records": pl.Int64(),
    "dimension": pl.String(),
}
INSIGHT_SCHEMA: dict[str, pl.DataType] = {
    "insight": pl.String(),
    "scope": pl.String(),
    "subject_id": pl.String(),
    "period_start": pl.Date(),
    "period_end": pl.Date(),
    "value": pl.Float64(),
    "message": pl.String(),
}


_SCOPE_ORDER = {Scope.ORG.value: 0, Scope.TEAM.value: 1, Scope.REP.value: 2}


class KpiUnavailable(Exception):
    """Raised by a KPI whose source data the org does not have (e.g. no satisfaction field)."""


@dataclass(frozen=True)
class KpiRun:
    """What one computation produced."""

    values: pl.DataFrame
    insights: pl.DataFrame
    unavailable: dict[str, str] = field(default_factory=dict)


def _empty_values() -> pl.DataFrame:
    return pl.DataFrame(schema=OUTPUT_SCHEMA)


def compute_one(ctx: KpiContext, key: str) -> pl.DataFrame:
    """One KPI's rows, in the output format, over its grid of subjects and periods."""
    definition = catalogue()[key]
    raw = definition.compute(ctx)
    for column in ("numerator", "denominator"):
        if column not in raw.columns:
            raw = raw.with_columns(pl.lit(None, dtype=pl.Float64).alias(column))
    if "dimension" not in raw.columns:
        raw = raw.with_columns(dimension=pl.lit(None, dtype=pl.String))
    raw = raw.select(
        *KEYS,
        pl.col("dimension").cast(pl.String),
        pl.col("value").cast(pl.Float64),
        pl.col("numerator").cast(pl.Float64),
        pl.col("denominator").cast(pl.Float64),
        pl.col("records").cast(pl.Int64),
    )
    scopes = [s.value for s in definition.scopes]
    periods = ctx.period_frame.select("period_start", "period_end")
    if definition.by_dimension:
        rows = raw.filter(pl.col("scope").is_in(scopes)).join(
            ctx.subjects, on=["scope", "subject_id"], how="semi"
        )
        rows = rows.join(periods, on="period_start")
    else:
        rows = ctx.grid(definition.scopes).join(raw, on=list(KEYS), how="left")
        rows = rows.with_columns(pl.col("records").fill_null(0)).join(periods, on="period_start")
        if definition.empty_is_zero:
            rows = rows.with_columns(pl.col("value").fill_null(0.0))
    if definition.is_ratio and definition.blank_when_no_records:
        nothing = (pl.col("records") == 0) & pl.col("denominator").fill_null(0).eq(0)
        rows = rows.with_columns(
            [
                pl.when(~nothing).then(pl.col(c)).alias(c)
                for c in ("value", "numerator", "denominator")
            ]
        )
    unit = definition.unit.render(ctx.settings.corporate_currency)
    scope_order = pl.col("scope").replace_strict(_SCOPE_ORDER, return_dtype=pl.Int8)
    rows = rows.sort(scope_order, "subject_id", "period_start", "dimension", nulls_last=False)
    return rows.with_columns(metric=pl.lit(key), unit=pl.lit(unit)).select(
        [pl.col(c).cast(t) for c, t in OUTPUT_SCHEMA.items()]
    )


def _insights(ctx: KpiContext, values: pl.DataFrame) -> pl.DataFrame:
    """Teams and periods where too few reps hit quota ("targets may be too ambitious", seed 000)."""
    threshold = ctx.settings.quota_hit_insight_pct
    low = values.filter(
        (pl.col("metric") == "pct_reps_hitting_quota")
        & pl.col("value").is_not_null()
        & (pl.col("value") < threshold)
    )
    message = pl.format(
        "{} of {} reps with a quota hit it ({}%, below {}%): targets may be too ambitious",
        pl.col("numerator").cast(pl.Int64),
        pl.col("denominator").cast(pl.Int64),
        pl.col("value").round(1),
        pl.lit(threshold),
    )
    return low.select(
        pl.lit("quota_too_ambitious").alias("insight"),
        "scope",
        "subject_id",
        "period_start",
        "period_end",
        "value",
        message.alias("message"),
    ).cast(INSIGHT_SCHEMA)  # type: ignore[arg-type]


def compute_kpis(
    tables: CanonicalTables,
    settings: KpiSettings,
    metrics: list[str] | None = None,
) -> KpiRun:
    """Compute the catalogue (or the named ``metrics``) for every rep, team and the org."""
    registry = catalogue()
    keys = list(registry) if metrics is None else [k for k in registry if k in metrics]
    unknown = [k for k in (metrics or []) if k not in registry]
    if unknown:
        raise KeyError(f"unknown KPI(s): {', '.join(unknown)}")
    ctx = KpiContext(tables, settings)
    if not ctx.periods:
        return KpiRun(_empty_values(), pl.DataFrame(schema=INSIGHT_SCHEMA))
    frames: list[pl.DataFrame] = []
    unavailable: dict[str, str] = {}
    for key in keys:
        try:
            frames.append(ctx.result(key))
        except KpiUnavailable as exc:
            unavailable[key] = str(exc)
    # Each KPI's rows come sorted (small sorts), and KPIs run in catalogue order, so the
    # concatenation is in output order without sorting millions of rows at the end.
    values = pl.concat(frames) if frames else _empty_values()
    return KpiRun(values, _insights(ctx, values), unavailable)
