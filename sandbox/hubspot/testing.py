"""pytest fixtures for the HubSpot sandbox: a running HTTPS server and ready clients.

Use from a test module with ``pytest_plugins = ("sandbox.hubspot.testing",)``.  The server is
session-scoped (seeding is the slow part); the function-scoped ``hubspot_sandbox`` fixture
clears faults and rate-limit state before each test, so tests stay independent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import polars as pl
import pytest
import requests

from sandbox.hubspot import create_app
from sandbox.hubspot.app import HubSpotApp

UTC = dt.UTC


def _ts(year: int, month: int, day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=UTC)


def tiny_org() -> dict[str, pl.DataFrame]:
    """A handmade org in canonical shape with HubSpot ids: small enough to assert on exactly."""
    ts = pl.Datetime("us", "UTC")
    teams = pl.DataFrame(
        {"id": ["5000001", "5000002"], "name": ["Sales", "EMEA"], "parent_id": [None, "5000001"]}
    )
    reps = pl.DataFrame(
        {
            "id": ["1000001", "1000002", "1000003"],
            "name": ["Anna de Jong", "Bram Visser", "Chloe Smit"],
            "email": ["anna@example.com", "bram@example.com", "chloe@example.com"],
            "team_id": ["5000001", "5000002", "5000002"],
            "manager_id": [None, "1000001", "1000001"],
            "is_active": [True, True, False],
        }
    )
    accounts = pl.DataFrame(
        {
            "id": ["200000001", "200000002"],
            "name": ["Blue Logistics B.V.", "Nova Foods GmbH"],
            "owner_id": ["1000001", "1000002"],
            "created_at": pl.Series([_ts(2024, 1, 5), _ts(2024, 2, 1)], dtype=ts),
            "customer_status": ["customer", "prospect"],
        }
    )
    leads = pl.DataFrame(
        {
            "id": ["100000001", "100000002", "100000003"],
            "owner_id": ["1000001", "1000002", "1000002"],
            "created_at": pl.Series(
                [_ts(2024, 1, 2, 9), _ts(2024, 1, 3, 10), _ts(2024, 1, 4, 11)], dtype=ts
            ),
            "source": ["web", "referral", "event"],
            "status": ["Converted", "Unqualified", "Open"],
            "qualified_at": pl.Series([_ts(2024, 1, 3), None, None], dtype=ts),
            "converted_at": pl.Series([_ts(2024, 1, 5), None, None], dtype=ts),
            "converted_account_id": ["200000001", None, None],
            "converted_opportunity_id": ["300000001", None, None],
            "disqualified_at": pl.Series([None, _ts(2024, 1, 9), None], dtype=ts),
            "score": [80.0, 10.0, 42.0],
        }
    )
    opps = pl.DataFrame(
        {
            "id": ["300000001", "300000002", "300000003"],
            "owner_id": ["1000001", "1000002", "1000001"],
            "account_id": ["200000001", "200000002", "200000001"],
            "lead_id": ["100000001", None, None],
            "created_at": pl.Series([_ts(2024, 1, 5), _ts(2024, 2, 2), _ts(2024, 3, 1)], dtype=ts),
            "close_date": [dt.date(2024, 2, 20), dt.date(2024, 4, 1), dt.date(2024, 5, 1)],
            "stage": ["Closed Won", "Proposal", "Closed Lost"],
            "is_closed": [True, False, True],
            "is_won": [True, False, False],
            "amount": [12000.0, 5000.0, 800.0],
            "currency": ["EUR", "USD", "GBP"],
            "type": ["new_business", "upsell", "renewal"],
            "cost": [1000.0, None, None],
            "recurring_monthly_amount": [1000.0, None, None],
            "contract_start": [dt.date(2024, 3, 1), None, None],
            "contract_end": [dt.date(2025, 3, 1), None, None],
            "competitor": ["Acme CRM", None, None],
            "competitor_price": [11000.0, None, None],
        }
    )
    activities = pl.DataFrame(
        {
            "id": ["400000001", "400000002", "400000003", "400000004"],
            "owner_id": ["1000001", "1000001", "1000002", "1000002"],
            "kind": ["call", "email", "meeting", "call"],
            "direction": ["outbound", "inbound", None, "outbound"],
            "outcome": ["connected", None, None, "voicemail"],
            "occurred_at": pl.Series(
                [_ts(2024, 1, 3, 9), _ts(2024, 1, 4), _ts(2024, 1, 6), _ts(2024, 1, 7)], dtype=ts
            ),
            "duration_minutes": [12.5, None, 30.0, 1.0],
            "lead_id": ["100000001", "100000001", None, "100000002"],
            "account_id": ["200000001", None, "200000001", None],
            "opportunity_id": ["300000001", None, "300000001", None],
        }
    )
    quotas = pl.DataFrame(
        {
            "owner_id": ["1000001", "1000002"],
            "period_start": [dt.date(2024, 1, 1), dt.date(2024, 1, 1)],
            "period_end": [dt.date(2024, 2, 1), dt.date(2024, 2, 1)],
            "amount": [50000.0, 40000.0],
            "currency": ["EUR", "EUR"],
        }
    )
    fx = pl.DataFrame(
        {
            "currency": ["EUR", "USD", "GBP", "USD"],
            "start_date": [dt.date(2024, 1, 1)] * 3 + [dt.date(2024, 3, 1)],
            "rate": [1.0, 1.08, 0.85, 1.10],
        }
    )
    return {
        "teams": teams, "reps": reps, "accounts": accounts, "leads": leads,
        "opportunities": opps, "activities": activities, "quotas": quotas, "fx_rates": fx,
    }  # fmt: skip


@dataclass
class HubSpotSandbox:
    """What a test needs to talk to the running sandbox."""

    app: HubSpotApp
    server: Any  # sandbox.server.SandboxServer
    base_url: str
    token: str
    ca_bundle: str

    @property
    def control_url(self) -> str:
        return f"{self.base_url}/__sandbox"

    def client(self, **kw: Any) -> Any:
        """hubspot-api-client pointed at the sandbox (host, base_url, CA; hubspot-api-client 12
        ``discovery/discovery_base.py``)."""
        from hubspot import HubSpot

        kw.setdefault("access_token", self.token)
        return HubSpot(host=self.base_url, base_url=self.base_url, ssl_ca_cert=self.ca_bundle, **kw)

    def session(self, token: str | None = None) -> requests.Session:
        """Plain requests for endpoints the client has no helper for (trust_env off, A1)."""
        s = requests.Session()
        s.trust_env = False
        s.verify = self.ca_bundle
        s.headers["Authorization"] = f"Bearer {token or self.token}"
        return s


def start_server(app: HubSpotApp) -> Any:
    from sandbox.server import SandboxServer

    return SandboxServer([app]).start()


@pytest.fixture(scope="session")
def hubspot_sandbox_session() -> Iterator[HubSpotSandbox]:
    app = create_app(tables=tiny_org(), tier="unlimited", company_currency="EUR")
    server = start_server(app)
    try:
        yield HubSpotSandbox(
            app, server, server.url("hubspot"), app.auth.config.private_app_token,
            server.ca_bundle,
        )  # fmt: skip
    finally:
        server.stop()


@pytest.fixture
def hubspot_sandbox(hubspot_sandbox_session: HubSpotSandbox) -> Iterator[HubSpotSandbox]:
    """The shared sandbox with faults cleared and rate limits off; the portal is reset after the
    test, so records created or edited by one test never leak into another."""
    sb = hubspot_sandbox_session
    sb.server.faults.clear()
    sb.app.configure({"tier": "unlimited", "reset_limits": True})
    yield sb
    sb.server.faults.clear()
    sb.app.reset()
    sb.app.configure({"tier": "unlimited", "reset_limits": True})
