"""Fixtures for the writeback tests: the connectors' sandbox org and stores, plus a store that
already holds a sync of the org and its KPIs (per quarter, to keep the row count modest)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from connectors.base import sync_connection
from connectors.salesforce import SalesforceClient, SalesforceSource
from connectors.store import Store
from kpis.engine import compute_kpis
from kpis.settings import KpiSettings, PeriodType
from tests.connectors.conftest import (  # noqa: F401  (fixtures)
    SfOrg,
    make_store,
    sf_org,
    sf_server,
    store,
)
from writeback.salesforce import SalesforceInstaller, SalesforceWriter
from writeback.settings import WritebackSettings
from writeback.spec import build_spec

CONNECTION = "sf"
TODAY = dt.date(2024, 11, 15)
WB = WritebackSettings(user_fields=("revenue", "win_rate"), retry_base_s=0.0, max_failures=3)


def compute(s: Store, connection: str, period: PeriodType = PeriodType.QUARTER) -> int:
    tables = s.read_canonical(connection)
    run = compute_kpis(tables, replace(KpiSettings(), period=period, as_of=TODAY))
    return s.write_kpis(connection, run.values)


def _period(request: pytest.FixtureRequest) -> PeriodType:
    marker = request.node.get_closest_marker("kpi_period")
    return PeriodType(marker.args[0]) if marker else PeriodType.YEAR


@pytest.fixture
def sf_store(sf_org: SfOrg, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Store]:  # noqa: F811
    """A SQLite store holding one sync of the (reset) sandbox org and its KPIs (yearly, or the
    period of the test's ``kpi_period`` marker)."""
    s = Store(f"sqlite:///{tmp_path / 'store.db'}")
    s.migrate()
    result = sync_connection(s, CONNECTION, SalesforceSource(sf_org.config()))
    assert result.outcome == "ok", result.message
    compute(s, CONNECTION, _period(request))
    try:
        yield s
    finally:
        s.close()


class SfKit:
    """Installer, writer and a client of their own for one test."""

    def __init__(self, org: SfOrg, store: Store, settings: WritebackSettings = WB) -> None:  # noqa: F811
        self.org = org
        self.store = store
        self.settings = settings
        self.spec = build_spec(settings)
        self.client = SalesforceClient(org.config())
        self.installer = SalesforceInstaller(self.client, self.spec, settings, store, CONNECTION)
        self.writer = SalesforceWriter(self.client, self.spec, settings)


@pytest.fixture
def sf_kit(sf_org: SfOrg, sf_store: Store) -> SfKit:  # noqa: F811
    return SfKit(sf_org, sf_store)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kpi_period(name): KPI period of the synced store")
