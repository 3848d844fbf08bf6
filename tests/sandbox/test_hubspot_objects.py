"""CRM objects through the unmodified hubspot-api-client: list, get, create, update, archive,
batch — exact success codes, string values, HubSpot's error bodies."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from hubspot.crm.contacts import SimplePublicObjectInputForCreate
from hubspot.crm.deals import (
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchInputSimplePublicObjectId,
    BatchReadInputSimplePublicObjectId,
    SimplePublicObjectInput,
)
from hubspot.crm.deals import SimplePublicObjectInputForCreate as DealCreate
from hubspot.crm.deals.exceptions import ApiException as DealsApiException
from hubspot.crm.deals.exceptions import NotFoundException as DealNotFound
from hubspot.crm.objects.exceptions import ApiException as ObjectsApiException

if TYPE_CHECKING:
    from sandbox.hubspot.testing import HubSpotSandbox

pytest_plugins = ("sandbox.hubspot.testing",)


def _body(exc: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


def test_list_pages_with_after_cursor_and_default_properties(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    client = hubspot_sandbox.client()
    first = client.crm.deals.basic_api.get_page(limit=2)
    assert [d.id for d in first.results] == ["300000001", "300000002"]
    # Without `properties`, deals come with HubSpot's default set, every value a string.
    props = first.results[0].properties
    assert set(props) == {
        "amount",
        "closedate",
        "createdate",
        "dealname",
        "dealstage",
        "hs_lastmodifieddate",
        "hs_object_id",
        "pipeline",
    }
    assert props["amount"] == "12000" and props["dealstage"] == "closedwon"
    assert props["closedate"] == "2024-02-20T00:00:00.000Z"
    assert first.paging.next.after == "300000003"
    assert first.paging.next.link.startswith(hubspot_sandbox.base_url)
    last = client.crm.deals.basic_api.get_page(limit=2, after=first.paging.next.after)
    assert [d.id for d in last.results] == ["300000003"]
    assert last.paging is None  # no `paging` on the last page


def test_properties_repeated_or_comma_separated_and_archived_false(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    client = hubspot_sandbox.client()
    page = client.crm.deals.basic_api.get_page(
        limit=10, properties=["amount", "deal_currency_code", "nonexistent"], archived=False
    )
    props = page.results[1].properties
    # Requested (unknown names ignored) plus the id and both dates HubSpot always adds.
    assert set(props) == {
        "amount",
        "deal_currency_code",
        "createdate",
        "hs_lastmodifieddate",
        "hs_object_id",
    }
    assert props["deal_currency_code"] == "USD"
    s = hubspot_sandbox.session()
    r = s.get(
        f"{hubspot_sandbox.base_url}/crm/v3/objects/deals",
        params={"properties": "amount,hs_is_closed_won", "archived": "false", "limit": "1"},
    )
    assert r.status_code == 200
    got = r.json()["results"][0]["properties"]
    assert got["amount"] == "12000" and got["hs_is_closed_won"] == "true"


def test_limit_above_100_is_rejected(hubspot_sandbox: HubSpotSandbox) -> None:
    with pytest.raises(DealsApiException) as exc:
        hubspot_sandbox.client().crm.deals.basic_api.get_page(limit=101)
    assert exc.value.status == 400
    body = _body(exc.value)
    assert body["category"] == "VALIDATION_ERROR" and body["status"] == "error"
    assert body["correlationId"]


def test_get_by_id_and_id_property_and_404_body(hubspot_sandbox: HubSpotSandbox) -> None:
    client = hubspot_sandbox.client()
    c = client.crm.contacts.basic_api.get_by_id(
        "100000001",
        properties=[
            "lifecyclestage",
            "hs_lead_status",
            "hubspotscore",
            "lead_source",
            "hs_v2_date_entered_salesqualifiedlead",
            "hs_lifecyclestage_opportunity_date",
        ],
    )
    p = c.properties
    assert p["lifecyclestage"] == "customer"  # its converted deal was won
    assert p["hs_lead_status"] == "OPEN_DEAL" and p["hubspotscore"] == "80"
    assert p["lead_source"] == "web"
    assert p["hs_v2_date_entered_salesqualifiedlead"] == "2024-01-03T00:00:00.000Z"
    assert p["hs_lifecyclestage_opportunity_date"] == "2024-01-05T00:00:00.000Z"
    assert "lastmodifieddate" in p and "hs_lastmodifieddate" not in p  # contacts' own name
    by_email = client.crm.contacts.basic_api.get_by_id(
        "lead100000002@example.com", id_property="email"
    )
    assert by_email.id == "100000002"
    with pytest.raises(DealNotFound) as exc:
        client.crm.deals.basic_api.get_by_id("999")
    assert exc.value.status == 404
    assert _body(exc.value)["category"] == "OBJECT_NOT_FOUND"


def test_create_201_update_200_archive_204(hubspot_sandbox: HubSpotSandbox) -> None:
    client = hubspot_sandbox.client()
    created = client.crm.deals.basic_api.create(
        DealCreate(
            properties={
                "dealname": "New",
                "amount": 1500.5,
                "dealstage": "qualifiedtobuy",
                "deal_currency_code": "USD",
                "closedate": "2024-06-01",
            }
        )
    )
    # The client returns None on an unexpected 2xx; a model back means the code was 201.
    assert created is not None and created.id.isdigit()
    p = created.properties
    assert p["amount"] == "1500.5" and p["closedate"] == "2024-06-01T00:00:00.000Z"
    assert p["hs_is_closed"] == "false" and p["pipeline"] == "default"
    # EUR per USD at the latest rate (1 / 1.10): 1500.5 / 1.10.
    assert p["amount_in_home_currency"] == "1364.09"
    updated = client.crm.deals.basic_api.update(
        created.id, SimplePublicObjectInput(properties={"dealstage": "closedwon"})
    )
    assert updated.properties["hs_is_closed_won"] == "true"
    assert updated.updated_at >= created.updated_at
    raw = hubspot_sandbox.session().delete(
        f"{hubspot_sandbox.base_url}/crm/v3/objects/deals/{created.id}"
    )
    assert raw.status_code == 204 and raw.content == b""
    with pytest.raises(DealNotFound):
        client.crm.deals.basic_api.get_by_id(created.id)
    archived = client.crm.deals.basic_api.get_page(archived=True)
    assert [d.id for d in archived.results] == [created.id]
    assert archived.results[0].archived is True


def test_invalid_property_values_and_unique_conflict(hubspot_sandbox: HubSpotSandbox) -> None:
    client = hubspot_sandbox.client()
    with pytest.raises(DealsApiException) as exc:
        client.crm.deals.basic_api.create(DealCreate(properties={"nope": "1", "amount": "abc"}))
    assert exc.value.status == 400
    body = _body(exc.value)
    assert body["category"] == "VALIDATION_ERROR"
    assert body["message"].startswith("Property values were not valid: ")
    errors = json.loads(body["message"].split(": ", 1)[1])
    assert {e["error"] for e in errors} == {"PROPERTY_DOESNT_EXIST", "INVALID_INTEGER"}
    from hubspot.crm.contacts.exceptions import ApiException as ContactsApiException

    with pytest.raises(ContactsApiException) as exc2:
        client.crm.contacts.basic_api.create(
            SimplePublicObjectInputForCreate(properties={"email": "lead100000001@example.com"})
        )
    assert exc2.value.status == 409
    assert _body(exc2.value)["message"] == "Contact already exists. Existing ID: 100000001"


def test_contact_lifecycle_change_stamps_stage_dates(hubspot_sandbox: HubSpotSandbox) -> None:
    client = hubspot_sandbox.client()
    from hubspot.crm.contacts import SimplePublicObjectInput as ContactInput

    out = client.crm.contacts.basic_api.update(
        "100000003", ContactInput(properties={"lifecyclestage": "salesqualifiedlead"})
    )
    got = client.crm.contacts.basic_api.get_by_id(
        "100000003",
        properties=[
            "hs_v2_date_entered_salesqualifiedlead",
            "hs_v2_date_exited_lead",
            "hs_lifecyclestage_salesqualifiedlead_date",
            "lastmodifieddate",
        ],
    )
    entered = got.properties["hs_v2_date_entered_salesqualifiedlead"]
    assert entered is not None and entered == got.properties["hs_v2_date_exited_lead"]
    assert got.properties["lastmodifieddate"] == out.properties["lastmodifieddate"]


def test_generic_objects_api_for_engagements_and_goals(hubspot_sandbox: HubSpotSandbox) -> None:
    client = hubspot_sandbox.client()
    calls = client.crm.objects.basic_api.get_page(
        "calls",
        properties=["hs_call_duration", "hs_call_direction", "hs_call_disposition", "hs_timestamp"],
    )
    first = calls.results[0].properties
    assert first["hs_call_duration"] == "750000"  # 12.5 minutes in ms
    assert first["hs_call_direction"] == "OUTBOUND"
    assert first["hs_call_disposition"] == "f240bbac-87c9-4f6e-bf70-924b57d47db7"  # Connected
    # Object type ids address the same objects.
    assert client.crm.objects.basic_api.get_page("0-48").results[0].id == calls.results[0].id
    goals = client.crm.objects.goals.basic_api.get_page(
        properties=["hs_target_amount", "hs_assignee_user_id", "hs_end_datetime"]
    )
    g = goals.results[0].properties
    assert g["hs_target_amount"] == "50000" and g["hs_assignee_user_id"] == "9000001"
    assert g["hs_end_datetime"] == "2024-01-31T23:59:59.999Z"
    with pytest.raises(ObjectsApiException) as exc:
        client.crm.objects.basic_api.get_page("widgets")
    assert exc.value.status == 400


def test_batch_read_200_and_207_with_errors(hubspot_sandbox: HubSpotSandbox) -> None:
    client = hubspot_sandbox.client()
    ok = client.crm.deals.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[{"id": "300000001"}, {"id": "300000002"}],
            properties=["amount"],
            properties_with_history=[],
        ),
        archived=False,
    )
    assert ok.status == "COMPLETE" and sorted(r.id for r in ok.results) == [
        "300000001",
        "300000002",
    ]
    partial = client.crm.deals.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[{"id": "300000001"}, {"id": "1"}],
            properties=["amount"],
            properties_with_history=[],
        )
    )
    assert partial.num_errors == 1  # the 207 model carries the errors
    assert partial.errors[0].category == "OBJECT_NOT_FOUND"
    assert partial.errors[0].context == {"ids": ["1"]}


def test_batch_create_201_update_upsert_archive(hubspot_sandbox: HubSpotSandbox) -> None:
    client = hubspot_sandbox.client()
    created = client.crm.deals.batch_api.create(
        BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[{"properties": {"dealname": f"B{i}", "amount": str(i)}} for i in range(3)]
        )
    )
    assert created is not None and len(created.results) == 3  # 201 deserialised
    ids = [r.id for r in created.results]
    updated = client.crm.deals.batch_api.update(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[
                {"id": ids[0], "properties": {"amount": "99"}},
                {"id": "123", "properties": {"amount": "1"}},
            ]
        )
    )
    assert updated.num_errors == 1 and updated.results[0].properties["amount"] == "99"
    # Upsert by a unique property: create one property first, then upsert twice.
    s = hubspot_sandbox.session()
    r = s.post(
        f"{hubspot_sandbox.base_url}/crm/v3/properties/deals",
        json={
            "name": "ext_id",
            "label": "External id",
            "type": "string",
            "fieldType": "text",
            "groupName": "dealinformation",
            "hasUniqueValue": True,
        },
    )
    assert r.status_code == 201
    up = BatchInputSimplePublicObjectBatchInputUpsert(
        inputs=[{"id": "X-1", "idProperty": "ext_id", "properties": {"amount": "10"}}]
    )
    first = client.crm.deals.batch_api.upsert(up)
    assert first.results[0].new is True
    second = client.crm.deals.batch_api.upsert(up)
    assert second.results[0].new is False and second.results[0].id == first.results[0].id
    archive = client.crm.deals.batch_api.archive(
        BatchInputSimplePublicObjectId(inputs=[{"id": i} for i in ids])
    )
    assert archive is None  # 204, no body
    assert client.crm.deals.basic_api.get_page(archived=True).results


def test_batch_over_100_inputs_is_400(hubspot_sandbox: HubSpotSandbox) -> None:
    with pytest.raises(DealsApiException) as exc:
        hubspot_sandbox.client().crm.deals.batch_api.read(
            BatchReadInputSimplePublicObjectId(
                inputs=[{"id": str(i)} for i in range(101)],
                properties=[],
                properties_with_history=[],
            )
        )
    assert exc.value.status == 400
    assert _body(exc.value)["category"] == "VALIDATION_ERROR"


def test_create_engagement_with_associations(hubspot_sandbox: HubSpotSandbox) -> None:
    from hubspot.crm.objects import SimplePublicObjectInputForCreate as ObjectCreate

    client = hubspot_sandbox.client()
    call = client.crm.objects.basic_api.create(
        "calls",
        ObjectCreate(
            properties={
                "hs_timestamp": "2024-05-01T10:00:00Z",
                "hs_call_duration": 60000,
                "hs_call_direction": "INBOUND",
                "hubspot_owner_id": "1000002",
            },
            associations=[
                {
                    "to": {"id": "100000003"},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 194}],
                }
            ],
        ),
    )
    assert call.properties["hs_timestamp"] == "2024-05-01T10:00:00.000Z"
    back = client.crm.associations.v4.basic_api.get_page("contacts", "100000003", "calls")
    assert [(r.to_object_id, r.association_types[0].type_id) for r in back.results] == [
        (call.id, 193)
    ]
    with pytest.raises(ObjectsApiException) as exc:
        client.crm.objects.basic_api.create(
            "calls", ObjectCreate(properties={"hs_call_direction": "SIDEWAYS"})
        )
    problems = json.loads(json.loads(exc.value.body)["message"].split(": ", 1)[1])
    assert {(p["name"], p["error"]) for p in problems} == {
        ("hs_call_direction", "INVALID_OPTION"),
        ("hs_timestamp", "REQUIRED_PROPERTY"),  # engagements need hs_timestamp
    }
    # Archiving the call hides it from the contact's associations.
    client.crm.objects.basic_api.archive("calls", call.id)
    assert (
        client.crm.associations.v4.basic_api.get_page("contacts", "100000003", "calls").results
        == []
    )


def test_merge_redirects_and_records_merged_ids(hubspot_sandbox: HubSpotSandbox) -> None:
    s = hubspot_sandbox.session()
    r = s.post(
        f"{hubspot_sandbox.base_url}/crm/v3/objects/deals/merge",
        json={"primaryObjectId": "300000001", "objectIdToMerge": "300000003"},
    )
    assert r.status_code == 200
    assert r.json()["properties"]["hs_merged_object_ids"] == "300000003"
    client = hubspot_sandbox.client()
    # The merged-away id now answers with the record it was merged into, and lists skip it.
    assert client.crm.deals.basic_api.get_by_id("300000003").id == "300000001"
    assert [d.id for d in client.crm.deals.basic_api.get_page().results] == [
        "300000001",
        "300000002",
    ]
    assert client.crm.deals.basic_api.get_page(archived=True).results == []
