"""Results family, computed by hand: revenue and what derives from it."""

from __future__ import annotations

import datetime as dt

import pytest

from kpis.engine import KpiRun

from .builders import OrgBuilder, has_row, periods, settings, val, value

MAR = "2025-03-01"
FEB = "2025-02-01"
JAN = "2025-01-01"


def results_org() -> OrgBuilder:
    """T1 > T2; R1 in T2, R2 in T1; X9 is an owner unknown to reps.csv.

    USD: 1.10 from 2025-01-01, 1.25 from 2025-03-16 (EUR is corporate).
    """
    org = OrgBuilder()
    org.team("T1").team("T2", parent="T1").rep("R1", team="T2").rep("R2", team="T1")
    org.fx("USD", "2025-01-01", 1.10).fx("USD", "2025-03-16", 1.25)
    org.account("A1", owner="R1").account("A2", owner="R2").account("A3")
    o = org.opp
    o(
        "O1",
        owner="R1",
        created="2025-01-05T10:00:00Z",
        close="2025-03-10",
        won=True,
        amount=1100,
        currency="USD",
        account="A1",
        type="new_business",
        cost=550,
    )
    o(
        "O2",
        owner="R1",
        created="2025-02-01T10:00:00Z",
        close="2025-03-20",
        won=True,
        amount=1250,
        currency="USD",
        account="A1",
        type="upsell",
    )
    o(
        "O3",
        owner="R2",
        created="2025-02-10T10:00:00Z",
        close="2025-03-05",
        won=True,
        amount=3000,
        currency="EUR",
        account="A2",
        cost=2250,
    )
    o(
        "O4",
        owner="R2",
        created="2025-02-15T10:00:00Z",
        close="2025-02-20",
        won=True,
        amount=2000,
        currency=None,
    )  # empty currency = corporate; no account
    o(
        "O5",
        owner="R2",
        created="2025-02-16T10:00:00Z",
        close="2025-03-12",
        closed=True,
        amount=5000,
        currency="EUR",
        cost=100,
    )  # lost: counts in no results KPI
    o(
        "O6",
        owner="R1",
        created="2025-02-17T10:00:00Z",
        close="2025-04-30",
        amount=9999,
        type="upsell",
    )  # open, future close date: no revenue, does not stretch the span
    o(
        "O7",
        owner="X9",
        created="2025-03-01T10:00:00Z",
        close="2025-03-15",
        won=True,
        amount=500,
        account="A3",
    )
    # Costs: T2 1000 in March; org-wide 900 over Jan..Mar (90 days = 10/day).
    org.cost("2025-03-01", "2025-04-01", 1000, team="T2")
    org.cost("2025-01-01", "2025-04-01", 900)
    return org


@pytest.fixture(scope="module")
def run() -> KpiRun:
    return results_org().run()


def test_span_runs_jan_to_mar_open_future_close_not_included(run: KpiRun) -> None:
    # earliest placed record: O1 created 2025-01-05; latest: O2 closed 2025-03-20.
    # O6's expected close 2025-04-30 is open: no April.
    assert periods(run) == [dt.date(2025, 1, 1), dt.date(2025, 2, 1), dt.date(2025, 3, 1)]
    row = value(run, "revenue", "org", "org", MAR)
    assert row["period_end"] == dt.date(2025, 4, 1)


def test_revenue(run: KpiRun) -> None:
    # R1 March: O1 1100 USD / 1.10 = 1000 EUR; O2 1250 USD / 1.25 (rate from 2025-03-16) = 1000
    row = value(run, "revenue", "rep", "R1", MAR)
    assert row["value"] == pytest.approx(2000.0)
    assert row["records"] == 2 and row["unit"] == "EUR"
    assert row["numerator"] is None and row["denominator"] is None
    # R2 March: O3 3000 EUR (O5 lost)
    assert val(run, "revenue", "rep", "R2", MAR) == pytest.approx(3000.0)
    # T2 = R1 only = 2000; T1 = R1 + R2 = 5000
    assert val(run, "revenue", "team", "T2", MAR) == pytest.approx(2000.0)
    assert val(run, "revenue", "team", "T1", MAR) == pytest.approx(5000.0)
    # org = 2000 + 3000 + O7 (unknown owner X9) 500 = 5500, 4 won opps
    row = value(run, "revenue", "org", "org", MAR)
    assert row["value"] == pytest.approx(5500.0) and row["records"] == 4
    # Feb: O4 2000 with empty currency = EUR at 1
    assert val(run, "revenue", "rep", "R2", FEB) == pytest.approx(2000.0)
    # empty sum is 0, not null
    row = value(run, "revenue", "rep", "R1", JAN)
    assert row["value"] == 0.0 and row["records"] == 0
    # X9 is no rep: no row
    assert not has_row(run, "revenue", "rep", "X9", MAR)


