"""The KPI engine on a big org: the whole catalogue vs a plain pandas baseline of three KPIs.

    python -m bench engine [--opps 1000000] [--seed 1] [--no-csv]

Generates a canonical org (1M opportunities, 1M leads, 5M activities, 2,000 reps in a 4-level
team tree over 24 months by default), then times ``compute_kpis`` for every KPI and scope, and in
the same process a straightforward pandas implementation of revenue, win_rate and
avg_sales_cycle_days (rep, team and org, per month) as the baseline. The two agree on those three
KPIs (checked) before any figure is reported.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

from bench.common import Measure, Report, gib, measured
from kpis.context import team_ancestors
from kpis.engine import KpiRun, compute_kpis
from kpis.settings import KpiSettings
from kpis.tables import CanonicalTables
from sandbox.generator import OrgSpec, generate_org, spec_for, write_canonical_csv

TARGET_SECONDS = 10.0
TARGET_BYTES = 4 * 2**30


def pandas_inputs(tables: dict[str, pl.DataFrame]) -> dict[str, pd.DataFrame]:
    """The baseline's input as pandas frames (converted before its clock starts)."""
    return {
        name: tables[name].to_pandas() for name in ("opportunities", "leads", "fx_rates", "reps")
    }


def pandas_baseline(
    frames: dict[str, pd.DataFrame], teams: pl.DataFrame, currency: str
) -> pd.DataFrame:
    """revenue, win_rate and avg_sales_cycle_days per rep, team and org and month, in pandas."""
    opps, leads = frames["opportunities"], frames["leads"]
    fx, reps = frames["fx_rates"].copy(), frames["reps"]

    opps = opps[opps["is_closed"]].copy()
    opps["close_date"] = pd.to_datetime(opps["close_date"])
    fx["start_date"] = pd.to_datetime(fx["start_date"])
    opps = pd.merge_asof(
        opps.sort_values("close_date"),
        fx.sort_values("start_date"),
        left_on="close_date",
        right_on="start_date",
        by="currency",
        direction="backward",
        suffixes=("", "_fx"),
    )
    opps["rate"] = np.where(opps["currency"] == currency, 1.0, opps["rate"])
    opps["amount_c"] = opps["amount"].fillna(0.0) / opps["rate"]
    opps["month"] = opps["close_date"].dt.to_period("M")
    lead_created = leads.set_index("id")["created_at"]
    start = opps["lead_id"].map(lead_created).fillna(opps["created_at"])
    opps["days"] = (opps["close_date"] - start.dt.tz_localize(None).dt.normalize()).dt.days
    opps["won_amount"] = np.where(opps["is_won"], opps["amount_c"], 0.0)
    opps["won_days"] = np.where(opps["is_won"], opps["days"], 0)
    per_rep = (
        opps.groupby(["owner_id", "month"])
        .agg(
            revenue=("won_amount", "sum"),
            won=("is_won", "sum"),
            closed=("is_won", "size"),
            days=("won_days", "sum"),
        )
        .reset_index()
    )
    chains = team_ancestors(teams)
    members = [
        (rep, team)
        for rep, team_id in zip(reps["id"], reps["team_id"], strict=True)
        if isinstance(team_id, str)
        for team in chains.get(team_id, [])
    ]
    membership = pd.DataFrame(members, columns=["owner_id", "subject_id"])
    teams = (
        per_rep.merge(membership, on="owner_id")
        .groupby(["subject_id", "month"])[["revenue", "won", "closed", "days"]]
        .sum()
        .reset_index()
        .assign(scope="team")
    )
    org = (
        per_rep.groupby("month")[["revenue", "won", "closed", "days"]]
        .sum()
        .reset_index()
        .assign(scope="org", subject_id="org")
    )
    reps_rows = per_rep[per_rep["owner_id"].isin(set(reps["id"]))].rename(
        columns={"owner_id": "subject_id"}
    )
    out = pd.concat([reps_rows.assign(scope="rep"), teams, org], ignore_index=True)
    out["win_rate"] = np.where(out["closed"] > 0, out["won"] / out["closed"] * 100, np.nan)
    out["avg_sales_cycle_days"] = np.where(out["won"] > 0, out["days"] / out["won"], np.nan)
    return out


