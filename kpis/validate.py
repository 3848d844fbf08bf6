"""Typing and checking canonical tables: good rows in, bad rows quarantined with a reason.

Input is text (every cell a string or null, as read from CSV or a store); output is the typed
canonical tables and a quarantine frame ``table, line, id, reason``. A bad row never stops the run
and never reaches a KPI. This module is pure: the caller reads and writes files.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from kpis.tables import TABLES, CanonicalTables, ColumnKind

QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "table": pl.String(),
    "line": pl.Int64(),
    "id": pl.String(),
    "reason": pl.String(),
}

# Records outside these dates are data-entry errors (0001-01-01, 9999-12-31 placeholders); they
# would also stretch every report over millennia.
EARLIEST = dt.date(1900, 1, 1)
LATEST = dt.date(2200, 1, 1)

_TIMESTAMP_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.fZ",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%dT%H:%M:%S%z",
)


class StructureError(ValueError):
    """A table or column is missing: the input cannot be read at all."""


@dataclass(frozen=True)
class Validated:
    tables: CanonicalTables
    quarantine: pl.DataFrame


def _parse(column: str, kind: ColumnKind) -> pl.Expr:
    text = pl.col(column).cast(pl.String).str.strip_chars()
    text = pl.when(text == "").then(None).otherwise(text)
    if kind in (ColumnKind.ID, ColumnKind.TEXT):
        return text
    if kind is ColumnKind.NUMBER:
        return text.cast(pl.Float64, strict=False)
    if kind is ColumnKind.BOOL:
        lowered = text.str.to_lowercase()
        return pl.when(lowered == "true").then(True).when(lowered == "false").then(False)
    if kind is ColumnKind.DATE:
        return text.str.to_date("%Y-%m-%d", strict=False)
    return pl.coalesce(
        [
            text.str.to_datetime(fmt, time_zone="UTC", time_unit="us", strict=False)
            for fmt in _TIMESTAMP_FORMATS
        ]
    )


def _problems(name: str, columns: dict[str, ColumnKind]) -> list[pl.Expr]:
    """One expression per check: the reason text where the row fails it, else null."""
    spec = TABLES[name]
    checks: list[pl.Expr] = []
    for column, kind in columns.items():
        raw = pl.col(column).cast(pl.String).str.strip_chars()
        present = raw.is_not_null() & (raw != "")
        parsed = pl.col(f"__{column}")
        if column in spec.required:
            checks.append(pl.when(~present).then(pl.lit(f"{column} is required")))
        if kind not in (ColumnKind.ID, ColumnKind.TEXT):
            checks.append(
                pl.when(present & parsed.is_null()).then(
                    pl.format(f"{column}: cannot read {{}} as {kind.value}", raw.str.slice(0, 40))
                )
            )
        if kind is ColumnKind.NUMBER:
            checks.append(
                pl.when(parsed.is_nan() | parsed.is_infinite()).then(
                    pl.lit(f"{column} is not finite")
                )
            )
            if column in {"amount", "cost", "recurring_monthly_amount", "competitor_price", "rate"}:
                checks.append(pl.when(parsed < 0).then(pl.lit(f"{column} is negative")))
        if kind in (ColumnKind.DATE, ColumnKind.TIMESTAMP):
            as_date = parsed if kind is ColumnKind.DATE else parsed.dt.date()
            checks.append(
                pl.when((as_date < EARLIEST) | (as_date >= LATEST)).then(
                    pl.lit(f"{column} is outside {EARLIEST.year}..{LATEST.year - 1}")
                )
            )
        if kind is ColumnKind.TEXT:
            checks.append(
                pl.when(raw.str.len_chars() > 10_000).then(pl.lit(f"{column} is longer than 10000"))
            )
    if name == "opportunities":
        checks.append(
            pl.when(
                pl.col("__is_won").fill_null(False) & ~pl.col("__is_closed").fill_null(False)
            ).then(pl.lit("is_won without is_closed"))
        )
        checks.append(
            pl.when(pl.col("__is_closed").fill_null(False) & pl.col("__close_date").is_null()).then(
                pl.lit("closed opportunity without close_date")
            )
        )
    if name in ("quotas", "costs"):
        checks.append(
            pl.when(pl.col("__period_end") <= pl.col("__period_start")).then(
                pl.lit("period_end is not after period_start")
            )
        )
    if name == "fx_rates":
        checks.append(pl.when(pl.col("__rate") == 0).then(pl.lit("rate is zero")))
    return checks


def validate_table(name: str, raw: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Type one table of text; return (good rows typed, with their ``__line``; quarantine rows)."""
    spec = TABLES[name]
    missing = [c for c in spec.columns if c not in raw.columns]
    if missing:
        raise StructureError(f"{spec.file_name}: missing column {missing[0]!r}")
    columns = dict(spec.columns)
    columns.update({c: k for c, k in spec.optional.items() if c in raw.columns})
    # Line numbers as in the CSV file: the header is line 1.
    frame = raw.with_row_index("__line", offset=2).with_columns(
        pl.col("__line").cast(pl.Int64), *[_parse(c, k).alias(f"__{c}") for c, k in columns.items()]
    )
    reasons = pl.concat_str(_problems(name, columns), separator="; ", ignore_nulls=True)
    frame = frame.with_columns(__reason=pl.when(reasons != "").then(reasons))
    # A record is identified by its id; a rate by its currency and start (two rates for one day
    # would make the result depend on row order). Later duplicates are quarantined.
    natural_key = (
        ["id"] if "id" in columns else (["currency", "start_date"] if name == "fx_rates" else [])
    )
    if natural_key:
        parsed_key = [f"__{c}" for c in natural_key]
        # The first row that is otherwise good wins, so a bad first copy does not take the rest.
        first_line = (
            pl.when(pl.col("__reason").is_null()).then(pl.col("__line")).min().over(parsed_key)
        )
        duplicate = pl.all_horizontal(pl.col(parsed_key).is_not_null()) & (
            pl.col("__line") != first_line
        )
        label = "id" if natural_key == ["id"] else "rate for this currency and start_date"
        frame = frame.with_columns(
            __reason=pl.when(duplicate & pl.col("__reason").is_null())
            .then(pl.format(f"duplicate {label} (first on line {{}})", first_line))
            .otherwise(pl.col("__reason"))
        )
    schema = spec.schema(with_optional=True)
    good = frame.filter(pl.col("__reason").is_null()).select(
        *[pl.col(f"__{c}").cast(schema[c]).alias(c) for c in columns], "__line"
    )
    quarantine = _quarantine_rows(frame.filter(pl.col("__reason").is_not_null()), spec.file_name)
    return good, quarantine


