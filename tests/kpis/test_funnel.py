"""Conversion and funnel family, computed by hand."""

from __future__ import annotations

import pytest

from kpis.engine import KpiRun

from .builders import OrgBuilder, has_row, periods, val, value

JAN = "2025-01-01"
FEB = "2025-02-01"


def funnel_org() -> OrgBuilder:
    """T1 holds R1 and R2. USD at 1.10."""
    org = OrgBuilder().team("T1").rep("R1", team="T1").rep("R2", team="T1")
    org.fx("USD", "2025-01-01", 1.10)
    ld = org.lead
    ld(
        "L1",
        owner="R1",
        created="2025-01-05T10:00:00Z",
        qualified="2025-01-10T10:00:00Z",
        converted="2025-01-20T10:00:00Z",
        opp="OL1",
    )
    ld(
        "L2",
        owner="R1",
        created="2025-01-06T10:00:00Z",
        qualified="2025-02-03T10:00:00Z",
        converted="2025-02-10T10:00:00Z",
        opp="OL2",
    )
    ld("L3", owner="R1", created="2025-01-07T10:00:00Z", disqualified="2025-01-15T10:00:00Z")
    ld("L4", owner="R2", created="2025-01-08T10:00:00Z")
    ld(
        "L5",
        owner="R2",
        created="2025-02-02T10:00:00Z",
        qualified="2025-02-05T10:00:00Z",
        converted="2025-02-20T10:00:00Z",
        opp="OL3",
    )
    # converted in Jan, disqualified in Feb: its end is the disqualification (Feb)
    ld(
        "L6",
        owner="R2",
        created="2025-01-09T10:00:00Z",
        converted="2025-01-25T10:00:00Z",
        disqualified="2025-02-12T10:00:00Z",
    )
    o = org.opp
    o(
        "OL1",
        owner="R1",
        lead="L1",
        created="2025-01-20T09:00:00Z",
        close="2025-02-14",
        won=True,
        amount=1000,
        competitor="Acme",
        competitor_price=800,
    )
    o(
        "OL2",
        owner="R1",
        lead="L2",
        created="2025-02-10T09:00:00Z",
        close="2025-02-25",
        closed=True,
        amount=500,
        competitor="Acme",
    )
    o(
        "OL3", owner="R2", lead="L5", created="2025-02-20T09:00:00Z", close="2025-04-15", amount=800
    )  # open
    o(
        "O4",
        owner="R2",
        created="2025-01-30T09:00:00Z",
        close="2025-02-19",
        won=True,
        amount=3000,
        competitor="Beta",
        competitor_price=3500,
    )
    o(
        "O5",
        owner="R2",
        lead="LX",
        created="2025-02-01T09:00:00Z",
        close="2025-02-11",
        won=True,
        amount=2000,
    )  # LX is not in leads: cycle from the opp's creation
    o(
        "O6",
        owner="R1",
        created="2025-01-15T09:00:00Z",
        close="2025-01-31",
        closed=True,
        amount=1100,
        currency="USD",
        competitor="Acme",
        competitor_price=990,
    )
    return org


@pytest.fixture(scope="module")
def run() -> KpiRun:
    return funnel_org().run()


def test_span(run: KpiRun) -> None:
    # first: L1 created Jan 5; last: O6.. OL2 closed Feb 25; OL3's Apr 15 is open
    assert [str(p) for p in periods(run)] == ["2025-01-01", "2025-02-01"]


def test_leads_created(run: KpiRun) -> None:
    # Jan: R1 L1 L2 L3 = 3; R2 L4 L6 = 2; org 5. Feb: R2 L5 = 1
    row = value(run, "leads_created", "rep", "R1", JAN)
    assert row["value"] == 3.0 and row["records"] == 3 and row["unit"] == "count"
    assert val(run, "leads_created", "rep", "R2", JAN) == 2.0
    assert val(run, "leads_created", "team", "T1", JAN) == 5.0
    assert val(run, "leads_created", "org", "org", JAN) == 5.0
    assert val(run, "leads_created", "org", "org", FEB) == 1.0
    assert val(run, "leads_created", "rep", "R1", FEB) == 0.0


