"""Install and writeback against the Salesforce sandbox with the real simple-salesforce client."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest

from connectors.base import sync_connection
from connectors.salesforce import SalesforceSource
from kpis.settings import PeriodType
from tests.writeback.conftest import CONNECTION, TODAY, WB, SfKit, compute
from writeback import ledger
from writeback.install import Status, problems
from writeback.plan import record_field_rows, snapshot_rows
from writeback.run import NotOwned, writeback
from writeback.salesforce import BULK_MIN_ROWS


def crm_rows(kit: SfKit) -> dict[str, dict[str, Any]]:
    """Every KPI_Snapshot__c record, by Key__c (duplicates fail the test)."""
    recs = kit.client.sf.query_all(
        "SELECT Id, Key__c, Metric__c, Scope__c, Subject_Id__c, Rep__c, Period_Start__c, "
        "Period_Type__c, Value__c, Numerator__c, Denominator__c FROM KPI_Snapshot__c"
    )["records"]
    out: dict[str, dict[str, Any]] = {}
    for r in recs:
        assert r["Key__c"] not in out, f"duplicate record for {r['Key__c']}"
        out[r["Key__c"]] = r
    return out


def assert_in_step(kit: SfKit) -> None:
    """The CRM's report object holds exactly the store's KPI values."""
    want = snapshot_rows(kit.store.read_kpis(CONNECTION), {}, {})
    got = crm_rows(kit)
    assert set(got) == set(want)
    for key, row in want.items():
        r, p = got[key], row.payload
        assert (r["Metric__c"], r["Scope__c"], r["Subject_Id__c"]) == (
            p["metric"], p["scope"], p["subject_id"])  # fmt: skip
        assert r["Period_Start__c"] == p["period_start"]
        assert r["Rep__c"] == p["rep"]
        for api, k in (("Value__c", "value"), ("Numerator__c", "numerator"),
                       ("Denominator__c", "denominator")):  # fmt: skip
            if p[k] is None:
                assert r[api] is None, (key, api)
            else:
                assert math.isclose(r[api], p[k], rel_tol=1e-9, abs_tol=1e-6), (key, api)


@pytest.mark.kpi_period("quarter")
def test_install_writeback_and_the_ready_made_report(sf_kit: SfKit) -> None:
    dry = sf_kit.installer.install(dry_run=True)
    assert {a.status for a in dry} == {Status.CREATE}
    assert ledger.installed(sf_kit.store, CONNECTION) == []
    made = sf_kit.installer.install()
    kinds = {a.kind for a in made}
    assert {"object", "field", "permission_set", "object_permission", "field_permission",
            "assignment", "report"} <= kinds  # fmt: skip
    assert problems(sf_kit.installer.check()) == []
    again = sf_kit.installer.install()  # idempotent
    assert {a.status for a in again} == {Status.OK}

    plan = writeback(sf_kit.store, CONNECTION, sf_kit.writer, WB, dry_run=True, today=TODAY)
    n = sf_kit.store.read_kpis(CONNECTION).height
    assert plan.targets["KPI_Snapshot__c"].planned == n and plan.calls == 0
    sf_kit.org.clear_log()
    report = writeback(sf_kit.store, CONNECTION, sf_kit.writer, WB, today=TODAY)
    assert report.failed == 0
    users = report.targets["User"].written
    assert users > 0
    # The first load is more than BULK_MIN_ROWS snapshot rows: one Bulk API 2.0 upsert job
    # (create, upload, close, its polls, successful and failed results); the User fields go by
    # sObject Collections, 200 rows per call. Together fewer calls than ceil(n / 200).
    assert n > BULK_MIN_ROWS
    calls = Counter(f"{e['method']} {e['endpoint']}" for e in sf_kit.org.requests())
    ingest = {k: v for k, v in calls.items() if "/jobs/ingest" in k}
    polls = ingest.pop("GET /services/data/v{version}/jobs/ingest/{job_id}")
    assert ingest == {"POST /services/data/v{version}/jobs/ingest": 1,
                      "PUT /services/data/v{version}/jobs/ingest/{job_id}/batches": 1,
                      "PATCH /services/data/v{version}/jobs/ingest/{job_id}": 1,
                      "GET /services/data/v{version}/jobs/ingest/{job_id}/{kind}": 2}  # fmt: skip
    assert polls >= 1
    assert calls["PATCH /services/data/v{version}/composite/sobjects"] == math.ceil(users / 200)
    assert report.calls == 5 + polls + math.ceil(users / 200) < math.ceil(n / 200)
    assert_in_step(sf_kit)

    # Current-period fields on the rep's User record.
    fields = record_field_rows(sf_kit.store.read_kpis(CONNECTION), sf_kit.spec.user_fields,
                               "rep", TODAY)  # fmt: skip
    rep, row = next(iter(fields.items()))
    got = sf_kit.client.sf.query(f"SELECT KPI_Revenue__c, KPI_Win_Rate__c FROM User "
                                 f"WHERE Id = '{rep}'")["records"][0]  # fmt: skip
    for name, value in row.payload.items():
        assert got[name] == pytest.approx(value) if value is not None else got[name] is None

    # The ready-made report lists the snapshots.
    reports = {r["name"]: r["id"] for r in sf_kit.client.sf.restful("analytics/reports")}
    run = sf_kit.client.sf.restful(f"analytics/reports/{reports[sf_kit.spec.report_name]}")
    assert run["factMap"]["T!T"]["aggregates"][0]["value"] == n
    keys = set(crm_rows(sf_kit))
    names = {r["dataCells"][0]["value"] for r in run["factMap"]["T!T"]["rows"]}
    assert names and len(keys) == n


@pytest.mark.kpi_period("quarter")
def test_unchanged_cycle_costs_nothing_and_one_deal_sends_only_its_rows(sf_kit: SfKit) -> None:
    sf_kit.installer.install()
    writeback(sf_kit.store, CONNECTION, sf_kit.writer, WB, today=TODAY)
    sf_kit.org.clear_log()
    quiet = writeback(sf_kit.store, CONNECTION, sf_kit.writer, WB, today=TODAY)
    assert quiet.calls == 0 and sf_kit.org.requests() == []

    before = snapshot_rows(sf_kit.store.read_kpis(CONNECTION), {}, {})
    opps = sf_kit.store.table_text(CONNECTION, "opportunities")
    won = opps.filter(opps["is_won"] == "true").sort("close_date").row(-1, named=True)
    sf_kit.org.edit("Opportunity", won["id"], {"Amount": float(won["amount"]) + 12345.0})
    result = sync_connection(sf_kit.store, CONNECTION, SalesforceSource(sf_kit.org.config()))
    assert result.outcome == "ok"
    compute(sf_kit.store, CONNECTION, PeriodType.QUARTER)
    after = snapshot_rows(sf_kit.store.read_kpis(CONNECTION), {}, {})
    changed = {k for k, r in after.items() if k not in before or before[k].hash != r.hash}
    assert 0 < len(changed) < len(after) // 10

    sf_kit.org.clear_log()
    report = writeback(sf_kit.store, CONNECTION, sf_kit.writer, WB, today=TODAY)
    snap = report.targets["KPI_Snapshot__c"]
    assert snap.planned == len(changed) and snap.written == len(changed)
    sent = [e for e in sf_kit.org.requests() if "/composite/sobjects/KPI_Snapshot__c" in e["path"]]
    assert len(sent) == math.ceil(len(changed) / 200)
    assert_in_step(sf_kit)


def test_partial_failures_and_lock_errors_converge(sf_kit: SfKit) -> None:
    sf_kit.installer.install()
    sf_kit.org.fault(kind="partial_batch_failure", rate=0.2, seed=3, path="composite/sobjects")
    sf_kit.org.fault(kind="lock_error", rate=0.2, seed=5, path="composite/sobjects")
    first = writeback(sf_kit.store, CONNECTION, sf_kit.writer, WB, today=TODAY)
    assert first.failed > 0  # the run went on past refused rows
    assert first.targets["KPI_Snapshot__c"].written > 0
    failing = ledger.failing(sf_kit.store, CONNECTION, limit=1000)
    assert failing and all(e.last_error for e in failing)
    sf_kit.org.server.faults.clear()
    second = writeback(sf_kit.store, CONNECTION, sf_kit.writer, WB, today=TODAY)
    assert second.failed == 0
    assert second.targets["KPI_Snapshot__c"].written == sum(
        1 for e in failing if e.target == "KPI_Snapshot__c"
    )  # succeeded rows are never re-sent
    assert_in_step(sf_kit)
    assert ledger.failing(sf_kit.store, CONNECTION) == []


@pytest.mark.kpi_period("quarter")
def test_bulk_job_rows_refused_or_locked_are_answered_per_row_and_converge(
    sf_kit: SfKit,
) -> None:
    sf_kit.installer.install()
    n = sf_kit.store.read_kpis(CONNECTION).height
    assert n > BULK_MIN_ROWS  # the first load is a Bulk API 2.0 job
    sf_kit.org.fault(kind="partial_batch_failure", rate=0.1, seed=3, path="jobs/ingest")
    sf_kit.org.fault(kind="lock_error", rate=0.2, seed=5, path="jobs/ingest")
    first = writeback(sf_kit.store, CONNECTION, sf_kit.writer, WB, today=TODAY)
    snap = first.targets["KPI_Snapshot__c"]
    # Refused rows are reported one by one with the job's error; locked rows were re-sent.
    assert 0 < snap.failed < n and snap.written + snap.failed == n
    assert all("FIELD_CUSTOM_VALIDATION_EXCEPTION" in e for e in snap.errors)
    assert len(snap.errors) == snap.failed
    failing = [e for e in ledger.failing(sf_kit.store, CONNECTION, limit=10_000)
               if e.target == "KPI_Snapshot__c"]  # fmt: skip
    assert len(failing) == snap.failed
    assert len(crm_rows(sf_kit)) == snap.written
    sf_kit.org.server.faults.clear()
    second = writeback(sf_kit.store, CONNECTION, sf_kit.writer, WB, today=TODAY)
    assert second.failed == 0
    assert second.targets["KPI_Snapshot__c"].written == snap.failed  # only the refused ones
    assert_in_step(sf_kit)


class Crash(Exception):
    pass


def test_a_crash_between_send_and_record_resends_without_duplicates(sf_kit: SfKit) -> None:
    sf_kit.installer.install()
    calls = []

    def die_on_third(target: str, outcomes: Any) -> None:
        calls.append(target)
        if len(calls) == 3:
            raise Crash

    with pytest.raises(Crash):
        writeback(sf_kit.store, CONNECTION, sf_kit.writer, WB, today=TODAY,
                  before_record=die_on_third)  # fmt: skip
    assert len(ledger.load(sf_kit.store, CONNECTION, "KPI_Snapshot__c")) == 400
    assert len(crm_rows(sf_kit)) == 600  # the third batch reached the CRM, unrecorded
    again = writeback(sf_kit.store, CONNECTION, sf_kit.writer, WB, today=TODAY)
    n = sf_kit.store.read_kpis(CONNECTION).height
    assert again.targets["KPI_Snapshot__c"].written == n - 400
    assert_in_step(sf_kit)


def test_rows_refused_every_time_are_parked(sf_kit: SfKit) -> None:
    settings = WB.__class__(max_failures=2, retry_base_s=0.0, lock_retries=0)
    kit = SfKit(sf_kit.org, sf_kit.store, settings)
    kit.installer.install()
    kit.org.fault(kind="partial_batch_failure", rate=1.0, path="composite/sobjects")
    for _ in range(2):
        writeback(kit.store, CONNECTION, kit.writer, settings, today=TODAY)
    n = kit.store.read_kpis(CONNECTION).height
    assert ledger.parked_counts(kit.store, CONNECTION) == {"KPI_Snapshot__c": n}
    kit.org.clear_log()
    third = writeback(kit.store, CONNECTION, kit.writer, settings, today=TODAY)
    assert third.calls == 0 and third.targets["KPI_Snapshot__c"].parked == n


def test_refuses_what_it_did_not_create_and_uninstalls_only_its_own(sf_kit: SfKit) -> None:
    sf = sf_kit.client.sf
    with pytest.raises(NotOwned):
        writeback(sf_kit.store, CONNECTION, sf_kit.writer, WB, today=TODAY)

    def org_things() -> dict[str, set[str]]:
        return {
            "fields": {r["Id"] for r in sf.toolingexecute(
                "query/?q=SELECT+Id+FROM+CustomField")["records"]},
            "objects": {r["Id"] for r in sf.toolingexecute(
                "query/?q=SELECT+Id+FROM+CustomObject")["records"]},
            "sets": {r["Id"] for r in sf.query_all("SELECT Id FROM PermissionSet")["records"]},
            "fls": {r["Id"] for r in sf.query_all("SELECT Id FROM FieldPermissions")["records"]},
            "assign": {r["Id"] for r in sf.query_all(
                "SELECT Id FROM PermissionSetAssignment")["records"]},
            "reports": {r["id"] for r in sf.restful("analytics/reports") or []},
        }  # fmt: skip

    # The admin's own field of a name install also wants: a conflict, never touched.
    admin = sf.toolingexecute(
        "sobjects/CustomField",
        method="POST",
        data={"FullName": "User.KPI_Win_Rate__c", "Metadata": {"label": "Mine", "type": "Number"}},
    )
    before = org_things()
    acts = sf_kit.installer.install()
    assert [a.name for a in acts if a.status is Status.CONFLICT] == ["User.KPI_Win_Rate__c"]
    with pytest.raises(NotOwned, match=r"User\.KPI_Win_Rate__c"):
        writeback(sf_kit.store, CONNECTION, sf_kit.writer, WB, today=TODAY)
    assert org_things() != before
    sf_kit.installer.uninstall()
    assert org_things() == before
    assert admin["id"] in org_things()["fields"]
    assert ledger.installed(sf_kit.store, CONNECTION) == []
