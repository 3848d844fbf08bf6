"""Writeback writes nothing outside its namespace and the admin's explicit mapping.

Its namespace is what ``kpisync install`` created under the configured prefix (recorded in the
store's ledger); the mapping is ``[writeback] mapped_fields``. Anything else — an object or field
of another prefix, a KPI field install never created, a custom object someone else made under the
same name — stops the run with :class:`~writeback.run.NotOwned` naming it, before any call that
writes: the sandbox's request log shows reads only.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from connectors.base import sync_connection
from connectors.config import ConnectionConfig
from connectors.sources import open_source
from connectors.store import Store
from kpis.settings import KpiSettings, PeriodType
from sandbox.server import SandboxServer
from service.cycle import compute_into_store
from service.settings import Settings
from tests.chaos.security_support import sandbox_config
from writeback.crm import open_crm
from writeback.install import Status
from writeback.run import NotOwned, writeback
from writeback.settings import WritebackSettings

TODAY = dt.date(2024, 6, 30)
#: Calls that only read although they are not GETs (token endpoints, SOQL batches, searches).
READS = ("/services/oauth2/token", "/composite/batch", "/oauth/v1/token", "/search", "/batch/read")


@dataclass
class Org:
    server: SandboxServer
    stores: dict[str, Path]

    def config(self, crm: str) -> ConnectionConfig:
        return sandbox_config(self.server, crm, crm)

    def clear_log(self) -> None:
        import requests

        url = f"{self.server.control_url()}/requests"
        requests.delete(url, verify=self.server.ca_bundle, timeout=10).raise_for_status()

    def writes(self) -> list[str]:
        """``METHOD /path`` of every call since the last reset that could change the CRM."""
        return [
            f"{e['method']} {e['path']}"
            for e in self.server.requests_log()
            if e["method"] != "GET" and not e["path"].endswith(READS)
        ]


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    """Both sandbox CRMs and, per CRM, a store file holding one sync and its yearly KPIs."""
    from sandbox.generator import generate_org, spec_for
    from sandbox.hubspot import create_app
    from sandbox.salesforce import SalesforceApp

    tmp = tmp_path_factory.mktemp("scope")
    generated = generate_org(spec_for(40, 1))
    with SandboxServer([SalesforceApp.from_org(generated), create_app(org=generated)]) as server:
        result = Org(server, {})
        for crm in ("salesforce", "hubspot"):
            path = tmp / f"{crm}.db"
            store = Store(f"sqlite:///{path}")
            store.migrate()
            cfg = result.config(crm)
            assert sync_connection(store, crm, open_source(cfg, {}, store)).outcome == "ok"
            settings = Settings(kpi=KpiSettings(period=PeriodType.YEAR), connections={crm: cfg})
            compute_into_store(store, settings, crm, TODAY)
            store.close()
            result.stores[crm] = path
        yield result


@pytest.fixture
def stores(org: Org, tmp_path: Path) -> Iterator[dict[str, Store]]:
    """A fresh copy of each synced store (nothing installed yet) and a reset sandbox."""
    org.server.reset()
    out = {}
    for crm, path in org.stores.items():
        shutil.copy(path, tmp_path / path.name)
        out[crm] = Store(f"sqlite:///{tmp_path / path.name}")
    yield out
    for s in out.values():
        s.close()


def _refused(org: Org, store: Store, crm: str, settings: WritebackSettings, names: str) -> None:
    """Writeback with ``settings`` stops with NotOwned naming ``names`` and writes nothing."""
    _, writer = open_crm(org.config(crm), settings, store)
    org.clear_log()
    with pytest.raises(NotOwned, match=names):
        writeback(store, crm, writer, settings, today=TODAY)
    assert org.writes() == []


def test_salesforce_refuses_another_prefix(org: Org, stores: dict[str, Store]) -> None:
    mine = WritebackSettings(prefix="KS_")
    installer, _ = open_crm(org.config("salesforce"), mine, stores["salesforce"])
    installer.install()
    # Same org, another prefix: KPI_Snapshot__c and its fields are not kpisync's here.
    _refused(
        org, stores["salesforce"], "salesforce", WritebackSettings(), r"KPI_Snapshot__c\.Metric__c"
    )


def test_salesforce_refuses_a_field_install_did_not_create_unless_mapped(
    org: Org, stores: dict[str, Store]
) -> None:
    installed = WritebackSettings(prefix="KS_")
    installer, _ = open_crm(org.config("salesforce"), installed, stores["salesforce"])
    installer.install()
    asks_more = WritebackSettings(prefix="KS_", user_fields=("revenue",))
    _refused(org, stores["salesforce"], "salesforce", asks_more, r"User\.KS_KPI_Revenue__c")
    # The admin makes the field, maps it and installs again: now writeback writes to it.
    from connectors.salesforce import SalesforceClient

    field = {"FullName": "User.KS_KPI_Revenue__c", "Metadata": {"label": "Rev", "type": "Number"}}
    SalesforceClient(org.config("salesforce")).sf.toolingexecute(
        "sobjects/CustomField", method="POST", data=field
    )
    mapped = WritebackSettings(
        prefix="KS_", user_fields=("revenue",), mapped_fields=("User.KS_KPI_Revenue__c",)
    )
    installer, writer = open_crm(org.config("salesforce"), mapped, stores["salesforce"])
    acts = installer.install()  # grants the mapped field to the permission set
    assert ("User.KS_KPI_Revenue__c", Status.MAPPED) in [(a.name, a.status) for a in acts]
    org.clear_log()
    report = writeback(stores["salesforce"], "salesforce", writer, mapped, today=TODAY)
    assert report.targets["KS_KPI_Snapshot__c"].written > 0
    assert report.targets["User"].written > 0 and report.failed == 0
    assert any(w.endswith("/composite/sobjects") for w in org.writes())


def test_hubspot_refuses_a_schema_someone_else_created(org: Org, stores: dict[str, Store]) -> None:
    from hubspot import HubSpot

    cfg = org.config("hubspot")
    assert cfg.access_token is not None
    theirs = HubSpot(
        access_token=cfg.access_token.get(), host=cfg.base_url, ssl_ca_cert=cfg.ca_bundle
    )
    theirs.crm.schemas.core_api.create(
        {
            "name": "kpi_snapshot",
            "labels": {"singular": "Theirs", "plural": "Theirs"},
            "primaryDisplayProperty": "kpi_key",
            "requiredProperties": ["kpi_key"],
            "properties": [
                {"name": "kpi_key", "label": "Key", "type": "string", "fieldType": "text"}
            ],
            "associatedObjects": [],
        }
    )
    installer, _ = open_crm(cfg, WritebackSettings(), stores["hubspot"])
    acts = installer.install()
    assert [(a.kind, a.status) for a in acts if a.kind == "schema"] == [("schema", Status.CONFLICT)]
    _refused(org, stores["hubspot"], "hubspot", WritebackSettings(), r"kpi_snapshot")


def test_hubspot_refuses_another_prefix(org: Org, stores: dict[str, Store]) -> None:
    installer, _ = open_crm(org.config("hubspot"), WritebackSettings(), stores["hubspot"])
    installer.install()
    _refused(org, stores["hubspot"], "hubspot", WritebackSettings(prefix="KS_"), r"ks_kpi_snapshot")
