"""sObject Collections, composite/batch and Composite through ``Salesforce.restful``
(simple-salesforce has no helper for them — see its 1.12 ``api.py``); what each costs the org;
sObject Get Updated / Get Deleted and their replication rules."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from sandbox.salesforce.org import format_sf_datetime, parse_datetime
from sandbox.salesforce.testing import SalesforceSandbox

V = "/services/data/v59.0"


def _accounts(n: int, prefix: str) -> list[dict[str, object]]:
    return [{"attributes": {"type": "Account"}, "Name": f"{prefix} {i}"} for i in range(n)]


def test_collection_create_update_get_delete(sf: Salesforce) -> None:
    res = sf.restful(
        "composite/sobjects",
        method="POST",
        json={"allOrNone": False, "records": _accounts(3, "Coll")},
    )
    assert [r["success"] for r in res] == [True, True, True]
    ids = [r["id"] for r in res]
    upd = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "records": [
                {"attributes": {"type": "Account"}, "id": ids[0], "Type": "Customer"},
                {"attributes": {"type": "Account"}, "id": "001000000000000AAA", "Type": "Customer"},
            ]
        },
    )
    assert upd[0] == {"id": ids[0], "success": True, "errors": []}
    assert upd[1]["success"] is False and upd[1]["errors"][0]["statusCode"] == "NOT_FOUND"
    got = sf.restful(
        "composite/sobjects/Account", params={"ids": ",".join(ids), "fields": "Id,Name,Type"}
    )
    assert [g["Type"] for g in got] == ["Customer", None, None]
    gone = sf.restful("composite/sobjects", method="DELETE", params={"ids": ",".join(ids)})
    assert all(r["success"] for r in gone)
    assert sf.query(f"SELECT COUNT() FROM Account WHERE Id = '{ids[0]}'")["totalSize"] == 0


def test_all_or_none_rolls_back_every_record(sf: Salesforce) -> None:
    records = _accounts(2, "AON")
    records.append({"attributes": {"type": "Account"}})  # Name missing
    res = sf.restful(
        "composite/sobjects", method="POST", json={"allOrNone": True, "records": records}
    )
    assert [r["success"] for r in res] == [False, False, False]
    codes = [r["errors"][0]["statusCode"] for r in res]
    assert codes == ["ALL_OR_NONE_OPERATION_ROLLED_BACK"] * 2 + ["REQUIRED_FIELD_MISSING"]
    assert sf.query("SELECT COUNT() FROM Account WHERE Name LIKE 'AON %'")["totalSize"] == 0
    partial = sf.restful(
        "composite/sobjects", method="POST", json={"allOrNone": False, "records": records}
    )
    assert [r["success"] for r in partial] == [True, True, False]


def test_collection_limits_and_upsert(sf: Salesforce, salesforce: SalesforceSandbox) -> None:
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.restful("composite/sobjects", method="POST", json={"records": _accounts(201, "Big")})
    assert exc.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    sf.toolingexecute(
        "sobjects/CustomField",
        method="POST",
        data={
            "FullName": "Lead.Ext_Lead__c",
            "Metadata": {"label": "Ext Lead", "type": "Text", "length": 40, "externalId": True},
        },
    )
    sf.FieldPermissions.create(
        {
            "ParentId": salesforce.app.org.profile_permission_set_id,
            "SobjectType": "Lead",
            "Field": "Lead.Ext_Lead__c",
            "PermissionsRead": True,
            "PermissionsEdit": True,
        }
    )
    body = {
        "allOrNone": False,
        "records": [
            {
                "attributes": {"type": "Lead"},
                "Ext_Lead__c": "L1",
                "LastName": "One",
                "Company": "C",
                "Status": "Open",
            },
            {
                "attributes": {"type": "Lead"},
                "Ext_Lead__c": "L2",
                "LastName": "Two",
                "Company": "C",
                "Status": "Open",
            },
        ],
    }
    first = sf.restful("composite/sobjects/Lead/Ext_Lead__c", method="PATCH", json=body)
    assert [r["created"] for r in first] == [True, True]
    second = sf.restful("composite/sobjects/Lead/Ext_Lead__c", method="PATCH", json=body)
    assert [r["created"] for r in second] == [False, False]
    assert [r["id"] for r in second] == [r["id"] for r in first]


def test_composite_batch(sf: Salesforce, salesforce: SalesforceSandbox) -> None:
    acct = salesforce.canonical["accounts"]["id"][0]
    res = sf.restful(
        "composite/batch",
        method="POST",
        json={
            "batchRequests": [
                {"method": "GET", "url": f"v59.0/sobjects/Account/{acct}?fields=Name"},
                {"method": "GET", "url": "v59.0/query?q=SELECT+COUNT()+FROM+User"},
                {
                    "method": "POST",
                    "url": "v59.0/sobjects/Account",
                    "richInput": {"Name": "Batched"},
                },
                {"method": "GET", "url": "v59.0/sobjects/Account/001000000000000AAA"},
            ]
        },
    )
    assert res["hasErrors"] is True
    codes = [r["statusCode"] for r in res["results"]]
    assert codes == [200, 200, 201, 404]
    assert res["results"][0]["result"]["Name"] == salesforce.canonical["accounts"]["name"][0]
    assert res["results"][1]["result"]["totalSize"] == salesforce.canonical["reps"].height
    halted = sf.restful(
        "composite/batch",
        method="POST",
        json={
            "haltOnError": True,
            "batchRequests": [
                {"method": "GET", "url": "v59.0/sobjects/Account/001000000000000AAA"},
                {"method": "GET", "url": "v59.0/limits"},
            ],
        },
    )
    assert [r["statusCode"] for r in halted["results"]] == [404, 412]
    assert halted["results"][1]["result"][0]["errorCode"] == "BATCH_PROCESSING_HALTED"
    with pytest.raises(SalesforceMalformedRequest):
        sf.restful(
            "composite/batch",
            method="POST",
            json={"batchRequests": [{"method": "GET", "url": "v59.0/limits"}] * 26},
        )


def _usage(salesforce: SalesforceSandbox) -> int:
    return int(salesforce.app.api_usage)


def _limit_info(headers: Any) -> int:
    m = re.search(r"api-usage=(\d+)/", headers["Sforce-Limit-Info"])
    assert m, headers
    return int(m.group(1))


def test_composite_batch_charges_one_call_per_subrequest(salesforce: SalesforceSandbox) -> None:
    api = salesforce.api()
    before = _usage(salesforce)
    subs = [{"method": "GET", "url": "v59.0/limits"}] * 4
    r = api.post(f"{salesforce.instance_url}{V}/composite/batch", json={"batchRequests": subs})
    assert r.status_code == 200 and not r.json()["hasErrors"]
    # "Each subrequest counts against rate limits": four, not one, in the header and /limits.
    assert _limit_info(r.headers) - before == 4 == _usage(salesforce) - before
    limits = api.get(f"{salesforce.instance_url}{V}/limits").json()["DailyApiRequests"]
    assert limits["Max"] - limits["Remaining"] == before + 5
    # The allowance runs out mid-batch: the subrequests past it are refused, one by one.
    salesforce.app.configure({"daily_api_requests": _usage(salesforce) + 2})
    r = api.post(f"{salesforce.instance_url}{V}/composite/batch", json={"batchRequests": subs})
    codes = [x["statusCode"] for x in r.json()["results"]]
    assert codes == [200, 200, 403, 403]
    assert r.json()["results"][2]["result"][0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"


def test_composite_is_one_call_with_references(
    sf: Salesforce, fresh_salesforce: SalesforceSandbox
) -> None:
    salesforce = fresh_salesforce
    before = _usage(salesforce)
    acct = salesforce.canonical["accounts"]["id"][0]
    subs: list[dict[str, Any]] = [
        {"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "newAccount",
         "body": {"Name": "Composite One"}},
        {"method": "GET", "url": f"{V}/sobjects/Account/@{{newAccount.id}}?fields=Name",
         "referenceId": "readBack"},
        {"method": "GET", "url": f"{V}/query?q=SELECT+Id+FROM+User+LIMIT+2",
         "referenceId": "users", "httpHeaders": {"Sforce-Query-Options": "batchSize=200"}},
        {"method": "GET", "url": f"{V}/sobjects/User/@{{users.records[1].Id}}?fields=Id",
         "referenceId": "secondUser"},
    ]  # fmt: skip
    subs += [{"method": "GET", "url": f"{V}/sobjects/Account/{acct}?fields=Id",
              "referenceId": f"same{i}"} for i in range(21)]  # fmt: skip
    res = sf.restful("composite", method="POST", json={"compositeRequest": subs})
    answers = res["compositeResponse"]
    assert [a["referenceId"] for a in answers] == [s["referenceId"] for s in subs]
    assert {tuple(sorted(a)) for a in answers} == {
        ("body", "httpHeaders", "httpStatusCode", "referenceId")
    }
    assert [a["httpStatusCode"] for a in answers] == [201, 200, 200, 200] + [200] * 21
    new_id = answers[0]["body"]["id"]
    assert answers[0]["httpHeaders"]["Location"].endswith(f"/sobjects/Account/{new_id}")
    assert answers[1]["body"]["Name"] == "Composite One"
    assert answers[3]["body"]["Id"] == answers[2]["body"]["records"][1]["Id"]
    # 25 subrequests, one of them a query: one call toward the API limits, plus the login-free
    # call that read the budget... none: the client's token came from a login, not an API call.
    assert _usage(salesforce) - before == 1


def test_composite_limits(sf: Salesforce, fresh_salesforce: SalesforceSandbox) -> None:
    def create(i: int) -> dict[str, Any]:
        return {"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": f"a{i}",
                "body": {"Name": f"Over the limit {i}"}}  # fmt: skip

    def query(i: int) -> dict[str, Any]:
        return {"method": "GET", "url": f"{V}/queryAll?q=SELECT+Id+FROM+Account+LIMIT+1",
                "referenceId": f"q{i}"}  # fmt: skip

    too_many = sf.restful("composite", method="POST",
                          json={"compositeRequest": [create(i) for i in range(26)]})  # fmt: skip
    six_queries = sf.restful("composite", method="POST",
                             json={"compositeRequest": [query(i) for i in range(6)]})  # fmt: skip
    for res in (too_many, six_queries):
        (only,) = res["compositeResponse"]
        assert only["httpStatusCode"] == 400 and only["referenceId"] is None
        assert only["body"][0]["errorCode"] == "LIMIT_EXCEEDED"
    assert "25" in too_many["compositeResponse"][0]["body"][0]["message"]
    # Nothing ran.
    assert sf.query("SELECT COUNT() FROM Account WHERE Name LIKE 'Over the limit%'")[
        "totalSize"] == 0  # fmt: skip
    # Five queries and twenty other subrequests are within the rules.
    fine = sf.restful(
        "composite",
        method="POST",
        json={"compositeRequest": [query(i) for i in range(5)] + [create(i) for i in range(20)]},
    )
    assert {a["httpStatusCode"] for a in fine["compositeResponse"]} == {200, 201}
    unsupported = sf.restful(
        "composite",
        method="POST",
        json={"compositeRequest": [{"method": "GET", "url": f"{V}/limits", "referenceId": "lim"}]},
    )
    assert unsupported["compositeResponse"][0]["httpStatusCode"] == 400


def test_composite_all_or_none(sf: Salesforce, fresh_salesforce: SalesforceSandbox) -> None:
    subs = [
        {"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "good",
         "body": {"Name": "AllOrNone Good"}},
        {"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "bad", "body": {}},
        {"method": "GET", "url": f"{V}/sobjects/Account/@{{bad.id}}", "referenceId": "needsBad"},
        {"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "after",
         "body": {"Name": "AllOrNone After"}},
    ]  # fmt: skip
    res = sf.restful(
        "composite", method="POST", json={"allOrNone": True, "compositeRequest": subs}
    )["compositeResponse"]
    assert [a["httpStatusCode"] for a in res] == [400, 400, 400, 400]
    assert res[1]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert {res[i]["body"][0]["errorCode"] for i in (0, 2, 3)} == {"PROCESSING_HALTED"}
    count = "SELECT COUNT() FROM Account WHERE Name LIKE 'AllOrNone%'"
    assert sf.query(count)["totalSize"] == 0  # the first create was rolled back
    res = sf.restful(
        "composite", method="POST", json={"allOrNone": False, "compositeRequest": subs}
    )["compositeResponse"]
    # The one that depends on the failed subrequest is not run; the independent ones are.
    assert [a["httpStatusCode"] for a in res] == [201, 400, 400, 201]
    assert res[2]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert sf.query(count)["totalSize"] == 2


def test_get_updated_and_deleted_replication_rules(
    sf: Salesforce, fresh_salesforce: SalesforceSandbox
) -> None:
    salesforce = fresh_salesforce
    start = datetime.now(UTC) - timedelta(minutes=3)
    end = datetime.now(UTC) + timedelta(minutes=1)
    new = sf.Account.create({"Name": "Replicated"})
    gone = sf.Account.create({"Name": "Replicated, then deleted"})
    sf.Account.delete(gone["id"])
    updated = sf.Account.updated(start, end)
    assert set(updated) == {"ids", "latestDateCovered"}
    assert new["id"] in updated["ids"] and gone["id"] not in updated["ids"]
    covered = parse_datetime(updated["latestDateCovered"])
    # Never later than the end asked for, nor than the call itself.
    assert covered <= min(end, datetime.now(UTC))
    deleted = sf.Account.deleted(start, end)
    assert set(deleted) == {"deletedRecords", "earliestDateAvailable", "latestDateCovered"}
    assert [d["id"] for d in deleted["deletedRecords"]] == [gone["id"]]
    assert set(deleted["deletedRecords"][0]) == {"id", "deletedDate"}
    earliest = parse_datetime(deleted["earliestDateAvailable"])
    assert timedelta(days=14) < datetime.now(UTC) - earliest <= timedelta(days=15, minutes=1)
    # Seconds are ignored: a window inside one minute is empty, so start does not precede end.
    minute = datetime.now(UTC).replace(second=5, microsecond=0)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Account.updated(minute, minute + timedelta(seconds=50))
    assert exc.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Account.updated(datetime.now(UTC) - timedelta(days=31), end)
    assert exc.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    # CurrencyType cannot be deleted, so it has no Get Deleted.
    with pytest.raises(SalesforceMalformedRequest):
        sf.CurrencyType.deleted(start, end)
    assert sf.CurrencyType.describe()["deletable"] is False
    # An object the org does not replicate: describe says so and Get Updated refuses it.
    salesforce.app.configure({"replicateable": {"Task": False}})
    assert sf.Task.describe()["replicateable"] is False
    with pytest.raises(SalesforceMalformedRequest):
        sf.Task.updated(start, end)


def test_latest_date_covered_waits_for_an_open_long_transaction(
    sf: Salesforce, fresh_salesforce: SalesforceSandbox
) -> None:
    salesforce = fresh_salesforce
    opened = (datetime.now(UTC) - timedelta(minutes=2)).replace(microsecond=0)
    salesforce.app.configure({"long_transactions": [format_sf_datetime(opened)]})
    start = datetime.now(UTC) - timedelta(minutes=10)
    end = datetime.now(UTC) + timedelta(minutes=1)
    for answer in (sf.Account.updated(start, end), sf.Account.deleted(start, end)):
        assert parse_datetime(answer["latestDateCovered"]) == opened
    # It commits: a record stamped when it started appears, and the coverage moves on.
    acct = salesforce.canonical["accounts"]["id"][0]
    salesforce.app.edit_record(
        "Account", acct, {"Name": "Late", "SystemModstamp": format_sf_datetime(opened)}
    )
    salesforce.app.configure({"long_transactions": []})
    after = sf.Account.updated(opened, end)
    assert acct in after["ids"]
    assert parse_datetime(after["latestDateCovered"]) > opened


def test_created_rows_folded_into_the_columnar_base_read_and_roll_back_the_same(
    sf: Salesforce, fresh_salesforce: SalesforceSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sandbox.salesforce.store as store

    monkeypatch.setattr(store, "COMPACT_AT", 3)
    table = fresh_salesforce.app.org.tables["Account"]
    seeded = table.base.height
    ids = [sf.Account.create({"Name": f"Folded {i}"})["id"] for i in range(7)]
    assert table.base.height == seeded + 6 and len(table.created) == 1  # two folds of three
    sf.Account.update(ids[1], {"Name": "Folded edited"})
    sf.Account.delete(ids[2])
    rows = sf.query("SELECT Id, Name FROM Account WHERE Name LIKE 'Folded%' ORDER BY Id")
    assert [(r["Id"], r["Name"]) for r in rows["records"]] == [
        (i, "Folded edited" if i == ids[1] else f"Folded {n}")
        for n, i in enumerate(ids) if i != ids[2]
    ]  # fmt: skip
    assert sf.Account.get(ids[4])["Name"] == "Folded 4"
    # A transaction that folds rows and then fails leaves the table as it was.
    subs = [{"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": f"r{i}",
             "body": {"Name": f"Rolled {i}"}} for i in range(4)]  # fmt: skip
    subs.append(
        {"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "bad", "body": {}}
    )
    res = sf.restful("composite", method="POST", json={"allOrNone": True, "compositeRequest": subs})
    assert {a["httpStatusCode"] for a in res["compositeResponse"]} == {400}
    assert sf.query("SELECT COUNT() FROM Account WHERE Name LIKE 'Rolled%'")["totalSize"] == 0
    assert table.base.height == seeded + 6
    assert sf.query("SELECT COUNT() FROM Account WHERE Name LIKE 'Folded%'")["totalSize"] == 6
