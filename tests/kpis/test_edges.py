"""Shared rules at their edges: worked example, undefined ratios, team trees, money, periods,
time zones, quota splits and the validation layer."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from kpis.engine import compute_kpis
from kpis.registry import catalogue
from kpis.settings import PeriodType
from kpis.tables import TABLES
from kpis.validate import validate_tables

from .builders import OrgBuilder, has_row, periods, settings, subjects, val, value

JAN = "2025-01-01"
FEB = "2025-02-01"
MAR = "2025-03-01"
APR = "2025-04-01"


# -- seed 000's worked example ---------------------------------------------------------------


def test_seed_000_worked_example_lead_conversion_25_percent() -> None:
    org = OrgBuilder().rep("R1")
    for i in range(200):
        created = f"2025-03-{1 + i % 28:02d}T10:00:00Z"
        converted = "2025-04-15T10:00:00Z" if i < 50 else None
        org.lead(f"L{i:03d}", owner="R1", created=created, converted=converted)
    run = org.run(metrics=["lead_conversion_rate", "leads_created"])
    # 200 leads created in March, 50 of them converted (later, in April) -> 50 / 200 = 25 %
    row = value(run, "lead_conversion_rate", "org", "org", MAR)
    assert row["value"] == pytest.approx(25.0)
    assert (row["numerator"], row["denominator"], row["records"]) == (50.0, 200.0, 200)
    assert row["unit"] == "%"
    assert val(run, "lead_conversion_rate", "rep", "R1", MAR) == pytest.approx(25.0)
    assert val(run, "leads_created", "org", "org", MAR) == 200.0


# -- zero denominators -------------------------------------------------------------------------


def test_zero_denominators_are_undefined_sums_are_zero_never_an_error() -> None:
    # one inbound call and nothing else: every ratio has a zero denominator
    org = OrgBuilder().team("T1").rep("R1", team="T1").team("T_EMPTY")
    org.activity(owner="R1", kind="call", direction="inbound", at="2025-01-10T10:00:00Z")
    run = org.run(settings(as_of="2024-12-31"))  # as_of before the span: no "to date" values
    assert periods(run) == [dt.date(2025, 1, 1)]
    assert set(run.unavailable) == {"customer_satisfaction"}
    for key, definition in catalogue().items():
        if key == "customer_satisfaction":
            continue
        rows = run.values.filter(pl.col("metric") == key)
        if definition.by_dimension:
            assert rows.is_empty(), key  # rows only where the denominator > 0
            continue
        # one row per subject of its scopes: rep R1, teams T1 and T_EMPTY, org
        per_scope = {"rep": 1, "team": 2, "org": 1}
        assert rows.height == sum(per_scope[s.value] for s in definition.scopes), key
        for row in rows.iter_rows(named=True):
            if definition.empty_is_zero:
                assert row["value"] == 0.0, (key, row)
            else:
                assert row["value"] is None, (key, row)  # never 0, never NaN/inf
            assert row["records"] is not None and row["records"] >= 0, key


def test_zero_denominator_next_to_defined_values() -> None:
    org = OrgBuilder().rep("R1").rep("R2")
    org.opp(owner="R1", close="2025-01-10", won=True, amount=100)
    org.opp(owner="R1", close="2025-01-11", closed=True, amount=100)
    run = org.run()
    # R1: 1 won of 2 closed = 50 %; R2 closed nothing: undefined with denominator 0, not 0 %
    assert val(run, "win_rate", "rep", "R1", JAN) == pytest.approx(50.0)
    row = value(run, "win_rate", "rep", "R2", JAN)
    assert row["value"] is None and row["records"] == 0
    assert row["denominator"] in (None, 0.0)


# -- nested teams --------------------------------------------------------------------------


def nested_org() -> OrgBuilder:
    """T1 > T2 > T3 (3 levels) and a second root T4; R5's team is not in teams.csv."""
    org = OrgBuilder().team("T1").team("T2", parent="T1").team("T3", parent="T2").team("T4")
    org.rep("R1", team="T3").rep("R2", team="T2").rep("R3", team="T1").rep("R4", team="T4")
    org.rep("R5", team="TX")
    o = org.opp
    o(owner="R1", close="2025-01-10", won=True, amount=100, account="A")
    o(owner="R2", close="2025-01-10", won=True, amount=200, account="A")
    o(owner="R3", close="2025-01-10", won=True, amount=400, account="B")
    o(owner="R4", close="2025-01-10", won=True, amount=800, account="C")
    o(owner="X9", close="2025-01-10", won=True, amount=1600, account="D")  # not a rep
    o(owner="R5", close="2025-01-10", won=True, amount=3200, account="E")
    org.lead(owner="R1", created="2025-01-02T10:00:00Z")
    org.lead(owner="R2", created="2025-01-02T10:00:00Z")
    org.lead(owner="X9", created="2025-01-02T10:00:00Z")
    org.quota("R1", "2025-01-01", "2025-02-01", 10).quota("R3", "2025-01-01", "2025-02-01", 20)
    return org


