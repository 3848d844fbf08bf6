"""Bulk API 2.0 query jobs: simple-salesforce ``bulk2`` end to end, plus the raw protocol."""

from __future__ import annotations

import csv
import io
import time

import polars as pl
import pytest
from simple_salesforce import Salesforce

from sandbox.salesforce.testing import SalesforceSandbox


@pytest.fixture(scope="module", autouse=True)
def _seeded_org(sf_sandbox: SalesforceSandbox) -> None:
    """Expectations below come from the canonical tables: start from the seeded org."""
    sf_sandbox.app.reset()


def test_bulk2_query_end_to_end(sf: Salesforce, salesforce: SalesforceSandbox) -> None:
    opps = salesforce.canonical["opportunities"]
    pages = list(
        sf.bulk2.Opportunity.query(
            "SELECT Id, Amount, IsWon, CloseDate, CreatedDate, Owner.Email FROM Opportunity",
            max_records=100,
            wait=0.1,
        )
    )
    assert len(pages) == -(-opps.height // 100)
    rows = [r for p in pages for r in csv.DictReader(io.StringIO(p))]
    assert [r["Id"] for r in rows] == opps["id"].to_list()
    first = opps.row(0, named=True)
    assert rows[0]["IsWon"] == ("true" if first["is_won"] else "false")
    assert rows[0]["CloseDate"] == first["close_date"].isoformat()
    assert rows[0]["CreatedDate"] == first["created_at"].strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert float(rows[0]["Amount"]) == first["amount"]
    assert "@" in rows[0]["Owner.Email"]


def test_bulk2_protocol_states_412_locator(salesforce: SalesforceSandbox) -> None:
    s = salesforce.api()
    base = salesforce.instance_url + "/services/data/v59.0/jobs/query"
    job = s.post(base, json={"operation": "query", "query": "SELECT Id FROM Lead"}).json()
    assert job["state"] == "UploadComplete" and job["id"].startswith("750")
    early = s.get(f"{base}/{job['id']}/results")
    assert early.status_code == 412 and early.json()[0]["errorCode"] == "JOB_NOT_COMPLETE"
    deadline = time.monotonic() + 10
    while s.get(f"{base}/{job['id']}").json()["state"] != "JobComplete":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    info = s.get(f"{base}/{job['id']}").json()
    leads = salesforce.canonical["leads"].height
    assert info["numberRecordsProcessed"] == leads
    r = s.get(f"{base}/{job['id']}/results", params={"maxRecords": 100})
    assert r.headers["Content-Type"].startswith("text/csv")
    assert r.headers["Sforce-NumberOfRecords"] == "100"
    seen = pl.read_csv(io.StringIO(r.text))["Id"].to_list()
    while r.headers["Sforce-Locator"] != "null":
        r = s.get(
            f"{base}/{job['id']}/results",
            params={"maxRecords": 100, "locator": r.headers["Sforce-Locator"]},
        )
        seen += pl.read_csv(io.StringIO(r.text))["Id"].to_list()
    assert seen == salesforce.canonical["leads"]["id"].to_list()
    assert s.delete(f"{base}/{job['id']}").status_code == 204
    assert s.get(f"{base}/{job['id']}").status_code == 404


def test_bulk2_query_all_abort_and_bad_query(sf: Salesforce, salesforce: SalesforceSandbox) -> None:
    rec = sf.Account.create({"Name": "Bulk deleted"})
    sf.Account.delete(rec["id"])
    text = "".join(
        sf.bulk2.Account.query_all(
            f"SELECT Id, IsDeleted FROM Account WHERE Id = '{rec['id']}'", wait=0.1
        )
    )
    assert rec["id"] in text and '"true"' in text
    s = salesforce.api()
    base = salesforce.instance_url + "/services/data/v59.0/jobs/query"
    job = s.post(base, json={"operation": "query", "query": "SELECT Id FROM Task"}).json()
    aborted = s.patch(f"{base}/{job['id']}", json={"state": "Aborted"})
    assert aborted.json()["state"] == "Aborted"
    bad = s.post(base, json={"operation": "query", "query": "SELECT Nope FROM Task"})
    assert bad.status_code == 400 and isinstance(bad.json(), list)
    listed = s.get(base).json()
    assert job["id"] in [j["id"] for j in listed["records"]]


def test_bulk2_ingest_insert_upsert_delete(sf: Salesforce, salesforce: SalesforceSandbox) -> None:
    res = sf.bulk2.Account.insert(
        records=[{"Name": "Ingest 1"}, {"Name": "Ingest 2"}, {"Type": "Customer"}], wait=0.1
    )
    assert res[0]["numberRecordsProcessed"] == 3 and res[0]["numberRecordsFailed"] == 1
    job = res[0]["job_id"]
    ok = list(csv.DictReader(io.StringIO(sf.bulk2.Account.get_successful_records(job))))
    assert [r["Name"] for r in ok] == ["Ingest 1", "Ingest 2"]
    assert all(r["sf__Created"] == "true" and r["sf__Id"].startswith("001") for r in ok)
    failed = list(csv.DictReader(io.StringIO(sf.bulk2.Account.get_failed_records(job))))
    assert failed[0]["sf__Error"].startswith("REQUIRED_FIELD_MISSING")

    upd = sf.bulk2.Account.upsert(
        records=[{"Id": ok[0]["sf__Id"], "Type": "Customer"}], external_id_field="Id", wait=0.1
    )
    assert upd[0]["numberRecordsFailed"] == 0
    assert sf.Account.get(ok[0]["sf__Id"])["Type"] == "Customer"
    gone = sf.bulk2.Account.delete(records=[{"Id": r["sf__Id"]} for r in ok], wait=0.1)
    assert gone[0]["numberRecordsProcessed"] == 2
    assert sf.query("SELECT COUNT() FROM Account WHERE Name LIKE 'Ingest %'")["totalSize"] == 0


def test_bulk2_rejects_what_bulk_queries_cannot_run(salesforce: SalesforceSandbox) -> None:
    s = salesforce.api()
    base = salesforce.instance_url + "/services/data/v59.0/jobs/query"
    for soql in (
        "SELECT COUNT() FROM Lead",
        "SELECT Status FROM Lead GROUP BY Status",
        "SELECT Id FROM Lead LIMIT 10 OFFSET 5",
    ):
        r = s.post(base, json={"operation": "query", "query": soql})
        assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALIDJOB", soql
    ok = s.post(base, json={"operation": "query", "query": "SELECT Id FROM Lead LIMIT 10"})
    assert ok.status_code == 200 and ok.json()["state"] == "UploadComplete"
