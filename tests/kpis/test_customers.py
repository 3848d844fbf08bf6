"""Customers family, computed by hand."""

from __future__ import annotations

import pytest

from kpis.engine import KpiRun

from .builders import OrgBuilder, has_row, periods, val, value

DEC = "2024-12-01"
JAN = "2025-01-01"
FEB = "2025-02-01"
MAR = "2025-03-01"


def base() -> OrgBuilder:
    return OrgBuilder().team("T1").rep("R1", team="T1").rep("R2", team="T1")


def retention_org() -> OrgBuilder:
    """Active spans (half-open, by contract or by customer status):

    C1 (R1): closed Jan 10, contract Jan 1..Mar 15      -> active Jan 10 .. Mar 14
    C2 (R1): closed 2024-12-20, contract Jan 1.., open   -> active from Jan 1
    C3 (R2): closed Jan 20, contract Feb 1..Feb 28       -> active Feb 1 .. Feb 27
    C4 (R2): status customer, no contract, first won Jan 5 -> active from Jan 5
    """
    org = base()
    org.account("C1", owner="R1", csat=8).account("C2", owner="R1", csat=6)
    org.account("C3", owner="R2", csat=10).account("C4", owner="R2", status="customer")
    o = org.opp
    o(
        "K1",
        owner="R1",
        account="C1",
        close="2025-01-10",
        won=True,
        amount=1000,
        contract_start="2025-01-01",
        contract_end="2025-03-15",
    )
    o(
        "K2",
        owner="R1",
        account="C2",
        close="2024-12-20",
        won=True,
        amount=500,
        contract_start="2025-01-01",
    )
    o(
        "K3",
        owner="R2",
        account="C3",
        close="2025-01-20",
        won=True,
        amount=300,
        contract_start="2025-02-01",
        contract_end="2025-02-28",
    )
    o("K4", owner="R2", account="C4", close="2025-01-05", won=True, amount=200)
    o("K5", owner="R2", account="C4", close="2025-02-10", won=True, amount=600)
    org.activity(owner="R1", at="2025-03-20T10:00:00Z")  # span up to March
    return org


@pytest.fixture(scope="module")
def ret_run() -> KpiRun:
    return retention_org().run()


def test_retention_span(ret_run: KpiRun) -> None:
    # K2 closed 2024-12-20 opens the span; the March activity closes it
    assert [str(p) for p in periods(ret_run)] == [DEC, JAN, FEB, MAR]


def test_churn_rate(ret_run: KpiRun) -> None:
    # Dec 1: nobody active -> undefined
    assert val(ret_run, "churn_rate", "org", "org", DEC) is None
    # Jan: S(Jan 1) = {C2}; E(Jan 31) = {C1, C2, C4} -> 0 / 1 = 0 %
    row = value(ret_run, "churn_rate", "org", "org", JAN)
    assert row["value"] == 0.0 and row["records"] == 1
    # Feb: S(Feb 1) = {C1, C2, C3, C4}; E(Feb 28) = {C1, C2, C4} -> 1 / 4 = 25 %
    row = value(ret_run, "churn_rate", "org", "org", FEB)
    assert row["value"] == pytest.approx(25.0) and row["records"] == 4 and row["unit"] == "%"
    assert (row["numerator"], row["denominator"]) == (1.0, 4.0)
    assert val(ret_run, "churn_rate", "rep", "R1", FEB) == 0.0  # {C1, C2} kept
    assert val(ret_run, "churn_rate", "rep", "R2", FEB) == pytest.approx(50.0)  # C3 lost of 2
    assert val(ret_run, "churn_rate", "team", "T1", FEB) == pytest.approx(25.0)
    # Mar: S(Mar 1) = {C1, C2, C4}; E(Mar 31) = {C2, C4} -> 1 / 3
    assert val(ret_run, "churn_rate", "org", "org", MAR) == pytest.approx(100 / 3)
    assert val(ret_run, "churn_rate", "rep", "R1", MAR) == pytest.approx(50.0)
    assert val(ret_run, "churn_rate", "rep", "R2", MAR) == 0.0
    # R2 Jan: nobody active on Jan 1 -> undefined
    assert val(ret_run, "churn_rate", "rep", "R2", JAN) is None


def test_retention_rate(ret_run: KpiRun) -> None:
    # = kept / start: Jan 1/1, Feb 3/4, Mar 2/3
    assert val(ret_run, "retention_rate", "org", "org", JAN) == pytest.approx(100.0)
    row = value(ret_run, "retention_rate", "org", "org", FEB)
    assert row["value"] == pytest.approx(75.0) and row["records"] == 4
    assert val(ret_run, "retention_rate", "org", "org", MAR) == pytest.approx(200 / 3)
    assert val(ret_run, "retention_rate", "rep", "R2", FEB) == pytest.approx(50.0)
    assert val(ret_run, "retention_rate", "org", "org", DEC) is None