def test_nested_teams_three_levels() -> None:
    run = nested_org().run()
    # T3 = R1 100; T2 = R1 + R2 = 300; T1 = R1 + R2 + R3 = 700; T4 = R4 800
    assert val(run, "revenue", "team", "T3", JAN) == pytest.approx(100.0)
    assert val(run, "revenue", "team", "T2", JAN) == pytest.approx(300.0)
    row = value(run, "revenue", "team", "T1", JAN)
    assert row["value"] == pytest.approx(700.0) and row["records"] == 3
    assert val(run, "revenue", "team", "T4", JAN) == pytest.approx(800.0)
    # org: all six deals including X9 and R5 (team unknown): 100+200+400+800+1600+3200 = 6300
    assert val(run, "revenue", "org", "org", JAN) == pytest.approx(6300.0)
    assert val(run, "revenue", "rep", "R5", JAN) == pytest.approx(3200.0)
    # X9 has no rep row; TX is no team
    assert "X9" not in subjects(run, "revenue", "rep")
    assert subjects(run, "revenue", "team") == ["T1", "T2", "T3", "T4"]
    # leads: T3 1, T2 2, T1 2, org 3 (X9's lead)
    assert val(run, "leads_created", "team", "T3", JAN) == 1.0
    assert val(run, "leads_created", "team", "T1", JAN) == 2.0
    assert val(run, "leads_created", "org", "org", JAN) == 3.0
    # quota: T2 = R1 10; T1 = R1 + R3 = 30
    assert val(run, "quota", "team", "T2", JAN) == pytest.approx(10.0)
    assert val(run, "quota", "team", "T1", JAN) == pytest.approx(30.0)
    # distinct accounts over the subtree: T2 (100 + 200) / {A} = 300; T1 700 / {A, B} = 350
    assert val(run, "avg_revenue_per_customer", "team", "T2", JAN) == pytest.approx(300.0)
    assert val(run, "avg_revenue_per_customer", "team", "T1", JAN) == pytest.approx(350.0)


# -- money ---------------------------------------------------------------------------------


def test_currency_rate_change_inside_a_month() -> None:
    org = OrgBuilder().rep("R1")
    org.fx("USD", "2025-01-01", 1.10).fx("USD", "2025-03-16", 1.25).fx("GBP", "2025-01-01", 0.8)
    o = org.opp
    created = "2024-12-01T10:00:00Z"
    o("O1", owner="R1", created=created, close="2025-03-10", won=True, amount=1100, currency="USD")
    o(
        "O2", owner="R1", created=created, close="2025-03-16", won=True, amount=1250, currency="USD"
    )  # on the day the new rate starts
    o(
        "O3", owner="R1", created=created, close="2025-03-15", won=True, amount=1100, currency="USD"
    )  # the day before
    o("O4", owner="R1", created=created, close="2025-03-20", won=True, amount=800, currency="GBP")
    o(
        "O5", owner="R1", created=created, close="2024-12-15", won=True, amount=1100, currency="USD"
    )  # before the first rate: the earliest row (1.10)
    run = org.run()
    # O1 1100/1.10 = 1000; O2 1250/1.25 = 1000; O3 1100/1.10 = 1000; O4 800/0.8 = 1000
    row = value(run, "revenue", "rep", "R1", MAR)
    assert row["value"] == pytest.approx(4000.0) and row["records"] == 4
    # O5 1100 / 1.10 = 1000
    assert val(run, "revenue", "rep", "R1", "2024-12-01") == pytest.approx(1000.0)


