"""Install and writeback against the HubSpot sandbox with the real hubspot-api-client."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from connectors.config import ConnectionConfig, Secret
from connectors.store import Store
from kpis.settings import PeriodType
from tests.connectors.conftest import FAST
from tests.connectors.test_hubspot_support import (  # noqa: F401  (fixtures)
    CONNECTION,
    Portal,
    fresh_portal,
    portal,
    sync,
)
from tests.writeback.conftest import TODAY, WB, compute
from writeback import ledger
from writeback.hubspot import HubSpotInstaller, HubSpotWriter, hubspot_http
from writeback.install import Status, problems
from writeback.plan import snapshot_rows
from writeback.run import NotOwned, writeback
from writeback.spec import build_spec


class HsKit:
    def __init__(self, portal: Portal, store: Store) -> None:  # noqa: F811
        self.portal = portal
        self.store = store
        self.spec = build_spec(WB)
        cfg = ConnectionConfig(
            name=CONNECTION, crm="hubspot", base_url=portal.base_url, auth="private_app",
            access_token=Secret(portal.token), ca_bundle=portal.server.ca_bundle,
            options=replace(FAST, rate_per_s=0),
        )  # fmt: skip
        self.http = hubspot_http(cfg)
        self.installer = HubSpotInstaller(self.http, self.spec, WB, store, CONNECTION)
        self.writer = HubSpotWriter(self.http, self.spec, WB)

    def crm_rows(self) -> dict[str, dict[str, str]]:
        """Every kpi_snapshot record read back with the client, by kpi_key (no duplicates)."""
        ot = ledger.installed(self.store, CONNECTION)[0].crm_id
        api = self.portal.client().crm.objects.basic_api
        props = ["kpi_key", "metric", "scope", "subject_id", "period_start", "value"]
        out: dict[str, dict[str, str]] = {}
        after = None
        while True:
            page = api.get_page(ot, limit=100, after=after, properties=props)
            for r in page.results:
                key = r.properties["kpi_key"]
                assert key not in out, f"duplicate record for {key}"
                out[key] = r.properties
            if page.paging is None or page.paging.next is None:
                return out
            after = page.paging.next.after

    def assert_in_step(self) -> None:
        want = snapshot_rows(self.store.read_kpis(CONNECTION), {}, {})
        got = self.crm_rows()
        assert set(got) == set(want)
        for key, row in want.items():
            r, p = got[key], row.payload
            assert (r["metric"], r["scope"], r["subject_id"], r["period_start"]) == (
                p["metric"], p["scope"], p["subject_id"], p["period_start"])  # fmt: skip
            if p["value"] is None:
                assert not r["value"], key
            else:
                assert math.isclose(float(r["value"]), p["value"], rel_tol=1e-9), key


@pytest.fixture
def hs_kit(fresh_portal: Portal, tmp_path: Path) -> Iterator[HsKit]:  # noqa: F811
    s = Store(f"sqlite:///{tmp_path / 'store.db'}")
    s.migrate()
    sync(s, fresh_portal)
    compute(s, CONNECTION, PeriodType.YEAR)
    try:
        yield HsKit(fresh_portal, s)
    finally:
        s.close()


def test_install_and_writeback_end_to_end(hs_kit: HsKit) -> None:
    assert {a.status for a in hs_kit.installer.install(dry_run=True)} <= {
        Status.CREATE, Status.SKIP}  # fmt: skip
    with pytest.raises(NotOwned):
        writeback(hs_kit.store, CONNECTION, hs_kit.writer, WB, today=TODAY)
    hs_kit.installer.install()
    assert problems(hs_kit.installer.check()) == []
    assert {a.status for a in hs_kit.installer.install()} <= {Status.OK, Status.SKIP}
    n = hs_kit.store.read_kpis(CONNECTION).height
    report = writeback(hs_kit.store, CONNECTION, hs_kit.writer, WB, today=TODAY)
    assert report.failed == 0 and report.calls == math.ceil(n / 100)
    hs_kit.assert_in_step()
    hs_kit.portal.clear_log()
    quiet = writeback(hs_kit.store, CONNECTION, hs_kit.writer, WB, today=TODAY)
    assert quiet.calls == 0 and hs_kit.portal.log() == []


def test_partial_batches_and_a_crash_converge(hs_kit: HsKit) -> None:
    hs_kit.installer.install()
    hs_kit.portal.control(
        "POST",
        "faults",
        {
            "crm": "hubspot",
            "kind": "partial_batch_failure",
            "rate": 0.2,
            "seed": 4,
            "path": "/batch/",
        },
    )
    seen: list[Any] = []

    def crash_on_fourth(target: str, outcomes: Any) -> None:
        seen.append(outcomes)
        if len(seen) == 4:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        writeback(hs_kit.store, CONNECTION, hs_kit.writer, WB, today=TODAY,
                  before_record=crash_on_fourth)  # fmt: skip
    first = writeback(hs_kit.store, CONNECTION, hs_kit.writer, WB, today=TODAY)
    assert first.failed > 0 and first.targets["kpi_snapshot"].written > 0
    hs_kit.portal.control("DELETE", "faults")
    second = writeback(hs_kit.store, CONNECTION, hs_kit.writer, WB, today=TODAY)
    assert second.failed == 0
    hs_kit.assert_in_step()


def test_uninstall_removes_only_its_own(hs_kit: HsKit) -> None:
    client = hs_kit.portal.client()
    before = {s.name for s in client.crm.schemas.core_api.get_all().results}
    hs_kit.installer.install()
    writeback(hs_kit.store, CONNECTION, hs_kit.writer, WB, today=TODAY)
    assert {s.name for s in client.crm.schemas.core_api.get_all().results} == before | {
        "kpi_snapshot"}  # fmt: skip
    hs_kit.installer.uninstall()
    assert {s.name for s in client.crm.schemas.core_api.get_all().results} == before
    assert ledger.installed(hs_kit.store, CONNECTION) == []
    assert ledger.load(hs_kit.store, CONNECTION, "kpi_snapshot") == {}