def test_qualified_leads(run: KpiRun) -> None:
    # placed by qualified_at: Jan L1; Feb L2 (created Jan) + L5
    assert val(run, "qualified_leads", "rep", "R1", JAN) == 1.0
    row = value(run, "qualified_leads", "org", "org", FEB)
    assert row["value"] == 2.0 and row["records"] == 2
    assert val(run, "qualified_leads", "rep", "R1", FEB) == 1.0
    assert val(run, "qualified_leads", "rep", "R2", JAN) == 0.0


def test_lead_conversion_rate(run: KpiRun) -> None:
    # Jan cohort: converted L1, L2, L6 of 5 -> 60 %; R1 2/3; R2 1/2 (L6)
    row = value(run, "lead_conversion_rate", "org", "org", JAN)
    assert row["value"] == pytest.approx(60.0)
    assert (row["numerator"], row["denominator"], row["records"]) == (3.0, 5.0, 5)
    assert val(run, "lead_conversion_rate", "rep", "R1", JAN) == pytest.approx(200 / 3)
    assert val(run, "lead_conversion_rate", "rep", "R2", JAN) == pytest.approx(50.0)
    # Feb: R2 L5 converted 1/1; R1 created none -> undefined
    assert val(run, "lead_conversion_rate", "rep", "R2", FEB) == pytest.approx(100.0)
    assert val(run, "lead_conversion_rate", "rep", "R1", FEB) is None


def test_lead_to_customer_rate(run: KpiRun) -> None:
    # Jan cohort: only L1's OL1 is won -> 1/5 = 20 %; R1 1/3; R2 0/2 = 0 (defined)
    row = value(run, "lead_to_customer_rate", "org", "org", JAN)
    assert row["value"] == pytest.approx(20.0) and row["records"] == 5
    assert val(run, "lead_to_customer_rate", "rep", "R1", JAN) == pytest.approx(100 / 3)
    assert val(run, "lead_to_customer_rate", "rep", "R2", JAN) == 0.0
    # Feb: L5 -> OL3 open -> 0/1
    assert val(run, "lead_to_customer_rate", "org", "org", FEB) == 0.0


def test_qualified_lead_conversion_rate(run: KpiRun) -> None:
    # Jan qualified: L1 (OL1 won) -> 1/1 = 100 %
    row = value(run, "qualified_lead_conversion_rate", "org", "org", JAN)
    assert row["value"] == pytest.approx(100.0) and row["records"] == 1
    # Feb qualified: L2 (OL2 lost), L5 (OL3 open) -> 0/2 = 0 %
    row = value(run, "qualified_lead_conversion_rate", "org", "org", FEB)
    assert row["value"] == 0.0 and row["denominator"] == 2.0 and row["records"] == 2
    # R2 Jan: none qualified -> undefined
    assert val(run, "qualified_lead_conversion_rate", "rep", "R2", JAN) is None


def test_opportunities_created(run: KpiRun) -> None:
    # Jan: OL1, O6 (R1), O4 (R2) = 3; Feb: OL2 (R1), OL3, O5 (R2) = 3
    assert val(run, "opportunities_created", "rep", "R1", JAN) == 2.0
    assert val(run, "opportunities_created", "rep", "R2", JAN) == 1.0
    row = value(run, "opportunities_created", "org", "org", FEB)
    assert row["value"] == 3.0 and row["records"] == 3
    assert val(run, "opportunities_created", "team", "T1", FEB) == 3.0


