"""Smaller resources: API root, userinfo, tooling describe, unknown versions and methods, and a
connection dropped in the middle of a streamed Bulk CSV page."""

from __future__ import annotations

import polars as pl
import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from sandbox.salesforce.testing import SalesforceSandbox, https_session


def test_api_root_userinfo_and_tooling_describe(
    sf: Salesforce, salesforce: SalesforceSandbox
) -> None:
    root = sf.restful("")
    assert root["sobjects"] == "/services/data/v59.0/sobjects"
    assert {"query", "limits", "tooling", "composite"} <= set(root)
    who = sf.oauth2("userinfo")
    assert who["user_id"] == salesforce.app.auth.user_id
    desc = sf.toolingexecute("sobjects/CustomField/describe")
    assert {"TableEnumOrId", "DeveloperName", "FullName", "Metadata"} <= {
        f["name"] for f in desc["fields"]
    }
    listed = sf.toolingexecute("sobjects")
    assert {"CustomObject", "CustomField"} <= {o["name"] for o in listed["sobjects"]}


def test_unknown_versions_paths_and_methods(salesforce: SalesforceSandbox) -> None:
    s = salesforce.api()
    base = salesforce.instance_url + "/services/data"
    old = s.get(base + "/v19.0/limits")
    assert old.status_code == 404 and old.json()[0]["errorCode"] == "NOT_FOUND"
    nope = s.get(base + "/v59.0/nothing/here")
    assert nope.status_code == 404 and isinstance(nope.json(), list)
    put = s.put(base + "/v59.0/sobjects/Account")
    assert put.status_code == 405 and put.json()[0]["errorCode"] == "METHOD_NOT_ALLOWED"
    long = s.get(
        base + "/v59.0/query",
        params={"q": "SELECT Id FROM Account WHERE Name IN (" + ",".join(["'x'"] * 5000) + ")"},
    )
    assert long.status_code == 414  # as a real front end refuses an over-long URL


def test_drop_connection_in_a_streamed_bulk_page(
    sf: Salesforce, salesforce: SalesforceSandbox
) -> None:
    salesforce.fault(kind="drop_connection", count=1, path=r"/jobs/query/[^/]+/results")
    with pytest.raises(
        (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)
    ):
        list(sf.bulk2.Task.query("SELECT Id, Subject FROM Task", wait=0.1))
    pages = list(sf.bulk2.Task.query("SELECT Id FROM Task", wait=0.1))
    assert sum(p.count("\n") - 1 for p in pages) > 100


def test_deleted_records_are_gone_from_get(sf: Salesforce) -> None:
    rec = sf.Lead.create({"LastName": "Gone", "Company": "X", "Status": "Open"})
    sf.Lead.delete(rec["id"])
    with pytest.raises(SalesforceResourceNotFound):
        sf.Lead.get(rec["id"])


def test_concurrent_clients_read_and_write(salesforce: SalesforceSandbox) -> None:
    from concurrent.futures import ThreadPoolExecutor

    tasks = salesforce.app.org.tables["Task"].frame().filter(~pl.col("IsDeleted")).height

    def work(i: int) -> tuple[int, str]:
        sf = salesforce.client()
        created = sf.Account.create({"Name": f"Concurrent {i}"})
        total = sf.query_all("SELECT Id, Subject FROM Task")["totalSize"]
        return total, created["id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(8)))
    assert {t for t, _ in results} == {tasks}
    assert len({i for _, i in results}) == 8


def test_base_latency_applies_to_every_crm_call() -> None:
    import time

    from sandbox.salesforce import SalesforceApp
    from sandbox.server import SandboxServer

    app = SalesforceApp()  # an empty org is enough here
    with SandboxServer([app], latency_ms=150) as server:
        s = https_session(server.ca_bundle)
        t0 = time.perf_counter()
        s.get(server.url("salesforce") + "/services/data/")
        assert time.perf_counter() - t0 >= 0.15
        t0 = time.perf_counter()
        s.get(server.control_url() + "/health")  # the control plane is never slowed
        assert time.perf_counter() - t0 < 0.15


def test_sosl_search(sf: Salesforce, salesforce: SalesforceSandbox) -> None:
    accounts = salesforce.canonical["accounts"]
    name = accounts["name"][0]
    word = name.split()[0]
    res = sf.search(f"FIND {{{word}}} IN NAME FIELDS RETURNING Account(Id, Name ORDER BY Name)")
    names = [r["Name"] for r in res["searchRecords"]]
    expected = accounts.filter(
        pl.col("name").str.to_lowercase().str.contains(word.lower(), literal=True)
    )
    assert sorted(names) == sorted(expected["name"].to_list()) and names == sorted(names)
    assert res["searchRecords"][0]["attributes"]["type"] == "Account"
    email = salesforce.canonical["reps"]["email"][0]
    users = sf.search(f"FIND {{{email}}} IN EMAIL FIELDS RETURNING User(Id, Email)")
    assert [r["Email"] for r in users["searchRecords"]] == [email]
    with pytest.raises(SalesforceMalformedRequest):
        sf.search("FIND nothing")
