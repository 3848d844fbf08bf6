"""Sanity checks of the reference catalogue itself, against numbers worked out by hand."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.reference.catalogue import compute_reference
from tests.reference.hand_made import write_hand_made_org

# canonical CSV headers (CANONICAL.md)
HEADERS: dict[str, str] = {
    "teams": "id,name,parent_id",
    "reps": "id,name,email,team_id,manager_id,is_active",
    "accounts": "id,name,owner_id,created_at,customer_status",
    "leads": (
        "id,owner_id,created_at,source,status,qualified_at,converted_at,converted_account_id,"
        "converted_opportunity_id,disqualified_at,score"
    ),
    "opportunities": (
        "id,owner_id,account_id,lead_id,created_at,close_date,stage,is_closed,is_won,amount,"
        "currency,type,cost,recurring_monthly_amount,contract_start,contract_end,competitor,"
        "competitor_price"
    ),
    "activities": (
        "id,owner_id,kind,direction,outcome,occurred_at,duration_minutes,lead_id,account_id,"
        "opportunity_id"
    ),
    "quotas": "owner_id,period_start,period_end,amount,currency",
    "fx_rates": "currency,start_date,rate",
    "costs": "period_start,period_end,team_id,amount",
}

Row = dict[str, Any]


def write_org(out: Path, **tables: list[dict[str, str]]) -> Path:
    """Canonical CSVs with the given rows (missing tables empty, missing cells null)."""
    out.mkdir(parents=True, exist_ok=True)
    for table, header in HEADERS.items():
        rows = tables.get(table, [])
        columns = header.split(",")
        lines = [header]
        lines += [",".join(r.get(c, "") for c in columns) for r in rows]
        (out / f"{table}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def one(rows: list[Row], metric: str, subject: str, ps: date, dim: str | None = None) -> Row:
    found = [
        r
        for r in rows
        if r["metric"] == metric
        and r["subject_id"] == subject
        and r["period_start"] == ps
        and r["dimension"] == dim
    ]
    assert len(found) == 1, (metric, subject, ps, dim, found)
    return found[0]


def run(csv_dir: Path, period: str = "month", tz: str = "UTC", **kw: Any) -> list[Row]:
    return compute_reference(
        csv_dir, currency="EUR", timezone=tz, period=period, as_of=date(2025, 2, 10), **kw
    )


REPS = [{"id": "R1", "name": "Ann", "team_id": "T1", "is_active": "true"}]
TEAMS = [{"id": "T1", "name": "Sales"}]
JAN, FEB, MAR = date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)


def test_seed_000_worked_example_lead_conversion(tmp_path: Path) -> None:
    """Seed 000: 200 leads created in a month, 50 of them converted -> 25 %."""
    leads = [
        {
            "id": f"L{i}",
            "owner_id": "R1",
            "created_at": f"2025-03-{1 + i % 28:02d}T10:00:00Z",
            "converted_at": "2025-05-01T10:00:00Z" if i < 50 else "",
        }
        for i in range(200)
    ]
    rows = run(write_org(tmp_path, teams=TEAMS, reps=REPS, leads=leads))
    for subject in ("R1", "T1", "org"):
        r = one(rows, "lead_conversion_rate", subject, MAR)
        assert (r["value"], r["numerator"], r["denominator"], r["records"]) == (25.0, 50, 200, 200)
        assert r["unit"] == "%"
        assert one(rows, "leads_created", subject, MAR)["value"] == 200
    # the conversion in May does not stretch the span: only March is reported
    assert {r["period_start"] for r in rows} == {MAR}


def test_timestamp_dates_are_taken_in_the_org_time_zone(tmp_path: Path) -> None:
    leads = [{"id": "L1", "owner_id": "R1", "created_at": "2025-01-31T23:30:00Z"}]
    d = write_org(tmp_path, teams=TEAMS, reps=REPS, leads=leads)
    utc = run(d, tz="UTC")
    ams = run(d, tz="Europe/Amsterdam")
    assert one(utc, "leads_created", "R1", JAN)["value"] == 1
    assert {r["period_start"] for r in utc} == {JAN}
    assert one(ams, "leads_created", "R1", FEB)["value"] == 1
    assert {r["period_start"] for r in ams} == {FEB}


def test_money_converts_at_the_rate_in_force_on_the_close_date(tmp_path: Path) -> None:
    fx = [
        {"currency": "USD", "start_date": "2025-01-01", "rate": "1.10"},
        {"currency": "USD", "start_date": "2025-01-16", "rate": "1.25"},
    ]
    won = {"is_closed": "true", "is_won": "true", "currency": "USD", "owner_id": "R1"}
    opps = [
        {**won, "id": "O1", "created_at": "2025-01-02T10:00:00Z", "close_date": "2025-01-15",
         "amount": "11000"},
        {**won, "id": "O2", "created_at": "2025-01-02T10:00:00Z", "close_date": "2025-01-16",
         "amount": "12500"},
        # before the first rate: the earliest row applies; empty currency = corporate
        {**won, "id": "O3", "created_at": "2024-12-01T10:00:00Z", "close_date": "2024-12-20",
         "amount": "1100"},
        {**won, "id": "O4", "created_at": "2024-12-01T10:00:00Z", "close_date": "2024-12-21",
         "amount": "50", "currency": ""},
    ]  # fmt: skip
    rows = run(write_org(tmp_path, teams=TEAMS, reps=REPS, opportunities=opps, fx_rates=fx))
    assert one(rows, "revenue", "org", JAN)["value"] == pytest.approx(20000.0)
    assert one(rows, "revenue", "org", date(2024, 12, 1))["value"] == pytest.approx(1050.0)
    assert one(rows, "revenue", "org", JAN)["unit"] == "EUR"
    growth = one(rows, "revenue_growth_mom", "org", JAN)
    assert growth["value"] == pytest.approx((20000 - 1050) / 1050 * 100)


def test_quota_split_by_seasonality_growth_and_partial_months(tmp_path: Path) -> None:
    quotas = [
        {"owner_id": "R1", "period_start": "2025-01-01", "period_end": "2026-01-01",
         "amount": "13000", "currency": "EUR"},
    ]  # fmt: skip
    d = write_org(tmp_path / "a", teams=TEAMS, reps=REPS, quotas=quotas)
    seasonal = run(d, seasonality=(2.0,) + (1.0,) * 11)
    assert one(seasonal, "quota", "R1", JAN)["value"] == pytest.approx(2000.0)
    assert one(seasonal, "quota", "R1", FEB)["value"] == pytest.approx(1000.0)
    assert len({r["period_start"] for r in seasonal}) == 12  # the row spans the year
    growing = run(d, monthly_growth_pct=10.0)
    jan = one(growing, "quota", "R1", JAN)["value"]
    assert one(growing, "quota", "R1", FEB)["value"] == pytest.approx(jan * 1.1)
    assert sum(r["value"] for r in growing if r["metric"] == "quota" and r["scope"] == "rep") == (
        pytest.approx(13000.0)
    )
    quarters = run(d, period="quarter", seasonality=(2.0,) + (1.0,) * 11)
    assert one(quarters, "quota", "R1", JAN)["value"] == pytest.approx(4000.0)
    # a month covered only partly gets a share in proportion to its days
    partial = [
        {"owner_id": "R1", "period_start": "2025-01-16", "period_end": "2025-03-01",
         "amount": "9000", "currency": "EUR"},
    ]  # fmt: skip
    rows = run(write_org(tmp_path / "b", teams=TEAMS, reps=REPS, quotas=partial))
    w_jan = 16 / 31
    assert one(rows, "quota", "R1", JAN)["value"] == pytest.approx(9000 * w_jan / (w_jan + 1))
    assert one(rows, "quota", "R1", JAN)["records"] == 1


def test_rows_per_scope(tmp_path: Path) -> None:
    d = write_hand_made_org(tmp_path)
    rows = run(d, tz="Europe/Amsterdam")
    metrics = {r["metric"] for r in rows}
    assert len(metrics) == 48
    rep_metrics = {r["metric"] for r in rows if r["scope"] == "rep"}
    assert {"roi", "cac", "pct_reps_hitting_quota"}.isdisjoint(rep_metrics)
    keys = [
        (r["metric"], r["scope"], r["subject_id"], r["period_start"], r["dimension"]) for r in rows
    ]
    assert len(keys) == len(set(keys))
    subjects = {(r["scope"], r["subject_id"]) for r in rows}
    assert subjects == {("rep", f"R{i}") for i in range(1, 6)} | {
        ("team", t) for t in ("T1", "T2", "T3", "T4", "T9")
    } | {("org", "org")}
    periods = {r["period_start"] for r in rows}
    for metric in metrics - {"competitor_win_rate", "competitor_price_gap"}:
        n_subjects = 6 if metric in ("roi", "cac", "pct_reps_hitting_quota") else 11
        assert sum(r["metric"] == metric for r in rows) == n_subjects * len(periods), metric
    for r in rows:
        if r["metric"].startswith("competitor_"):
            assert r["dimension"] and r["denominator"] and r["denominator"] > 0
        else:
            assert r["dimension"] is None
    # no csat column -> no customer_satisfaction rows
    (d / "accounts.csv").write_text(
        "id,name,owner_id,created_at,customer_status\nA1,Acme,R2,2024-11-01T10:00:00Z,customer\n",
        encoding="utf-8",
    )
    assert "customer_satisfaction" not in {r["metric"] for r in run(d, tz="Europe/Amsterdam")}


def test_hand_made_org_golden_values(tmp_path: Path) -> None:
    """Numbers worked out by hand from tests/reference/hand_made.py (Europe/Amsterdam)."""
    rows = run(write_hand_made_org(tmp_path), tz="Europe/Amsterdam")

    def v(metric: str, subject: str, ps: date, dim: str | None = None) -> Any:
        r = one(rows, metric, subject, ps, dim)
        return r["value"], r["numerator"], r["denominator"], r["records"]

    apr = date(2025, 4, 1)
    # span: Jan (O3/L2 created 2024-12-31 UTC) .. Apr (V21 on 2025-03-31 22:30 UTC); the open
    # opportunity closing in June does not stretch it
    assert sorted({r["period_start"] for r in rows}) == [JAN, FEB, MAR, apr]
    # O1 11000 USD @1.10, O3 12500 USD @1.25, O6 2000, O7 4000 (unknown owner), O8 3000
    assert v("revenue", "org", JAN) == (pytest.approx(29000.0), None, None, 5)
    # T1 covers R1 + T2 (R2) + T3 (R3): not R5 (no team) nor RX (not a rep)
    assert v("revenue", "T1", JAN)[0] == pytest.approx(23000.0)
    assert v("revenue", "T3", JAN)[0] == pytest.approx(10000.0)
    # mrr snapshot on Jan 31: O1 (1000 USD @1.10, contract to Feb 1) + O6 200; Feb 28: O2 + O7
    assert v("mrr", "org", JAN)[0] == pytest.approx(1000 / 1.1 + 200)
    assert v("mrr", "org", FEB)[0] == pytest.approx(700.0)
    # active Feb 1: A1..A5; Feb 28: A3's contract ended Feb 15
    assert v("churn_rate", "org", FEB) == (pytest.approx(20.0), 1, 5, 5)
    assert v("retention_rate", "org", FEB)[0] == pytest.approx(80.0)
    assert v("customer_satisfaction", "org", FEB) == (pytest.approx(7.625), 30.5, 4, 4)
    # O9's account A9 is not in accounts.csv: still a new customer, credited to R2
    assert v("new_customers", "org", MAR)[0] == 2
    assert v("new_customers", "R2", MAR)[0] == 1
    # T3 cost row 3100 over Jan 15..Feb 15 (31 days): 17 days in January
    assert v("roi", "T3", JAN) == (pytest.approx(8300 / 1700 * 100), 8300, 1700, 2)
    # partial-month quota of R3: 9000 * (16/31) / (16/31 + 1)
    assert v("quota", "R3", JAN)[0] == pytest.approx(9000 * (16 / 31) / (16 / 31 + 1))
    # R2's quarter row 33000 USD at the Jan 1 rate 1.10 -> 10000 a month
    assert v("quota", "R2", FEB)[0] == pytest.approx(10000.0)
    # org quota includes RX's row; attainment only known reps with quota > 0
    r3_feb = 9000 - 9000 * (16 / 31) / (16 / 31 + 1)
    assert v("quota", "org", FEB)[0] == pytest.approx(5000 + 10000 + r3_feb + 1000)
    assert v("quota_attainment", "org", FEB)[2] == pytest.approx(5000 + 10000 + r3_feb)
    assert v("quota_attainment", "R5", FEB) == (None, None, None, 0)
    # pipeline coverage: O10 (20000, open, closes Feb 28) over R3's remaining February quota
    assert v("pipeline_coverage", "R3", FEB) == (
        pytest.approx(20000 / r3_feb),
        20000,
        pytest.approx(r3_feb),
        1,
    )
    # as_of 2025-02-10: 10 of 28 days of February; March is after as_of
    assert v("monthly_sales_expected", "org", FEB) == (pytest.approx(1000 / 28), 10, 28, 0)
    assert v("monthly_sales_expected", "org", MAR) == (None, None, None, 0)
    # L10: 5 activities on 2025-01-16 in Amsterdam (4 of them on that UTC day); credited to the
    # lead owner R3 even though V10 is R4's. LZZ is not a lead: org only.
    assert v("over_contacted_leads", "R3", JAN) == (1, None, None, 5)
    assert v("over_contacted_leads", "R4", JAN) == (0, None, None, 0)
    assert v("over_contacted_leads", "org", FEB) == (1, None, None, 5)
    assert v("over_contacted_leads", "R1", FEB) == (0, None, None, 0)
    # speed to lead: T3 = L2 (10 min) and L10 (785 min) -> median of two = 397.5
    assert v("speed_to_lead_minutes", "T3", JAN) == (pytest.approx(397.5), None, None, 2)
    assert v("speed_to_lead_minutes", "org", JAN)[0] == pytest.approx(30.0)
    # calls: V3 is inbound, V4 has no direction (counts); V21 is April in Amsterdam
    assert v("calls", "R2", JAN)[0] == 1
    assert v("calls", "R3", JAN)[0] == 4
    assert v("calls", "R1", apr)[0] == 1
    # Rival, February: O2 won, O4 lost, O14 lost
    assert v("competitor_win_rate", "org", FEB, "Rival") == (pytest.approx(100 / 3), 1, 3, 3)
    # Rival, January: O1 (10000 - 10000/1.1) and O8 (3000 - 3100)
    gap = (10000 - 10000 / 1.1) + (3000 - 3100)
    assert v("competitor_price_gap", "org", JAN, "Rival")[0] == pytest.approx(gap / 2)
    # O3's cycle starts at L2's Amsterdam creation date (Jan 1): 15 days
    assert v("avg_sales_cycle_days", "R3", JAN) == (15, 15, 1, 1)


@pytest.mark.parametrize("period", ["month", "quarter", "year"])
def test_generated_org_is_fast_and_complete(tmp_path: Path, period: str) -> None:
    generator = pytest.importorskip("sandbox.generator")
    generator.write_canonical_csv(generator.generate_org(generator.spec_for(300, seed=1)), tmp_path)
    rows = run(tmp_path, period=period, tz="Europe/Amsterdam")
    assert rows
    keys = {
        (r["metric"], r["scope"], r["subject_id"], r["period_start"], r["dimension"]) for r in rows
    }
    assert len(keys) == len(rows)
