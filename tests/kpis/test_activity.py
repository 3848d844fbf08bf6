"""Activity and prospecting family, computed by hand."""

from __future__ import annotations

import pytest

from kpis.engine import KpiRun

from .builders import OrgBuilder, settings, val, value

FEB = "2025-02-01"
MAR = "2025-03-01"
APR = "2025-04-01"


def base() -> OrgBuilder:
    return OrgBuilder().team("T1").rep("R1", team="T1").rep("R2", team="T1")


@pytest.fixture(scope="module")
def counts_run() -> KpiRun:
    org = base()
    a = org.activity
    at = "2025-03-10T10:00:00Z"
    a(
        "A1",
        owner="R1",
        kind="call",
        direction="outbound",
        outcome="connected",
        duration=10,
        lead="L1",
        at=at,
    )
    a("A2", owner="R1", kind="call", outcome="no_answer", duration=5, at=at)  # no direction
    a("A3", owner="R1", kind="call", direction="inbound", outcome="connected", duration=20, at=at)
    a("A4", owner="R2", kind="call", direction="outbound", outcome="connected", at=at)
    a("A5", owner="R1", kind="email", direction="outbound", at=at)
    a("A6", owner="R1", kind="email", direction="inbound", at=at)
    a("A7", owner="R2", kind="email", at=at)
    a("A8", owner="R2", kind="meeting", direction="inbound", duration=30, lead="L2", at=at)
    a("A9", owner="R1", kind="meeting", direction="outbound", duration=60, account="ACC1", at=at)
    a("A10", owner="R1", kind="task", lead="L1", duration=15, at=at)
    a(
        "A11",
        owner="X9",
        kind="call",
        direction="outbound",
        outcome="connected",
        duration=7,
        lead="L3",
        at=at,
    )  # unknown owner: org only
    return org.run()


def test_calls(counts_run: KpiRun) -> None:
    # R1: A1 outbound + A2 no direction = 2 (A3 inbound is not); R2: A4; org + X9's A11 = 4
    row = value(counts_run, "calls", "rep", "R1", MAR)
    assert row["value"] == 2.0 and row["records"] == 2 and row["unit"] == "count"
    assert val(counts_run, "calls", "rep", "R2", MAR) == 1.0
    assert val(counts_run, "calls", "team", "T1", MAR) == 3.0
    assert val(counts_run, "calls", "org", "org", MAR) == 4.0


def test_emails(counts_run: KpiRun) -> None:
    # R1: A5 (A6 inbound not); R2: A7 (no direction counts)
    assert val(counts_run, "emails", "rep", "R1", MAR) == 1.0
    assert val(counts_run, "emails", "rep", "R2", MAR) == 1.0
    row = value(counts_run, "emails", "org", "org", MAR)
    assert row["value"] == 2.0 and row["records"] == 2


def test_meetings(counts_run: KpiRun) -> None:
    # any direction: R1 A9, R2 A8 (inbound)
    assert val(counts_run, "meetings", "rep", "R1", MAR) == 1.0
    assert val(counts_run, "meetings", "rep", "R2", MAR) == 1.0
    assert val(counts_run, "meetings", "org", "org", MAR) == 2.0


def test_reach_rate(counts_run: KpiRun) -> None:
    # R1: A1 connected of A1, A2 -> 50 % (A3 inbound left out)
    row = value(counts_run, "reach_rate", "rep", "R1", MAR)
    assert row["value"] == pytest.approx(50.0) and row["records"] == 2
    assert (row["numerator"], row["denominator"]) == (1.0, 2.0)
    # R2 1/1; T1 2/3; org (A11 connected) 3/4 = 75 %
    assert val(counts_run, "reach_rate", "rep", "R2", MAR) == pytest.approx(100.0)
    assert val(counts_run, "reach_rate", "team", "T1", MAR) == pytest.approx(200 / 3)
    assert val(counts_run, "reach_rate", "org", "org", MAR) == pytest.approx(75.0)


