"""Tooling API custom objects/fields with field-level security, and the analytics reports API."""

from __future__ import annotations

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from sandbox.salesforce.testing import SalesforceSandbox


def _grant(
    sf: Salesforce, salesforce: SalesforceSandbox, field: str, ps_id: str | None = None
) -> str:
    """FLS the way an admin script does it: a permission set, its field permission, assignment.

    With ``ps_id`` the field permission joins that (already assigned) permission set.
    """
    new = ps_id is None
    if ps_id is None:
        name = "KPI_" + field.replace(".", "_").removesuffix("__c")  # names are unique per org
        ps_id = sf.PermissionSet.create({"Name": name, "Label": name})["id"]
    sf.FieldPermissions.create(
        {
            "ParentId": ps_id,
            "SobjectType": field.split(".")[0],
            "Field": field,
            "PermissionsRead": True,
            "PermissionsEdit": True,
        }
    )
    if new:
        sf.PermissionSetAssignment.create(
            {"PermissionSetId": ps_id, "AssigneeId": salesforce.app.auth.user_id}
        )
    return ps_id


def test_custom_field_is_invisible_until_fls_is_granted(
    sf: Salesforce, salesforce: SalesforceSandbox
) -> None:
    res = sf.toolingexecute(
        "sobjects/CustomField",
        method="POST",
        data={
            "FullName": "Opportunity.Win_Score__c",
            "Metadata": {"label": "Win Score", "type": "Number", "precision": 8, "scale": 2},
        },
    )
    assert res["success"] is True and res["id"].startswith("00N")
    assert "Win_Score__c" not in {f["name"] for f in sf.Opportunity.describe()["fields"]}
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELECT Win_Score__c FROM Opportunity LIMIT 1")
    assert exc.value.content[0]["errorCode"] == "INVALID_FIELD"
    found = sf.toolingexecute(
        "query/?q=SELECT+Id,DeveloperName,TableEnumOrId+FROM+CustomField"
        "+WHERE+DeveloperName='Win_Score'"
    )
    assert found["totalSize"] == 1 and found["records"][0]["TableEnumOrId"] == "Opportunity"

    _grant(sf, salesforce, "Opportunity.Win_Score__c")
    described = {f["name"]: f for f in sf.Opportunity.describe()["fields"]}
    assert described["Win_Score__c"]["type"] == "double" and described["Win_Score__c"]["custom"]
    opp = salesforce.canonical["opportunities"]["id"][0]
    sf.Opportunity.update(opp, {"Win_Score__c": 0.75})
    got = sf.query(f"SELECT Win_Score__c FROM Opportunity WHERE Id = '{opp}'")
    assert got["records"][0]["Win_Score__c"] == 0.75

    meta = sf.toolingexecute(f"sobjects/CustomField/{res['id']}")
    assert meta["FullName"] == "Opportunity.Win_Score__c" and meta["Metadata"]["type"] == "Number"
    sf.toolingexecute(f"sobjects/CustomField/{res['id']}", method="DELETE")
    with pytest.raises(SalesforceMalformedRequest):
        sf.query("SELECT Win_Score__c FROM Opportunity LIMIT 1")