def _check_agreement(values: pl.DataFrame, baseline: pd.DataFrame) -> int:
    """Compare the engine with the baseline on the three shared KPIs; return rows compared."""
    base = pl.from_pandas(
        baseline.assign(period_start=baseline["month"].dt.start_time.dt.date)[
            ["scope", "subject_id", "period_start", "revenue", "win_rate", "avg_sales_cycle_days"]
        ]
    )
    compared = 0
    for key in ("revenue", "win_rate", "avg_sales_cycle_days"):
        ours = values.filter(pl.col("metric") == key).select(
            "scope", "subject_id", "period_start", pl.col("value").alias("ours")
        )
        joined = ours.join(
            base.select("scope", "subject_id", "period_start", pl.col(key).alias("theirs")),
            on=["scope", "subject_id", "period_start"],
        ).filter(pl.col("theirs").is_not_nan() & pl.col("theirs").is_not_null())
        bad = joined.filter(
            ((pl.col("ours") - pl.col("theirs")).abs() > 1e-6 * pl.col("theirs").abs() + 1e-6)
            | pl.col("ours").is_null()
        )
        if bad.height:
            raise SystemExit(f"engine and pandas baseline disagree on {key}:\n{bad.head(5)}")
        compared += joined.height
    return compared


@dataclass
class EngineFigures:
    engine_s: float
    engine_peak: int
    pandas_s: float
    values: int


def _settings(spec: OrgSpec) -> KpiSettings:
    return KpiSettings(corporate_currency=spec.corporate_currency, as_of=spec.start)


def _engine_vs_pandas(
    tables: dict[str, pl.DataFrame], spec: OrgSpec
) -> tuple[Measure, Measure, KpiRun, int]:
    """Time the catalogue and the pandas baseline on the same tables; check they agree.
    Returns both measures, the engine's run and how many values were compared."""
    with measured() as engine:
        result = compute_kpis(CanonicalTables(tables), _settings(spec))
    frames = pandas_inputs(tables)
    with measured() as base:
        baseline = pandas_baseline(frames, tables["teams"], spec.corporate_currency)
    del frames
    return engine, base, result, _check_agreement(result.values, baseline)


def engine_figures(opps: int, seed: int) -> EngineFigures:
    """The catalogue and the pandas baseline on one generated org, checked to agree."""
    spec = spec_for(opps, seed=seed)
    engine, base, result, _ = _engine_vs_pandas(generate_org(spec).tables, spec)
    return EngineFigures(engine.seconds, engine.peak_rss, base.seconds, result.values.height)


def run(opps: int, seed: int, csv: bool) -> Report:
    spec = spec_for(opps, seed=seed)
    report = Report(
        f"KPI engine — {spec.n_opportunities:,} opportunities, {spec.n_leads:,} leads, "
        f"{spec.n_activities:,} activities, {spec.n_reps:,} reps, {spec.months} months"
    )
    with measured() as gen:
        org = generate_org(spec)
    tables = org.tables
    input_rows = sum(frame.height for frame in tables.values())
    engine, base, result, compared = _engine_vs_pandas(tables, spec)

    ratio = base.seconds / engine.seconds
    report.add("org generation", f"{gen.seconds:.1f} s", "well under 60 s")
    report.add(
        f"engine, all {result.values['metric'].n_unique()} KPIs x rep/team/org",
        f"{engine.seconds:.2f} s",
        f"< {TARGET_SECONDS:.0f} s",
        f"pandas, 3 KPIs: {base.seconds:.2f} s",
        "met" if engine.seconds < TARGET_SECONDS else "MISSED",
    )
    report.add(
        "engine throughput",
        f"{input_rows / engine.seconds / 1e6:.2f} M rows/s",
        "",
        f"pandas: {input_rows / base.seconds / 1e6:.2f} M rows/s",
    )
    report.add(
        "engine vs baseline",
        f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower",
        "faster than pandas",
        "",
        "met" if ratio > 1 else "MISSED",
    )
    report.add(
        "peak RSS during compute",
        gib(engine.peak_rss),
        "< 4 GiB",
        f"pandas: {gib(base.peak_rss)}",
        "met" if engine.peak_rss < TARGET_BYTES else "MISSED",
    )
    report.notes.append(
        f"{result.values.height:,} KPI values from {input_rows:,} input rows; engine and pandas "
        f"agree on {compared:,} revenue / win_rate / avg_sales_cycle_days values."
    )
    if csv:
        from kpis.validate import validate_tables
        from service.csvio import read_canonical_csv

        with tempfile.TemporaryDirectory() as tmp:
            write_canonical_csv(org, Path(tmp))
            del result
            with measured() as from_csv:
                validated = validate_tables(read_canonical_csv(Path(tmp)), "EUR")
                compute_kpis(validated.tables, _settings(spec))
        report.add(
            "compute --from-csv (read + validate + compute)",
            f"{from_csv.seconds:.2f} s",
            "",
            "",
            f"peak {gib(from_csv.peak_rss)}",
        )
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench engine", description=__doc__)
    parser.add_argument("--opps", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-csv", action="store_true", help="skip the CSV round trip")
    parser.add_argument("--no-save", action="store_true", help="do not update bench/results.md")
    args = parser.parse_args(argv)
    report = run(args.opps, args.seed, csv=not args.no_csv)
    report.print()
    if not args.no_save:
        report.save("engine")


if __name__ == "__main__":
    main()