def test_currency_without_rate_is_never_counted_at_face_value() -> None:
    org = OrgBuilder().rep("R1")
    org.opp(owner="R1", close="2025-01-10", won=True, amount=1000)
    org.opp(owner="R1", close="2025-01-12", won=True, amount=5000, currency="JPY")  # no rate
    run = org.run()
    # only the EUR deal; 5000 JPY must not be added as 5000 EUR
    assert val(run, "revenue", "rep", "R1", JAN) == pytest.approx(1000.0)


# -- period boundaries (period_end exclusive) ---------------------------------------------


def test_records_exactly_on_period_boundaries() -> None:
    org = OrgBuilder().rep("R1")
    org.activity(owner="R1", at="2025-03-31T23:59:59Z")  # last second of March
    org.activity(owner="R1", at="2025-04-01T00:00:00Z")  # first second of April
    org.activity(owner="R1", at="2025-04-01T00:00:00Z")
    org.lead(owner="R1", created="2025-03-31T23:59:59Z")
    org.lead(owner="R1", created="2025-04-01T00:00:00Z")
    org.opp(owner="R1", created="2025-03-01T00:00:00Z", close="2025-03-31", won=True, amount=10)
    org.opp(owner="R1", created="2025-03-01T00:00:00Z", close="2025-04-01", won=True, amount=20)
    org.quota("R1", "2025-03-01", "2025-04-01", 100)  # end exclusive: nothing in April
    run = org.run()
    row = value(run, "calls", "rep", "R1", MAR)
    assert row["value"] == 1.0 and row["period_end"] == dt.date(2025, 4, 1)
    assert val(run, "calls", "rep", "R1", APR) == 2.0
    assert val(run, "leads_created", "rep", "R1", MAR) == 1.0
    assert val(run, "leads_created", "rep", "R1", APR) == 1.0
    assert val(run, "revenue", "rep", "R1", MAR) == pytest.approx(10.0)
    assert val(run, "revenue", "rep", "R1", APR) == pytest.approx(20.0)
    assert val(run, "quota", "rep", "R1", MAR) == pytest.approx(100.0)
    assert val(run, "quota", "rep", "R1", APR) == 0.0


# -- time zones ------------------------------------------------------------------------------


def tz_org() -> OrgBuilder:
    org = OrgBuilder().rep("R1")
    org.lead("L1", owner="R1", created="2025-01-31T23:30:00Z")
    org.opp(
        "O1", owner="R1", created="2025-01-31T23:30:00Z", close="2025-02-11", won=True, amount=100
    )
    org.opp(
        "O2", owner="R1", created="2025-01-10T10:00:00Z", close="2025-01-31", won=True, amount=7
    )  # a close DATE is used as it is, in any time zone
    # 22:30Z on Mar 31 is 00:30 on Apr 1 in Amsterdam (CEST, UTC+2, since Mar 30)
    org.activity(owner="R1", at="2025-03-31T22:30:00Z")
    return org


def test_time_zone_utc() -> None:
    run = tz_org().run(settings(timezone="UTC"))
    assert val(run, "leads_created", "rep", "R1", JAN) == 1.0
    assert val(run, "leads_created", "rep", "R1", FEB) == 0.0
    assert val(run, "opportunities_created", "rep", "R1", JAN) == 2.0
    assert val(run, "calls", "rep", "R1", MAR) == 1.0
    assert not has_row(run, "calls", "rep", "R1", APR)
    # cycle of O1 from Jan 31 to Feb 11 = 11 days
    assert val(run, "avg_sales_cycle_days", "rep", "R1", FEB) == pytest.approx(11.0)
    assert val(run, "revenue", "rep", "R1", JAN) == pytest.approx(7.0)


