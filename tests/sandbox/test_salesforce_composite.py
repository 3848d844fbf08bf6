"""sObject Collections and composite/batch through ``Salesforce.restful`` (simple-salesforce has
no helper for them — CRM_FACTS A2)."""

from __future__ import annotations

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from sandbox.salesforce.testing import SalesforceSandbox


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
