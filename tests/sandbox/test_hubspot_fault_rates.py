"""Control-plane faults given **by rate** (seeded, so runs repeat) against HubSpot, seen through
hubspot-api-client; and a dropped connection as the client itself experiences it.  The by-count
forms are in ``test_hubspot_faults.py``."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import pytest
from hubspot.crm.deals import (
    BatchInputSimplePublicObjectBatchInputForCreate,
    PublicObjectSearchRequest,
)
from hubspot.crm.deals.exceptions import ApiException, ServiceException, UnauthorizedException
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.util.retry import Retry

if TYPE_CHECKING:
    from sandbox.hubspot.testing import HubSpotSandbox

pytest_plugins = ("sandbox.hubspot.testing",)


def _fault(sb: HubSpotSandbox, **rule: Any) -> int:
    r = sb.session().post(f"{sb.control_url}/faults", json={"crm": "hubspot", **rule})
    assert r.status_code == 201, r.text
    rule_id: int = r.json()["id"]
    return rule_id


def _fired(sb: HubSpotSandbox, rule_id: int) -> int:
    rules = sb.session().get(f"{sb.control_url}/faults").json()
    return int(next(r["fired"] for r in rules if r["id"] == rule_id))


def _clear(sb: HubSpotSandbox, rule_id: int) -> None:
    r = sb.session().delete(f"{sb.control_url}/faults", params={"id": rule_id})
    assert r.json() == {"removed": 1}


def test_5xx_by_rate_hits_some_calls_with_the_listed_statuses(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    rid = _fault(hubspot_sandbox, kind="http_5xx", rate=0.4, statuses=[502, 504], seed=11)
    api = hubspot_sandbox.client(retry=Retry(total=0)).crm.deals.basic_api
    outcomes: list[int] = []
    for _ in range(25):
        try:
            api.get_page(limit=1)
            outcomes.append(200)
        except ServiceException as exc:
            outcomes.append(exc.status)
    failures = [s for s in outcomes if s != 200]
    assert 0 < len(failures) < 25 and set(failures) <= {502, 504}
    assert _fired(hubspot_sandbox, rid) == len(failures)
    _clear(hubspot_sandbox, rid)
    assert all(api.get_page(limit=1).results for _ in range(3))


def test_latency_by_rate_on_one_path(hubspot_sandbox: HubSpotSandbox) -> None:
    rid = _fault(hubspot_sandbox, kind="latency_ms", rate=1.0, latency_ms=150, path="/search$")
    client = hubspot_sandbox.client()
    t0 = time.perf_counter()
    for _ in range(2):
        client.crm.deals.search_api.do_search(PublicObjectSearchRequest(limit=1))
    assert time.perf_counter() - t0 >= 0.3
    client.crm.deals.basic_api.get_page(limit=1)  # other paths are not slowed
    log = hubspot_sandbox.server.requests_log("hubspot")[-3:]
    assert [e["faults"] for e in log] == [["latency_ms=150"], ["latency_ms=150"], []]
    assert _fired(hubspot_sandbox, rid) == 2


def test_rate_limit_storm_by_rate(hubspot_sandbox: HubSpotSandbox) -> None:
    rid = _fault(hubspot_sandbox, kind="rate_limit_storm", rate=0.5, seed=3, method="GET")
    api = hubspot_sandbox.client(retry=Retry(total=0)).crm.deals.basic_api
    limited = 0
    for _ in range(12):
        try:
            api.get_page(limit=1)
        except ApiException as exc:
            assert exc.status == 429 and exc.headers["Retry-After"] == "1"
            body = json.loads(exc.body)
            assert body["policyName"] == "TEN_SECONDLY_ROLLING"
            assert body["errorType"] == "RATE_LIMIT"
            limited += 1
    assert 0 < limited < 12 and _fired(hubspot_sandbox, rid) == limited
    # POSTs are not matched by this rule (method filter).
    search = hubspot_sandbox.client(retry=Retry(total=0)).crm.deals.search_api
    assert search.do_search(PublicObjectSearchRequest(limit=1)).total == 3


def test_expired_session_by_rate_with_a_private_app_token(hubspot_sandbox: HubSpotSandbox) -> None:
    rid = _fault(hubspot_sandbox, kind="expired_session", rate=1.0)
    api = hubspot_sandbox.client().crm.deals.basic_api
    for _ in range(2):
        with pytest.raises(UnauthorizedException) as exc:
            api.get_page(limit=1)
        assert json.loads(exc.value.body)["category"] == "EXPIRED_AUTHENTICATION"
    _clear(hubspot_sandbox, rid)
    assert api.get_page(limit=1).results  # the private-app token itself was never revoked


def test_dropped_connection_through_the_client(hubspot_sandbox: HubSpotSandbox) -> None:
    sb = hubspot_sandbox
    _fault(sb, kind="drop_connection", count=1)
    # Half a body then a closed socket.  urllib3's default Retry re-sends a GET after a broken
    # read, so the client's caller never sees it; the request log shows both attempts.
    api = sb.client().crm.deals.basic_api
    page = api.get_page(limit=100, properties=["amount", "dealname", "closedate"])
    assert [d.id for d in page.results] == ["300000001", "300000002", "300000003"]
    tries = [e["faults"] for e in sb.server.requests_log("hubspot")[-2:]]
    assert tries == [["drop_connection"], []]
    # A POST (search, batch) is not re-sent: the connector must handle the broken read.
    _fault(sb, kind="drop_connection", count=1)
    with pytest.raises(Urllib3Error):
        sb.client().crm.deals.search_api.do_search(PublicObjectSearchRequest(limit=100))
    # By rate, with retries off, GETs break too.
    rid = _fault(sb, kind="drop_connection", rate=0.5, seed=5)
    bare = sb.client(retry=Retry(total=0)).crm.deals.basic_api
    broken = 0
    for _ in range(10):
        try:
            bare.get_page(limit=100)
        except Urllib3Error:
            broken += 1
    assert 0 < broken < 10 and _fired(sb, rid) == broken


@pytest.mark.parametrize(
    ("kind", "category"),
    [("lock_error", "CONFLICT"), ("partial_batch_failure", "VALIDATION_ERROR")],
)
def test_record_faults_by_rate_in_a_batch(
    hubspot_sandbox: HubSpotSandbox, kind: str, category: str
) -> None:
    rid = _fault(hubspot_sandbox, kind=kind, rate=0.3, seed=9)
    res = hubspot_sandbox.client().crm.deals.batch_api.create(
        BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[{"properties": {"dealname": f"R{i}", "amount": str(i)}} for i in range(40)]
        )
    )
    failed = _fired(hubspot_sandbox, rid)
    assert 0 < failed < 40
    assert res.num_errors == failed and len(res.results) == 40 - failed  # 207
    assert {e.category for e in res.errors} == {category}
    assert all(len(e.context["ids"]) == 1 for e in res.errors)
    names = {r.properties["dealname"] for r in res.results}
    assert len(names) == 40 - failed and names <= {f"R{i}" for i in range(40)}