def test_time_zone_amsterdam() -> None:
    run = tz_org().run(settings(timezone="Europe/Amsterdam"))
    # 2025-01-31T23:30Z = 2025-02-01 00:30 CET -> February
    assert val(run, "leads_created", "rep", "R1", JAN) == 0.0
    assert val(run, "leads_created", "rep", "R1", FEB) == 1.0
    assert val(run, "opportunities_created", "rep", "R1", FEB) == 1.0
    assert val(run, "calls", "rep", "R1", MAR) == 0.0
    assert val(run, "calls", "rep", "R1", APR) == 1.0
    # O1's cycle starts on local Feb 1 -> 10 days; O2's close date stays in January
    assert val(run, "avg_sales_cycle_days", "rep", "R1", FEB) == pytest.approx(10.0)
    assert val(run, "revenue", "rep", "R1", JAN) == pytest.approx(7.0)


def test_time_zone_west_of_utc() -> None:
    org = OrgBuilder().rep("R1").lead(owner="R1", created="2025-02-01T03:00:00Z")
    run = org.run(settings(timezone="America/New_York"))
    # 03:00Z on Feb 1 = 22:00 on Jan 31 in New York (EST, UTC-5)
    assert periods(run, "leads_created") == [dt.date(2025, 1, 1)]
    assert val(run, "leads_created", "rep", "R1", JAN) == 1.0


# -- quarter and year periods --------------------------------------------------------------


def period_org() -> OrgBuilder:
    org = OrgBuilder().team("T1").rep("R1", team="T1")
    org.account("ACC1", owner="R1", status="customer")
    o = org.opp
    created = "2024-11-01T10:00:00Z"
    o(owner="R1", created=created, close="2024-11-20", won=True, amount=400, account="ACC1")
    o(owner="R1", created=created, close="2025-01-15", won=True, amount=1000)
    o(owner="R1", created=created, close="2025-02-10", won=True, amount=2000)
    o(owner="R1", created=created, close="2025-04-05", won=True, amount=500)
    org.quota("R1", "2025-01-01", "2025-02-01", 100).quota("R1", "2025-02-01", "2025-03-01", 200)
    org.quota("R1", "2025-03-01", "2025-04-01", 300)
    org.activities(6, owner="R1", account="ACC1", kind="email", at="2025-02-10T10:00:00Z")
    return org


def test_quarter_periods() -> None:
    run = period_org().run(settings(period=PeriodType.QUARTER, as_of="2025-02-14"))
    assert [str(p) for p in periods(run)] == ["2024-10-01", "2025-01-01", "2025-04-01"]
    # Q1 2025 = Jan 1 .. Apr 1: 1000 + 2000 = 3000
    row = value(run, "revenue", "rep", "R1", JAN)
    assert row["value"] == pytest.approx(3000.0) and row["period_end"] == dt.date(2025, 4, 1)
    # quarter over quarter: (3000 - 400) / 400 = 650 %; Q2 (500 - 3000) / 3000 = -83.33 %
    assert val(run, "revenue_growth_mom", "rep", "R1", JAN) == pytest.approx(650.0)
    assert val(run, "revenue_growth_mom", "rep", "R1", APR) == pytest.approx(-2500 / 30)
    # quota sums its months: 100 + 200 + 300 = 600 from 3 rows; attainment 3000 / 600 = 500 %
    row = value(run, "quota", "rep", "R1", JAN)
    assert row["value"] == pytest.approx(600.0) and row["records"] == 3
    assert val(run, "quota_attainment", "rep", "R1", JAN) == pytest.approx(500.0)
    # engagement: ACC1 active (status customer since 2024-11-20), 6 activities / (1 * 3 months)
    row = value(run, "engagement", "rep", "R1", JAN)
    assert row["value"] == pytest.approx(2.0) and row["denominator"] == 3.0
    # expected by as_of Feb 14: Jan 1 .. Feb 15 = 45 days of 90 -> 50 %
    assert val(run, "monthly_sales_expected", "org", "org", JAN) == pytest.approx(50.0)
    # progress: revenue closed before Feb 15 = 1000 + 2000 = 3000 / 600 = 500 %
    assert val(run, "monthly_sales_progress", "rep", "R1", JAN) == pytest.approx(500.0)


