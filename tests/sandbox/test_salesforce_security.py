"""Field-level security and permission-set objects through simple-salesforce, as in a real org:
read-only FLS, revoking access, FieldPermissions/ObjectPermissions validation rules."""

from __future__ import annotations

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from sandbox.salesforce.testing import SalesforceSandbox


def _field(sf: Salesforce, full: str, mtype: str = "Text") -> None:
    meta: dict[str, object] = {"label": full.split(".")[1][:-3], "type": mtype}
    if mtype == "Text":
        meta["length"] = 40
    sf.toolingexecute(
        "sobjects/CustomField", method="POST", data={"FullName": full, "Metadata": meta}
    )


def _error(exc: pytest.ExceptionInfo[SalesforceMalformedRequest]) -> dict[str, object]:
    content = exc.value.content
    assert isinstance(content, list) and len(content) == 1
    err: dict[str, object] = content[0]
    assert set(err) == {"message", "errorCode", "fields"}
    return err


def test_read_only_fls_and_revoking_the_assignment(
    sf: Salesforce, salesforce: SalesforceSandbox
) -> None:
    _field(sf, "Account.Segment_RO__c")
    ps = sf.PermissionSet.create({"Name": "Read_Only_Segment", "Label": "Read-only segment"})
    sf.FieldPermissions.create(
        {
            "ParentId": ps["id"],
            "SobjectType": "Account",
            "Field": "Account.Segment_RO__c",
            "PermissionsRead": True,
            "PermissionsEdit": False,
        }
    )
    psa = sf.PermissionSetAssignment.create(
        {"PermissionSetId": ps["id"], "AssigneeId": salesforce.app.auth.user_id}
    )
    described = {f["name"]: f for f in sf.Account.describe()["fields"]}
    seg = described["Segment_RO__c"]
    assert seg["createable"] is False and seg["updateable"] is False and seg["custom"] is True
    acct = salesforce.canonical["accounts"]["id"][1]
    assert sf.query(f"SELECT Segment_RO__c FROM Account WHERE Id = '{acct}'")["totalSize"] == 1
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Account.update(acct, {"Segment_RO__c": "SMB"})
    err = _error(exc)
    assert err["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert err["fields"] == ["Segment_RO__c"]
    coll = sf.restful(
        "composite/sobjects",
        method="POST",
        json={"records": [{"attributes": {"type": "Account"}, "Name": "RO", "Segment_RO__c": "x"}]},
    )
    assert coll[0]["errors"][0]["statusCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"

    # A second, assigned permission set granting edit makes the field writable.
    fp = sf.FieldPermissions.create(
        {
            "ParentId": salesforce.app.org.profile_permission_set_id,
            "SobjectType": "Account",
            "Field": "Account.Segment_RO__c",
            "PermissionsRead": True,
            "PermissionsEdit": True,
        }
    )
    assert sf.Account.update(acct, {"Segment_RO__c": "SMB"}) == 204
    sf.FieldPermissions.delete(fp["id"])

    # Removing the last grant hides the field again from describe, query and record reads.
    sf.PermissionSetAssignment.delete(psa["id"])
    assert "Segment_RO__c" not in {f["name"] for f in sf.Account.describe()["fields"]}
    assert "Segment_RO__c" not in sf.Account.get(acct)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELECT Id FROM Account WHERE Segment_RO__c = 'SMB'")
    assert _error(exc)["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Account.update(acct, {"Segment_RO__c": "Mid"})
    assert _error(exc)["errorCode"] == "INVALID_FIELD"


def test_field_permissions_rules(sf: Salesforce, salesforce: SalesforceSandbox) -> None:
    _field(sf, "Opportunity.Rules_Check__c", "Number")
    ps = sf.PermissionSet.create({"Name": "Rules_Check", "Label": "Rules check"})["id"]
    base = {"ParentId": ps, "SobjectType": "Opportunity", "PermissionsRead": True}
    cases = [
        ({"Field": "Opportunity.Nope__c"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        ({"Field": "Rules_Check__c"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        ({"Field": "Account.Rules_Check__c"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        (
            {"Field": "Opportunity.Rules_Check__c", "PermissionsRead": False,
             "PermissionsEdit": True},
            "FIELD_INTEGRITY_EXCEPTION",
        ),
        ({"SobjectType": "Nope__c", "Field": "Nope__c.X__c"},
         "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        ({"Field": None}, "REQUIRED_FIELD_MISSING"),
    ]  # fmt: skip
    for extra, code in cases:
        with pytest.raises(SalesforceMalformedRequest) as exc:
            sf.FieldPermissions.create({**base, **extra})
        assert _error(exc)["errorCode"] == code, extra
    ok = sf.FieldPermissions.create({**base, "Field": "opportunity.rules_check__c"})
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.FieldPermissions.create({**base, "Field": "Opportunity.Rules_Check__c"})
    assert _error(exc)["errorCode"] == "DUPLICATE_VALUE"
    # API 50+: a lookup is named by its relationship or its field name, stored as the field.
    lookup = sf.FieldPermissions.create({**base, "Field": "Opportunity.Account"})
    rows = sf.query(
        f"SELECT Id, Field, SobjectType FROM FieldPermissions WHERE ParentId = '{ps}' "
        "ORDER BY Field"
    )["records"]
    assert [(r["Id"], r["Field"]) for r in rows] == [
        (lookup["id"], "Opportunity.AccountId"),
        (ok["id"], "Opportunity.Rules_Check__c"),
    ]
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.PermissionSet.create({"Name": "Rules_Check", "Label": "again"})
    assert _error(exc)["errorCode"] == "DUPLICATE_DEVELOPER_NAME"
    sf.PermissionSetAssignment.create(
        {"PermissionSetId": ps, "AssigneeId": salesforce.app.auth.user_id}
    )
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.PermissionSetAssignment.create(
            {"PermissionSetId": ps, "AssigneeId": salesforce.app.auth.user_id}
        )
    assert _error(exc)["errorCode"] == "DUPLICATE_VALUE"


def test_object_permissions_rules(sf: Salesforce) -> None:
    ps = sf.PermissionSet.create({"Name": "Object_Rules", "Label": "Object rules"})["id"]
    base = {"ParentId": ps, "SobjectType": "Lead"}
    for extra, code in [
        ({}, "FIELD_INTEGRITY_EXCEPTION"),  # no permission at all
        ({"PermissionsCreate": True}, "FIELD_INTEGRITY_EXCEPTION"),  # create needs read
        ({"PermissionsRead": True, "PermissionsDelete": True}, "FIELD_INTEGRITY_EXCEPTION"),
        ({"PermissionsRead": True, "SobjectType": "Nope__c"},
         "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
    ]:  # fmt: skip
        with pytest.raises(SalesforceMalformedRequest) as exc:
            sf.ObjectPermissions.create({**base, **extra})
        assert _error(exc)["errorCode"] == code, extra
    full = {
        "PermissionsRead": True,
        "PermissionsCreate": True,
        "PermissionsEdit": True,
        "PermissionsDelete": True,
    }
    op = sf.ObjectPermissions.create({**base, **full})
    assert op["id"].startswith("110")
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.ObjectPermissions.create({**base, "PermissionsRead": True})
    assert _error(exc)["errorCode"] == "DUPLICATE_VALUE"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.ObjectPermissions.update(op["id"], {"PermissionsEdit": False})  # delete needs edit
    assert _error(exc)["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
    got = sf.query(
        f"SELECT SobjectType, PermissionsDelete FROM ObjectPermissions WHERE ParentId = '{ps}'"
    )
    assert got["records"][0]["SobjectType"] == "Lead" and got["records"][0]["PermissionsDelete"]


def test_a_required_custom_field_needs_no_grant(sf: Salesforce) -> None:
    sf.toolingexecute(
        "sobjects/CustomObject",
        method="POST",
        data={"FullName": "Req_Check__c", "Metadata": {"label": "Req check"}},
    )
    sf.toolingexecute(
        "sobjects/CustomField",
        method="POST",
        data={
            "FullName": "Req_Check__c.Code__c",
            "Metadata": {"label": "Code", "type": "Text", "length": 10, "required": True},
        },
    )
    described = {f["name"]: f for f in sf.Req_Check__c.describe()["fields"]}
    assert described["Code__c"]["nillable"] is False and described["Code__c"]["createable"]
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Req_Check__c.create({"Name": "no code"})
    err = _error(exc)
    assert err["errorCode"] == "REQUIRED_FIELD_MISSING" and err["fields"] == ["Code__c"]
    rec = sf.Req_Check__c.create({"Name": "coded", "Code__c": "A1"})
    assert sf.Req_Check__c.get(rec["id"])["Code__c"] == "A1"