def test_time_per_lead_minutes(counts_run: KpiRun) -> None:
    # R1 minutes of calls/meetings (any direction): A1 10 + A2 5 + A3 20 + A9 60 = 95
    # (A10 is a task: its 15 minutes do not count); distinct leads: L1 (A1, A10) -> 95 / 1
    # records: A1 A2 A3 A9 (call/meeting) + A10 (on a lead) = 5
    row = value(counts_run, "time_per_lead_minutes", "rep", "R1", MAR)
    assert row["value"] == pytest.approx(95.0) and row["records"] == 5
    assert row["unit"] == "minutes" and row["denominator"] == 1.0
    # R2: A4 (no duration = 0) + A8 30 = 30 over L2 -> 30; records 2
    assert val(counts_run, "time_per_lead_minutes", "rep", "R2", MAR) == pytest.approx(30.0)
    # T1: 125 / {L1, L2} = 62.5; org: + A11 7 over {L1, L2, L3} = 132 / 3 = 44
    row = value(counts_run, "time_per_lead_minutes", "team", "T1", MAR)
    assert row["value"] == pytest.approx(62.5) and row["records"] == 7
    assert val(counts_run, "time_per_lead_minutes", "org", "org", MAR) == pytest.approx(44.0)


def test_time_per_lead_counts_a_shared_lead_once_in_a_team() -> None:
    org = base()
    org.activity(owner="R1", kind="call", duration=10, lead="L1", at="2025-03-02T10:00:00Z")
    org.activity(owner="R2", kind="call", duration=20, lead="L1", at="2025-03-03T10:00:00Z")
    run = org.run()
    # reps: 10/1 and 20/1; team: (10 + 20) / 1 distinct lead = 30 (not 30 / 2)
    assert val(run, "time_per_lead_minutes", "rep", "R1", MAR) == pytest.approx(10.0)
    assert val(run, "time_per_lead_minutes", "team", "T1", MAR) == pytest.approx(30.0)


def test_speed_to_lead_minutes() -> None:
    org = base()
    org.lead("L1", owner="R1", created="2025-03-03T09:00:00Z")
    org.lead("L2", owner="R1", created="2025-03-04T10:00:00Z")
    org.lead("L3", owner="R2", created="2025-03-05T00:00:00Z")
    org.lead("L4", owner="R1", created="2025-03-06T00:00:00Z")  # never worked: left out
    a = org.activity
    a(owner="R2", lead="L1", at="2025-03-03T08:00:00Z")  # before creation: ignored
    a(owner="R2", lead="L1", at="2025-03-03T09:30:00Z")  # by R2, but L1 is R1's lead: 30 min
    a(owner="R1", lead="L1", at="2025-03-03T09:40:00Z")
    a(owner="R1", lead="L2", kind="email", at="2025-03-04T12:00:00Z")  # 120 min
    a(owner="R2", lead="L3", at="2025-03-05T00:45:30Z")  # 45.5 min
    a(owner="R2", lead="L3", at="2025-03-05T00:50:00Z")  # later: not the first
    run = org.run()
    # R1: median(30, 120) = 75; R2: 45.5; T1: median(30, 45.5, 120) = 45.5
    row = value(run, "speed_to_lead_minutes", "rep", "R1", MAR)
    assert row["value"] == pytest.approx(75.0) and row["records"] == 2
    assert row["numerator"] is None and row["denominator"] is None and row["unit"] == "minutes"
    assert val(run, "speed_to_lead_minutes", "rep", "R2", MAR) == pytest.approx(45.5)
    row = value(run, "speed_to_lead_minutes", "team", "T1", MAR)
    assert row["value"] == pytest.approx(45.5) and row["records"] == 3


def test_speed_to_lead_no_worked_lead_is_undefined() -> None:
    org = base()
    org.lead("L1", owner="R1", created="2025-03-03T09:00:00Z")
    run = org.run()
    row = value(run, "speed_to_lead_minutes", "rep", "R1", MAR)
    assert row["value"] is None and row["records"] == 0


