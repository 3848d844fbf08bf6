"""Salesforce connector against the sandbox org (real simple-salesforce over HTTPS)."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from connectors.salesforce import SalesforceClient, SalesforceSource
from connectors.store import Store

from .conftest import SfOrg
from .sf_helpers import assert_same_tables, export_csvs, run, seed_csvs

PAGE = 200  # Sforce-Query-Options batchSize minimum: makes paging visible on a small org


def test_full_sync_reproduces_the_generated_org_exactly(
    sf_org: SfOrg, sqlite_store: Store, tmp_path: Path
) -> None:
    result = run(sqlite_store, SalesforceSource(sf_org.config()))
    total = sum(f.height for f in sf_org.app._frames.values())
    assert result.stats.inserted == result.stats.records_in == total
    assert result.stats.quarantined == 0
    assert_same_tables(seed_csvs(sf_org.canonical, tmp_path / "seed"),
                       export_csvs(sqlite_store, "sf", tmp_path / "export"))  # fmt: skip


def test_full_pull_costs_one_call_per_page_plus_a_constant(
    sf_org: SfOrg, sqlite_store: Store
) -> None:
    # The first status poll after the sandbox's shortest job time (0.3 s): one poll a job.
    source = SalesforceSource(sf_org.config(bulk_poll_s=0.5), page_size=PAGE)
    used_before = sf_org.app.api_usage
    run(sqlite_store, source)
    calls = Counter(f"{e['method']} {e['endpoint']}" for e in sf_org.requests())
    n_objects = len(source.objects())
    heights = {name: f.height for name, f in sf_org.app._frames.items()}
    # At 200 rows a page, Task (≈1,300 rows: 6 more pages) is cheaper as a Bulk API 2.0 job
    # (create + poll + one result set); every other object is one queryMore per further page.
    assert math.ceil(heights["Task"] / PAGE) - 1 > 3
    more = sum(math.ceil(h / PAGE) - 1 for name, h in heights.items() if name != "Task")
    # token + one Composite of every describe + the Composite calls carrying every object's
    # first page (at most 5 queries each); then the further pages and the Task job.
    composite = 1 + math.ceil(n_objects / 5)
    assert calls["POST /services/oauth2/token"] == 1
    assert calls["GET /services/data/v{version}/sobjects/{sobject}/describe"] == 0
    assert calls["POST /services/data/v{version}/composite"] == composite
    assert calls["POST /services/data/v{version}/composite/batch"] == 0
    assert calls["GET /services/data/v{version}/queryAll/{locator}"] == more
    assert calls["POST /services/data/v{version}/jobs/query"] == 1
    assert calls["GET /services/data/v{version}/jobs/query/{job_id}/results"] == 1
    # A loaded machine may see the job unfinished at the first poll: polls are counted.
    polls = calls["GET /services/data/v{version}/jobs/query/{job_id}"]
    assert 1 <= polls <= 2
    assert sum(calls.values()) == 1 + composite + more + 2 + polls
    # The token request is a login, not an API request: counted apart. What we count is what
    # the org charged.
    assert sum(calls.values()) - 1 == source.api_calls == sf_org.app.api_usage - used_before
    assert source.client.auth_calls == 1


def test_a_quiet_cycle_costs_one_call(sf_org: SfOrg, sqlite_store: Store) -> None:
    source = SalesforceSource(sf_org.config())
    run(sqlite_store, source)
    for _ in range(2):
        sf_org.clear_log()
        result = run(sqlite_store, source)
        assert len(sf_org.requests()) <= 1
        assert (result.stats.inserted, result.stats.updated, result.stats.deleted) == (0, 0, 0)


def test_incremental_sync_picks_up_exactly_the_edits_deletes_and_creates(
    sf_org: SfOrg, sqlite_store: Store
) -> None:
    source = SalesforceSource(sf_org.config())
    run(sqlite_store, source)
    frames = sf_org.app._frames
    opp = frames["Opportunity"]["Id"][0]
    lead = frames["Lead"]["Id"][0]
    task = frames["Task"]["Id"][0]
    comp_row = frames["OpportunityCompetitor"].row(0, named=True)
    sf_org.edit("Opportunity", opp, {"Amount": 4321.5})
    sf_org.edit("Lead", lead, {"Status": "Working"})
    sf_org.delete("Task", task)
    sf_org.delete("OpportunityCompetitor", comp_row["Id"])
    # A create through the API, as a user's integration would.
    client = SalesforceClient(sf_org.config())
    created = client.call(lambda sf: sf.Account.create({"Name": "Brand New GmbH",
                                                        "Type": "Prospect"}))  # fmt: skip
    new_id = created["id"]

    sf_org.clear_log()
    used_before = sf_org.app.api_usage
    result = run(sqlite_store, source)
    s = result.stats
    assert (s.inserted, s.updated, s.deleted) == (1, 2, 2)
    # Two calls: one Composite asks every object what changed (Get Updated / Get Deleted), one
    # more carries the first pages of the five that did (a Composite takes five queries); the
    # request log may still be catching up with the create above, hence the filter.
    ours = [e for e in sf_org.requests() if not e["path"].endswith("/sobjects/Account")]
    assert [e["path"].rsplit("/", 1)[-1] for e in ours] == ["composite", "composite"]
    assert result.stats.api_calls == 2 == sf_org.app.api_usage - used_before
    text = sqlite_store.canonical_text("sf")
    opps = text["opportunities"]
    assert opps.filter(opps["id"] == opp)["amount"].to_list() == ["4321.5"]
    leads = text["leads"]
    assert leads.filter(leads["id"] == lead)["status"].to_list() == ["Working"]
    assert task not in text["activities"]["id"].to_list()
    competitor = opps.filter(opps["id"] == comp_row["OpportunityId"])
    assert competitor["competitor"].to_list() == [None]
    accounts = text["accounts"]
    new = accounts.filter(accounts["id"] == new_id).row(0, named=True)
    assert (new["name"], new["customer_status"]) == ("Brand New GmbH", "prospect")
    assert sqlite_store.deleted_ids("sf", "Task") == {task}


def test_bulk_api_above_the_threshold_gives_the_same_tables(
    sf_org: SfOrg, sqlite_store: Store, tmp_path: Path
) -> None:
    # Task (≈1,300 rows) and Event go through Bulk API 2.0; the rest stays on REST.
    source = SalesforceSource(sf_org.config(bulk_threshold=150), page_size=PAGE)
    run(sqlite_store, source)
    endpoints = {e["endpoint"] for e in sf_org.requests()}
    assert any("jobs/query" in str(e) for e in endpoints)
    assert_same_tables(seed_csvs(sf_org.canonical, tmp_path / "seed"),
                       export_csvs(sqlite_store, "sf", tmp_path / "export"))  # fmt: skip
    # And an incremental cycle after a bulk pull is quiet again.
    sf_org.clear_log()
    result = run(sqlite_store, source)
    assert (result.stats.inserted, result.stats.updated) == (0, 0)


def test_mapping_is_data_and_a_missing_mapped_field_is_detected(
    sf_org: SfOrg, sqlite_store: Store
) -> None:
    from connectors.salesforce_map import SalesforceMapping

    mapping = SalesforceMapping.from_settings({
        "opportunity_types": {"New Customer": "upsell", "Renewal": "renewal"},
        "opportunity_cost_field": "Deal_Cost__c",  # an admin's typo: no such field in the org
    })  # fmt: skip
    source = SalesforceSource(sf_org.config(), mapping)
    result = run(sqlite_store, source)

    assert "Opportunity.Deal_Cost__c: field not in org; column left empty" in result.notes
    opps = sqlite_store.canonical_text("sf")["opportunities"]
    assert opps["cost"].null_count() == opps.height
    truth = sf_org.canonical["opportunities"].select("id", "type")
    joined = opps.select("id", synced=pl.col("type")).join(truth, on="id")
    assert joined.height == opps.height
    # The generator's new business is "New Customer" in Salesforce: now mapped to upsell.
    new_business = joined.filter(pl.col("type") == "new_business")
    assert new_business.height > 0 and set(new_business["synced"]) == {"upsell"}
    renewals = joined.filter(pl.col("type") == "renewal")
    assert set(renewals["synced"]) == {"renewal"}


def test_a_bad_mapping_names_its_key() -> None:
    from connectors.salesforce_map import SalesforceMapping

    with pytest.raises(ValueError, match="opportunity_types: 'big' is not a canonical type"):
        SalesforceMapping.from_settings({"opportunity_types": {"New Customer": "big"}})
    with pytest.raises(ValueError, match="connected_call_dispositions: expected a list"):
        SalesforceMapping.from_settings({"connected_call_dispositions": "Connected"})
