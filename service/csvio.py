"""Canonical CSV in, KPI CSV out (the file side of ``kpisync compute --from-csv``)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from kpis.tables import TABLES
from kpis.validate import StructureError

# Tables a CSV export may leave out: a single-currency org has no rates, and spend is optional.
OPTIONAL_FILES = frozenset({"fx_rates", "costs"})


def read_canonical_csv(directory: Path) -> dict[str, pl.DataFrame]:
    """Every canonical table as text columns (typing and checks happen in ``kpis.validate``)."""
    if not directory.is_dir():
        raise StructureError(f"{directory}: not a directory")
    frames: dict[str, pl.DataFrame] = {}
    for name, spec in TABLES.items():
        path = directory / spec.file_name
        if not path.exists():
            if name in OPTIONAL_FILES:
                continue
            raise StructureError(f"{spec.file_name}: file not found in {directory}")
        try:
            frames[name] = pl.read_csv(path, infer_schema=False, encoding="utf8")
        except pl.exceptions.PolarsError as exc:
            raise StructureError(f"{spec.file_name}: not a readable CSV file ({exc})") from exc
    return frames


def _number_text(column: str) -> pl.Expr:
    text = pl.col(column).round(6).cast(pl.String)
    return text.str.replace(r"\.0$", "")


def format_values(values: pl.DataFrame) -> pl.DataFrame:
    """KPI rows as the text of the CSV output format (dates ISO, numbers plain, null empty)."""
    return values.with_columns(
        *[_number_text(c) for c in ("value", "numerator", "denominator")],
        pl.col("period_start", "period_end").dt.to_string("%Y-%m-%d"),
    )


def write_csv(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    frame.write_csv(tmp, null_value="")
    tmp.replace(path)  # readers never see a half-written file