def test_deals_won(run: KpiRun) -> None:
    # March: R1 O1+O2 = 2; R2 O3 = 1; T1 3; org 3 + O7 = 4
    assert val(run, "deals_won", "rep", "R1", MAR) == 2.0
    assert val(run, "deals_won", "rep", "R2", MAR) == 1.0
    assert val(run, "deals_won", "team", "T1", MAR) == 3.0
    row = value(run, "deals_won", "org", "org", MAR)
    assert row["value"] == 4.0 and row["records"] == 4 and row["unit"] == "count"
    assert val(run, "deals_won", "org", "org", JAN) == 0.0


def test_avg_deal_size(run: KpiRun) -> None:
    # R1 March: 2000 / 2 = 1000
    row = value(run, "avg_deal_size", "rep", "R1", MAR)
    assert row["value"] == pytest.approx(1000.0)
    assert row["numerator"] == pytest.approx(2000.0) and row["denominator"] == 2.0
    assert row["records"] == 2
    # T1 March: 5000 / 3 = 1666.67; org 5500 / 4 = 1375
    assert val(run, "avg_deal_size", "team", "T1", MAR) == pytest.approx(5000 / 3)
    assert val(run, "avg_deal_size", "org", "org", MAR) == pytest.approx(1375.0)
    # Jan: 0 deals -> undefined
    row = value(run, "avg_deal_size", "org", "org", JAN)
    assert row["value"] is None and row["records"] == 0


def test_bookings_equal_revenue_set(run: KpiRun) -> None:
    # same set as revenue: org March 5500 over 4 won opps; T2 2000
    row = value(run, "bookings", "org", "org", MAR)
    assert row["value"] == pytest.approx(5500.0) and row["records"] == 4 and row["unit"] == "EUR"
    assert val(run, "bookings", "team", "T2", MAR) == pytest.approx(2000.0)
    assert val(run, "bookings", "rep", "R2", FEB) == pytest.approx(2000.0)


def test_revenue_growth_mom(run: KpiRun) -> None:
    # org March: (5500 - 2000) / 2000 * 100 = 175; records = 4 won in Mar + 1 in Feb
    row = value(run, "revenue_growth_mom", "org", "org", MAR)
    assert row["value"] == pytest.approx(175.0)
    assert row["numerator"] == pytest.approx(3500.0)
    assert row["denominator"] == pytest.approx(2000.0)
    assert row["records"] == 5 and row["unit"] == "%"
    # R2 March: (3000 - 2000) / 2000 = 50
    assert val(run, "revenue_growth_mom", "rep", "R2", MAR) == pytest.approx(50.0)
    # R1 March: Feb revenue 0 -> undefined; org Feb: Jan revenue 0 -> undefined
    assert val(run, "revenue_growth_mom", "rep", "R1", MAR) is None
    assert val(run, "revenue_growth_mom", "org", "org", FEB) is None
    # Jan: previous period (Dec 2024) is before the span, revenue 0 -> undefined
    assert val(run, "revenue_growth_mom", "org", "org", JAN) is None


def test_revenue_growth_can_be_negative_and_below_minus_100_is_impossible() -> None:
    org = OrgBuilder().rep("R1")
    org.opp(owner="R1", close="2025-01-10", won=True, amount=400)
    org.opp(owner="R1", close="2025-02-10", won=True, amount=100)
    run = org.run()
    # (100 - 400) / 400 * 100 = -75
    assert val(run, "revenue_growth_mom", "rep", "R1", FEB) == pytest.approx(-75.0)


