"""Each fault of the control plane against HubSpot, plus record edits/deletes as a CRM user
would make them, the request log, counts and reset."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import pytest
import requests
from hubspot.crm.deals import (
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    PublicObjectSearchRequest,
)
from hubspot.crm.deals.exceptions import ApiException as DealsApiException
from hubspot.crm.deals.exceptions import NotFoundException, ServiceException, UnauthorizedException
from urllib3.util.retry import Retry

if TYPE_CHECKING:
    from sandbox.hubspot.testing import HubSpotSandbox

pytest_plugins = ("sandbox.hubspot.testing",)


def _fault(sb: HubSpotSandbox, **rule: Any) -> None:
    r = sb.session().post(f"{sb.control_url}/faults", json={"crm": "hubspot", **rule})
    assert r.status_code == 201, r.text


def test_latency(hubspot_sandbox: HubSpotSandbox) -> None:
    _fault(hubspot_sandbox, kind="latency_ms", count=1, latency_ms=300)
    api = hubspot_sandbox.client().crm.deals.basic_api
    t0 = time.perf_counter()
    api.get_page(limit=1)
    slow = time.perf_counter() - t0
    t0 = time.perf_counter()
    api.get_page(limit=1)
    assert slow >= 0.3 > time.perf_counter() - t0


def test_http_5xx_then_recovery(hubspot_sandbox: HubSpotSandbox) -> None:
    _fault(hubspot_sandbox, kind="http_5xx", count=1, statuses=[503])
    api = hubspot_sandbox.client().crm.deals.basic_api
    with pytest.raises(ServiceException) as exc:
        api.get_page(limit=1)
    assert exc.value.status == 503
    assert api.get_page(limit=1).results


def test_rate_limit_storm_is_a_429_the_client_can_retry(hubspot_sandbox: HubSpotSandbox) -> None:
    _fault(hubspot_sandbox, kind="rate_limit_storm", count=1, path="/search")
    with pytest.raises(DealsApiException) as exc:
        hubspot_sandbox.client().crm.deals.search_api.do_search(PublicObjectSearchRequest(limit=1))
    assert exc.value.status == 429
    body = json.loads(exc.value.body)
    assert body["policyName"] == "SECONDLY" and exc.value.headers["Retry-After"] == "1"
    # urllib3 retries a POST only with allowed_methods=None; it honours Retry-After
    # (HubSpot/hubspot-api-python#117).
    _fault(hubspot_sandbox, kind="rate_limit_storm", count=1)
    retrying = hubspot_sandbox.client(
        retry=Retry(total=3, status_forcelist=(429,), allowed_methods=None, backoff_factor=0)
    )
    t0 = time.perf_counter()
    res = retrying.crm.deals.search_api.do_search(PublicObjectSearchRequest(limit=1))
    assert res.total == 3 and time.perf_counter() - t0 >= 0.9


def test_expired_session_oauth_token_must_be_refreshed(hubspot_sandbox: HubSpotSandbox) -> None:
    info = hubspot_sandbox.app.connection_info()
    client = hubspot_sandbox.client()
    token = client.oauth.tokens_api.create(
        grant_type="refresh_token",
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        refresh_token=info["refresh_token"],
    ).access_token
    _fault(hubspot_sandbox, kind="expired_session", count=1)
    oauth = hubspot_sandbox.client(access_token=token).crm.deals.basic_api
    for _ in range(2):  # the token stays expired until the client refreshes it
        with pytest.raises(UnauthorizedException) as exc:
            oauth.get_page(limit=1)
        assert json.loads(exc.value.body)["category"] == "EXPIRED_AUTHENTICATION"
    fresh = client.oauth.tokens_api.create(
        grant_type="refresh_token",
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        refresh_token=info["refresh_token"],
    ).access_token
    assert hubspot_sandbox.client(access_token=fresh).crm.deals.basic_api.get_page(limit=1).results


def test_expired_session_with_private_app_token_is_one_401(hubspot_sandbox: HubSpotSandbox) -> None:
    _fault(hubspot_sandbox, kind="expired_session", count=1)
    api = hubspot_sandbox.client().crm.deals.basic_api
    with pytest.raises(UnauthorizedException):
        api.get_page(limit=1)
    assert api.get_page(limit=1).results  # private-app tokens cannot be refreshed, so it recovers


def test_dropped_connection(hubspot_sandbox: HubSpotSandbox) -> None:
    _fault(hubspot_sandbox, kind="drop_connection", count=1)
    s = hubspot_sandbox.session()
    with pytest.raises(requests.exceptions.RequestException):
        s.get(f"{hubspot_sandbox.base_url}/crm/v3/objects/deals", params={"limit": 100}).json()
    assert s.get(f"{hubspot_sandbox.base_url}/crm/v3/objects/deals").status_code == 200


def test_lock_error_fails_one_record_of_a_batch(hubspot_sandbox: HubSpotSandbox) -> None:
    _fault(hubspot_sandbox, kind="lock_error", count=1)
    res = hubspot_sandbox.client().crm.deals.batch_api.update(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[
                {"id": "300000001", "properties": {"amount": "1"}},
                {"id": "300000002", "properties": {"amount": "2"}},
            ]
        )
    )
    assert res.num_errors == 1 and res.errors[0].category == "CONFLICT"
    assert res.errors[0].context == {"ids": ["300000001"]}
    assert [r.id for r in res.results] == ["300000002"]


def test_partial_batch_failure_on_create(hubspot_sandbox: HubSpotSandbox) -> None:
    _fault(hubspot_sandbox, kind="partial_batch_failure", count=2)
    res = hubspot_sandbox.client().crm.deals.batch_api.create(
        BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[{"properties": {"dealname": f"P{i}"}} for i in range(5)]
        )
    )
    assert res.num_errors == 2 and len(res.results) == 3
    assert {e.category for e in res.errors} == {"VALIDATION_ERROR"}


def test_edit_and_delete_as_a_crm_user_then_reset(hubspot_sandbox: HubSpotSandbox) -> None:
    s = hubspot_sandbox.session()
    before_ms = int(time.time() * 1000) - 1000
    r = s.post(
        f"{hubspot_sandbox.control_url}/records/deals/300000002?crm=hubspot", json={"amount": 777}
    )
    assert r.status_code == 200 and r.json()["properties"]["amount"] == "777"
    api = hubspot_sandbox.client().crm.deals
    # An incremental sync finds it by its modification date.
    res = api.search_api.do_search(
        PublicObjectSearchRequest(
            filter_groups=[
                {
                    "filters": [
                        {
                            "propertyName": "hs_lastmodifieddate",
                            "operator": "GTE",
                            "value": str(before_ms),
                        }
                    ]
                }
            ]
        )
    )
    assert [d.id for d in res.results] == ["300000002"]
    # Canonical table names work too.
    assert (
        s.delete(f"{hubspot_sandbox.control_url}/records/opportunities/300000003").status_code
        == 200
    )
    with pytest.raises(NotFoundException):
        api.basic_api.get_by_id("300000003")
    assert [d.id for d in api.basic_api.get_page(archived=True).results] == ["300000003"]
    assert s.post(f"{hubspot_sandbox.control_url}/records/deals/1", json={}).status_code == 404
    bad = s.post(f"{hubspot_sandbox.control_url}/records/deals/300000001", json={"nope": 1})
    assert bad.status_code == 400
    assert s.post(f"{hubspot_sandbox.control_url}/reset").status_code == 200
    assert api.basic_api.get_by_id("300000002", properties=["amount"]).properties["amount"] == (
        "5000"
    )
    assert api.basic_api.get_by_id("300000003").id == "300000003"


def test_request_log_and_counts(hubspot_sandbox: HubSpotSandbox) -> None:
    s = hubspot_sandbox.session()
    s.delete(f"{hubspot_sandbox.control_url}/requests")
    hubspot_sandbox.client().crm.deals.basic_api.get_page(limit=1)
    hubspot_sandbox.client().crm.deals.basic_api.get_by_id("300000001")
    counts = s.get(f"{hubspot_sandbox.control_url}/counts").json()["hubspot"]
    assert counts["GET /crm/v3/objects/{object_type}"] == 1
    assert counts["GET /crm/v3/objects/{object_type}/{object_id}"] == 1
    log = s.get(f"{hubspot_sandbox.control_url}/requests", params={"crm": "hubspot"}).json()
    assert [e["status"] for e in log[-2:]] == [200, 200]
