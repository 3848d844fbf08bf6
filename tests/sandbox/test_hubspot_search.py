"""CRM search through hubspot-api-client: every operator, both sort forms, limits, the search
per-second limit, and search over records edited after seeding (the overlay)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from hubspot.crm.contacts import PublicObjectSearchRequest as ContactSearch
from hubspot.crm.deals import PublicObjectSearchRequest
from hubspot.crm.deals import SimplePublicObjectInput as DealInput
from hubspot.crm.deals.exceptions import ApiException as DealsApiException

if TYPE_CHECKING:
    from sandbox.hubspot.testing import HubSpotSandbox

pytest_plugins = ("sandbox.hubspot.testing",)


def _search(sb: HubSpotSandbox, filters: list[dict[str, Any]], **kw: Any) -> list[str]:
    req = PublicObjectSearchRequest(filter_groups=[{"filters": filters}], limit=100, **kw)
    res = sb.client().crm.deals.search_api.do_search(req)
    assert res.total == len(res.results)
    return [r.id for r in res.results]


D1, D2, D3 = "300000001", "300000002", "300000003"


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"propertyName": "amount", "operator": "EQ", "value": "5000"}, [D2]),
        ({"propertyName": "dealstage", "operator": "EQ", "value": "CLOSEDWON"}, [D1]),
        ({"propertyName": "amount", "operator": "NEQ", "value": "5000"}, [D1, D3]),
        ({"propertyName": "amount", "operator": "LT", "value": "5000"}, [D3]),
        ({"propertyName": "amount", "operator": "LTE", "value": "5000"}, [D2, D3]),
        ({"propertyName": "amount", "operator": "GT", "value": "5000"}, [D1]),
        ({"propertyName": "amount", "operator": "GTE", "value": "5000"}, [D1, D2]),
        ({"propertyName": "amount", "operator": "BETWEEN", "value": "800", "highValue": "5000"},
         [D2, D3]),
        ({"propertyName": "deal_currency_code", "operator": "IN", "values": ["USD", "gbp"]},
         [D2, D3]),
        ({"propertyName": "deal_currency_code", "operator": "NOT_IN", "values": ["eur"]},
         [D2, D3]),
        ({"propertyName": "competitor", "operator": "HAS_PROPERTY"}, [D1]),
        ({"propertyName": "competitor", "operator": "NOT_HAS_PROPERTY"}, [D2, D3]),
        ({"propertyName": "competitor", "operator": "CONTAINS_TOKEN", "value": "acme"}, [D1]),
        # IN on a string property wants lower-case values (search guide).
        ({"propertyName": "competitor", "operator": "IN", "values": ["acme crm"]}, [D1]),
        ({"propertyName": "competitor", "operator": "IN", "values": ["Acme CRM"]}, []),
        ({"propertyName": "competitor", "operator": "NOT_CONTAINS_TOKEN", "value": "acme"},
         [D2, D3]),
        # Datetimes: epoch milliseconds or ISO text.
        ({"propertyName": "createdate", "operator": "GTE", "value": "1706832000000"}, [D2, D3]),
        ({"propertyName": "closedate", "operator": "LT", "value": "2024-04-01T00:00:00Z"}, [D1]),
        ({"propertyName": "hs_object_id", "operator": "GT", "value": D1}, [D2, D3]),
    ],
)  # fmt: skip
def test_every_operator(
    hubspot_sandbox: HubSpotSandbox, flt: dict[str, Any], expected: list[str]
) -> None:
    assert _search(hubspot_sandbox, [flt]) == expected


def test_groups_are_ored_and_filters_anded(hubspot_sandbox: HubSpotSandbox) -> None:
    req = PublicObjectSearchRequest(
        filter_groups=[
            {"filters": [{"propertyName": "amount", "operator": "GT", "value": "100"},
                         {"propertyName": "deal_currency_code", "operator": "EQ", "value": "GBP"}]},
            {"filters": [{"propertyName": "dealstage", "operator": "EQ", "value": "closedwon"}]},
        ],
        limit=10,
    )  # fmt: skip
    res = hubspot_sandbox.client().crm.deals.search_api.do_search(req)
    assert [r.id for r in res.results] == [D1, D3]


def test_both_sort_forms_and_paging_by_offset(hubspot_sandbox: HubSpotSandbox) -> None:
    client = hubspot_sandbox.client()
    by_obj = client.crm.deals.search_api.do_search(
        PublicObjectSearchRequest(
            sorts=[{"propertyName": "amount", "direction": "DESCENDING"}], limit=2,
            properties=["amount"],
        )
    )  # fmt: skip
    assert [r.properties["amount"] for r in by_obj.results] == ["12000", "5000"]
    assert by_obj.total == 3 and by_obj.paging.next.after == "2"
    nxt = client.crm.deals.search_api.do_search(
        PublicObjectSearchRequest(sorts=["-amount"], limit=2, after=by_obj.paging.next.after)
    )
    assert [r.id for r in nxt.results] == [D3] and nxt.paging is None
    asc = client.crm.deals.search_api.do_search(PublicObjectSearchRequest(sorts=["amount"]))
    assert [r.id for r in asc.results] == [D3, D2, D1]
    # Contacts return their default properties on search too.
    contacts = client.crm.contacts.search_api.do_search(ContactSearch(limit=1))
    assert set(contacts.results[0].properties) == {
        "createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname",
    }  # fmt: skip


def test_free_text_query(hubspot_sandbox: HubSpotSandbox) -> None:
    from hubspot.crm.companies import PublicObjectSearchRequest as CompanySearch

    res = hubspot_sandbox.client().crm.companies.search_api.do_search(CompanySearch(query="nova"))
    assert [r.properties["name"] for r in res.results] == ["Nova Foods GmbH"]


def test_limits_are_enforced(hubspot_sandbox: HubSpotSandbox) -> None:
    api = hubspot_sandbox.client().crm.deals.search_api
    for req in (
        PublicObjectSearchRequest(limit=201),
        PublicObjectSearchRequest(filter_groups=[{"filters": []}] * 6),
        PublicObjectSearchRequest(
            filter_groups=[
                {"filters": [{"propertyName": "amount", "operator": "HAS_PROPERTY"}] * 11}
            ]
        ),
        PublicObjectSearchRequest(sorts=["amount", "createdate"]),
        PublicObjectSearchRequest(
            filter_groups=[{"filters": [{"propertyName": "bogus", "operator": "EQ", "value": "1"}]}]
        ),
        PublicObjectSearchRequest(after="10000"),
    ):
        with pytest.raises(DealsApiException) as exc:
            api.do_search(req)
        assert exc.value.status == 400
        assert json.loads(exc.value.body)["category"] == "VALIDATION_ERROR"


def test_search_sees_records_edited_after_seeding(hubspot_sandbox: HubSpotSandbox) -> None:
    client = hubspot_sandbox.client()
    client.crm.deals.basic_api.update(D3, DealInput(properties={"amount": "7000"}))
    flt = [{"propertyName": "amount", "operator": "GT", "value": "6000"}]
    assert _search(hubspot_sandbox, flt) == [D1, D3]
    got = client.crm.deals.search_api.do_search(
        PublicObjectSearchRequest(
            filter_groups=[{"filters": flt}],
            sorts=[{"propertyName": "hs_lastmodifieddate", "direction": "DESCENDING"}],
        )
    )
    assert got.results[0].id == D3  # just modified, so newest


def test_search_has_its_own_per_second_limit_and_no_rate_headers(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    hubspot_sandbox.app.configure({"tier": "professional", "reset_limits": True})
    s = hubspot_sandbox.session()
    url = f"{hubspot_sandbox.base_url}/crm/v3/objects/deals/search"
    statuses = [s.post(url, json={"limit": 1}) for _ in range(6)]
    assert [r.status_code for r in statuses[:5]] == [200] * 5
    assert not any(k.lower().startswith("x-hubspot-ratelimit") for k in statuses[0].headers)
    limited = statuses[5]
    assert limited.status_code == 429
    body = limited.json()
    assert body["errorType"] == "RATE_LIMIT" and body["policyName"] == "SECONDLY"
    assert int(limited.headers["Retry-After"]) >= 1
    # Other endpoints are unaffected by the search limit.
    assert s.get(f"{hubspot_sandbox.base_url}/crm/v3/objects/deals").status_code == 200


def test_search_by_association(hubspot_sandbox: HubSpotSandbox) -> None:
    flt = [{"propertyName": "associations.company", "operator": "EQ", "value": "200000001"}]
    assert _search(hubspot_sandbox, flt) == [D1, D3]
    contacts = hubspot_sandbox.client().crm.contacts.search_api.do_search(
        ContactSearch(filter_groups=[{"filters": flt}])
    )
    assert [c.id for c in contacts.results] == ["100000001"]
