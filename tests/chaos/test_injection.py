"""Hostile names and ids cannot change a query: every SOQL literal kpisync builds from data or
settings is escaped, every HubSpot search filter value is a number kpisync derived, and hostile
records travel CRM → store → KPI → CRM unchanged.

Where kpisync puts a value into SOQL (``writeback.salesforce``: usernames from
``[writeback] assignees``, ids read back from the org; ``connectors.salesforce``: the sync
watermark) it goes through ``simple_salesforce.format_soql``. The test reads the SOQL the sandbox
received from its request log and parses it with the sandbox's parser (which follows the SOQL
reference's "Quoted String Escape Sequences"): the condition must be exactly the intended one, with
the hostile value as one literal.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from simple_salesforce.format import format_soql

from connectors.base import sync_connection
from connectors.config import ConnectionConfig
from connectors.errors import ApiError
from connectors.hubspot_http import HubSpotHttp
from connectors.salesforce import SalesforceClient, SalesforceSource
from connectors.sources import open_source
from connectors.store import Store
from kpis.settings import KpiSettings, PeriodType
from sandbox.salesforce.soql import Comparison, InList, Like, parse
from sandbox.server import SandboxServer
from service.cycle import compute_into_store
from service.settings import Settings, SettingsError, parse_settings
from tests.chaos.security_support import sandbox_config
from writeback import ledger
from writeback.crm import open_crm
from writeback.run import writeback
from writeback.settings import WritebackSettings

#: Names an attacker (or an unlucky user) could type into a CRM record or a settings file.
HOSTILE = [
    'O\'Brien \\ "quoted" 100% _under_',
    "x' OR Name != '",
    "\\' OR Id != null OR Name = '\\",
    "line\nbreak\r\ttab\b\f end",
    "ünïcødé ✓ 名前 'quote' \\u0027",
    "%_%' AND Name LIKE '%",
]


@dataclass
class Crms:
    server: SandboxServer

    @property
    def sf_app(self) -> Any:
        return self.server.apps["salesforce"]

    @property
    def hs_app(self) -> Any:
        return self.server.apps["hubspot"]

    def sf(self) -> ConnectionConfig:
        return sandbox_config(self.server, "salesforce", "sf")

    def hs(self) -> ConnectionConfig:
        return sandbox_config(self.server, "hubspot", "hs")

    def soql_received(self, needle: str) -> list[str]:
        """SOQL of every query the Salesforce sandbox received that contains ``needle``."""
        out = []
        for entry in self.server.requests_log("salesforce"):
            for q in entry["query"].get("q", []):
                if needle in q:
                    out.append(q)
        return out


@pytest.fixture(scope="module")
def module_crms() -> Iterator[Crms]:
    from sandbox.generator import generate_org, spec_for
    from sandbox.hubspot import create_app
    from sandbox.salesforce import SalesforceApp

    org = generate_org(spec_for(40, 3))
    with SandboxServer([SalesforceApp.from_org(org), create_app(org=org)]) as server:
        yield Crms(server)


@pytest.fixture
def crms(module_crms: Crms) -> Crms:
    module_crms.server.reset()
    return module_crms


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'store.db'}")
    s.migrate()
    yield s
    s.close()


# -- the escaping itself, against the SOQL grammar ------------------------------------------------
@pytest.mark.parametrize("value", HOSTILE)
def test_a_formatted_literal_parses_back_to_the_value(value: str) -> None:
    where = parse(format_soql("SELECT Id FROM Account WHERE Name = {}", value)).where
    assert isinstance(where, Comparison) and where.field.parts == ("Name",)
    assert (where.op, where.value.kind, where.value.value) == ("=", "string", value)
    listed = parse(format_soql("SELECT Id FROM User WHERE Username IN {}", [value, "b"])).where
    assert isinstance(listed, InList) and [v.value for v in listed.values] == [value, "b"]
    like = parse(format_soql("SELECT Id FROM Account WHERE Name LIKE '{:like}%'", value)).where
    assert isinstance(like, Like) and like.field.parts == ("Name",)


def test_the_sandbox_reads_every_documented_escape_sequence() -> None:
    """SOQL reference, "Quoted String Escape Sequences": \\n \\r \\t \\b \\f in either case,
    \\" \\' \\\\ and \\uXXXX; any other backslash is an error."""
    text = r"'a\nb\Nc\rd\Re\tf\Tg\bh\Bi\fj\Fk\"l\'m\\n\u00e9o'"
    where = parse(f"SELECT Id FROM Account WHERE Name = {text}").where
    assert isinstance(where, Comparison)
    assert where.value.value == "a\nb\nc\rd\re\tf\tg\bh\bi\fj\fk\"l'm\\né" + "o"
    with pytest.raises(Exception, match="escape"):
        parse(r"SELECT Id FROM Account WHERE Name = 'a\qb'")


