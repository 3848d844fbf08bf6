"""pytest fixtures for the Salesforce sandbox: a running HTTPS org and ready clients.

Register them in a conftest with ``from sandbox.salesforce.testing import *  # noqa: F403`` (or
import the fixtures by name).  ``sf_sandbox`` is session-scoped (seeding is the slow part);
``salesforce`` clears faults, the request log and the API budget before each test;
``fresh_salesforce`` also resets the org to its seed; ``sf`` is a logged-in simple-salesforce.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import polars as pl
import pytest
import requests
from simple_salesforce.api import Salesforce

from sandbox.salesforce import SalesforceApp
from sandbox.server import SandboxServer

__all__ = [
    "SalesforceSandbox",
    "build_sandbox",
    "fresh_salesforce",
    "https_session",
    "salesforce",
    "sf",
    "sf_sandbox",
]

SF_SEED = 11


def https_session(ca_bundle: str) -> requests.Session:
    """A requests session that trusts only the sandbox CA (env CA variables must not win)."""
    s = requests.Session()
    s.verify = ca_bundle
    s.trust_env = False
    return s


@dataclass
class SalesforceSandbox:
    server: SandboxServer
    app: SalesforceApp
    #: The generated org's canonical tables with Salesforce ids: the ground truth.
    canonical: dict[str, pl.DataFrame]

    @property
    def info(self) -> dict[str, Any]:
        return self.app.connection_info()

    @property
    def ca_bundle(self) -> str:
        return self.server.ca_bundle

    @property
    def instance_url(self) -> str:
        return self.server.url("salesforce")

    @property
    def host(self) -> str:
        return self.instance_url.removeprefix("https://")

    def session(self) -> requests.Session:
        return https_session(self.ca_bundle)

    def client(self, **kw: Any) -> Salesforce:
        """simple-salesforce logged in with the OAuth password flow.

        simple-salesforce builds its login URL as ``https://{domain}.salesforce.com/...``; the
        sandbox also serves ``/<anything>.salesforce.com/services/...``, so ``domain=host/x``
        reaches it and the client can log in again on ``INVALID_SESSION_ID``.
        """
        i = self.info
        return Salesforce(
            username=i["username"], password=i["password"], consumer_key=i["client_id"],
            consumer_secret=i["client_secret"], domain=f"{self.host}/x",
            session=self.session(), **kw,
        )  # fmt: skip

    def token(self) -> str:
        """An access token from the client-credentials grant (plain requests)."""
        i = self.info
        r = self.session().post(
            i["token_url"], data={"grant_type": "client_credentials"},
            auth=(i["client_id"], i["client_secret"]),
        )  # fmt: skip
        r.raise_for_status()
        return str(r.json()["access_token"])

    def api(self, token: str | None = None) -> requests.Session:
        """A session carrying a bearer token, for endpoints simple-salesforce has no helper for."""
        s = self.session()
        s.headers["Authorization"] = f"Bearer {token or self.token()}"
        return s

    def control(self, method: str, path: str, body: Any = None) -> Any:
        r = self.session().request(method, f"{self.server.control_url()}/{path}", json=body)
        assert r.status_code < 300, r.text
        return r.json()

    def fault(self, **rule: Any) -> dict[str, Any]:
        rule.setdefault("crm", "salesforce")
        result: dict[str, Any] = self.control("POST", "faults", rule)
        return result


def build_sandbox(size: str | int, seed: int) -> tuple[SalesforceApp, dict[str, pl.DataFrame]]:
    from sandbox.generator import generate_org, spec_for, with_crm_ids

    org = with_crm_ids(generate_org(spec_for(size, seed)), "salesforce")
    return SalesforceApp.from_org(org, bulk_min_job_seconds=0.3), org.tables


@pytest.fixture(scope="session")
def sf_sandbox() -> Iterator[SalesforceSandbox]:
    app, tables = build_sandbox("small", SF_SEED)
    with SandboxServer([app]) as server:
        yield SalesforceSandbox(server, app, tables)


@pytest.fixture
def salesforce(sf_sandbox: SalesforceSandbox) -> Iterator[SalesforceSandbox]:
    """The shared org with no faults, an unspent budget and an empty request log."""
    sf_sandbox.server.faults.clear()
    sf_sandbox.server._stats.clear()
    sf_sandbox.app.configure({"api_usage": 0, "daily_api_requests": 1_000_000})
    yield sf_sandbox
    sf_sandbox.server.faults.clear()


@pytest.fixture
def fresh_salesforce(salesforce: SalesforceSandbox) -> SalesforceSandbox:
    """The shared org reset to its seed first (for tests that change seeded records)."""
    salesforce.app.reset()
    return salesforce


@pytest.fixture
def sf(salesforce: SalesforceSandbox) -> Salesforce:
    return salesforce.client()