def test_clv(ret_run: KpiRun) -> None:
    # R2 Feb: avg revenue per customer = K5 600 / {C4} = 600; churn 50 % -> 600 / 0.5 = 1200
    row = value(ret_run, "clv", "rep", "R2", FEB)
    assert row["value"] == pytest.approx(1200.0) and row["unit"] == "EUR"
    assert row["numerator"] == pytest.approx(600.0) and row["denominator"] == pytest.approx(0.5)
    assert row["records"] == 1
    # org Feb: 600 / 0.25 = 2400
    assert val(ret_run, "clv", "org", "org", FEB) == pytest.approx(2400.0)
    # Jan: arpc = (1000 + 300 + 200) / 3 = 500 but churn 0 -> undefined
    row = value(ret_run, "clv", "org", "org", JAN)
    assert row["value"] is None and row["records"] == 3
    # R1 Feb: no won deal -> arpc undefined -> undefined
    assert val(ret_run, "clv", "rep", "R1", FEB) is None


def test_customer_satisfaction(ret_run: KpiRun) -> None:
    # Feb 28 active: C1 (8), C2 (6), C4 (no score) -> (8 + 6) / 2 = 7
    row = value(ret_run, "customer_satisfaction", "org", "org", FEB)
    assert row["value"] == pytest.approx(7.0) and row["records"] == 2 and row["unit"] == "score"
    assert val(ret_run, "customer_satisfaction", "rep", "R1", FEB) == pytest.approx(7.0)
    # R2 Feb: C4 only, no score (C3 ended) -> undefined
    assert val(ret_run, "customer_satisfaction", "rep", "R2", FEB) is None
    # Mar 31: C2 (6), C4 -> 6
    assert val(ret_run, "customer_satisfaction", "org", "org", MAR) == pytest.approx(6.0)
    # Jan 31: C1, C2, C4 -> 7 (C3 not yet active, its 10 does not count)
    assert val(ret_run, "customer_satisfaction", "team", "T1", JAN) == pytest.approx(7.0)


def test_customer_satisfaction_unavailable_without_csat_column() -> None:
    org = base().account("C1", owner="R1", status="customer")
    org.opp(owner="R1", account="C1", close="2025-01-10", won=True, amount=1)
    run = org.run()
    assert "customer_satisfaction" in run.unavailable
    assert "csat" in run.unavailable["customer_satisfaction"]
    assert not has_row(run, "customer_satisfaction", "org", "org", JAN)


def new_customers_org() -> OrgBuilder:
    org = base()
    org.account("ACC1", owner="R1").account("ACC2", owner="R2")  # ACC2 owned by R2, won by R1
    org.account("ACC3", owner="R2").account("ACC5", owner="R2")  # ACC4 is not in accounts
    o = org.opp
    o("N1", owner="R1", account="ACC1", close="2025-01-10", won=True, amount=1)
    o("N4", owner="R2", account="ACC1", close="2025-03-01", won=True, amount=1)  # not first
    o("N2", owner="R1", account="ACC2", close="2025-02-15", won=True, amount=1)
    o("N3", owner="R2", account="ACC3", close="2025-01-05", won=True, amount=1)
    o("N5", owner="R2", account="ACC4", close="2025-02-20", won=True, amount=1)
    o("OB", owner="R2", account="ACC5", close="2025-03-10", won=True, amount=1)
    o("OA", owner="R1", account="ACC5", close="2025-03-10", won=True, amount=1)  # tie: OA < OB
    o("N6", owner="R1", account="ACC6", close="2025-03-05", closed=True, amount=1)  # lost
    o("N7", owner="R2", close="2025-02-01", won=True, amount=1)  # no account
    org.cost("2025-02-01", "2025-03-01", 1400, team="T1")
    org.cost("2025-01-01", "2025-04-01", 900)  # 90 days: Jan 310, Feb 280, Mar 310
    return org


@pytest.fixture(scope="module")
def new_run() -> KpiRun:
    return new_customers_org().run()


