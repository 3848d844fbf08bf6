"""Properties and groups, custom object schemas, owners and teams, pipelines, associations v4,
currencies — through hubspot-api-client where it has an API, plain requests otherwise."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from hubspot.crm.associations.v4 import (
    AssociationSpec,
    BatchInputPublicAssociationMultiPost,
    BatchInputPublicFetchAssociationsBatchRequest,
)
from hubspot.crm.objects import SimplePublicObjectInputForCreate
from hubspot.crm.owners.exceptions import NotFoundException as OwnerNotFound
from hubspot.crm.properties import PropertyCreate, PropertyGroupCreate
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiException
from hubspot.crm.schemas import ObjectSchemaEgg

if TYPE_CHECKING:
    from sandbox.hubspot.testing import HubSpotSandbox

pytest_plugins = ("sandbox.hubspot.testing",)


def test_properties_list_get_create_delete(hubspot_sandbox: HubSpotSandbox) -> None:
    api = hubspot_sandbox.client().crm.properties.core_api
    names = {p.name for p in api.get_all("deals").results}
    assert {"dealstage", "hs_is_closed_won", "deal_currency_code", "cost", "is_renewal"} <= names
    stage = api.get_by_name("deals", "dealstage")
    assert stage.type == "enumeration"
    assert [o.value for o in stage.options][:2] == ["appointmentscheduled", "qualifiedtobuy"]
    created = api.create(
        "deals",
        PropertyCreate(
            name="kpi_win_rate",
            label="Win rate",
            type="number",
            field_type="number",
            group_name="dealinformation",
        ),
    )
    assert created is not None and created.name == "kpi_win_rate"  # 201
    assert created.hubspot_defined is None  # only HubSpot's own properties carry the flag
    with pytest.raises(PropertiesApiException) as exc:
        api.create(
            "deals",
            PropertyCreate(
                name="kpi_win_rate",
                label="x",
                type="number",
                field_type="number",
                group_name="dealinformation",
            ),
        )
    assert exc.value.status == 409
    api.archive("deals", "kpi_win_rate")
    assert "kpi_win_rate" not in {p.name for p in api.get_all("deals").results}
    with pytest.raises(PropertiesApiException) as exc2:
        api.get_by_name("deals", "kpi_win_rate")
    assert exc2.value.status == 404


def test_property_groups(hubspot_sandbox: HubSpotSandbox) -> None:
    api = hubspot_sandbox.client().crm.properties.groups_api
    g = api.create("deals", PropertyGroupCreate(name="kpisync", label="kpisync KPIs"))
    assert g is not None and g.name == "kpisync"
    assert "kpisync" in {x.name for x in api.get_all("deals").results}
    assert api.get_by_name("deals", "kpisync").label == "kpisync KPIs"
    api.archive("deals", "kpisync")
    assert "kpisync" not in {x.name for x in api.get_all("deals").results}


def test_custom_object_schema_and_records(hubspot_sandbox: HubSpotSandbox) -> None:
    client = hubspot_sandbox.client()
    schema = client.crm.schemas.core_api.create(
        ObjectSchemaEgg(
            name="kpi_result",
            labels={"singular": "KPI result", "plural": "KPI results"},
            primary_display_property="metric",
            required_properties=["metric"],
            searchable_properties=["metric"],
            properties=[
                {"name": "metric", "label": "Metric", "type": "string", "fieldType": "text"},
                {"name": "value", "label": "Value", "type": "number", "fieldType": "number"},
                {
                    "name": "key",
                    "label": "Key",
                    "type": "string",
                    "fieldType": "text",
                    "hasUniqueValue": True,
                },
            ],
            associated_objects=["CONTACT"],
        )
    )
    assert schema is not None
    assert schema.object_type_id.startswith("2-")
    assert schema.fully_qualified_name.startswith("p") and schema.fully_qualified_name.endswith(
        "_kpi_result"
    )
    listed = client.crm.schemas.core_api.get_all().results
    assert [s.object_type_id for s in listed] == [schema.object_type_id]
    objects = client.crm.objects.basic_api
    rec = objects.create(
        schema.object_type_id,
        SimplePublicObjectInputForCreate(
            properties={"metric": "win_rate", "value": 0.25, "key": "r1"}
        ),
    )
    assert rec.properties["value"] == "0.25"
    # The fully qualified name addresses the same object type.
    again = objects.get_by_id(
        schema.fully_qualified_name, "r1", id_property="key", properties=["metric"]
    )
    assert again.id == rec.id and again.properties["metric"] == "win_rate"
    s = hubspot_sandbox.session()
    blocked = s.delete(
        f"{hubspot_sandbox.base_url}/crm-object-schemas/v3/schemas/{schema.object_type_id}"
    )
    assert blocked.status_code == 400  # records still exist
    objects.archive(schema.object_type_id, rec.id)
    client.crm.schemas.core_api.archive(schema.object_type_id)
    assert client.crm.schemas.core_api.get_all().results == []


def test_owners_trailing_slash_teams_and_archived(hubspot_sandbox: HubSpotSandbox) -> None:
    api = hubspot_sandbox.client().crm.owners.owners_api
    page = api.get_page(limit=1)
    assert [o.email for o in page.results] == ["anna@example.com"]
    assert page.paging.next.after == "1000002"
    active = api.get_page(limit=100).results
    assert [o.id for o in active] == ["1000001", "1000002"]
    assert active[1].teams[0].id == "5000002" and active[1].teams[0].primary is True
    inactive = api.get_page(archived=True).results
    assert [o.id for o in inactive] == ["1000003"] and inactive[0].archived is True
    assert api.get_page(email="bram@example.com").results[0].id == "1000002"
    assert api.get_by_id("9000001", id_property="userId").id == "1000001"
    with pytest.raises(OwnerNotFound):
        api.get_by_id("42")
    log = [e["path"] for e in hubspot_sandbox.server.requests_log("hubspot")]
    assert "/crm/v3/owners/" in log  # the client's trailing-slash path


def test_teams_users_and_currencies_via_requests(hubspot_sandbox: HubSpotSandbox) -> None:
    s = hubspot_sandbox.session()
    teams = s.get(f"{hubspot_sandbox.base_url}/settings/v3/users/teams").json()["results"]
    assert {(t["id"], t["parentTeamId"]) for t in teams} == {
        ("5000001", None),
        ("5000002", "5000001"),
    }
    assert set(next(t for t in teams if t["id"] == "5000002")["userIds"]) == {"9000002", "9000003"}
    cur = s.get(f"{hubspot_sandbox.base_url}/settings/v3/currencies/company-currency").json()
    assert cur["currencyCode"] == "EUR"
    rates = s.get(f"{hubspot_sandbox.base_url}/settings/v3/currencies/exchange-rates").json()[
        "results"
    ]
    usd = [r for r in rates if r["fromCurrencyCode"] == "USD"]
    assert [r["effectiveAt"] for r in usd] == ["2024-01-01T00:00:00Z", "2024-03-01T00:00:00Z"]
    assert usd[0]["conversionRate"] == pytest.approx(1 / 1.08, abs=1e-6)
    assert all(r["toCurrencyCode"] == "EUR" for r in rates)
    outcomes = s.get(f"{hubspot_sandbox.base_url}/calling/v1/dispositions").json()
    assert {
        "id": "f240bbac-87c9-4f6e-bf70-924b57d47db7",
        "label": "Connected",
        "deleted": False,
    } in outcomes


def test_pipelines_with_string_metadata(hubspot_sandbox: HubSpotSandbox) -> None:
    api = hubspot_sandbox.client().crm.pipelines
    pipes = api.pipelines_api.get_all("deals").results
    assert [p.id for p in pipes] == ["default"]
    won = next(s for s in pipes[0].stages if s.id == "closedwon")
    assert won.label == "Closed Won"
    assert won.metadata == {"isClosed": "true", "probability": "1.0"}
    stage = api.pipeline_stages_api.get_by_id("deals", "default", "presentationscheduled")
    assert stage.metadata["probability"] == "0.6"
    created = api.pipelines_api.create(
        "deals",
        {
            "label": "Renewals",
            "displayOrder": 1,
            "stages": [
                {"label": "Open", "displayOrder": 0, "metadata": {"probability": 0.5}},
                {
                    "label": "Renewed",
                    "displayOrder": 1,
                    "metadata": {"isClosed": True, "probability": 1.0},
                },
            ],
        },
    )
    assert created is not None
    assert created.stages[1].metadata == {"isClosed": "true", "probability": "1.0"}
    assert len(api.pipelines_api.get_all("deals").results) == 2


def test_associations_v4_read_create_batch_and_labels(hubspot_sandbox: HubSpotSandbox) -> None:
    client = hubspot_sandbox.client()
    v4 = client.crm.associations.v4
    page = v4.basic_api.get_page("deals", "300000001", "companies")
    # The client's model declares toObjectId a string and converts HubSpot's integer.
    assert [r.to_object_id for r in page.results] == ["200000001"]
    assert {t.type_id for t in page.results[0].association_types} == {5, 341}  # primary + plain
    calls = v4.basic_api.get_page("calls", "400000001", "deals").results
    assert calls[0].to_object_id == "300000001" and calls[0].association_types[0].type_id == 206
    batch = v4.batch_api.get_page(
        "contacts",
        "companies",
        BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[{"id": "100000001"}, {"id": "100000003"}]
        ),
    )
    assert [r._from.id for r in batch.results] == ["100000001"]
    assert batch.num_errors == 1  # contact 100000003 has no company: a 207 error entry
    made = v4.basic_api.create(
        "contacts",
        "100000003",
        "companies",
        "200000002",
        [AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=279)],
    )
    assert made is not None and made.to_object_id == "200000002"  # 201
    back = v4.basic_api.get_page("companies", "200000002", "contacts").results
    assert [r.to_object_id for r in back] == ["100000003"]
    assert back[0].association_types[0].type_id == 280  # the reverse type id
    created = v4.batch_api.create(
        "deals",
        "contacts",
        BatchInputPublicAssociationMultiPost(
            inputs=[
                {
                    "from": {"id": "300000002"},
                    "to": {"id": "100000002"},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}],
                }
            ]
        ),
    )
    assert created is not None and created.results[0].to_object_id == "100000002"
    v4.basic_api.archive("contacts", "100000003", "companies", "200000002")
    assert v4.basic_api.get_page("companies", "200000002", "contacts").results == []
    labels = (
        hubspot_sandbox.session()
        .get(f"{hubspot_sandbox.base_url}/crm/v4/associations/deals/companies/labels")
        .json()["results"]
    )
    assert {(x["typeId"], x["label"]) for x in labels} == {(341, None), (5, "Primary")}


def test_v3_associations_on_records(hubspot_sandbox: HubSpotSandbox) -> None:
    deal = hubspot_sandbox.client().crm.deals.basic_api.get_by_id(
        "300000001", associations=["companies", "contacts"]
    )
    companies = deal.associations["companies"].results
    assert {(a.id, a.type) for a in companies} == {
        ("200000001", "deal_to_company"),
        ("200000001", "deal_to_company_unlabeled"),
    }
    assert [a.id for a in deal.associations["contacts"].results] == ["100000001"]


def test_property_batch_endpoints_and_update(hubspot_sandbox: HubSpotSandbox) -> None:
    from hubspot.crm.properties import (
        BatchInputPropertyCreate,
        BatchInputPropertyName,
        BatchReadInputPropertyName,
        PropertyUpdate,
    )

    client = hubspot_sandbox.client()
    batch = client.crm.properties.batch_api
    made = batch.create(
        "companies",
        BatchInputPropertyCreate(
            inputs=[
                {
                    "name": "kpi_a",
                    "label": "A",
                    "type": "number",
                    "fieldType": "number",
                    "groupName": "companyinformation",
                },
                {
                    "name": "kpi_b",
                    "label": "B",
                    "type": "string",
                    "fieldType": "text",
                    "groupName": "companyinformation",
                },
            ]
        ),
    )
    assert made is not None and {p.name for p in made.results} == {"kpi_a", "kpi_b"}  # 201
    read = batch.read(
        "companies",
        BatchReadInputPropertyName(archived=False, inputs=[{"name": "kpi_a"}, {"name": "zz"}]),
    )
    assert [p.name for p in read.results] == ["kpi_a"] and read.num_errors == 1  # 207
    updated = client.crm.properties.core_api.update(
        "companies", "kpi_b", PropertyUpdate(label="B renamed")
    )
    assert updated.label == "B renamed"
    batch.archive("companies", BatchInputPropertyName(inputs=[{"name": "kpi_a"}]))
    names = {p.name for p in client.crm.properties.core_api.get_all("companies").results}
    assert "kpi_a" not in names and "kpi_b" in names
    archived = client.crm.properties.core_api.get_all("companies", archived=True).results
    assert [p.name for p in archived] == ["kpi_a"]
