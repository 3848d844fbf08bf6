"""Properties over small random orgs (hypothesis): roll-ups add up, percentages stay in range,
row order does not matter, the org holds at least what its teams hold."""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from kpis.engine import KpiRun, compute_kpis
from kpis.registry import Unit, catalogue
from kpis.tables import CanonicalTables

from .builders import OrgBuilder, settings

ADDITIVE = [
    "revenue",
    "deals_won",
    "quota",
    "leads_created",
    "opportunities_created",
    "calls",
    "emails",
    "meetings",
    "new_customers",
    "upsell_cross_sell_revenue",
    "mrr",
    "bookings",
]
# May leave 0..100 by definition: growth, returns and margins (brief), and attainment of a target
# (quota_attainment, monthly_sales_progress: 125 % of quota is a legitimate value).
UNBOUNDED_PERCENT = {
    "revenue_growth_mom",
    "roi",
    "profit_margin",
    "quota_attainment",
    "monthly_sales_progress",
}
PROPERTY_SETTINGS = hsettings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


@dataclass
class Org:
    builder: OrgBuilder
    parent: dict[str, str | None]  # team -> parent team
    rep_team: dict[str, str | None]  # rep -> team


def _stamp(minutes: int) -> str:
    return (START + dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _date(minutes: int, plus_days: int = 0) -> str:
    return (START + dt.timedelta(minutes=minutes, days=plus_days)).date().isoformat()


MINUTES = st.integers(0, 180 * 24 * 60 - 1)  # Jan..Jun 2025


@st.composite
def orgs(draw: st.DrawFn) -> Org:
    org = OrgBuilder()
    n_teams = draw(st.integers(1, 4))
    parent: dict[str, str | None] = {}
    for i in range(n_teams):
        choices: list[str | None] = [None, *[f"T{j}" for j in range(i)]]
        parent[f"T{i}"] = None if i == 0 else draw(st.sampled_from(choices))
        org.team(f"T{i}", parent=parent[f"T{i}"])
    rep_team: dict[str, str | None] = {}
    for i in range(draw(st.integers(1, 4))):
        team = draw(st.sampled_from([*parent, None]))
        rep_team[f"R{i}"] = team
        org.rep(f"R{i}", team=team)
    owners = [*rep_team, "X9"]  # X9 is not in reps.csv
    accounts = [f"A{i}" for i in range(4)]
    for acc in accounts[:3]:  # A3 is not in accounts.csv
        org.account(
            acc,
            owner=draw(st.sampled_from(owners)),
            status=draw(st.sampled_from(["customer", None])),
        )
    org.fx("USD", "2025-01-01", draw(st.sampled_from([0.8, 1.1, 1.25])))
    # a second rate from a later day (two rows on one start date would be ambiguous input)
    org.fx("USD", _date(0, draw(st.integers(1, 179))), draw(st.sampled_from([0.9, 1.2, 2.0])))

    opp_ids: list[str] = []
    for i in range(draw(st.integers(1, 12))):
        created = draw(MINUTES)
        status = draw(st.sampled_from(["won", "won", "lost", "open"]))
        close = _date(created, draw(st.integers(0, 60)))
        recurring = draw(st.sampled_from([None, 100.0, 250.0]))
        contract_start = _date(created, draw(st.integers(-20, 40))) if recurring else None
        contract_end = (
            _date(created, draw(st.integers(41, 120)))
            if recurring and draw(st.booleans())
            else None
        )
        has_competitor = draw(st.booleans())
        org.opp(
            f"O{i}",
            owner=draw(st.sampled_from(owners)),
            created=_stamp(created),
            close=close,
            won=status == "won",
            closed=status != "open",
            amount=float(draw(st.integers(0, 5000))),
            currency=draw(st.sampled_from(["EUR", "USD", None])),
            account=draw(st.sampled_from([*accounts, None])),
            type=draw(st.sampled_from(["upsell", "new_business", None])),
            cost=draw(st.sampled_from([None, 100.0, 900.0])),
            mrr=recurring,
            contract_start=contract_start,
            contract_end=contract_end,
            competitor=draw(st.sampled_from(["Acme", "Beta"])) if has_competitor else None,
            competitor_price=draw(st.sampled_from([None, 1000.0])) if has_competitor else None,
        )
        opp_ids.append(f"O{i}")

    lead_ids: list[str] = []
    for i in range(draw(st.integers(0, 10))):
        created = draw(MINUTES)
        later = st.one_of(st.none(), st.integers(created, created + 40 * 24 * 60).map(_stamp))
        org.lead(
            f"L{i}",
            owner=draw(st.sampled_from(owners)),
            created=_stamp(created),
            qualified=draw(later),
            converted=draw(later),
            disqualified=draw(later),
            opp=draw(st.sampled_from([*opp_ids, None])),
            score=draw(st.sampled_from([None, 10.0, 55.0])),
        )
        lead_ids.append(f"L{i}")

    for _ in range(draw(st.integers(0, 15))):
        org.activity(
            owner=draw(st.sampled_from(owners)),
            at=_stamp(draw(MINUTES)),
            kind=draw(st.sampled_from(["call", "email", "meeting", "task"])),
            direction=draw(st.sampled_from(["inbound", "outbound", None])),
            outcome=draw(st.sampled_from(["connected", "no_answer", None])),
            duration=draw(st.sampled_from([None, 5.0, 30.0])),
            lead=draw(st.sampled_from([*lead_ids, "LX", None])),
            account=draw(st.sampled_from([*accounts, None])),
        )

    for _ in range(draw(st.integers(0, 4))):
        month = draw(st.integers(1, 6))
        months = draw(st.integers(1, 3))
        start = dt.date(2025, month, 1)
        end_month = month + months
        end = dt.date(2025 + (end_month - 1) // 12, (end_month - 1) % 12 + 1, 1)
        org.quota(
            draw(st.sampled_from(owners)),
            start.isoformat(),
            end.isoformat(),
            float(draw(st.integers(0, 6000))),
            currency=draw(st.sampled_from(["EUR", "USD", None])),
        )

    for _ in range(draw(st.integers(0, 2))):
        start_minute = draw(MINUTES)
        org.cost(
            _date(start_minute),
            _date(start_minute, draw(st.integers(1, 90))),
            float(draw(st.integers(0, 3000))),
            team=draw(st.sampled_from([*parent, None])),
        )
    return Org(org, parent, rep_team)


def subtree(parent: dict[str, str | None], team: str) -> set[str]:
    """The team and every team below it."""
    found = {team}
    changed = True
    while changed:
        changed = False
        for child, up in parent.items():
            if up in found and child not in found:
                found.add(child)
                changed = True
    return found


def by_subject(run: KpiRun, metric: str) -> dict[tuple[str, str, dt.date], float]:
    rows = run.values.filter(pl.col("metric") == metric)
    return {
        (r["scope"], r["subject_id"], r["period_start"]): r["value"]
        for r in rows.iter_rows(named=True)
    }


@PROPERTY_SETTINGS
@given(org=orgs())
def test_additive_kpis_of_a_team_are_the_sum_over_its_reps(org: Org) -> None:
    run = org.builder.run(settings(), metrics=ADDITIVE)
    for metric in ADDITIVE:
        values = by_subject(run, metric)
        for (scope, team, period), got in values.items():
            if scope != "team":
                continue
            teams = subtree(org.parent, team)
            reps = [r for r, t in org.rep_team.items() if t in teams]
            expected = sum(values[("rep", r, period)] for r in reps)
            assert got == pytest.approx(expected, rel=1e-9, abs=1e-6), (metric, team, period)


@PROPERTY_SETTINGS
@given(org=orgs())
def test_percentages_stay_within_0_and_100(org: Org) -> None:
    keys = [k for k, d in catalogue().items() if d.unit is Unit.PERCENT]
    run = org.builder.run(settings(as_of="2025-04-15"), metrics=keys)
    for metric in keys:
        if metric in UNBOUNDED_PERCENT:
            continue
        values = run.values.filter(pl.col("metric") == metric)["value"].drop_nulls()
        assert values.is_finite().all(), metric
        if values.len():
            assert values.min() >= 0.0, metric  # type: ignore[operator]
            assert values.max() <= 100.0 + 1e-9, metric  # type: ignore[operator]


def _shuffled(tables: CanonicalTables, seed: int) -> CanonicalTables:
    rng = random.Random(seed)
    frames: dict[str, pl.DataFrame] = {}
    for name, frame in tables.frames.items():
        order = list(range(frame.height))
        rng.shuffle(order)
        frames[name] = frame[order] if order else frame
    return CanonicalTables(frames)


def _sorted_rows(run: KpiRun) -> list[dict[str, Any]]:
    keys = ["metric", "scope", "subject_id", "period_start", "dimension"]
    return list(run.values.sort(keys, nulls_last=True).iter_rows(named=True))


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


@PROPERTY_SETTINGS
@given(org=orgs(), seed=st.integers(0, 2**32 - 1))
def test_permuting_input_rows_changes_nothing(org: Org, seed: int) -> None:
    tables = org.builder.tables()
    kpi_settings = settings(as_of="2025-04-15")
    first = _sorted_rows(compute_kpis(tables, kpi_settings))
    second = _sorted_rows(compute_kpis(_shuffled(tables, seed), kpi_settings))
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        where = (a["metric"], a["scope"], a["subject_id"], a["period_start"], a["dimension"])
        for column in (
            "metric",
            "scope",
            "subject_id",
            "period_start",
            "dimension",
            "unit",
            "period_end",
            "records",
        ):
            assert a[column] == b[column], (where, column, a[column], b[column])
        for column in ("value", "numerator", "denominator"):
            assert _close(a[column], b[column]), (where, column, a[column], b[column])


@PROPERTY_SETTINGS
@given(org=orgs())
def test_org_holds_at_least_what_a_root_team_holds(org: Org) -> None:
    run = org.builder.run(settings(), metrics=ADDITIVE)
    roots = [t for t, p in org.parent.items() if p is None]
    for metric in ADDITIVE:
        values = by_subject(run, metric)
        periods = {p for (_, _, p) in values}
        for period in periods:
            total = values[("org", "org", period)]
            for root in roots:
                teams = subtree(org.parent, root)
                reps = [r for r, t in org.rep_team.items() if t in teams]
                expected = sum(values[("rep", r, period)] for r in reps)
                assert total >= expected - 1e-6, (metric, root, period)
            # and at least what all known reps hold together
            all_reps = sum(values[("rep", r, period)] for r in org.rep_team)
            assert total >= all_reps - 1e-6, (metric, period)