def test_year_periods() -> None:
    run = period_org().run(settings(period=PeriodType.YEAR))
    assert [str(p) for p in periods(run)] == ["2024-01-01", "2025-01-01"]
    row = value(run, "revenue", "team", "T1", JAN)
    # 2025: 1000 + 2000 + 500 = 3500; year over year (3500 - 400) / 400 = 775 %
    assert row["value"] == pytest.approx(3500.0) and row["period_end"] == dt.date(2026, 1, 1)
    assert val(run, "revenue_growth_mom", "team", "T1", JAN) == pytest.approx(775.0)
    assert val(run, "quota", "team", "T1", JAN) == pytest.approx(600.0)
    # engagement: 6 / (1 account * 12 months) = 0.5
    assert val(run, "engagement", "rep", "R1", JAN) == pytest.approx(0.5)


# -- seasonality ------------------------------------------------------------------------------

SEASONS = (1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 4.0)  # sum 24


def test_seasonality_split_of_an_annual_quota() -> None:
    org = OrgBuilder().rep("R1").quota("R1", "2025-01-01", "2026-01-01", 240_000)
    run = org.run(settings(seasonality=SEASONS))
    # 240000 / 24 = 10000 per weight unit: Jan 10000, Feb 10000, Mar 20000, Dec 40000
    assert val(run, "quota", "rep", "R1", JAN) == pytest.approx(10_000.0)
    assert val(run, "quota", "rep", "R1", FEB) == pytest.approx(10_000.0)
    row = value(run, "quota", "rep", "R1", MAR)
    assert row["value"] == pytest.approx(20_000.0) and row["records"] == 1
    assert val(run, "quota", "rep", "R1", "2025-12-01") == pytest.approx(40_000.0)
    total = run.values.filter((pl.col("metric") == "quota") & (pl.col("scope") == "rep"))[
        "value"
    ].sum()
    assert total == pytest.approx(240_000.0)
    # quarters: Q1 10000 + 10000 + 20000 = 40000; Q4 20000 + 20000 + 40000 = 80000
    run_q = org.run(settings(seasonality=SEASONS, period=PeriodType.QUARTER))
    assert val(run_q, "quota", "rep", "R1", JAN) == pytest.approx(40_000.0)
    assert val(run_q, "quota", "rep", "R1", "2025-10-01") == pytest.approx(80_000.0)
    run_y = org.run(settings(seasonality=SEASONS, period=PeriodType.YEAR))
    assert val(run_y, "quota", "rep", "R1", JAN) == pytest.approx(240_000.0)


def test_seasonality_with_a_quarterly_quota_and_growth() -> None:
    # Q1 quota 4100 with weights Jan 1, Feb 1, Mar 2 and 0 % growth: 4100/4 = 1025 per unit
    org = OrgBuilder().rep("R1").quota("R1", "2025-01-01", "2025-04-01", 4100)
    run = org.run(settings(seasonality=SEASONS))
    assert val(run, "quota", "rep", "R1", JAN) == pytest.approx(1025.0)
    assert val(run, "quota", "rep", "R1", MAR) == pytest.approx(2050.0)
    # with 10 % growth: weights 1, 1.1, 2 * 1.21 = 2.42 (sum 4.52) -> Jan 4100 / 4.52
    run = org.run(settings(seasonality=SEASONS, monthly_growth_pct=10.0))
    assert val(run, "quota", "rep", "R1", JAN) == pytest.approx(4100 / 4.52)
    assert val(run, "quota", "rep", "R1", MAR) == pytest.approx(4100 * 2.42 / 4.52)


# -- validation -----------------------------------------------------------------------------


def raw(table: str, rows: list[dict[str, str | None]]) -> pl.DataFrame:
    """A text table with every canonical column (missing cells empty)."""
    columns = list(TABLES[table].columns)
    return pl.DataFrame(
        {c: [r.get(c) for r in rows] for c in columns}, schema={c: pl.String for c in columns}
    )


