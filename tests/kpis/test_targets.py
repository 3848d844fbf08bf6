"""Targets family, computed by hand: quotas and standing against them."""

from __future__ import annotations

import pytest

from kpis.engine import KpiRun

from .builders import OrgBuilder, has_row, settings, val, value

FEB = "2025-02-01"
MAR = "2025-03-01"
APR = "2025-04-01"


def targets_org() -> OrgBuilder:
    """T1: R1, R2, R3 (R3 has no quota). X9 is unknown to reps.csv but has a quota."""
    org = OrgBuilder().team("T1")
    for rep in ("R1", "R2", "R3"):
        org.rep(rep, team="T1")
    org.fx("USD", "2025-01-01", 1.10).fx("USD", "2025-03-16", 1.25)
    org.quota("R1", "2025-03-01", "2025-04-01", 2000)
    # 1100 USD at the rate of the quota's start (1.10, not the 1.25 from Mar 16) = 1000 EUR
    org.quota("R2", "2025-03-01", "2025-04-01", 1100, currency="USD")
    org.quota("X9", "2025-03-01", "2025-04-01", 500)
    o = org.opp
    created = "2025-02-20T09:00:00Z"
    o("W1", owner="R1", created=created, close="2025-03-10", won=True, amount=1500)
    o("W2", owner="R1", created=created, close="2025-03-25", won=True, amount=1000)
    o("W3", owner="R2", created=created, close="2025-03-05", won=True, amount=200)
    o("W4", owner="R3", created=created, close="2025-03-08", won=True, amount=700)
    o("W5", owner="X9", created=created, close="2025-03-09", won=True, amount=900)
    # open pipeline (is_closed false), by expected close date
    o("P1", owner="R2", created=created, close="2025-03-28", amount=1000)
    o("P2", owner="R2", created=created, close="2025-04-10", amount=300)  # April
    o("P3", owner="R1", created=created, close="2025-03-29", amount=400)
    o("P4", owner="R3", created=created, close="2025-03-20", amount=600)  # R3 has no quota
    o("P5", owner="R2", created=created, close="2025-03-30", closed=True, amount=800)  # lost
    # an activity in April stretches the span to Feb..Apr
    org.activity(owner="R1", at="2025-04-02T10:00:00Z", kind="email")
    return org


@pytest.fixture(scope="module")
def run() -> KpiRun:
    return targets_org().run(settings(as_of="2025-03-15"))


def test_quota(run: KpiRun) -> None:
    row = value(run, "quota", "rep", "R1", MAR)
    assert row["value"] == pytest.approx(2000.0) and row["records"] == 1 and row["unit"] == "EUR"
    # 1100 USD / 1.10 = 1000
    assert val(run, "quota", "rep", "R2", MAR) == pytest.approx(1000.0)
    row = value(run, "quota", "rep", "R3", MAR)
    assert row["value"] == 0.0 and row["records"] == 0
    # T1 = 2000 + 1000 = 3000 (2 rows); org adds X9's 500 = 3500 (3 rows)
    row = value(run, "quota", "team", "T1", MAR)
    assert row["value"] == pytest.approx(3000.0) and row["records"] == 2
    row = value(run, "quota", "org", "org", MAR)
    assert row["value"] == pytest.approx(3500.0) and row["records"] == 3
    assert val(run, "quota", "org", "org", APR) == 0.0