def test_avg_revenue_per_customer(run: KpiRun) -> None:
    # R1 March: O1 1000 + O2 1000, both account A1 -> 2000 / 1
    row = value(run, "avg_revenue_per_customer", "rep", "R1", MAR)
    assert row["value"] == pytest.approx(2000.0) and row["records"] == 2
    assert row["numerator"] == pytest.approx(2000.0) and row["denominator"] == 1.0
    # T1 March: O1+O2+O3 = 5000 over {A1, A2} = 2500
    assert val(run, "avg_revenue_per_customer", "team", "T1", MAR) == pytest.approx(2500.0)
    # org March: + O7 (A3) 500 -> 5500 / 3 distinct accounts
    row = value(run, "avg_revenue_per_customer", "org", "org", MAR)
    assert row["value"] == pytest.approx(5500 / 3) and row["records"] == 4
    # Feb R2: O4 has no account -> no opps -> undefined, 0 records
    row = value(run, "avg_revenue_per_customer", "rep", "R2", FEB)
    assert row["value"] is None and row["records"] == 0


def test_upsell_cross_sell_revenue(run: KpiRun) -> None:
    # March: only O2 (upsell, won) = 1250 / 1.25 = 1000; O6 is upsell but open
    row = value(run, "upsell_cross_sell_revenue", "rep", "R1", MAR)
    assert row["value"] == pytest.approx(1000.0) and row["records"] == 1
    assert val(run, "upsell_cross_sell_revenue", "team", "T1", MAR) == pytest.approx(1000.0)
    assert val(run, "upsell_cross_sell_revenue", "org", "org", MAR) == pytest.approx(1000.0)
    row = value(run, "upsell_cross_sell_revenue", "rep", "R2", MAR)
    assert row["value"] == 0.0 and row["records"] == 0


def test_profit_margin(run: KpiRun) -> None:
    # R1 March: O1 amt 1000, cost 550 USD / 1.10 = 500 -> (1000 - 500) / 1000 = 50 %; O2 no cost
    row = value(run, "profit_margin", "rep", "R1", MAR)
    assert row["value"] == pytest.approx(50.0) and row["records"] == 1
    assert row["numerator"] == pytest.approx(500.0) and row["denominator"] == pytest.approx(1000.0)
    # R2 March: O3 (3000 - 2250) / 3000 = 25 % (O5 has a cost but is lost)
    assert val(run, "profit_margin", "rep", "R2", MAR) == pytest.approx(25.0)
    # T1: (500 + 750) / (1000 + 3000) = 31.25 %
    row = value(run, "profit_margin", "team", "T1", MAR)
    assert row["value"] == pytest.approx(31.25) and row["records"] == 2 and row["unit"] == "%"
    # Feb R2: O4 has no cost -> undefined
    assert val(run, "profit_margin", "rep", "R2", FEB) is None


def test_roi(run: KpiRun) -> None:
    # T2 March: revenue 2000, cost 1000 (T2 row) -> (2000 - 1000) / 1000 = 100 %;
    # records = 2 won + 1 cost row
    row = value(run, "roi", "team", "T2", MAR)
    assert row["value"] == pytest.approx(100.0)
    assert row["numerator"] == pytest.approx(1000.0) and row["denominator"] == pytest.approx(1000.0)
    assert row["records"] == 3
    # T1 March: T2's cost row counts (descendant): (5000 - 1000) / 1000 = 400 %; 3 won + 1 row
    row = value(run, "roi", "team", "T1", MAR)
    assert row["value"] == pytest.approx(400.0) and row["records"] == 4
    # org March: cost 1000 + 900 * 31/90 = 1310; (5500 - 1310) / 1310 * 100 = 319.847
    row = value(run, "roi", "org", "org", MAR)
    assert row["denominator"] == pytest.approx(1310.0)
    assert row["value"] == pytest.approx(4190 / 1310 * 100) and row["records"] == 6
    # org Feb: revenue 2000, cost 900 * 28/90 = 280 -> 1720 / 280 * 100 = 614.29; 1 won + 1 row
    row = value(run, "roi", "org", "org", FEB)
    assert row["value"] == pytest.approx(1720 / 280 * 100) and row["records"] == 2
    # T2 Jan: no cost -> undefined; no rep rows at all
    assert val(run, "roi", "team", "T2", JAN) is None
    assert not has_row(run, "roi", "rep", "R1", MAR)