def test_win_rate_and_drop_off(run: KpiRun) -> None:
    # Feb closed: OL1 won, OL2 lost, O4 won, O5 won -> 3/4 = 75 %; drop-off 1/4 = 25 %
    row = value(run, "win_rate", "org", "org", FEB)
    assert row["value"] == pytest.approx(75.0) and row["records"] == 4
    assert (row["numerator"], row["denominator"]) == (3.0, 4.0)
    row = value(run, "drop_off_rate", "org", "org", FEB)
    assert row["value"] == pytest.approx(25.0) and row["records"] == 4
    # R1 Feb: OL1 won, OL2 lost -> 50 / 50; R2 Feb 2/2 -> 100 / 0
    assert val(run, "win_rate", "rep", "R1", FEB) == pytest.approx(50.0)
    assert val(run, "win_rate", "rep", "R2", FEB) == pytest.approx(100.0)
    assert val(run, "drop_off_rate", "rep", "R2", FEB) == 0.0
    # Jan: only O6 lost -> 0 % win, 100 % drop-off; R2 closed none -> undefined
    assert val(run, "win_rate", "org", "org", JAN) == 0.0
    assert val(run, "drop_off_rate", "org", "org", JAN) == pytest.approx(100.0)
    assert val(run, "win_rate", "rep", "R2", JAN) is None
    assert val(run, "drop_off_rate", "rep", "R2", JAN) is None


def test_win_rate_created(run: KpiRun) -> None:
    # Jan cohort: OL1 won, O4 won, O6 lost -> 2/3; Feb cohort: OL2 lost, OL3 open, O5 won -> 1/3
    row = value(run, "win_rate_created", "org", "org", JAN)
    assert row["value"] == pytest.approx(200 / 3) and row["records"] == 3
    assert val(run, "win_rate_created", "org", "org", FEB) == pytest.approx(100 / 3)
    # R1 Feb: OL2 lost -> 0/1
    assert val(run, "win_rate_created", "rep", "R1", FEB) == 0.0


def test_avg_sales_cycle_days(run: KpiRun) -> None:
    # OL1: from lead L1's creation Jan 5 to Feb 14 = 26 + 14 = 40 days (not from OL1's Jan 20)
    row = value(run, "avg_sales_cycle_days", "rep", "R1", FEB)
    assert row["value"] == pytest.approx(40.0) and row["unit"] == "days" and row["records"] == 1
    # R2: O4 Jan 30 -> Feb 19 = 20; O5 (lead LX unknown) Feb 1 -> Feb 11 = 10 -> 15
    assert val(run, "avg_sales_cycle_days", "rep", "R2", FEB) == pytest.approx(15.0)
    # org: (40 + 20 + 10) / 3 = 23.33
    row = value(run, "avg_sales_cycle_days", "org", "org", FEB)
    assert row["value"] == pytest.approx(70 / 3)
    assert (row["numerator"], row["denominator"], row["records"]) == (70.0, 3.0, 3)
    assert val(run, "avg_sales_cycle_days", "org", "org", JAN) is None


def test_closed_value_velocity(run: KpiRun) -> None:
    # R1: 1000 / 40 = 25 per day; R2: 5000 / 15 = 333.33; org 6000 / (70/3) = 257.14
    row = value(run, "closed_value_velocity", "rep", "R1", FEB)
    assert row["value"] == pytest.approx(25.0) and row["unit"] == "EUR/day"
    assert val(run, "closed_value_velocity", "rep", "R2", FEB) == pytest.approx(5000 / 15)
    row = value(run, "closed_value_velocity", "org", "org", FEB)
    assert row["value"] == pytest.approx(6000 / (70 / 3)) and row["records"] == 3
    assert row["numerator"] == pytest.approx(6000.0)
    assert val(run, "closed_value_velocity", "org", "org", JAN) is None