def test_follow_up_attempts() -> None:
    org = base()
    org.lead("L1", owner="R1", created="2025-03-01T08:00:00Z", converted="2025-03-20T12:00:00Z")
    org.lead("L2", owner="R1", created="2025-03-01T08:00:00Z", disqualified="2025-03-18T12:00:00Z")
    org.lead("L3", owner="R2", created="2025-03-01T08:00:00Z", disqualified="2025-04-02T12:00:00Z")
    org.lead("L4", owner="R2", created="2025-03-01T08:00:00Z")  # no end: left out
    a = org.activity
    a(owner="R1", lead="L1", at="2025-03-10T10:00:00Z")
    a(owner="R2", lead="L1", at="2025-03-15T10:00:00Z")  # any owner counts
    a(owner="R1", lead="L1", kind="email", at="2025-03-20T11:59:00Z")
    a(owner="R1", lead="L1", at="2025-03-20T12:00:00Z")  # at the end: not before it
    a(owner="R1", lead="L1", at="2025-03-25T10:00:00Z")
    a(owner="R2", lead="L3", at="2025-03-30T10:00:00Z")
    a(owner="R2", lead="L4", at="2025-03-30T10:00:00Z")
    # lead ends do not stretch the span (created/closed/activity/quota do): an April email does
    a(owner="R1", kind="email", at="2025-04-05T10:00:00Z")
    run = org.run()
    # March ends: L1 3 attempts, L2 0 -> (3 + 0) / 2 = 1.5 (R1 and T1)
    row = value(run, "follow_up_attempts", "rep", "R1", MAR)
    assert row["value"] == pytest.approx(1.5) and row["records"] == 2
    assert (row["numerator"], row["denominator"]) == (3.0, 2.0)
    assert val(run, "follow_up_attempts", "team", "T1", MAR) == pytest.approx(1.5)
    # R2: L3 ends in April with 1 attempt; March has none -> undefined
    assert val(run, "follow_up_attempts", "rep", "R2", APR) == pytest.approx(1.0)
    assert val(run, "follow_up_attempts", "rep", "R2", MAR) is None


def test_over_contacted_leads() -> None:
    org = base()
    org.lead("L1", owner="R1", created="2025-03-01T08:00:00Z")
    org.lead("L2", owner="R1", created="2025-03-01T08:00:00Z")
    org.lead("L3", owner="R2", created="2025-03-01T08:00:00Z")
    acts = org.activities
    acts(5, owner="R1", lead="L1", at="2025-03-10T10:00:00Z")  # 5 > 4: over
    acts(4, owner="R1", lead="L1", at="2025-03-11T10:00:00Z")  # 4: not over
    acts(6, owner="R2", lead="L2", at="2025-03-12T10:00:00Z")  # R2's activities, R1's lead
    acts(5, owner="R1", lead="L2", at="2025-03-13T10:00:00Z")  # second over-day, same lead
    acts(4, owner="R2", lead="L3", at="2025-03-12T10:00:00Z")
    acts(5, owner="R2", lead="LX", at="2025-03-14T10:00:00Z")  # lead not in leads: org only
    run = org.run()
    # R1 (lead owner): L1 and L2 -> 2 leads; records 5 + 6 + 5 = 16
    row = value(run, "over_contacted_leads", "rep", "R1", MAR)
    assert row["value"] == 2.0 and row["records"] == 16 and row["unit"] == "count"
    row = value(run, "over_contacted_leads", "rep", "R2", MAR)
    assert row["value"] == 0.0 and row["records"] == 0
    assert val(run, "over_contacted_leads", "team", "T1", MAR) == 2.0
    # org: + LX -> 3 leads, 21 activities
    row = value(run, "over_contacted_leads", "org", "org", MAR)
    assert row["value"] == 3.0 and row["records"] == 21


