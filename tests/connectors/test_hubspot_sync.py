"""A full sync of a generated org reproduces its canonical tables; what it costs in API calls."""

from __future__ import annotations

import math

import polars as pl

from connectors.store import Store
from tests.connectors.test_hubspot_support import (
    CONNECTION,
    KIND_OBJECT,
    OBJECT_TABLE,
    Portal,
    calls_by_endpoint,
    canonical,
    differences,
    fresh_portal,
    portal,
    store,
    sync,
    synced,
    synced_db,
)

__all__ = ["fresh_portal", "portal", "store", "synced", "synced_db"]  # fixtures


def _object_counts(p: Portal) -> dict[str, int]:
    counts = {obj: p.truth[table].height for obj, table in OBJECT_TABLE.items()}
    kinds = dict(p.truth["activities"]["kind"].value_counts().iter_rows())
    counts.update({obj: int(kinds.get(kind, 0)) for kind, obj in KIND_OBJECT.items()})
    return counts


def test_full_sync_reproduces_the_canonical_org(fresh_portal: Portal, store: Store) -> None:
    result = sync(store, fresh_portal)

    assert differences(fresh_portal.truth, canonical(store)) == {}
    assert store.quarantine_counts(CONNECTION) == {}
    n_records = sum(_object_counts(fresh_portal).values())
    assert result.stats.inserted >= n_records
    assert result.stats.updated == result.stats.deleted == result.stats.quarantined == 0
    run = store.runs(CONNECTION, limit=1)[0]
    assert run.outcome == "ok" and run.stats.api_calls == result.stats.api_calls
    # The daily budget HubSpot reported is kept for `kpisync status`.
    usage = store.api_usage(CONNECTION)
    assert usage is not None and usage[1] > 0

    # Cost: one call per 100 records per object, plus a constant.
    calls = calls_by_endpoint(fresh_portal.log())
    for obj, n in _object_counts(fresh_portal).items():
        # Associations ride along with the list pages: no per-record or per-page extras.
        assert calls[f"GET /crm/v3/objects/{obj}"] == max(1, math.ceil(n / 100)), obj
    listing = sum(v for k, v in calls.items() if k.startswith("GET /crm/v3/objects/"))
    metadata = sum(calls.values()) - listing
    # teams 1, owners 2 (active + archived), pipelines 1, company currency 1, rates 1.
    assert metadata == 6, calls
    assert result.stats.api_calls == sum(calls.values())  # our count agrees with the server


def test_a_quiet_cycle_costs_at_most_one_call_per_object(
    fresh_portal: Portal, synced: Store
) -> None:
    store = synced
    before = canonical(store)

    result = sync(store, fresh_portal)

    calls = calls_by_endpoint(fresh_portal.log())
    objects = _object_counts(fresh_portal)
    assert calls == {f"POST /crm/v3/objects/{obj}/search": 1 for obj in objects}
    assert result.stats.inserted == result.stats.updated == result.stats.deleted == 0
    after = canonical(store)
    assert all(before[t].equals(after[t]) for t in before)


def test_full_resync_replaces_what_the_portal_no_longer_has(
    fresh_portal: Portal, synced: Store
) -> None:
    store = synced
    deal = fresh_portal.truth["opportunities"]["id"][5]
    # Gone from the portal without passing through its recycle bin (purged after 90 days).
    table = fresh_portal.app.portal.tables["deals"]
    table.archive(int(deal))
    table.rows.pop(int(deal))
    table._row_ids.remove(int(deal))

    result = sync(store, fresh_portal, full=True)

    assert result.stats.deleted == 1
    expected = dict(fresh_portal.truth)
    expected["opportunities"] = expected["opportunities"].filter(pl.col("id") != deal)
    # Associations to an archived record drop out with it, as in HubSpot.
    for table, column in (("activities", "opportunity_id"), ("leads", "converted_opportunity_id")):
        expected[table] = expected[table].with_columns(
            pl.when(pl.col(column) == deal).then(None).otherwise(pl.col(column)).alias(column)
        )
    assert differences(expected, canonical(store)) == {}


def test_a_portal_refusing_the_goals_scope_syncs_everything_else(
    fresh_portal: Portal, store: Store
) -> None:
    fresh_portal.app.configure({"unscoped_objects": ["goal_targets"]})
    try:
        result = sync(store, fresh_portal)
    finally:
        fresh_portal.app.configure({"unscoped_objects": []})

    # Goal targets need a scope the app was not granted: skipped, not a failed sync.
    assert result.outcome == "ok"
    refused = [e for e in fresh_portal.log() if "/goal_targets" in e["path"]]
    assert refused and all(e["status"] == 403 for e in refused)
    tables = canonical(store)
    assert tables["quotas"].height == 0
    assert tables["opportunities"].height == fresh_portal.truth["opportunities"].height
