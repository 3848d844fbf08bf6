"""Why the KPI engine runs on polars: the same KPI core timed in polars and in DuckDB.

    python -m bench engine_choice [--opps 1000000]

The core every KPI shares: convert amounts at the dated rate (an as-of join on currency and
date), aggregate per owner and month, roll up through the rep -> team membership, and compute a
ratio (won / closed) and a sum (revenue). Both engines get the same in-memory data; the polars
time is the baseline of the ratio printed.
"""

from __future__ import annotations

import argparse

import duckdb
import polars as pl

from bench.common import Report, measured
from kpis.context import team_ancestors
from sandbox.generator import generate_org, spec_for


def _membership(tables: dict[str, pl.DataFrame]) -> pl.DataFrame:
    chains = team_ancestors(tables["teams"])
    pairs = pl.DataFrame(
        [(t, a) for t, chain in chains.items() for a in chain],
        schema={"team_id": pl.String, "subject_id": pl.String},
        orient="row",
    )
    reps = tables["reps"].select(pl.col("id").alias("owner_id"), "team_id")
    return pl.concat(
        [
            reps.select("owner_id", pl.col("owner_id").alias("subject_id")),
            reps.join(pairs, on="team_id").select("owner_id", "subject_id"),
        ]
    )


def polars_core(opps: pl.DataFrame, fx: pl.DataFrame, members: pl.DataFrame) -> pl.DataFrame:
    closed = opps.filter(pl.col("is_closed")).sort("close_date")
    rated = closed.join_asof(
        fx.sort("start_date"),
        left_on="close_date",
        right_on="start_date",
        by="currency",
        check_sortedness=False,
    )
    rated = rated.with_columns(amount_c=pl.col("amount") / pl.col("rate").fill_null(1.0))
    per_owner = (
        rated.lazy()
        .group_by("owner_id", month=pl.col("close_date").dt.truncate("1mo"))
        .agg(
            revenue=pl.col("amount_c").filter(pl.col("is_won")).sum(),
            won=pl.col("is_won").sum(),
            closed=pl.len(),
        )
        .collect()
    )
    rolled = (
        per_owner.join(members, on="owner_id")
        .group_by("subject_id", "month")
        .agg(pl.col("revenue", "won", "closed").sum())
    )
    return rolled.with_columns(win_rate=pl.col("won") / pl.col("closed") * 100)


def duckdb_core(opps: pl.DataFrame, fx: pl.DataFrame, members: pl.DataFrame) -> pl.DataFrame:
    con = duckdb.connect()
    con.register(
        "opps", opps.select("owner_id", "close_date", "is_closed", "is_won", "amount", "currency")
    )
    con.register("fx", fx)
    con.register("members", members)
    query = """
        WITH rated AS (
            SELECT o.owner_id, date_trunc('month', o.close_date) AS month, o.is_won,
                   o.amount / coalesce(fx.rate, 1.0) AS amount_c
            FROM (SELECT * FROM opps WHERE is_closed) o
            ASOF LEFT JOIN fx ON o.currency = fx.currency AND o.close_date >= fx.start_date
        ), per_owner AS (
            SELECT owner_id, month, sum(amount_c) FILTER (WHERE is_won) AS revenue,
                   count(*) FILTER (WHERE is_won) AS won, count(*) AS closed
            FROM rated GROUP BY owner_id, month
        )
        SELECT m.subject_id, p.month, sum(p.revenue) AS revenue, sum(p.won) AS won,
               sum(p.closed) AS closed, sum(p.won) * 100.0 / sum(p.closed) AS win_rate
        FROM per_owner p JOIN members m USING (owner_id)
        GROUP BY m.subject_id, p.month
    """
    result: pl.DataFrame = con.sql(query).pl()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench engine_choice", description=__doc__)
    parser.add_argument("--opps", type=int, default=1_000_000)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    org = generate_org(spec_for(args.opps, seed=1))
    opps, fx = org.tables["opportunities"], org.tables["fx_rates"]
    members = _membership(org.tables)
    report = Report(f"Engine choice — KPI core on {opps.height:,} opportunities")
    times: dict[str, float] = {}
    results: dict[str, pl.DataFrame] = {}
    for name, core in (("polars", polars_core), ("duckdb", duckdb_core)):
        core(opps, fx, members)  # warm-up: first-call costs are not the steady state
        best = float("inf")
        for _ in range(3):
            with measured() as m:
                results[name] = core(opps, fx, members)
            best = min(best, m.seconds)
        times[name] = best
    a = float(results["polars"]["revenue"].sum())
    b = float(results["duckdb"]["revenue"].sum())
    if abs(a - b) > 1e-6 * abs(a):
        raise SystemExit(f"polars and duckdb disagree: {a} vs {b}")
    report.add("polars (best of 3)", f"{times['polars']:.3f} s", "the faster one")
    report.add(
        "duckdb (best of 3)",
        f"{times['duckdb']:.3f} s",
        "",
        f"{times['duckdb'] / times['polars']:.2f}x the polars time",
    )
    report.notes.append(
        "Both compute the same revenue / won / closed per subject and month (checked equal)."
    )
    report.print()
    if not args.no_save:
        report.save("engine_choice")


if __name__ == "__main__":
    main()