def test_over_contacted_threshold_is_a_setting() -> None:
    org = base().lead("L1", owner="R1", created="2025-03-01T08:00:00Z")
    org.activities(3, owner="R1", lead="L1", at="2025-03-10T10:00:00Z")
    # 3 > 2 -> over with the setting at 2
    run = org.run(settings(over_contact_per_day=2))
    assert val(run, "over_contacted_leads", "rep", "R1", MAR) == 1.0


def engagement_org() -> OrgBuilder:
    org = base()
    org.account("ACC1", owner="R1").account("ACC2", owner="R1", status="customer")
    org.account("ACC3", owner="R2")
    o = org.opp
    # ACC1: contract from Jan 1, open-ended, closed Jan 10 -> active from Jan 10
    o(
        "W1",
        owner="R1",
        account="ACC1",
        close="2025-01-10",
        won=True,
        amount=100,
        contract_start="2025-01-01",
    )
    # ACC2: no contract, status customer -> active from its first won close Feb 15
    o("W2", owner="R1", account="ACC2", close="2025-02-15", won=True, amount=100)
    # ACC3: contract Jan 1 .. Mar 15 (exclusive)
    o(
        "W3",
        owner="R2",
        account="ACC3",
        close="2025-01-05",
        won=True,
        amount=100,
        contract_start="2025-01-01",
        contract_end="2025-03-15",
    )
    a = org.activity
    a(owner="R1", account="ACC1", at="2025-03-02T10:00:00Z")
    a(owner="R2", account="ACC1", kind="email", at="2025-03-03T10:00:00Z")  # any owner
    a(owner="R1", account="ACC1", kind="task", at="2025-03-04T10:00:00Z")  # any kind
    a(owner="R1", account="ACC2", at="2025-03-05T10:00:00Z")
    a(owner="R2", account="ACC3", at="2025-03-06T10:00:00Z")  # ACC3 not active on Mar 31
    a(owner="R2", account="ACC3", at="2025-03-07T10:00:00Z")
    a(owner="R2", account="ACC3", at="2025-02-07T10:00:00Z")
    return org


def test_engagement() -> None:
    run = engagement_org().run()
    # March: active on Mar 31: ACC1, ACC2 (R1). Activities on them in March: 3 + 1 = 4.
    # R1: 4 / (2 accounts * 1 month) = 2.0
    row = value(run, "engagement", "rep", "R1", MAR)
    assert row["value"] == pytest.approx(2.0) and row["records"] == 4
    assert (row["numerator"], row["denominator"]) == (4.0, 2.0)
    # R2: ACC3 ended Mar 15 -> no active account -> undefined
    assert val(run, "engagement", "rep", "R2", MAR) is None
    assert val(run, "engagement", "org", "org", MAR) == pytest.approx(2.0)
    # Feb (Feb 28): ACC1, ACC2 (from Feb 15), ACC3 active. R2: 1 activity on ACC3 / 1 = 1.0
    # R1: 0 / 2 = 0; org 1 / 3
    assert val(run, "engagement", "rep", "R2", FEB) == pytest.approx(1.0)
    assert val(run, "engagement", "rep", "R1", FEB) == 0.0
    assert val(run, "engagement", "org", "org", FEB) == pytest.approx(1 / 3)


def test_over_contacted_lead_days_are_local_days() -> None:
    org = base().lead("L1", owner="R1", created="2025-03-01T08:00:00Z")
    # 22:30Z on Mar 10 = 23:30 in Amsterdam (CET); 23:30Z = 00:30 on Mar 11
    org.activities(3, owner="R1", lead="L1", at="2025-03-10T22:30:00Z")
    org.activities(2, owner="R1", lead="L1", at="2025-03-10T23:30:00Z")
    # UTC: 5 on Mar 10 > 4 -> over-contacted; Amsterdam: 3 + 2 on two days -> not
    utc = org.run(settings(timezone="UTC"))
    row = value(utc, "over_contacted_leads", "rep", "R1", MAR)
    assert row["value"] == 1.0 and row["records"] == 5
    ams = org.run(settings(timezone="Europe/Amsterdam"))
    assert val(ams, "over_contacted_leads", "rep", "R1", MAR) == 0.0