# -- data: hostile records, through the real clients ----------------------------------------------
def _first_ids(cfg: ConnectionConfig, sobject: str, n: int) -> list[str]:
    rows = SalesforceClient(cfg).sf.query_all(f"SELECT Id FROM {sobject} ORDER BY Id LIMIT {n}")
    return [r["Id"] for r in rows["records"]]


def test_a_hostile_name_matches_its_own_record_only(crms: Crms) -> None:
    """A query for each hostile name through simple-salesforce returns that record, never
    the rest of the org."""
    cfg = crms.sf()
    ids = _first_ids(cfg, "Account", len(HOSTILE))
    for rid, name in zip(ids, HOSTILE, strict=True):
        crms.sf_app.edit_record("Account", rid, {"Name": name})
    client = SalesforceClient(cfg)
    for rid, name in zip(ids, HOSTILE, strict=True):
        soql = format_soql("SELECT Id, Name FROM Account WHERE Name = {}", name)
        got = client.query(soql, obj="Account")["records"]
        assert [(r["Id"], r["Name"]) for r in got] == [(rid, name)], name
        like = format_soql("SELECT Id FROM Account WHERE Name LIKE '{:like}'", name)
        assert [r["Id"] for r in client.query(like, obj="Account")["records"]] == [rid], name


def test_hostile_records_round_trip_through_sync_unchanged(crms: Crms, store: Store) -> None:
    """Hostile names in both CRMs reach the store's raw and canonical tables byte for byte, in
    a full pull and in an incremental one (the watermark is the only SOQL literal of a sync)."""
    sf, hs = crms.sf(), crms.hs()
    sf_result = sync_connection(store, "sf", SalesforceSource(sf))
    assert sf_result.outcome == "ok", sf_result.message
    hs_result = sync_connection(store, "hs", open_source(hs, {}, store))
    assert hs_result.outcome == "ok", hs_result.message
    sf_ids = _first_ids(sf, "Account", len(HOSTILE))
    companies = sorted(rid for rid, _ in store.raw_records("hs", "companies"))[: len(HOSTILE)]
    for i, name in enumerate(HOSTILE):
        crms.sf_app.edit_record("Account", sf_ids[i], {"Name": name})
        crms.hs_app.edit_record("companies", companies[i], {"name": name})
    searches = _record_searches(crms, store, hs)
    assert sync_connection(store, "sf", SalesforceSource(sf)).stats.updated >= len(HOSTILE)
    sf_raw = dict(store.raw_records("sf", "Account"))
    hs_raw = dict(store.raw_records("hs", "companies"))
    accounts = dict(store.table_text("sf", "accounts").select("id", "name").iter_rows())
    hs_accounts = dict(store.table_text("hs", "accounts").select("id", "name").iter_rows())
    for i, name in enumerate(HOSTILE):
        assert sf_raw[sf_ids[i]]["Name"] == name and accounts[sf_ids[i]] == name
        assert hs_raw[companies[i]]["properties"]["name"] == name
        assert hs_accounts[companies[i]] == name
    assert searches, "the incremental HubSpot sync made no search"
    for body in searches:
        for group in body.get("filterGroups", []):
            for f in group["filters"]:
                assert str(f["value"]).isdigit(), f  # a timestamp or an id: nothing else


