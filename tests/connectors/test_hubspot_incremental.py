"""Incremental syncs: edits, deletions, creations and merges made in the portal arrive, exactly
those, and nothing else is written."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from connectors.hubspot_mapping import CALL_DISPOSITIONS
from connectors.store import Store
from tests.connectors.test_hubspot_support import (
    TABLES,
    Portal,
    as_text,
    calls_by_endpoint,
    canonical,
    differences,
    fresh_portal,
    portal,
    sync,
    synced,
    synced_db,
)

__all__ = ["fresh_portal", "portal", "synced", "synced_db"]  # fixtures

NO_ANSWER = next(k for k, v in CALL_DISPOSITIONS.items() if v == "no_answer")
CONNECTED = next(k for k, v in CALL_DISPOSITIONS.items() if v == "connected")


def _set(frames: dict[str, pl.DataFrame], table: str, key: str, **values: str | None) -> None:
    df = frames[table]
    assert key in df["id"].to_list(), (table, key)
    frames[table] = df.with_columns(
        pl.when(pl.col("id") == key).then(pl.lit(v, dtype=pl.String)).otherwise(pl.col(c)).alias(c)
        for c, v in values.items()
    )


def _drop(frames: dict[str, pl.DataFrame], table: str, key: str) -> None:
    frames[table] = frames[table].filter(pl.col("id") != key)


def _add(frames: dict[str, pl.DataFrame], table: str, row: dict[str, str | None]) -> None:
    frames[table] = pl.concat([frames[table], pl.DataFrame([row], schema=frames[table].schema)])


def _unreferenced(p: Portal, table: str, *refs: tuple[str, str]) -> str:
    """An id of ``table`` no other canonical row points at (so deleting it changes one row)."""
    used: set[str] = set()
    for t, col in refs:
        used |= set(p.truth[t][col].drop_nulls().to_list())
    return next(i for i in p.truth[table]["id"].to_list() if i not in used)


def _ts(iso: str) -> str:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_an_incremental_sync_picks_up_exactly_the_changes(
    fresh_portal: Portal, synced: Store
) -> None:
    p, store = fresh_portal, synced
    expected = {t: as_text(t, p.truth[t]) for t in TABLES}
    opps, leads, acts = p.truth["opportunities"], p.truth["leads"], p.truth["activities"]
    calls = acts.filter(pl.col("kind") == "call")["id"].to_list()

    # Edits, as a user makes them in HubSpot (the control plane bumps the modified date).
    deal, open_deal = opps["id"][0], opps.filter(~pl.col("is_closed"))["id"][0]
    p.control("POST", f"records/deals/{deal}", {"amount": "9999.5"})
    _set(expected, "opportunities", deal, amount="9999.50")
    p.control("POST", f"records/deals/{open_deal}", {"dealstage": "closedwon"})
    _set(expected, "opportunities", open_deal, stage="Closed Won", is_closed="true",
         is_won="true")  # fmt: skip
    lead = leads.filter(pl.col("status") == "Open")["id"][0]
    p.control(
        "POST",
        f"records/contacts/{lead}",
        {"hs_lead_status": "UNQUALIFIED", "disqualified_date": "2024-06-01T10:00:00Z"},
    )
    _set(expected, "leads", lead, status="Unqualified", disqualified_at="2024-06-01T10:00:00Z")
    company = p.truth["accounts"]["id"][2]
    p.control("POST", f"records/companies/{company}", {"name": "Renamed Holding B.V."})
    _set(expected, "accounts", company, name="Renamed Holding B.V.")
    p.control("POST", f"records/calls/{calls[0]}", {"hs_call_disposition": NO_ANSWER})
    _set(expected, "activities", calls[0], outcome="no_answer")

    # Deletions (to the recycle bin): records nothing else points at.
    gone_deal = _unreferenced(p, "opportunities", ("activities", "opportunity_id"),
                              ("leads", "converted_opportunity_id"))  # fmt: skip
    gone_lead = _unreferenced(p, "leads", ("activities", "lead_id"), ("opportunities", "lead_id"))
    gone_call = calls[1]
    for obj, rid, table in (("deals", gone_deal, "opportunities"), ("contacts", gone_lead, "leads"),
                            ("calls", gone_call, "activities")):  # fmt: skip
        p.control("DELETE", f"records/{obj}/{rid}")
        _drop(expected, table, rid)

    # Creations through the API, with associations.
    client = p.client()
    owner = p.truth["reps"].filter(pl.col("is_active"))["id"][0]
    new_deal = client.crm.deals.basic_api.create({
        "properties": {"dealname": "New one", "dealstage": "presentationscheduled",
                       "pipeline": "default", "amount": "1234.5", "deal_currency_code": "USD",
                       "closedate": "2025-02-01", "dealtype": "newbusiness",
                       "hubspot_owner_id": owner},
        "associations": [{"to": {"id": company}, "types": [
            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}]}],
    })  # fmt: skip
    _add(expected, "opportunities", {
        "id": new_deal.id, "owner_id": owner, "account_id": company, "lead_id": None,
        "created_at": _ts(new_deal.properties["createdate"]), "close_date": "2025-02-01",
        "stage": "Proposal", "is_closed": "false", "is_won": "false", "amount": "1234.50",
        "currency": "USD", "type": "new_business", "cost": None,
        "recurring_monthly_amount": None, "contract_start": None, "contract_end": None,
        "competitor": None, "competitor_price": None,
    })  # fmt: skip
    new_call = client.crm.objects.calls.basic_api.create({
        "properties": {"hs_timestamp": "2025-01-15T09:30:00Z", "hubspot_owner_id": owner,
                       "hs_call_direction": "INBOUND", "hs_call_disposition": CONNECTED,
                       "hs_call_duration": "90000"},
        "associations": [{"to": {"id": lead}, "types": [
            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 194}]}],
    })  # fmt: skip
    _add(expected, "activities", {
        "id": new_call.id, "owner_id": owner, "kind": "call", "direction": "inbound",
        "outcome": "connected", "occurred_at": "2025-01-15T09:30:00Z",
        "duration_minutes": "1.50", "lead_id": lead, "account_id": None, "opportunity_id": None,
    })  # fmt: skip
    p.clear_log()

    result = sync(store, p)

    assert differences(expected, canonical(store), typed=False) == {}
    assert (result.stats.inserted, result.stats.updated, result.stats.deleted) == (2, 5, 3)
    assert result.stats.quarantined == 0
    # Changes cost a search per object plus association reads for the changed ones, and the
    # archived listing where the count showed deletions; never a full re-listing.
    listings = [
        e for e in p.log() if e["method"] == "GET" and e["path"].startswith("/crm/v3/objects/")
    ]
    # The client sends Python's spelling, ``archived=True``.
    assert all(e["query"]["archived"][0].lower() == "true" for e in listings), listings
    assert sorted(e["path"].rsplit("/", 1)[1] for e in listings) == ["calls", "contacts", "deals"]
    assert result.stats.api_calls <= 8 + 3 * 4 + 3

    # And the next cycle is quiet again: the changes re-read at the boundary write nothing.
    p.clear_log()
    again = sync(store, p)
    assert (again.stats.inserted, again.stats.updated, again.stats.deleted) == (0, 0, 0)
    assert all(n == 1 for n in calls_by_endpoint(p.log()).values())
    assert len(p.log()) == 8


def test_a_merge_deletes_the_merged_record(fresh_portal: Portal, synced: Store) -> None:
    p, store = fresh_portal, synced
    a, b = p.truth["leads"]["id"][10], p.truth["leads"]["id"][11]
    p.client().crm.contacts.basic_api.merge({"primaryObjectId": a, "objectIdToMerge": b})

    result = sync(store, p)

    assert result.stats.deleted == 1
    got = canonical(store)["leads"]
    assert b not in got["id"].to_list() and a in got["id"].to_list()
    assert store.deleted_ids("hs-test", "contacts") == {b}


def test_records_that_cannot_be_normalised_are_quarantined(
    fresh_portal: Portal, synced: Store
) -> None:
    p, store = fresh_portal, synced
    company = p.truth["accounts"]["id"][0]
    # A customer-status value outside the canonical set: that record waits in quarantine.
    reg: Any = p.app.portal.registries["companies"].require("customer_status")
    reg.options.append({"label": "Churned", "value": "churned", "displayOrder": 9,
                        "hidden": False})  # fmt: skip
    p.control("POST", f"records/companies/{company}", {"customer_status": "churned"})
    other = p.truth["accounts"]["id"][1]
    p.control("POST", f"records/companies/{other}", {"name": "Still Fine Ltd"})

    result = sync(store, p)

    assert result.stats.quarantined == 1
    (entry,) = store.quarantined("hs-test")
    assert (entry.object, entry.record_id) == ("companies", company)
    assert "churned" in entry.reason
    got = canonical(store)["accounts"]
    assert got.filter(pl.col("id") == other)["name"].to_list() == ["Still Fine Ltd"]

    # Fixed in the CRM: it leaves quarantine on the next sync.
    p.control("POST", f"records/companies/{company}", {"customer_status": "prospect"})
    sync(store, p)
    assert store.quarantined("hs-test") == []