def test_quota_attainment(run: KpiRun) -> None:
    # R1: (1500 + 1000) / 2000 = 125 %; records = 2 won + 1 quota row
    row = value(run, "quota_attainment", "rep", "R1", MAR)
    assert row["value"] == pytest.approx(125.0) and row["records"] == 3 and row["unit"] == "%"
    assert row["numerator"] == pytest.approx(2500.0) and row["denominator"] == pytest.approx(2000.0)
    # R2: 200 / 1000 = 20 %
    assert val(run, "quota_attainment", "rep", "R2", MAR) == pytest.approx(20.0)
    # R3 has no quota: undefined (its 700 count nowhere in attainment)
    row = value(run, "quota_attainment", "rep", "R3", MAR)
    assert row["value"] is None and row["denominator"] is None
    # T1: (2500 + 200) / (2000 + 1000) = 90 %; records = 3 won (W1, W2, W3) + 2 quota rows
    row = value(run, "quota_attainment", "team", "T1", MAR)
    assert row["value"] == pytest.approx(90.0) and row["records"] == 5
    assert row["numerator"] == pytest.approx(2700.0) and row["denominator"] == pytest.approx(3000.0)
    # org: only known reps with a quota -> same as T1 (X9's quota and W5 left out)
    row = value(run, "quota_attainment", "org", "org", MAR)
    assert row["value"] == pytest.approx(90.0) and row["denominator"] == pytest.approx(3000.0)
    # Feb: nobody has a quota -> undefined
    assert val(run, "quota_attainment", "org", "org", FEB) is None


def test_pct_reps_hitting_quota_and_insight(run: KpiRun) -> None:
    # T1 March: R1 125 % hits, R2 20 % does not -> 1 / 2 = 50 %; records = 2 reps with a quota
    row = value(run, "pct_reps_hitting_quota", "team", "T1", MAR)
    assert row["value"] == pytest.approx(50.0) and row["records"] == 2
    assert row["numerator"] == 1.0 and row["denominator"] == 2.0
    assert val(run, "pct_reps_hitting_quota", "org", "org", MAR) == pytest.approx(50.0)
    assert val(run, "pct_reps_hitting_quota", "team", "T1", FEB) is None
    assert not has_row(run, "pct_reps_hitting_quota", "rep", "R1", MAR)
    # 50 < 60: "targets may be too ambitious" for T1 and org in March
    ins = run.insights
    hits = {
        (r["scope"], r["subject_id"], str(r["period_start"])) for r in ins.iter_rows(named=True)
    }
    assert hits == {("team", "T1", "2025-03-01"), ("org", "org", "2025-03-01")}
    assert set(ins["insight"].to_list()) == {"quota_too_ambitious"}
    assert "1 of 2 reps" in ins["message"][0]


def test_pct_reps_hitting_quota_exactly_at_quota_counts() -> None:
    org = OrgBuilder().team("T").rep("R1", team="T").rep("R2", team="T")
    org.quota("R1", "2025-01-01", "2025-02-01", 1000).quota("R2", "2025-01-01", "2025-02-01", 1000)
    org.opp(owner="R1", close="2025-01-20", won=True, amount=1000)  # exactly 100 %
    org.opp(owner="R2", close="2025-01-20", won=True, amount=999.99)
    run = org.run()
    # R1 revenue >= quota hits, R2 not -> 1 / 2 = 50 %
    assert val(run, "pct_reps_hitting_quota", "team", "T", "2025-01-01") == pytest.approx(50.0)


def test_monthly_sales_progress(run: KpiRun) -> None:
    # as_of Mar 15 -> to date = close_date < Mar 16.
    # R1: W1 1500 (W2 on Mar 25 is after) / 2000 = 75 %; records 1
    row = value(run, "monthly_sales_progress", "rep", "R1", MAR)
    assert row["value"] == pytest.approx(75.0) and row["records"] == 1
    # R2: W3 200 / 1000 = 20 %
    assert val(run, "monthly_sales_progress", "rep", "R2", MAR) == pytest.approx(20.0)
    # R3 has no quota -> undefined
    assert val(run, "monthly_sales_progress", "rep", "R3", MAR) is None
    # T1: (1500 + 200) / 3000 = 56.67 %; org (known reps with a quota) the same
    row = value(run, "monthly_sales_progress", "team", "T1", MAR)
    assert row["value"] == pytest.approx(1700 / 3000 * 100) and row["records"] == 2
    assert val(run, "monthly_sales_progress", "org", "org", MAR) == pytest.approx(1700 / 30)
    # April starts after as_of -> undefined
    assert val(run, "monthly_sales_progress", "team", "T1", APR) is None


