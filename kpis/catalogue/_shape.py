"""Small helpers that give a KPI's aggregate the engine's row shape."""

from __future__ import annotations

import polars as pl

from kpis.context import KEYS, ratio


def _keys(frame: pl.DataFrame) -> list[str]:
    return [*KEYS, "dimension"] if "dimension" in frame.columns else list(KEYS)


def total(frame: pl.DataFrame, value: str, records: str) -> pl.DataFrame:
    """A sum or count KPI: ``value`` is the total, no numerator or denominator."""
    return frame.select(
        *_keys(frame), pl.col(value).alias("value"), pl.col(records).alias("records")
    )


def rate(
    frame: pl.DataFrame, num: str, den: str, records: str, scale: float = 100.0
) -> pl.DataFrame:
    """A ratio KPI: ``num / den * scale``, undefined on a zero denominator."""
    return frame.select(
        *_keys(frame),
        ratio(pl.col(num), pl.col(den), scale).alias("value"),
        pl.col(num).cast(pl.Float64).alias("numerator"),
        pl.col(den).cast(pl.Float64).alias("denominator"),
        pl.col(records).alias("records"),
    )


def count_where(condition: pl.Expr) -> pl.Expr:
    return condition.cast(pl.Int64).sum()