def _record_searches(crms: Crms, store: Store, cfg: ConnectionConfig) -> list[dict[str, Any]]:
    """Run an incremental HubSpot sync and return the search bodies it sent (what the client
    serialises; the sandbox's request log keeps no bodies)."""
    bodies: list[dict[str, Any]] = []
    original = HubSpotHttp.call

    def spy(self: HubSpotHttp, method: str, *args: Any, **kwargs: Any) -> Any:
        if method == "crm.objects.search_api.do_search":
            bodies.append(args[1])
        return original(self, method, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(HubSpotHttp, "call", spy)
        result = sync_connection(store, "hs", open_source(cfg, {}, store))
    assert result.outcome == "ok", result.message
    return bodies


# -- settings: hostile usernames in [writeback] assignees -----------------------------------------
def test_hostile_assignee_usernames_stay_one_literal(crms: Crms, store: Store) -> None:
    """Usernames from the settings go into ``Username IN (...)``: each one selects its own user
    (renamed to the hostile name in the org) and nothing else."""
    cfg = crms.sf()
    users = _first_ids(cfg, "User", 3)[1:3]  # not the API user, who is always assigned
    names = [HOSTILE[1], HOSTILE[2]]
    for uid, name in zip(users, names, strict=True):
        crms.sf_app.edit_record("User", uid, {"Username": name})
    settings = WritebackSettings(assignees=tuple(names))
    installer, _ = open_crm(cfg, settings, store)
    installer.install()
    assigned = {i.name for i in ledger.installed(store, "sf") if i.kind == "assignment"}
    api_user = crms.sf_app.auth.user_id
    assert assigned == {api_user, *users}
    [soql] = crms.soql_received("FROM User WHERE Username IN")
    where = parse(soql).where
    assert isinstance(where, InList) and not where.negate
    assert where.field.parts == ("Username",) and [v.value for v in where.values] == names


def test_an_unknown_hostile_assignee_matches_nobody(crms: Crms, store: Store) -> None:
    settings = WritebackSettings(assignees=("nobody' OR Username != '",))
    installer, _ = open_crm(crms.sf(), settings, store)
    with pytest.raises(ApiError, match="no such user nobody' OR Username != '"):
        installer.install()
    assert not [i for i in ledger.installed(store, "sf") if i.kind == "assignment"]


@pytest.mark.parametrize(
    "value", ["Type FROM Account WHERE Name != ''", "Type, (SELECT Id FROM Contacts)", "x'--"]
)
def test_a_mapped_field_name_must_be_an_api_name(value: str) -> None:
    """Field names are written into SOQL as they are, so settings accept API names only."""
    data = {"mappings": {"salesforce": {"account_status_field": value}}}
    with pytest.raises(SettingsError, match=r"mappings\.salesforce\.account_status_field"):
        parse_settings(data, env={})
    ok = parse_settings({"mappings": {"salesforce": {"account_status_field": "Status__c"}}}, env={})
    assert isinstance(ok, Settings)


# -- data → KPI → CRM: a hostile competitor name written back -------------------------------------
def test_a_hostile_dimension_is_written_back_unchanged(crms: Crms, store: Store) -> None:
    """A competitor name is a KPI dimension: it ends up in the row key (the upsert's external
    id) and in ``Dimension__c``; the CRM holds it exactly as the org typed it."""
    cfg = crms.sf()
    client = SalesforceClient(cfg)
    soql = format_soql("SELECT Id FROM OpportunityCompetitor WHERE CompetitorName = {}", "Acme CRM")
    competitors = client.sf.query_all(soql)["records"]
    assert competitors, "the generated org has no such competitor"
    name = HOSTILE[0] + HOSTILE[3]
    for rec in competitors:
        crms.sf_app.edit_record("OpportunityCompetitor", rec["Id"], {"CompetitorName": name})
    assert sync_connection(store, "sf", SalesforceSource(cfg)).outcome == "ok"
    # Yearly KPIs: fewer rows to write back, the same competitor dimension.
    settings = Settings(kpi=KpiSettings(period=PeriodType.YEAR), connections={"sf": cfg})
    compute_into_store(store, settings, "sf", dt.date(2024, 6, 30))
    installer, writer = open_crm(cfg, WritebackSettings(), store)
    installer.install()
    report = writeback(store, "sf", writer, WritebackSettings(), today=dt.date(2024, 6, 30))
    assert report.failed == 0
    rows = client.sf.query_all(
        format_soql(
            "SELECT Key__c, Dimension__c FROM KPI_Snapshot__c WHERE Dimension__c = {}", name
        )
    )["records"]
    assert rows and all(r["Dimension__c"] == name and name in r["Key__c"] for r in rows)