def test_pipeline_velocity(run: KpiRun) -> None:
    # open at end of Feb (created < Mar 1, not closed before Mar 1): OL3 -> 1.
    # org: 1 * 75 % * avg deal 2000 / 23.33 days = 1500 / (70/3) = 64.29 per day
    row = value(run, "pipeline_velocity", "org", "org", FEB)
    assert row["value"] == pytest.approx(1500 / (70 / 3))
    assert row["numerator"] == pytest.approx(1500.0) and row["records"] == 1
    assert row["unit"] == "EUR/day"
    # R2: 1 * 100 % * 2500 / 15 = 166.67
    assert val(run, "pipeline_velocity", "rep", "R2", FEB) == pytest.approx(2500 / 15)
    # R1: 0 open * 50 % * 1000 / 40 = 0 (all ingredients defined)
    assert val(run, "pipeline_velocity", "rep", "R1", FEB) == 0.0
    # Jan: open at Jan 31 = OL1 (closes Feb 14) + O4 (closes Feb 19); O6 closed Jan 31.
    # avg deal size Jan undefined (no wins) -> undefined
    row = value(run, "pipeline_velocity", "org", "org", JAN)
    assert row["value"] is None and row["records"] == 2


def test_lead_drop_off_rate(run: KpiRun) -> None:
    # Jan ends: L1 converted, L3 disqualified -> 1/2 (L6 is placed by its Feb disqualification)
    row = value(run, "lead_drop_off_rate", "org", "org", JAN)
    assert row["value"] == pytest.approx(50.0) and row["records"] == 2
    # Feb ends: L2 converted, L5 converted, L6 disqualified -> 1/3
    assert val(run, "lead_drop_off_rate", "org", "org", FEB) == pytest.approx(100 / 3)
    assert val(run, "lead_drop_off_rate", "rep", "R2", FEB) == pytest.approx(50.0)
    assert val(run, "lead_drop_off_rate", "rep", "R1", FEB) == 0.0
    assert val(run, "lead_drop_off_rate", "rep", "R2", JAN) is None


def test_competitor_win_rate(run: KpiRun) -> None:
    # Jan Acme: O6 lost -> 0/1
    row = value(run, "competitor_win_rate", "org", "org", JAN, dimension="Acme")
    assert row["value"] == 0.0 and row["records"] == 1
    # Feb Acme: OL1 won, OL2 lost -> 50 %; Beta: O4 won -> 100 %
    row = value(run, "competitor_win_rate", "org", "org", FEB, dimension="Acme")
    assert row["value"] == pytest.approx(50.0) and row["records"] == 2 and row["unit"] == "%"
    assert val(run, "competitor_win_rate", "rep", "R1", FEB, "Acme") == pytest.approx(50.0)
    assert val(run, "competitor_win_rate", "team", "T1", FEB, "Beta") == pytest.approx(100.0)
    # only rows with a denominator: R2 never met Acme in Feb, nobody met Beta in Jan
    assert not has_row(run, "competitor_win_rate", "rep", "R2", FEB, "Acme")
    assert not has_row(run, "competitor_win_rate", "org", "org", JAN, "Beta")
    # no row without a dimension
    assert not has_row(run, "competitor_win_rate", "org", "org", FEB)


def test_competitor_price_gap(run: KpiRun) -> None:
    # Feb Acme: only OL1 priced: 1000 - 800 = 200 (OL2 has no price); records 1
    row = value(run, "competitor_price_gap", "org", "org", FEB, dimension="Acme")
    assert row["value"] == pytest.approx(200.0) and row["records"] == 1 and row["unit"] == "EUR"
    # Beta: 3000 - 3500 = -500 (we were cheaper)
    assert val(run, "competitor_price_gap", "rep", "R2", FEB, "Beta") == pytest.approx(-500.0)
    # Jan Acme: O6 1100 USD / 1.10 - 990 USD / 1.10 = 1000 - 900 = 100 (lost deals count too)
    assert val(run, "competitor_price_gap", "rep", "R1", JAN, "Acme") == pytest.approx(100.0)
