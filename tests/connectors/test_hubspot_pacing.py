"""HubSpot pacing follows the portal's advertised limits (X-HubSpot-RateLimit-* headers), under an
optional cap from the settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.http import RetryPolicy, WindowLimiter
from connectors.hubspot_http import HubSpotCredentials, HubSpotHttp, Limits
from connectors.sources import open_source
from connectors.store import Store
from service.settings import SettingsError, parse_settings
from tests.connectors.test_hubspot_support import Portal, fresh_portal, portal

__all__ = ["fresh_portal", "portal"]  # fixtures


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_the_window_limiter_never_lets_more_than_the_limit_into_any_window() -> None:
    clock = FakeClock()
    window = WindowLimiter(3, 10.0, clock=clock)
    assert [window.delay() for _ in range(3)] == [0.0, 0.0, 0.0]
    clock.now += 4.0
    assert window.delay() == pytest.approx(6.0)  # the first call leaves the window at +10 s
    clock.now += 6.0
    assert window.delay() == 0.0
    window.configure(5, 10.0)  # a larger limit applies at once
    assert window.delay() == 0.0
    window.hold(2.5)
    assert window.delay() == pytest.approx(2.5)


def _http(p: Portal, **limits: int) -> HubSpotHttp:
    return HubSpotHttp(
        HubSpotCredentials(access_token=p.token), base_url=p.base_url,
        ca_bundle=p.server.ca_bundle,
        limits=Limits(retry=RetryPolicy(attempts=2, base_s=0.01, cap_s=0.02), **limits),
    )  # fmt: skip


@pytest.mark.parametrize(("tier", "per_10s"), [("starter", 100), ("professional", 190)])
def test_the_pace_follows_the_portal_tier(fresh_portal: Portal, tier: str, per_10s: int) -> None:
    fresh_portal.app.configure({"tier": tier, "reset_limits": True})
    http = _http(fresh_portal)
    assert http.window.limit == 90  # before the portal has said anything
    http.call("crm.objects.basic_api.get_page", "deals", obj="deals", limit=1)
    # The advertised limit, less a 5 % margin for windows not aligned to the millisecond.
    assert http.window.limit == per_10s - per_10s // 20
    assert http.window.window_s == 10.0


def test_a_configured_cap_holds_below_what_the_portal_allows(fresh_portal: Portal) -> None:
    fresh_portal.app.configure({"tier": "professional", "reset_limits": True})
    http = _http(fresh_portal, max_requests_per_10s=40)
    assert http.window.limit == 40
    http.call("crm.objects.basic_api.get_page", "deals", obj="deals", limit=1)
    assert http.window.limit == 38


def test_a_spent_window_pauses_general_calls(fresh_portal: Portal) -> None:
    http = _http(fresh_portal)
    http._note_limits({"X-HubSpot-RateLimit-Max": "100",
                       "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
                       "X-HubSpot-RateLimit-Remaining": "0"})  # fmt: skip
    assert http.window.delay() > 9.0


def test_the_cap_comes_from_the_sync_settings(tmp_path: Path) -> None:
    data = {
        "sync": {"hubspot_requests_per_10s": 120},
        "connections": {"hs": {"crm": "hubspot", "access_token": "pat-na1-x",
                               "base_url": "https://127.0.0.1:9"}},
    }  # fmt: skip
    settings = parse_settings(data, env={})
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    source = open_source(settings.connections["hs"], {}, store)
    assert source.http.limits.max_requests_per_10s == 120
    assert source.http.window.limit == 90  # the cap is above the first pace
    with pytest.raises(SettingsError, match=r"sync\.hubspot_requests_per_10s"):
        parse_settings({"sync": {"hubspot_requests_per_10s": -1}}, env={})
    store.close()
