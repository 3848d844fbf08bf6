"""Fixtures for the service tests: both sandbox CRMs over HTTPS on 127.0.0.1 (reachable from child
``kpisync run`` processes too), a settings file pointing at them, and readers of what writeback
left in each CRM's report object."""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from connectors.store import Store
from service.cli import app
from service.settings import Settings, load_settings
from tests.connectors.conftest import PG_ENV
from writeback import ledger
from writeback.plan import snapshot_rows


def kpisync(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


@dataclass
class Sandbox:
    server: Any
    currency: str

    @property
    def sf(self) -> Any:
        return self.server.apps["salesforce"]

    @property
    def hs(self) -> Any:
        return self.server.apps["hubspot"]

    def reset(self) -> None:
        self.server.faults.clear()
        self.server.reset()
        self.sf.configure({"api_usage": 0, "daily_api_requests": 1_000_000})
        self.hs.configure({"tier": "unlimited", "reset_limits": True})

    def settings_toml(self, store: str, service: str = "") -> str:
        """Settings for both CRMs: yearly KPIs (a modest number of rows), fast retries."""
        from sandbox.cli import handshake, settings_toml

        info = handshake(self.server, list(self.server.apps.values()))
        text = settings_toml(info, self.currency)
        kpi = 'timezone = "UTC"'
        assert kpi in text
        text = text.replace(kpi, f'{kpi}\nperiod = "year"', 1)
        return (f"{text}\n{store}\n[sync]\nrate_per_s = 0\nretry_base_s = 0.05\n"
                f"retry_cap_s = 0.2\n\n[service]\n{service}\n")  # fmt: skip


@pytest.fixture(scope="session")
def service_sandbox() -> Iterator[Sandbox]:
    from sandbox.cli import build_apps
    from sandbox.server import SandboxServer

    apps, currency = build_apps("small", 0)
    with SandboxServer(apps) as server:
        yield Sandbox(server, currency)


@pytest.fixture
def sandbox(service_sandbox: Sandbox) -> Iterator[Sandbox]:
    service_sandbox.reset()
    yield service_sandbox
    service_sandbox.server.faults.clear()


def pg_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{PG_ENV} must be set under CI=true (the scale-out tests may not skip)")
        pytest.skip(f"{PG_ENV} not set")
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    """(url, schema): a fresh PostgreSQL schema, dropped afterwards."""
    url = pg_url()
    schema = f"kpisync_svc_{uuid.uuid4().hex[:12]}"
    yield url, schema
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def write_settings(path: Path, sandbox: Sandbox, store: str, service: str = "") -> Settings:
    path.write_text(sandbox.settings_toml(store, service), encoding="utf-8")
    return load_settings(path)


def install(settings_file: Path, *args: str) -> None:
    code, out = kpisync("install", "--settings", str(settings_file), *args)
    assert code == 0, out


def open_store(settings: Settings) -> Store:
    return Store(settings.store.url, schema=settings.store.schema)


def crm_rows(settings: Settings, store: Store, name: str) -> dict[str, dict[str, Any]]:
    """Every row of the connection's KPI report object, read back with the CRM's own client, by
    key (a duplicate fails the test); values as floats (None when empty)."""
    cfg = settings.connections[name]
    out: dict[str, dict[str, Any]] = {}
    if cfg.crm == "salesforce":
        from connectors.salesforce import SalesforceClient

        recs = SalesforceClient(cfg).sf.query_all(
            "SELECT Key__c, Metric__c, Scope__c, Subject_Id__c, Period_Start__c, Value__c "
            "FROM KPI_Snapshot__c")["records"]  # fmt: skip
        for r in recs:
            assert r["Key__c"] not in out, f"duplicate record for {r['Key__c']}"
            out[r["Key__c"]] = {
                "metric": r["Metric__c"], "scope": r["Scope__c"], "subject_id": r["Subject_Id__c"],
                "period_start": r["Period_Start__c"], "value": r["Value__c"],
            }  # fmt: skip
        return out
    from hubspot import HubSpot

    assert cfg.access_token is not None
    client = HubSpot(access_token=cfg.access_token.get(), host=cfg.base_url,
                     base_url=cfg.base_url, ssl_ca_cert=cfg.ca_bundle)  # fmt: skip
    object_type = ledger.installed(store, name)[0].crm_id
    props = ["kpi_key", "metric", "scope", "subject_id", "period_start", "value"]
    after = None
    while True:
        page = client.crm.objects.basic_api.get_page(object_type, limit=100, after=after,
                                                      properties=props)  # fmt: skip
        for rec in page.results:
            p = rec.properties
            assert p["kpi_key"] not in out, f"duplicate record for {p['kpi_key']}"
            out[p["kpi_key"]] = {**{k: p[k] for k in props[1:5]},
                                 "value": float(p["value"]) if p["value"] else None}  # fmt: skip
        if page.paging is None or page.paging.next is None:
            return out
        after = page.paging.next.after


def assert_report_matches_store(settings: Settings, store: Store, name: str) -> int:
    """The CRM's report object holds exactly the KPI values the store computed; returns rows."""
    want = snapshot_rows(store.read_kpis(name), {}, {})
    got = crm_rows(settings, store, name)
    assert set(got) == set(want), (name, len(got), len(want))
    for key, row in want.items():
        p, r = row.payload, got[key]
        assert (r["metric"], r["scope"], r["subject_id"], r["period_start"]) == (
            p["metric"], p["scope"], p["subject_id"], p["period_start"]), key  # fmt: skip
        if p["value"] is None:
            assert r["value"] is None, key
        else:
            assert math.isclose(r["value"], p["value"], rel_tol=1e-9, abs_tol=1e-6), key
    return len(want)