def test_validation_quarantines_bad_rows_and_the_rest_computes() -> None:
    good = {
        "owner_id": "R1",
        "created_at": "2025-02-01T10:00:00Z",
        "is_closed": "true",
        "is_won": "true",
        "close_date": "2025-03-10",
        "amount": "1100",
        "currency": "USD",
    }
    opps = raw(
        "opportunities",
        [
            {**good, "id": "O1"},  # line 2: good, 1000 EUR
            {**good, "id": "O2", "close_date": "2025-13-40"},  # line 3: malformed date
            {**good, "id": "O3", "currency": "XYZ"},  # line 4: unknown currency
            {**good, "id": "O4", "is_closed": "false"},  # line 5: won, not closed
            {**good, "id": "O1", "amount": "9999"},  # line 6: duplicated id
            {**good, "id": "O5", "amount": "500", "currency": "EUR"},  # line 7: good
            {**good, "id": "O6", "amount": "abc"},  # line 8: bad number
        ],
    )
    leads = raw(
        "leads",
        [
            {"id": "L1", "owner_id": "R1", "created_at": "yesterday"},  # line 2
            {"id": "L2", "owner_id": "R1", "created_at": "2025-03-02T10:00:00Z"},
        ],
    )
    quotas = raw(
        "quotas",
        [
            {
                "owner_id": "R1",
                "period_start": "2025-03-01",
                "period_end": "2025-04-01",
                "amount": "100",
                "currency": "ABC",
            },  # line 2
            {
                "owner_id": "R1",
                "period_start": "2025-03-01",
                "period_end": "2025-04-01",
                "amount": "200",
            },
        ],
    )
    tables = {
        "reps": raw("reps", [{"id": "R1", "team_id": "T1"}]),
        "teams": raw("teams", [{"id": "T1"}]),
        "opportunities": opps,
        "leads": leads,
        "quotas": quotas,
        "fx_rates": raw(
            "fx_rates", [{"currency": "USD", "start_date": "2025-01-01", "rate": "1.10"}]
        ),
    }
    validated = validate_tables(tables, "EUR")
    q = {
        (r["table"], r["line"]): (r["id"], r["reason"])
        for r in validated.quarantine.iter_rows(named=True)
    }
    assert set(q) == {
        ("opportunities.csv", 3),
        ("opportunities.csv", 4),
        ("opportunities.csv", 5),
        ("opportunities.csv", 6),
        ("opportunities.csv", 8),
        ("leads.csv", 2),
        ("quotas.csv", 2),
    }
    assert q[("opportunities.csv", 3)][0] == "O2"
    assert "close_date" in q[("opportunities.csv", 3)][1]
    assert "2025-13-40" in q[("opportunities.csv", 3)][1]
    assert "currency" in q[("opportunities.csv", 4)][1] and "XYZ" in q[("opportunities.csv", 4)][1]
    assert "is_won without is_closed" in q[("opportunities.csv", 5)][1]
    assert "duplicate" in q[("opportunities.csv", 6)][1] and "2" in q[("opportunities.csv", 6)][1]
    assert "amount" in q[("opportunities.csv", 8)][1]
    assert "created_at" in q[("leads.csv", 2)][1] and q[("leads.csv", 2)][0] == "L1"
    assert "ABC" in q[("quotas.csv", 2)][1]
    # the rest computes: revenue March = O1 1100 USD / 1.10 = 1000 + O5 500 = 1500 (2 deals)
    run = compute_kpis(validated.tables, settings())
    row = value(run, "revenue", "rep", "R1", MAR)
    assert row["value"] == pytest.approx(1500.0) and row["records"] == 2
    assert val(run, "revenue", "team", "T1", MAR) == pytest.approx(1500.0)
    assert val(run, "leads_created", "org", "org", MAR) == 1.0
    # quota: only the 200 EUR row
    row = value(run, "quota", "rep", "R1", MAR)
    assert row["value"] == pytest.approx(200.0) and row["records"] == 1
