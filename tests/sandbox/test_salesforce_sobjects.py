"""sObject describe, CRUD, external-id upsert and getUpdated/getDeleted via simple-salesforce."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceResourceNotFound,
)

from sandbox.salesforce.testing import SalesforceSandbox


@pytest.fixture(scope="module", autouse=True)
def _seeded_org(sf_sandbox: SalesforceSandbox) -> None:
    """Expectations below come from the canonical tables: start from the seeded org."""
    sf_sandbox.app.reset()


KPI_OBJECTS = {
    "User",
    "UserRole",
    "Lead",
    "Account",
    "Opportunity",
    "OpportunityCompetitor",
    "Task",
    "Event",
    "ForecastingQuota",
    "CurrencyType",
    "DatedConversionRate",
}


def test_describe_global_and_object_describe(sf: Salesforce) -> None:
    names = {o["name"] for o in sf.describe()["sobjects"]}
    assert names >= KPI_OBJECTS
    desc = sf.Opportunity.describe()
    fields = {f["name"]: f for f in desc["fields"]}
    for name in (
        "Id",
        "SystemModstamp",
        "IsDeleted",
        "CurrencyIsoCode",
        "StageName",
        "IsWon",
        "Cost__c",
        "Recurring_Monthly_Amount__c",
        "Contract_Start__c",
        "Lead__c",
    ):
        assert name in fields
    assert fields["OwnerId"]["referenceTo"] == ["User"]
    assert fields["OwnerId"]["relationshipName"] == "Owner"
    assert fields["Lead__c"]["relationshipName"] == "Lead__r"
    assert fields["IsWon"]["createable"] is False
    assert "Closed Won" in [p["value"] for p in fields["StageName"]["picklistValues"]]
    task = {f["name"]: f for f in sf.Task.describe()["fields"]}
    assert {"Call", "Email", "Task"} <= {p["value"] for p in task["TaskSubtype"]["picklistValues"]}
    assert task["CallDurationInSeconds"]["type"] == "int"
    assert sf.Lead.metadata()["objectDescribe"]["keyPrefix"] == "00Q"
    with pytest.raises(SalesforceResourceNotFound):
        sf.restful("sobjects/Nope__c/describe")


def test_create_get_update_delete(sf: Salesforce, salesforce: SalesforceSandbox) -> None:
    owner = salesforce.canonical["reps"]["id"][1]
    acct = salesforce.canonical["accounts"]["id"][0]
    created = sf.Opportunity.create(
        {
            "Name": "Big Deal",
            "StageName": "Prospecting",
            "CloseDate": "2025-01-31",
            "Amount": 1200.5,
            "CurrencyIsoCode": "USD",
            "OwnerId": owner,
            "AccountId": acct,
        }
    )
    assert created["success"] is True and created["id"].startswith("006")
    assert len(created["id"]) == 18
    rec = sf.Opportunity.get(created["id"])
    assert rec["Amount"] == 1200.5 and rec["IsClosed"] is False and rec["FiscalQuarter"] == 1
    stamp = rec["SystemModstamp"]
    assert sf.Opportunity.update(created["id"], {"StageName": "Closed Won"}) == 204
    rec = sf.Opportunity.get(created["id"])
    assert rec["IsWon"] is True and rec["IsClosed"] is True
    assert rec["SystemModstamp"] >= stamp
    assert sf.Opportunity.delete(created["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound) as exc:
        sf.Opportunity.get(created["id"])
    assert exc.value.content[0]["errorCode"] == "NOT_FOUND"
    with pytest.raises(SalesforceResourceNotFound) as exc:
        sf.Opportunity.update(created["id"], {"Name": "x"})
    assert exc.value.content[0]["errorCode"] == "ENTITY_IS_DELETED"


def test_dml_errors(sf: Salesforce, salesforce: SalesforceSandbox) -> None:
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Opportunity.create({"Name": "No stage"})
    err = exc.value.content[0]
    assert err["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert set(err["fields"]) == {"StageName", "CloseDate"}
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Account.create({"Name": "x", "CreatedDate": "2020-01-01T00:00:00Z"})
    assert exc.value.content[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Account.create({"Name": "x", "Bogus__c": 1})
    assert exc.value.content[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Opportunity.create({"Name": "x", "StageName": "Prospecting", "CloseDate": "soon"})
    assert exc.value.content[0]["errorCode"] == "JSON_PARSER_ERROR"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Account.create({"Name": "x", "OwnerId": "005000000000000AAA"})
    assert exc.value.content[0]["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"


def _external_id_field(salesforce: SalesforceSandbox, sf: Salesforce) -> None:
    """Account.Ext_Key__c as writeback would add it: Tooling API, then FLS."""
    if "Ext_Key__c" in {f["name"] for f in sf.Account.describe()["fields"]}:
        return
    sf.toolingexecute(
        "sobjects/CustomField",
        method="POST",
        data={
            "FullName": "Account.Ext_Key__c",
            "Metadata": {"label": "Ext Key", "type": "Text", "length": 64, "externalId": True},
        },
    )
    sf.FieldPermissions.create(
        {
            "ParentId": salesforce.app.org.profile_permission_set_id,
            "SobjectType": "Account",
            "Field": "Account.Ext_Key__c",
            "PermissionsRead": True,
            "PermissionsEdit": True,
        }
    )


def test_upsert_by_external_id(sf: Salesforce, salesforce: SalesforceSandbox) -> None:
    _external_id_field(salesforce, sf)
    r = sf.Account.upsert("Ext_Key__c/K-1", {"Name": "Upserted"}, raw_response=True)
    assert r.status_code == 201 and r.json()["created"] is True
    r = sf.Account.upsert("Ext_Key__c/K-1", {"Name": "Upserted again"}, raw_response=True)
    assert r.status_code == 200 and r.json()["created"] is False
    assert sf.Account.get_by_custom_id("Ext_Key__c", "K-1")["Name"] == "Upserted again"
    # Values are URL-decoded: get_by_custom_id quote_plus-es, upsert sends the raw value.
    assert sf.Account.upsert("Ext_Key__c/a b|c", {"Name": "Spaced"}) == 201
    assert sf.Account.get_by_custom_id("Ext_Key__c", "a b|c")["Name"] == "Spaced"
    assert (
        sf.query("SELECT Ext_Key__c FROM Account WHERE Name = 'Spaced'")["records"][0]["Ext_Key__c"]
        == "a b|c"
    )
    sf.Account.create({"Name": "Dup A", "Ext_Key__c": "DUP"})
    sf.Account.create({"Name": "Dup B", "Ext_Key__c": "DUP"})
    with pytest.raises(SalesforceMoreThanOneRecord) as exc:
        sf.Account.upsert("Ext_Key__c/DUP", {"Name": "which?"})
    assert len(exc.value.content) == 2
    with pytest.raises(SalesforceMalformedRequest):
        sf.Account.upsert("Name/whatever", {"Type": "Customer"})  # not an external id


def test_updated_and_deleted_windows(sf: Salesforce) -> None:
    start = datetime.now(UTC) - timedelta(minutes=5)
    end = datetime.now(UTC) + timedelta(minutes=2)
    keep = sf.Account.create({"Name": "Updated window"})
    gone = sf.Account.create({"Name": "Deleted window"})
    sf.Account.delete(gone["id"])
    updated = sf.Account.updated(start, end)
    assert keep["id"] in updated["ids"] and gone["id"] not in updated["ids"]
    assert "latestDateCovered" in updated
    deleted = sf.Account.deleted(start, end)
    assert gone["id"] in [d["id"] for d in deleted["deletedRecords"]]
    assert {"earliestDateAvailable", "latestDateCovered"} <= set(deleted)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Account.updated(datetime.now(UTC) - timedelta(days=31), end)
    assert exc.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    with pytest.raises(SalesforceMalformedRequest):
        sf.Account.deleted(datetime.now(UTC) - timedelta(days=16), end)


def test_seeded_org_matches_the_canonical_tables(
    sf: Salesforce, salesforce: SalesforceSandbox
) -> None:
    c = salesforce.canonical
    lead = c["leads"].filter(pl.col("converted_at").is_not_null()).row(0, named=True)
    rec = sf.Lead.get(lead["id"])
    assert rec["IsConverted"] is True
    assert rec["ConvertedDate"] == lead["converted_at"].date().isoformat()
    assert rec["ConvertedOpportunityId"] == lead["converted_opportunity_id"]
    roles = sf.query_all("SELECT Id, ParentRoleId FROM UserRole")
    assert {r["Id"]: r["ParentRoleId"] for r in roles["records"]} == dict(
        c["teams"].select("id", "parent_id").iter_rows()
    )
    quotas = sf.query("SELECT COUNT() FROM ForecastingQuota")
    assert quotas["totalSize"] == c["quotas"].height
    rates = sf.query_all("SELECT IsoCode, ConversionRate, StartDate FROM DatedConversionRate")
    assert rates["totalSize"] == c["fx_rates"].height
    corp = sf.query("SELECT IsoCode FROM CurrencyType WHERE IsCorporate = true")
    assert corp["records"][0]["IsoCode"] == "EUR"
    calls = c["activities"].filter(pl.col("kind") == "call")
    got = sf.query("SELECT COUNT() FROM Task WHERE TaskSubtype = 'Call'")
    assert got["totalSize"] == calls.height
    meetings = sf.query("SELECT COUNT() FROM Event")
    assert meetings["totalSize"] == c["activities"].filter(pl.col("kind") == "meeting").height
    comp = c["opportunities"].filter(pl.col("competitor").is_not_null())
    assert sf.query("SELECT COUNT() FROM OpportunityCompetitor")["totalSize"] == comp.height