def test_monthly_sales_expected(run: KpiRun) -> None:
    # March, as_of Mar 15: (Mar 16 - Mar 1) = 15 days of 31 -> 48.387 %; records 0
    for scope, subject in (("rep", "R3"), ("team", "T1"), ("org", "org")):
        row = value(run, "monthly_sales_expected", scope, subject, MAR)
        assert row["value"] == pytest.approx(15 / 31 * 100)
        assert row["numerator"] == 15.0 and row["denominator"] == 31.0
        assert row["records"] == 0 and row["unit"] == "%"
    # Feb is over: 28 / 28 = 100 %; April has not started: undefined
    assert val(run, "monthly_sales_expected", "org", "org", FEB) == pytest.approx(100.0)
    assert val(run, "monthly_sales_expected", "org", "org", APR) is None


def test_pipeline_coverage(run: KpiRun) -> None:
    # R2: open due in March P1 1000 (P2 is April, P5 lost) / (1000 - 200) = 1.25x; records 1
    row = value(run, "pipeline_coverage", "rep", "R2", MAR)
    assert row["value"] == pytest.approx(1.25) and row["records"] == 1 and row["unit"] == "x"
    assert row["numerator"] == pytest.approx(1000.0) and row["denominator"] == pytest.approx(800.0)
    # R1: quota met (2000 - 2500 = -500 <= 0) -> undefined
    assert val(run, "pipeline_coverage", "rep", "R1", MAR) is None
    # R3: no quota -> undefined
    assert val(run, "pipeline_coverage", "rep", "R3", MAR) is None
    # T1: (P3 400 + P1 1000) / (3000 - 2700) = 1400 / 300 = 4.667x (P4 is R3's: no quota)
    row = value(run, "pipeline_coverage", "team", "T1", MAR)
    assert row["value"] == pytest.approx(1400 / 300) and row["records"] == 2


def test_quota_split_with_growth() -> None:
    # 2100 over Jan..Feb with 10 % growth: weights 1 and 1.1 -> Jan 2100 / 2.1 = 1000, Feb 1100
    org = OrgBuilder().rep("R1").quota("R1", "2025-01-01", "2025-03-01", 2100)
    run = org.run(settings(monthly_growth_pct=10.0))
    assert val(run, "quota", "rep", "R1", "2025-01-01") == pytest.approx(1000.0)
    assert val(run, "quota", "rep", "R1", FEB) == pytest.approx(1100.0)
    assert value(run, "quota", "rep", "R1", FEB)["records"] == 1


def test_quota_partial_months_by_days() -> None:
    # 3000 over Jan 17..Feb 15: Jan covers 15/31 days, Feb 14/28 = 1/2.
    # Jan share = (15/31) / (15/31 + 1/2) = 30/61 -> 1475.41; Feb 31/61 -> 1524.59
    org = OrgBuilder().rep("R1").quota("R1", "2025-01-17", "2025-02-15", 3000)
    run = org.run()
    assert val(run, "quota", "rep", "R1", "2025-01-01") == pytest.approx(3000 * 30 / 61)
    assert val(run, "quota", "rep", "R1", FEB) == pytest.approx(3000 * 31 / 61)


def test_multi_month_quota_converts_at_the_rows_start_rate() -> None:
    # 1440 USD over 2025 at the rate on its start (1.2) = 1200 EUR = 100 a month, also after
    # the rate changes to 2.4 on Jun 1
    org = OrgBuilder().rep("R1").fx("USD", "2025-01-01", 1.2).fx("USD", "2025-06-01", 2.4)
    org.quota("R1", "2025-01-01", "2026-01-01", 1440, currency="USD")
    run = org.run()
    assert val(run, "quota", "rep", "R1", "2025-01-01") == pytest.approx(100.0)
    assert val(run, "quota", "rep", "R1", "2025-07-01") == pytest.approx(100.0)