def test_new_customers(new_run: KpiRun) -> None:
    # Jan: ACC1 (N1, R1), ACC3 (N3, R2) -> R1 1, R2 1, org 2
    assert val(new_run, "new_customers", "rep", "R1", JAN) == 1.0
    assert val(new_run, "new_customers", "rep", "R2", JAN) == 1.0
    row = value(new_run, "new_customers", "org", "org", JAN)
    assert row["value"] == 2.0 and row["records"] == 2 and row["unit"] == "count"
    # Feb: ACC2 credited to R1 (first deal's owner, not the account owner R2); ACC4 (not in
    # accounts) to R2; N7 has no account
    assert val(new_run, "new_customers", "rep", "R1", FEB) == 1.0
    assert val(new_run, "new_customers", "rep", "R2", FEB) == 1.0
    assert val(new_run, "new_customers", "team", "T1", FEB) == 2.0
    # Mar: ACC5 tie on Mar 10 -> lowest id OA -> R1; ACC1's N4 is not a first deal
    assert val(new_run, "new_customers", "rep", "R1", MAR) == 1.0
    assert val(new_run, "new_customers", "rep", "R2", MAR) == 0.0
    assert val(new_run, "new_customers", "org", "org", MAR) == 1.0


def test_cac(new_run: KpiRun) -> None:
    # T1 Feb: 1400 / 2 new = 700; records 1 cost row + 2 new customers
    row = value(new_run, "cac", "team", "T1", FEB)
    assert row["value"] == pytest.approx(700.0) and row["records"] == 3 and row["unit"] == "EUR"
    assert row["numerator"] == pytest.approx(1400.0) and row["denominator"] == 2.0
    # org Feb: (1400 + 900 * 28/90) / 2 = 1680 / 2 = 840; records 2 rows + 2
    row = value(new_run, "cac", "org", "org", FEB)
    assert row["value"] == pytest.approx(840.0) and row["records"] == 4
    # org Jan: 310 / 2 = 155; org Mar: 310 / 1 = 310
    assert val(new_run, "cac", "org", "org", JAN) == pytest.approx(155.0)
    assert val(new_run, "cac", "org", "org", MAR) == pytest.approx(310.0)
    # T1 Jan: no team cost, 2 new -> 0 / 2 = 0 (defined)
    assert val(new_run, "cac", "team", "T1", JAN) == 0.0
    assert not has_row(new_run, "cac", "rep", "R1", FEB)


def test_cac_without_new_customers_is_undefined() -> None:
    org = base().cost("2025-01-01", "2025-02-01", 500)
    org.activity(owner="R1", at="2025-01-10T10:00:00Z")
    run = org.run()
    row = value(run, "cac", "org", "org", JAN)
    assert row["value"] is None and row["numerator"] == pytest.approx(500.0)


def lead_quality_org() -> OrgBuilder:
    org = base()
    ld = org.lead
    ld("Q1", owner="R1", created="2025-01-03T10:00:00Z", qualified="2025-02-10T10:00:00Z", score=80)
    ld("Q2", owner="R1", created="2025-01-04T10:00:00Z", score=60)
    ld("Q3", owner="R2", created="2025-01-05T10:00:00Z", qualified="2025-01-15T10:00:00Z")
    ld("Q4", owner="R2", created="2025-01-06T10:00:00Z", qualified="2025-03-01T10:00:00Z", score=40)
    ld("Q5", owner="R1", created="2025-02-06T10:00:00Z")
    return org


def test_lead_quality() -> None:
    run = lead_quality_org().run()
    # Jan cohort qualified at any time: Q1, Q3, Q4 of 4 -> 75 %; R1 1/2; R2 2/2
    row = value(run, "lead_quality", "org", "org", JAN)
    assert row["value"] == pytest.approx(75.0) and row["records"] == 4 and row["unit"] == "%"
    assert val(run, "lead_quality", "rep", "R1", JAN) == pytest.approx(50.0)
    assert val(run, "lead_quality", "rep", "R2", JAN) == pytest.approx(100.0)
    # Feb: Q5 not qualified -> 0 / 1
    assert val(run, "lead_quality", "org", "org", FEB) == 0.0


def test_lead_score_avg() -> None:
    run = lead_quality_org().run()
    # Jan scored: 80, 60, 40 -> 60 over 3; R1 (80 + 60) / 2 = 70; R2 40
    row = value(run, "lead_score_avg", "org", "org", JAN)
    assert row["value"] == pytest.approx(60.0) and row["records"] == 3 and row["unit"] == "score"
    assert (row["numerator"], row["denominator"]) == (180.0, 3.0)
    assert val(run, "lead_score_avg", "rep", "R1", JAN) == pytest.approx(70.0)
    assert val(run, "lead_score_avg", "rep", "R2", JAN) == pytest.approx(40.0)
    # Feb: Q5 has no score -> undefined
    assert val(run, "lead_score_avg", "org", "org", FEB) is None