def test_custom_object_with_fields_and_a_report(
    sf: Salesforce, salesforce: SalesforceSandbox
) -> None:
    obj = sf.toolingexecute(
        "sobjects/CustomObject",
        method="POST",
        data={
            "FullName": "KPI_Value__c",
            "Metadata": {
                "label": "KPI Value",
                "pluralLabel": "KPI Values",
                "nameField": {"label": "KPI Value Name", "type": "Text"},
                "deploymentStatus": "Deployed",
                "sharingModel": "ReadWrite",
            },
        },
    )
    assert obj["id"].startswith("01I")
    ps_id: str | None = None
    for name, mtype in (("Value__c", "Number"), ("Metric__c", "Text"), ("Key__c", "Text")):
        meta = {"label": name[:-3], "type": mtype}
        if name == "Key__c":
            meta.update(externalId=True, unique=True, length=80)
        sf.toolingexecute(
            "sobjects/CustomField",
            method="POST",
            data={"FullName": f"KPI_Value__c.{name}", "Metadata": meta},
        )
        ps_id = _grant(sf, salesforce, f"KPI_Value__c.{name}", ps_id)
    op = sf.ObjectPermissions.create(
        {
            "ParentId": ps_id,
            "SobjectType": "KPI_Value__c",
            "PermissionsRead": True,
            "PermissionsCreate": True,
            "PermissionsEdit": True,
        }
    )
    assert op["id"].startswith("110")
    assert "KPI_Value__c" in {o["name"] for o in sf.describe()["sobjects"]}
    kpi = sf.KPI_Value__c
    r = kpi.upsert(
        "Key__c/win_rate|org|2024-01",
        {"Name": "Win rate", "Metric__c": "win_rate", "Value__c": 0.31},
        raw_response=True,
    )
    assert r.status_code == 201
    assert sf.query("SELECT Name, Value__c FROM KPI_Value__c")["records"][0]["Value__c"] == 0.31
    # Key__c is unique (case-insensitively): a second record with the key is refused ...
    with pytest.raises(SalesforceMalformedRequest) as exc:
        kpi.create({"Name": "dup", "Key__c": "WIN_RATE|org|2024-01"})
    assert exc.value.content[0]["errorCode"] == "DUPLICATE_VALUE"
    # ... while a writeback-style collection upsert updates it and adds the others, and two
    # records of one request that share a key fail like a unique index would.
    rows = [
        {"attributes": {"type": "KPI_Value__c"}, "Key__c": k, "Name": k, "Value__c": v}
        for k, v in (("win_rate|org|2024-01", 0.35), ("cycle|org|2024-01", 41.0))
    ]
    res = sf.restful(
        "composite/sobjects/KPI_Value__c/Key__c",
        method="PATCH",
        json={"allOrNone": False, "records": [*rows, {**rows[1], "Value__c": 1.0}]},
    )
    assert [(x["success"], x.get("created")) for x in res[:2]] == [(True, False), (True, True)]
    assert res[2]["success"] is False
    assert res[2]["errors"][0]["statusCode"] == "DUPLICATE_VALUE"
    values = sf.query("SELECT Key__c, Value__c FROM KPI_Value__c ORDER BY Key__c")["records"]
    assert [(x["Key__c"], x["Value__c"]) for x in values] == [
        ("cycle|org|2024-01", 41.0),
        ("win_rate|org|2024-01", 0.35),
    ]

    report = sf.restful(
        "analytics/reports",
        method="POST",
        json={
            "reportMetadata": {
                "name": "KPI values",
                "reportFormat": "TABULAR",
                "reportType": {"type": "KPI_Value__c"},
                "detailColumns": [
                    "KPI_Value__c.Name",
                    "KPI_Value__c.Metric__c",
                    "KPI_Value__c.Value__c",
                ],
            }
        },
    )
    rid = report["reportMetadata"]["id"]
    assert rid.startswith("00O")
    listed = sf.restful("analytics/reports")
    assert rid in [x["id"] for x in listed]
    described = sf.restful(f"analytics/reports/{rid}/describe")
    assert described["reportMetadata"]["name"] == "KPI values"
    info = described["reportExtendedMetadata"]["detailColumnInfo"]
    assert info["KPI_Value__c.Value__c"]["dataType"] == "double"
    assert info["KPI_Value__c.Metric__c"]["label"] == "Metric"
    found = sf.query("SELECT Id, DeveloperName FROM Report WHERE DeveloperName = 'KPI_values'")
    assert found["records"][0]["Id"] == rid  # how an installer finds its report again
    renamed = sf.restful(
        f"analytics/reports/{rid}",
        method="PATCH",
        json={"reportMetadata": {"name": "KPI values (all)"}},
    )
    assert renamed["reportMetadata"]["name"] == "KPI values (all)"
    assert [x["name"] for x in sf.restful("analytics/reports") if x["id"] == rid] == [
        "KPI values (all)"
    ]
    # The Analytics API names a custom object's report type CustomEntity$<object>.
    other = sf.restful(
        "analytics/reports",
        method="POST",
        json={
            "reportMetadata": {
                "name": "KPI keys",
                "reportType": {"type": "CustomEntity$KPI_Value__c"},
                "detailColumns": ["KPI_Value__c.Key__c"],
            }
        },
    )
    assert other["reportMetadata"]["reportType"]["type"] == "KPI_Value__c"
    run = sf.restful(f"analytics/reports/{rid}")
    cells = [[c["value"] for c in row["dataCells"]] for row in run["factMap"]["T!T"]["rows"]]
    assert ["win_rate|org|2024-01", "win_rate", 0.35] in cells
    assert (
        sf.query(f"SELECT Name FROM Report WHERE Id = '{rid}'")["records"][0]["Name"]
        == "KPI values (all)"
    )
    with pytest.raises(SalesforceMalformedRequest):
        sf.restful(
            "analytics/reports",
            method="POST",
            json={
                "reportMetadata": {
                    "name": "broken",
                    "reportType": {"type": "KPI_Value__c"},
                    "detailColumns": ["KPI_Value__c.Nope__c"],
                }
            },
        )
    sf.restful(f"analytics/reports/{rid}", method="DELETE")
    with pytest.raises(SalesforceResourceNotFound):
        sf.restful(f"analytics/reports/{rid}/describe")


def test_custom_object_delete_and_tooling_full_names(sf: Salesforce) -> None:
    obj = sf.toolingexecute(
        "sobjects/CustomObject",
        method="POST",
        data={"FullName": "Scratch_Obj__c", "Metadata": {"label": "Scratch"}},
    )
    field = sf.toolingexecute(
        "sobjects/CustomField",
        method="POST",
        data={"FullName": "Scratch_Obj__c.Note__c", "Metadata": {"label": "Note", "type": "Text"}},
    )
    rows = sf.toolingexecute(
        "query/?q=SELECT+Id,FullName,TableEnumOrId+FROM+CustomField"
        f"+WHERE+TableEnumOrId='{obj['id']}'"
    )["records"]
    assert [(r["Id"], r["FullName"]) for r in rows] == [(field["id"], "Scratch_Obj__c.Note__c")]
    objs = sf.toolingexecute(
        "query/?q=SELECT+Id,FullName+FROM+CustomObject+WHERE+DeveloperName='Scratch_Obj'"
    )
    assert objs["records"][0]["FullName"] == "Scratch_Obj__c"
    with pytest.raises(SalesforceMalformedRequest):  # one name per org
        sf.toolingexecute(
            "sobjects/CustomObject",
            method="POST",
            data={"FullName": "Scratch_Obj__c", "Metadata": {"label": "Again"}},
        )
    sf.Scratch_Obj__c.create({"Name": "row"})
    sf.toolingexecute(f"sobjects/CustomObject/{obj['id']}", method="DELETE")
    assert "Scratch_Obj__c" not in {o["name"] for o in sf.describe()["sobjects"]}
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELECT Id FROM Scratch_Obj__c")
    assert exc.value.content[0]["errorCode"] == "INVALID_TYPE"
    with pytest.raises(SalesforceResourceNotFound):
        sf.toolingexecute(f"sobjects/CustomField/{field['id']}")
    with pytest.raises(SalesforceResourceNotFound):
        sf.Scratch_Obj__c.describe()
