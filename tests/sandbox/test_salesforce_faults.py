"""The ``/__sandbox/`` control plane against the Salesforce org: every fault kind, by rate and by
count, the request log and counts, reset, and edits/deletes made "as a CRM user"."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceGeneralError, SalesforceRefusedRequest

from sandbox.salesforce.testing import SalesforceSandbox

Q = "SELECT Id FROM User LIMIT 1"


def test_latency(sf: Salesforce, salesforce: SalesforceSandbox) -> None:
    salesforce.fault(kind="latency_ms", count=1, latency_ms=400)
    t0 = time.perf_counter()
    sf.query(Q)
    assert time.perf_counter() - t0 >= 0.4
    t0 = time.perf_counter()
    sf.query(Q)
    assert time.perf_counter() - t0 < 0.4  # the count was spent


def test_http_5xx_by_count_and_path_filter(sf: Salesforce, salesforce: SalesforceSandbox) -> None:
    salesforce.fault(kind="http_5xx", count=2, statuses=[503], path=r"/query")
    assert sf.limits()["DailyApiRequests"]["Max"] > 0  # other paths are not hit
    for _ in range(2):
        with pytest.raises(SalesforceGeneralError) as exc:
            sf.query(Q)
        assert exc.value.status == 503
        assert exc.value.content[0]["errorCode"] == "SERVER_UNAVAILABLE"
    assert sf.query(Q)["totalSize"] == 1


def test_rate_limit_storm(sf: Salesforce, salesforce: SalesforceSandbox) -> None:
    salesforce.fault(kind="rate_limit_storm", count=3)
    for _ in range(3):
        with pytest.raises(SalesforceRefusedRequest) as exc:
            sf.query(Q)
        assert exc.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    sf.query(Q)


def test_rate_based_faults_are_seeded_and_repeatable(salesforce: SalesforceSandbox) -> None:
    def run() -> list[int]:
        salesforce.server.faults.clear()
        salesforce.fault(kind="http_5xx", rate=0.5, seed=42, statuses=[500, 502])
        s = salesforce.api()
        url = salesforce.instance_url + "/services/data/v59.0/limits"
        return [s.get(url).status_code for _ in range(30)]

    first, second = run(), run()
    assert first == second
    assert {500, 502, 200} <= set(first)
    assert 5 < first.count(200) < 25


def test_drop_connection_mid_response(sf: Salesforce, salesforce: SalesforceSandbox) -> None:
    salesforce.fault(kind="drop_connection", count=1)
    with pytest.raises(
        (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)
    ):
        sf.query_all("SELECT Id, Name FROM Account")
    assert sf.query_all("SELECT Id FROM Account")["totalSize"] > 0
    log = salesforce.control("GET", "requests?crm=salesforce")
    assert "drop_connection" in [f for e in log for f in e["faults"]]


def test_expired_session_makes_the_client_log_in_again(
    sf: Salesforce, salesforce: SalesforceSandbox
) -> None:
    before = sf.session_id
    salesforce.fault(kind="expired_session", count=1)
    assert sf.query(Q)["totalSize"] == 1
    assert sf.session_id != before
    tokens = [
        e
        for e in salesforce.control("GET", "requests")
        if e["endpoint"] == "/services/oauth2/token"
    ]
    assert len(tokens) == 2  # the first login and the re-login


def test_lock_errors_and_partial_batch_failures(
    sf: Salesforce, salesforce: SalesforceSandbox
) -> None:
    recs = [{"attributes": {"type": "Account"}, "Name": f"Lock {i}"} for i in range(10)]
    salesforce.fault(kind="lock_error", count=2, path="composite/sobjects")
    res = sf.restful("composite/sobjects", method="POST", json={"records": recs})
    codes = [r["errors"][0]["statusCode"] if not r["success"] else "OK" for r in res]
    assert codes == ["UNABLE_TO_LOCK_ROW"] * 2 + ["OK"] * 8

    salesforce.server.faults.clear()
    salesforce.fault(kind="partial_batch_failure", rate=0.5, seed=3)
    res = sf.restful("composite/sobjects", method="POST", json={"records": recs * 4})
    failed = [r for r in res if not r["success"]]
    assert 5 < len(failed) < 35
    assert {r["errors"][0]["statusCode"] for r in failed} == {"FIELD_CUSTOM_VALIDATION_EXCEPTION"}

    salesforce.server.faults.clear()
    salesforce.fault(kind="lock_error", count=1)
    with pytest.raises(Exception) as exc:
        sf.Account.create({"Name": "Locked"})
    assert exc.value.content[0]["errorCode"] == "UNABLE_TO_LOCK_ROW"  # type: ignore[attr-defined]


def test_crm_filter_and_fault_listing(salesforce: SalesforceSandbox, sf: Salesforce) -> None:
    salesforce.control("POST", "faults", {"kind": "http_5xx", "count": 1, "crm": "hubspot"})
    assert sf.query(Q)["totalSize"] == 1  # a HubSpot-only rule leaves Salesforce alone
    rules = salesforce.control("GET", "faults")
    assert rules[0]["crm"] == "hubspot" and rules[0]["count"] == 1
    assert salesforce.control("DELETE", "faults")["removed"] == 1
    r = salesforce.session().post(
        salesforce.server.control_url() + "/faults", json={"kind": "meteor_strike", "count": 1}
    )
    assert r.status_code == 400


def test_request_log_counts_and_reset(salesforce: SalesforceSandbox) -> None:
    sf = salesforce.client()
    sf.query(Q)
    sf.query(Q)
    counts = salesforce.control("GET", "counts")["salesforce"]
    assert counts["GET /services/data/v{version}/query"] == 2
    assert counts["POST /services/oauth2/token"] == 1
    log = salesforce.control("GET", "requests?limit=1")
    assert log[-1]["path"].endswith("/query") and log[-1]["status"] == 200
    assert salesforce.control("GET", "health")["crms"]["salesforce"] == salesforce.instance_url

    created = sf.Account.create({"Name": "Gone after reset"})
    salesforce.control("POST", "reset")
    assert salesforce.control("GET", "counts") == {}
    sf2 = salesforce.client()
    assert sf2.query(f"SELECT COUNT() FROM Account WHERE Id = '{created['id']}'")["totalSize"] == 0


def test_edit_and_delete_as_a_crm_user(fresh_salesforce: SalesforceSandbox) -> None:
    salesforce = fresh_salesforce
    sf = salesforce.client()
    opp = salesforce.canonical["opportunities"]["id"][3]
    before = sf.Opportunity.get(opp)
    mark = sf.query("SELECT MAX(SystemModstamp) FROM Opportunity")["records"][0]["expr0"]
    start = datetime.now(UTC) - timedelta(minutes=1)
    edited = salesforce.control("POST", f"records/Opportunity/{opp}", {"Amount": 4242.0})
    assert edited["Amount"] == 4242.0
    after = sf.Opportunity.get(opp)
    assert after["Amount"] == 4242.0 and after["SystemModstamp"] > before["SystemModstamp"]
    watermark = mark.replace("+0000", "Z")
    changed = sf.query(f"SELECT Id FROM Opportunity WHERE SystemModstamp > {watermark}")
    assert [r["Id"] for r in changed["records"]] == [opp]
    assert opp in sf.Opportunity.updated(start, datetime.now(UTC) + timedelta(minutes=1))["ids"]

    salesforce.control("DELETE", f"records/Opportunity/{opp}")
    deleted = sf.Opportunity.deleted(start, datetime.now(UTC) + timedelta(minutes=1))
    assert [d["id"] for d in deleted["deletedRecords"]] == [opp]
    assert (
        sf.query_all(f"SELECT IsDeleted FROM Opportunity WHERE Id = '{opp}'", include_deleted=True)[
            "records"
        ][0]["IsDeleted"]
        is True
    )
    r = salesforce.session().post(
        salesforce.server.control_url() + "/records/Opportunity/nope", json={"Amount": 1}
    )
    assert r.status_code == 404


def test_a_late_commit_lands_behind_the_watermark(fresh_salesforce: SalesforceSandbox) -> None:
    sf = fresh_salesforce.client()
    lead = fresh_salesforce.canonical["leads"]["id"][0]
    past = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    fresh_salesforce.control(
        "POST", f"records/Lead/{lead}", {"Lead_Score__c": 99, "SystemModstamp": past}
    )
    rec = sf.Lead.get(lead)
    assert rec["SystemModstamp"] == past and rec["Lead_Score__c"] == 99


def test_injected_errors_still_carry_the_usage_header(salesforce: SalesforceSandbox) -> None:
    s = salesforce.api()
    url = salesforce.instance_url + "/services/data/v59.0/limits"
    salesforce.fault(kind="http_5xx", count=1, statuses=[500])
    salesforce.fault(kind="rate_limit_storm", count=1)
    salesforce.fault(kind="expired_session", count=1)
    seen = []
    for _ in range(3):
        r = s.get(url)
        assert r.headers["Sforce-Limit-Info"].startswith("api-usage=")
        assert isinstance(r.json(), list)
        seen.append((r.status_code, r.json()[0]["errorCode"]))
    assert sorted(seen) == [
        (401, "INVALID_SESSION_ID"),
        (403, "REQUEST_LIMIT_EXCEEDED"),
        (500, "UNKNOWN_EXCEPTION"),
    ]