def test_mrr_snapshot_on_last_day() -> None:
    org = OrgBuilder().team("T1").rep("R1", team="T1").rep("R2", team="T1")
    org.fx("USD", "2025-01-01", 1.10).fx("USD", "2025-03-16", 1.25)
    o = org.opp
    # M1: closed Jan 20, 110 USD/month at the close-date rate 1.10 = 100; contract Feb 1..Apr 1
    o(
        "M1",
        owner="R1",
        created="2025-01-02T00:00:00Z",
        close="2025-01-20",
        won=True,
        currency="USD",
        mrr=110,
        contract_start="2025-02-01",
        contract_end="2025-04-01",
    )
    # M2: closed on Mar 31 (last day), contract from Mar 1, open-ended: 50
    o(
        "M2",
        owner="R2",
        created="2025-01-03T00:00:00Z",
        close="2025-03-31",
        won=True,
        mrr=50,
        contract_start="2025-03-01",
    )
    # M3: no contract_start -> never; M4 lost -> never
    o("M3", owner="R2", created="2025-01-03T00:00:00Z", close="2025-01-10", won=True, mrr=40)
    o(
        "M4",
        owner="R1",
        created="2025-01-03T00:00:00Z",
        close="2025-01-10",
        closed=True,
        mrr=999,
        contract_start="2025-01-01",
    )
    # M5: contract ends Feb 28 (exclusive) and closed Feb 10: not active on Jan 31 (not closed
    # yet) nor on Feb 28 (ended)
    o(
        "M5",
        owner="R1",
        created="2025-01-03T00:00:00Z",
        close="2025-02-10",
        won=True,
        mrr=30,
        contract_start="2025-01-01",
        contract_end="2025-02-28",
    )
    # a lost deal in April stretches the span to April
    o("M6", owner="R1", created="2025-01-03T00:00:00Z", close="2025-04-15", closed=True)
    run = org.run()
    # Jan 31: nothing active (M1 starts Feb 1) -> 0
    assert val(run, "mrr", "org", "org", JAN) == 0.0
    # Feb 28: M1 100
    row = value(run, "mrr", "org", "org", FEB)
    assert row["value"] == pytest.approx(100.0) and row["records"] == 1 and row["unit"] == "EUR"
    # Mar 31: M1 100 + M2 50 = 150 (M1 still at its close-date rate, not 1.25)
    row = value(run, "mrr", "org", "org", MAR)
    assert row["value"] == pytest.approx(150.0) and row["records"] == 2
    assert val(run, "mrr", "rep", "R1", MAR) == pytest.approx(100.0)
    assert val(run, "mrr", "team", "T1", MAR) == pytest.approx(150.0)
    # Apr 30: M1 ended Apr 1 -> M2 50
    assert val(run, "mrr", "org", "org", "2025-04-01") == pytest.approx(50.0)
    assert val(run, "mrr", "rep", "R1", "2025-04-01") == 0.0


def test_profit_margin_and_money_use_corporate_currency_setting() -> None:
    # corporate USD: EUR rows need an EUR rate; 900 EUR / 0.9 = 1000 USD, cost 450 / 0.9 = 500
    org = OrgBuilder().rep("R1").fx("EUR", "2025-01-01", 0.9)
    org.opp(owner="R1", close="2025-01-10", won=True, amount=900, currency="EUR", cost=450)
    run = org.run(settings(currency="USD"))
    row = value(run, "revenue", "rep", "R1", JAN)
    assert row["value"] == pytest.approx(1000.0) and row["unit"] == "USD"
    assert val(run, "profit_margin", "rep", "R1", JAN) == pytest.approx(50.0)


def test_missing_amount_counts_as_zero_but_counts_in_records() -> None:
    org = OrgBuilder().rep("R1")
    org.opp(owner="R1", close="2025-01-10", won=True, amount=None)
    org.opp(owner="R1", close="2025-01-11", won=True, amount=300)
    run = org.run()
    # revenue 0 + 300 = 300 over 2 records; avg deal 300 / 2 = 150
    row = value(run, "revenue", "rep", "R1", JAN)
    assert row["value"] == pytest.approx(300.0) and row["records"] == 2
    assert val(run, "avg_deal_size", "rep", "R1", JAN) == pytest.approx(150.0)
