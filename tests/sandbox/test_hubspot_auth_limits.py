"""Authentication (private-app tokens, OAuth token endpoint with refresh), rate limits by portal
tier with HubSpot's headers and 429 bodies, and the 414 for over-long URLs."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from hubspot.crm.deals.exceptions import ApiException as DealsApiException
from hubspot.crm.deals.exceptions import UnauthorizedException
from hubspot.oauth.exceptions import ApiException as OAuthApiException
from urllib3.util.retry import Retry

if TYPE_CHECKING:
    from sandbox.hubspot.testing import HubSpotSandbox

pytest_plugins = ("sandbox.hubspot.testing",)


def test_unknown_or_missing_token_is_401_with_hubspot_body(hubspot_sandbox: HubSpotSandbox) -> None:
    with pytest.raises(UnauthorizedException) as exc:
        hubspot_sandbox.client(access_token="pat-na1-wrong").crm.deals.basic_api.get_page()
    body = json.loads(exc.value.body)
    assert body["status"] == "error" and body["category"] == "INVALID_AUTHENTICATION"
    assert body["message"].startswith("Authentication credentials not found.")
    assert body["correlationId"]
    s = hubspot_sandbox.session()
    del s.headers["Authorization"]
    assert s.get(f"{hubspot_sandbox.base_url}/crm/v3/objects/deals").status_code == 401


def test_oauth_refresh_and_authorization_code_grants(hubspot_sandbox: HubSpotSandbox) -> None:
    info = hubspot_sandbox.app.connection_info()
    client = hubspot_sandbox.client()
    tokens = client.oauth.tokens_api.create(
        grant_type="refresh_token",
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        refresh_token=info["refresh_token"],
    )
    assert tokens.token_type == "bearer" and tokens.expires_in == 1800
    oauth_client = hubspot_sandbox.client(access_token=tokens.access_token)
    assert oauth_client.crm.deals.basic_api.get_page(limit=1).results
    meta = client.oauth.access_tokens_api.get(tokens.access_token)
    assert meta.token_type == "access" and 0 < meta.expires_in <= 1800
    # OAuth calls get no daily headers (usage guidelines); private-app calls do.
    r = hubspot_sandbox.session(tokens.access_token).get(
        f"{hubspot_sandbox.base_url}/crm/v3/objects/deals"
    )
    assert "X-HubSpot-RateLimit-Max" in r.headers
    assert "X-HubSpot-RateLimit-Daily" not in r.headers
    code = client.oauth.tokens_api.create(
        grant_type="authorization_code",
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        code=info["authorization_code"],
        redirect_uri=info["redirect_uri"],
    )
    assert code.refresh_token != info["refresh_token"]
    with pytest.raises(OAuthApiException) as exc:  # a code is good for one exchange only
        client.oauth.tokens_api.create(
            grant_type="authorization_code",
            client_id=info["client_id"],
            client_secret=info["client_secret"],
            code=info["authorization_code"],
            redirect_uri=info["redirect_uri"],
        )
    assert exc.value.status == 400 and json.loads(exc.value.body)["status"] == "BAD_AUTH_CODE"
    with pytest.raises(OAuthApiException) as exc2:
        client.oauth.tokens_api.create(
            grant_type="refresh_token",
            client_id=info["client_id"],
            client_secret=info["client_secret"],
            refresh_token="nope",
        )
    assert json.loads(exc2.value.body)["status"] == "BAD_REFRESH_TOKEN"


def test_rate_limit_headers_follow_the_tier(hubspot_sandbox: HubSpotSandbox) -> None:
    hubspot_sandbox.app.configure({"tier": "professional", "reset_limits": True})
    s = hubspot_sandbox.session()
    first = s.get(f"{hubspot_sandbox.base_url}/crm/v3/objects/contacts")
    second = s.get(f"{hubspot_sandbox.base_url}/crm/v3/objects/contacts")
    h = second.headers
    assert h["X-HubSpot-RateLimit-Max"] == "190"
    assert h["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert (
        int(first.headers["X-HubSpot-RateLimit-Remaining"])
        - int(h["X-HubSpot-RateLimit-Remaining"])
        == 1
    )
    assert h["X-HubSpot-RateLimit-Daily"] == "625000"
    assert h["X-HubSpot-RateLimit-Daily-Remaining"] == "624998"
    assert "X-HubSpot-RateLimit-Secondly" in h


def test_starter_ten_second_budget_gives_429_with_retry_after(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    hubspot_sandbox.app.configure({"tier": "starter", "reset_limits": True})
    api = hubspot_sandbox.client().crm.deals.basic_api
    for _ in range(100):
        api.get_page(limit=1)
    # urllib3's default Retry would sleep Retry-After and retry this GET by itself (429 is one of
    # its Retry-After statuses); switch that off to see the 429.
    no_retry = hubspot_sandbox.client(retry=Retry(total=0)).crm.deals.basic_api
    with pytest.raises(DealsApiException) as exc:
        no_retry.get_page(limit=1)
    assert exc.value.status == 429
    assert 1 <= int(exc.value.headers["Retry-After"]) <= 10
    assert exc.value.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    body = json.loads(exc.value.body)
    assert body["errorType"] == "RATE_LIMIT"
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert body["correlationId"]


def test_daily_budget_exhausted(hubspot_sandbox: HubSpotSandbox) -> None:
    hubspot_sandbox.app.configure({"tier": "starter", "daily": 3, "reset_limits": True})
    s = hubspot_sandbox.session()
    codes = [
        s.get(f"{hubspot_sandbox.base_url}/crm/v3/objects/deals").status_code for _ in range(4)
    ]
    assert codes == [200, 200, 200, 429]
    last = s.get(f"{hubspot_sandbox.base_url}/crm/v3/objects/deals")
    assert last.json()["policyName"] == "DAILY"
    assert int(last.headers["Retry-After"]) > 0


def test_control_plane_config_switches_tier(hubspot_sandbox: HubSpotSandbox) -> None:
    r = hubspot_sandbox.session().post(
        f"{hubspot_sandbox.control_url}/config", json={"tier": "starter"}
    )
    assert r.status_code == 200 and r.json()["limits"]["per_10s"] == 100
    h = hubspot_sandbox.session().get(f"{hubspot_sandbox.base_url}/crm/v3/objects/deals").headers
    assert h["X-HubSpot-RateLimit-Max"] == "100" and h["X-HubSpot-RateLimit-Daily"] == "250000"


def test_over_long_url_is_414(hubspot_sandbox: HubSpotSandbox) -> None:
    props = [f"custom_property_number_{i}" for i in range(800)]  # ~20k characters
    with pytest.raises(DealsApiException) as exc:
        hubspot_sandbox.client().crm.deals.basic_api.get_page(properties=props)
    assert exc.value.status == 414
    # The same list in a POST body (search or batch read) is fine: what connectors should do.
    r = hubspot_sandbox.session().post(
        f"{hubspot_sandbox.base_url}/crm/v3/objects/deals/search",
        json={"properties": props, "limit": 1},
    )
    assert r.status_code == 200
