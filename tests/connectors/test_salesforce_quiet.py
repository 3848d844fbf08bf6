"""The Salesforce quiet cycle: one Composite call as the org charges it (its usage counter, not
ours), however many records sit in the look-back; what changed, was deleted or committed late by
a long transaction is still found, and only the objects that changed are read."""

from __future__ import annotations

import datetime as dt

import pytest

from connectors.base import sync_connection
from connectors.errors import ConfigError
from connectors.salesforce import SalesforceSource
from connectors.store import Store
from sandbox.salesforce.org import format_sf_datetime

from .conftest import SfOrg
from .sf_helpers import run

#: The smallest page Salesforce serves (Sforce-Query-Options batchSize ≥ 200,
#: headers_queryoptions.htm): the look-back of the old planning spilled past it.
PAGE = 200


def _charged(sf_org: SfOrg, source: SalesforceSource, store: Store) -> tuple[int, object]:
    before = sf_org.app.api_usage
    result = run(store, source)
    return sf_org.app.api_usage - before, result


def test_a_quiet_cycle_is_one_call_with_the_look_back_full_of_records(
    sf_org: SfOrg, sqlite_store: Store
) -> None:
    # Every opportunity and task changed five minutes ago: all of them inside the 600 s
    # look-back, more than a page each. Re-reading them was what a quiet cycle used to cost.
    # (Five minutes, not now: Get Updated reads whole minutes, so a cycle in the same minute as
    # a change would be told of it again.)
    stamp = format_sf_datetime(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    for name in ("Opportunity", "Task"):
        ids = sf_org.app._frames[name]["Id"].to_list()
        assert len(ids) > PAGE
        sf_org.app.raw_put(name, [{"Id": i, "SystemModstamp": stamp} for i in ids])
    source = SalesforceSource(sf_org.config(), page_size=PAGE)
    run(sqlite_store, source)
    run(sqlite_store, source)  # the first cycle with a covered mark of its own
    for _ in range(2):
        sf_org.clear_log()
        charged, result = _charged(sf_org, source, sqlite_store)
        assert charged == 1 == result.stats.api_calls  # type: ignore[attr-defined]
        assert [e["path"].rsplit("/", 1)[-1] for e in sf_org.requests()] == ["composite"]
        assert result.stats.records_in == 0  # type: ignore[attr-defined]


def test_a_change_reads_only_the_object_it_is_in(sf_org: SfOrg, sqlite_store: Store) -> None:
    source = SalesforceSource(sf_org.config())
    run(sqlite_store, source)
    run(sqlite_store, source)
    opp = sf_org.app._frames["Opportunity"]["Id"][0]
    sf_org.edit("Opportunity", opp, {"Amount": 1234.5})
    charged, result = _charged(sf_org, source, sqlite_store)
    # One call asks which objects changed, one reads the opportunity's first page.
    assert charged == 2 == result.stats.api_calls  # type: ignore[attr-defined]
    per_object = result.per_object  # type: ignore[attr-defined]
    assert {n for n, s in per_object.items() if s.records_in} == {"Opportunity"}
    assert result.stats.updated == 1  # type: ignore[attr-defined]
    opps = sqlite_store.canonical_text("sf")["opportunities"]
    assert opps.filter(opps["id"] == opp)["amount"].to_list() == ["1234.5"]
    charged, _ = _charged(sf_org, source, sqlite_store)
    assert charged == 1


def test_a_deletion_is_picked_up(sf_org: SfOrg, sqlite_store: Store) -> None:
    source = SalesforceSource(sf_org.config())
    run(sqlite_store, source)
    run(sqlite_store, source)
    task = sf_org.app._frames["Task"]["Id"][0]
    sf_org.delete("Task", task)
    charged, result = _charged(sf_org, source, sqlite_store)
    assert result.stats.deleted == 1  # type: ignore[attr-defined]
    assert charged == 2
    assert task not in sqlite_store.canonical_text("sf")["activities"]["id"].to_list()


def test_a_long_transaction_committing_late_is_not_lost(sf_org: SfOrg, sqlite_store: Store) -> None:
    source = SalesforceSource(sf_org.config())
    run(sqlite_store, source)
    run(sqlite_store, source)
    # A transaction opened three minutes ago is still running through two quiet cycles; the
    # records it writes carry its start as their modstamp, minutes behind those cycles.
    opened = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=3)
    sf_org.app.configure({"long_transactions": [format_sf_datetime(opened)]})
    for _ in range(2):
        charged, result = _charged(sf_org, source, sqlite_store)
        assert charged == 1 and result.stats.records_in == 0  # type: ignore[attr-defined]
    lead = sf_org.app._frames["Lead"]["Id"][0]
    sf_org.edit("Lead", lead, {"Status": "Working", "SystemModstamp": format_sf_datetime(opened)})
    sf_org.app.configure({"long_transactions": []})
    _, result = _charged(sf_org, source, sqlite_store)
    assert result.stats.updated == 1  # type: ignore[attr-defined]
    leads = sqlite_store.canonical_text("sf")["leads"]
    assert leads.filter(leads["id"] == lead)["status"].to_list() == ["Working"]


def test_an_object_the_org_does_not_replicate_rides_in_the_same_call(
    sf_org: SfOrg, sqlite_store: Store
) -> None:
    sf_org.app.configure({"replicateable": {"Task": False}})
    source = SalesforceSource(sf_org.config())
    run(sqlite_store, source)
    run(sqlite_store, source)
    charged, result = _charged(sf_org, source, sqlite_store)
    # Get Updated would refuse Task: its incremental query travels in the same Composite call
    # (re-reading at most the records stamped with its cursor: the query path reads from it).
    assert charged == 1
    per_object = result.per_object  # type: ignore[attr-defined]
    assert {n for n, s in per_object.items() if s.records_in} <= {"Task"}
    assert (result.stats.inserted, result.stats.updated) == (0, 0)  # type: ignore[attr-defined]
    sent = [e for e in sf_org.requests() if e["path"].endswith("/sobjects/Task/updated")]
    assert sent == []
    task = sf_org.app._frames["Task"]["Id"][0]
    sf_org.edit("Task", task, {"CallDisposition": "Left voicemail"})
    charged, result = _charged(sf_org, source, sqlite_store)
    assert charged == 1 and result.stats.updated == 1  # type: ignore[attr-defined]


def test_a_field_gone_while_quiet_fails_at_the_next_describe(
    sf_org: SfOrg, sqlite_store: Store
) -> None:
    # Quiet cycles read no object, so the query that used to trip over a deleted field does not
    # run; the renewed describe must not quietly drop it (its stored values would be nulled at
    # the object's next change).
    source = SalesforceSource(sf_org.config(describe_ttl_s=0))
    run(sqlite_store, source)
    before = sqlite_store.canonical_text("sf")["opportunities"]
    sf_org.app.configure({"delete_fields": ["Opportunity.Cost__c"]})
    try:
        with pytest.raises(ConfigError) as exc:
            sync_connection(sqlite_store, "sf", source)
    finally:
        sf_org.app.configure({"undelete_fields": ["Opportunity.Cost__c"]})
    assert "Opportunity.Cost__c" in str(exc.value) and "no longer readable" in str(exc.value)
    assert sqlite_store.canonical_text("sf")["opportunities"].equals(before)