def _quarantine_rows(bad: pl.DataFrame, file_name: str) -> pl.DataFrame:
    id_column = "__id" if "__id" in bad.columns else ("id" if "id" in bad.columns else None)
    return bad.select(
        pl.lit(file_name).alias("table"),
        pl.col("__line").alias("line"),
        (pl.col(id_column) if id_column else pl.lit(None, dtype=pl.String)).alias("id"),
        pl.col("__reason").alias("reason"),
    ).cast(QUARANTINE_SCHEMA)  # type: ignore[arg-type]


def validate_tables(raw: dict[str, pl.DataFrame], corporate_currency: str) -> Validated:
    """Type and check every canonical table; unknown currencies are quarantined too."""
    typed: dict[str, pl.DataFrame] = {}
    quarantined: list[pl.DataFrame] = []
    for name, frame in raw.items():
        typed[name], bad = validate_table(name, frame)
        quarantined.append(bad)
    rates = typed.get("fx_rates")
    known = [corporate_currency, *([] if rates is None else rates["currency"].unique().to_list())]
    for name in ("opportunities", "quotas"):
        if name not in typed:
            continue
        unknown = pl.col("currency").is_not_null() & ~pl.col("currency").is_in(known)
        bad = (
            typed[name]
            .filter(unknown)
            .with_columns(__reason=pl.format("unknown currency {}", pl.col("currency")))
        )
        quarantined.append(_quarantine_rows(bad, TABLES[name].file_name))
        typed[name] = typed[name].filter(~unknown)
    tables = {name: frame.drop("__line") for name, frame in typed.items()}
    quarantine = pl.concat(quarantined) if quarantined else pl.DataFrame(schema=QUARANTINE_SCHEMA)
    return Validated(CanonicalTables(tables), quarantine.sort("table", "line"))
