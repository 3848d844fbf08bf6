"""What a KPI writeback does, through hubspot-api-client only: provision a property group and
properties, create the ``kpi_snapshot`` custom object schema, batch-upsert snapshots by a unique
``idProperty`` (``new`` flags), read them back, and cope with 207 partial failures and the
whole-batch 400s HubSpot answers (duplicate ids, non-unique ``idProperty``, too many inputs)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from hubspot.crm.objects import (
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
)
from hubspot.crm.objects.exceptions import ApiException as ObjectsApiException
from hubspot.crm.properties import PropertyCreate, PropertyGroupCreate
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiException
from hubspot.crm.schemas import ObjectSchemaEgg
from hubspot.crm.schemas.exceptions import ApiException as SchemasApiException

if TYPE_CHECKING:
    from sandbox.hubspot.testing import HubSpotSandbox

pytest_plugins = ("sandbox.hubspot.testing",)


def _egg() -> ObjectSchemaEgg:
    return ObjectSchemaEgg(
        name="kpi_snapshot",
        labels={"singular": "KPI snapshot", "plural": "KPI snapshots"},
        primary_display_property="snapshot_key",
        required_properties=["snapshot_key"],
        searchable_properties=["snapshot_key", "kpi"],
        properties=[
            {
                "name": "snapshot_key",
                "label": "Snapshot key",
                "type": "string",
                "fieldType": "text",
                "hasUniqueValue": True,
            },
            {"name": "kpi", "label": "KPI", "type": "string", "fieldType": "text"},
            {"name": "kpi_value", "label": "Value", "type": "number", "fieldType": "number"},
            {"name": "period_start", "label": "Period start", "type": "date", "fieldType": "date"},
            {
                "name": "computed_at",
                "label": "Computed at",
                "type": "datetime",
                "fieldType": "date",
            },
        ],
        associated_objects=["COMPANY"],
    )


@pytest.fixture
def snapshot_type(hubspot_sandbox: HubSpotSandbox) -> Iterator[Any]:
    schema = hubspot_sandbox.client().crm.schemas.core_api.create(_egg())
    assert schema is not None  # 201
    yield schema


def _upsert(key: str, **props: Any) -> dict[str, Any]:
    return {"id": key, "idProperty": "snapshot_key", "properties": props}


def test_property_group_and_properties_for_kpis(hubspot_sandbox: HubSpotSandbox) -> None:
    client = hubspot_sandbox.client()
    groups = client.crm.properties.groups_api
    group = groups.create(
        "companies", PropertyGroupCreate(name="kpisync", label="kpisync KPIs", display_order=3)
    )
    assert group is not None and (group.name, group.display_order) == ("kpisync", 3)  # 201
    core = client.crm.properties.core_api
    made = core.create(
        "companies",
        PropertyCreate(
            name="kpi_net_revenue_retention",
            label="Net revenue retention",
            type="number",
            field_type="number",
            group_name="kpisync",
            description="Written by kpisync",
        ),
    )
    assert made is not None and made.group_name == "kpisync" and made.type == "number"
    assert core.get_by_name("companies", "kpi_net_revenue_retention").label == (
        "Net revenue retention"
    )
    with pytest.raises(PropertiesApiException) as exc:  # a group must exist first
        core.create(
            "companies",
            PropertyCreate(
                name="kpi_orphan", label="x", type="string", field_type="text", group_name="nope"
            ),
        )
    assert exc.value.status == 400
    # A property written to a record comes back as a string.
    from hubspot.crm.companies import SimplePublicObjectInput

    out = client.crm.companies.basic_api.update(
        "200000001", SimplePublicObjectInput(properties={"kpi_net_revenue_retention": 1.125})
    )
    assert out.properties["kpi_net_revenue_retention"] == "1.125"
    with pytest.raises(PropertiesApiException) as exc2:  # a group in use cannot be deleted
        groups.archive("companies", "kpisync")
    assert exc2.value.status in (400, 409)
    core.archive("companies", "kpi_net_revenue_retention")
    groups.archive("companies", "kpisync")
    assert "kpisync" not in {g.name for g in groups.get_all("companies").results}


def test_kpi_snapshot_schema(hubspot_sandbox: HubSpotSandbox, snapshot_type: Any) -> None:
    schemas = hubspot_sandbox.client().crm.schemas.core_api
    assert snapshot_type.object_type_id.startswith("2-")
    assert snapshot_type.fully_qualified_name == "p24681357_kpi_snapshot"
    names = {p.name for p in snapshot_type.properties}
    assert {"snapshot_key", "kpi_value", "hs_object_id", "hs_lastmodifieddate"} <= names
    key = next(p for p in snapshot_type.properties if p.name == "snapshot_key")
    assert key.has_unique_value is True
    assert [a.to_object_type_id for a in snapshot_type.associations] == ["0-2"]
    by_fqn = schemas.get_by_id(snapshot_type.fully_qualified_name)
    assert by_fqn.object_type_id == snapshot_type.object_type_id
    with pytest.raises(SchemasApiException) as exc:
        schemas.create(_egg())
    assert exc.value.status == 409


def test_batch_upsert_by_unique_id_property(
    hubspot_sandbox: HubSpotSandbox, snapshot_type: Any
) -> None:
    client = hubspot_sandbox.client()
    ot = snapshot_type.object_type_id
    batch = client.crm.objects.batch_api
    rows = [
        _upsert(
            f"acme|nrr|2024-0{m}", kpi="nrr", kpi_value=1 + m / 100, period_start=f"2024-0{m}-01"
        )
        for m in (1, 2, 3)
    ]
    first = batch.upsert(ot, BatchInputSimplePublicObjectBatchInputUpsert(inputs=rows))
    assert first is not None and first.status == "COMPLETE"
    assert [r.new for r in first.results] == [True, True, True]
    assert {r.properties["snapshot_key"] for r in first.results} == {i["id"] for i in rows}
    assert {r.properties["kpi_value"] for r in first.results} == {"1.01", "1.02", "1.03"}
    ids = {r.properties["snapshot_key"]: r.id for r in first.results}

    # The same keys again (one value changed) update in place: new=false, same record ids.
    rows[0]["properties"]["kpi_value"] = 0.99
    again = batch.upsert(
        snapshot_type.fully_qualified_name,
        BatchInputSimplePublicObjectBatchInputUpsert(inputs=[*rows, _upsert("acme|nrr|2024-04")]),
    )
    assert sorted(r.new for r in again.results) == [False, False, False, True]
    assert {r.id for r in again.results if not r.new} == set(ids.values())
    fresh = next(r for r in again.results if r.new)
    assert fresh.properties["snapshot_key"] == "acme|nrr|2024-04"

    # Read back by the unique key, in a POST body (no URL-length worries), and by search.
    read = batch.read(
        ot,
        BatchReadInputSimplePublicObjectId(
            id_property="snapshot_key",
            inputs=[{"id": "acme|nrr|2024-01"}, {"id": "acme|nrr|2099-01"}],
            properties=["kpi_value", "period_start"],
            properties_with_history=[],
        ),
    )
    assert read.num_errors == 1  # 207 for the unknown key
    assert read.results[0].properties["kpi_value"] == "0.99"
    assert read.results[0].properties["period_start"] == "2024-01-01"
    found = client.crm.objects.search_api.do_search(
        ot,
        PublicObjectSearchRequest(
            filter_groups=[
                {"filters": [{"propertyName": "kpi_value", "operator": "GTE", "value": "1"}]}
            ],
            sorts=["snapshot_key"],
            properties=["snapshot_key"],
        ),
    )
    assert [r.properties["snapshot_key"] for r in found.results] == [
        "acme|nrr|2024-02",
        "acme|nrr|2024-03",
    ]
    page = client.crm.objects.basic_api.get_page(ot, limit=100, properties=["kpi"])
    assert len(page.results) == 4 and page.paging is None

    # Snapshots hang off companies through the schema's association.
    v4 = client.crm.associations.v4
    v4.basic_api.create_default(ot, ids["acme|nrr|2024-01"], "companies", "200000001")
    linked = v4.basic_api.get_page("companies", "200000001", ot).results
    assert [r.to_object_id for r in linked] == [ids["acme|nrr|2024-01"]]


def test_upsert_partial_failure_is_a_207(
    hubspot_sandbox: HubSpotSandbox, snapshot_type: Any
) -> None:
    r = hubspot_sandbox.session().post(
        f"{hubspot_sandbox.control_url}/faults",
        json={"crm": "hubspot", "kind": "partial_batch_failure", "count": 1, "path": "/batch/"},
    )
    assert r.status_code == 201
    batch = hubspot_sandbox.client().crm.objects.batch_api
    res = batch.upsert(
        snapshot_type.object_type_id,
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[_upsert(f"k{i}", kpi_value=i) for i in range(3)]
        ),
    )
    assert type(res).__name__.endswith("WithErrors") and res.num_errors == 1  # 207
    assert res.errors[0].context == {"ids": ["k0"]}
    assert sorted(r.properties["snapshot_key"] for r in res.results) == ["k1", "k2"]
    # Retrying just the failed input succeeds.
    retry = batch.upsert(
        snapshot_type.object_type_id,
        BatchInputSimplePublicObjectBatchInputUpsert(inputs=[_upsert("k0", kpi_value=0)]),
    )
    assert [r.new for r in retry.results] == [True]


def _rejected(call: Any) -> dict[str, Any]:
    with pytest.raises(ObjectsApiException) as exc:
        call()
    assert exc.value.status == 400
    body: dict[str, Any] = json.loads(exc.value.body)
    assert body["category"] == "VALIDATION_ERROR" and body["correlationId"]
    return body


def test_whole_batch_rejections(hubspot_sandbox: HubSpotSandbox, snapshot_type: Any) -> None:
    batch = hubspot_sandbox.client().crm.objects.batch_api
    ot = snapshot_type.object_type_id

    def upsert(inputs: list[dict[str, Any]]) -> Any:
        return batch.upsert(ot, BatchInputSimplePublicObjectBatchInputUpsert(inputs=inputs))

    dup = _rejected(lambda: upsert([_upsert("same"), _upsert("other"), _upsert("same")]))
    assert dup["message"] == "Duplicate IDs found in batch input: [same]. IDs must be unique"
    assert dup["context"] == {"ids": ["same"]}
    non_unique = _rejected(
        lambda: upsert([{"id": "1.5", "idProperty": "kpi_value", "properties": {}}])
    )
    assert non_unique["message"] == (
        f"Unable to perform update/upsert by non-unique {ot} property kpi_value"
    )
    too_many = _rejected(lambda: upsert([_upsert(f"k{i}") for i in range(101)]))
    assert "101" in too_many["message"]
    invalid = _rejected(lambda: upsert([_upsert("k1", kpi_value="lots")]))
    assert invalid["message"].startswith("Property values were not valid")
    # Nothing was written by any rejected batch.
    assert (
        batch.read(
            ot,
            BatchReadInputSimplePublicObjectId(
                id_property="snapshot_key",
                inputs=[{"id": "same"}, {"id": "k1"}],
                properties=[],
                properties_with_history=[],
            ),
        ).results
        == []
    )


def test_record_ids_are_not_an_id_property(hubspot_sandbox: HubSpotSandbox) -> None:
    from hubspot.crm.deals import BatchInputSimplePublicObjectBatchInput
    from hubspot.crm.deals.exceptions import ApiException as DealsApiException

    deals = hubspot_sandbox.client().crm.deals.batch_api
    with pytest.raises(DealsApiException) as exc:
        deals.update(
            BatchInputSimplePublicObjectBatchInput(
                inputs=[
                    {"id": "300000001", "idProperty": "hs_object_id", "properties": {"amount": 1}}
                ]
            )
        )
    assert json.loads(exc.value.body)["message"] == (
        "Unable to perform update/upsert by non-unique 0-3 property hs_object_id"
    )
    with pytest.raises(DealsApiException) as exc2:
        deals.update(
            BatchInputSimplePublicObjectBatchInput(
                inputs=[
                    {"id": "300000001", "properties": {"amount": 1}},
                    {"id": "300000001", "properties": {"amount": 2}},
                ]
            )
        )
    assert json.loads(exc2.value.body)["context"] == {"ids": ["300000001"]}
