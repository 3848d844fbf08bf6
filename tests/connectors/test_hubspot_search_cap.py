"""More than 10,000 changed records arrive complete through the search API's 10,000-result cap,
both when their modification times are spread out and when they all share one timestamp (a bulk
import: the case that loops forever without a tie-break on ``hs_object_id``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from connectors.hubspot_window import RESULT_CAP
from connectors.store import Store
from sandbox.generator import generate_org, spec_for, with_crm_ids
from sandbox.hubspot.values import now_ms
from tests.connectors.test_hubspot_support import (
    ORG_SEED,
    TABLES,
    Portal,
    as_text,
    canonical,
    differences,
    start_portal,
    sync,
)

EXTRA_CONTACTS = RESULT_CAP + 700


def _org_with_many_contacts() -> dict[str, pl.DataFrame]:
    """The small test org plus enough unconverted leads to overflow one search window."""
    tables = dict(with_crm_ids(generate_org(spec_for("small", ORG_SEED)), "hubspot").tables)
    leads = tables["leads"]
    template = leads.filter(pl.col("converted_at").is_null() & pl.col("status").is_not_null())
    picks = pl.Series("i", range(EXTRA_CONTACTS)) % template.height
    extra = template[picks].with_columns(
        id=(pl.lit(150_000_000) + pl.int_range(EXTRA_CONTACTS)).cast(pl.String)
    )
    tables["leads"] = pl.concat([leads, extra])
    return tables


@pytest.fixture(scope="module")
def big_portal() -> Iterator[Portal]:
    p = start_portal(_org_with_many_contacts())
    try:
        yield p
    finally:
        p.server.stop()


@pytest.mark.parametrize("when", ["one_timestamp", "spread"])
def test_more_than_10k_changes_arrive_through_the_search_cap(
    big_portal: Portal, tmp_path: Path, when: str
) -> None:
    p = big_portal
    p.reset()
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    sync(store, p)
    leads = p.truth["leads"]
    assert leads.height > RESULT_CAP

    # Every contact gets a new lead source, each its own value, so a lost or stale record shows.
    ids = leads["id"].to_list()
    new_source = {rid: f"import-{n}" for n, rid in enumerate(ids)}
    if when == "one_timestamp":
        # A bulk import: HubSpot stamps every record of it with one modification time.
        contacts = p.app.portal.tables["contacts"]
        with p.app.portal.lock:
            stamp = now_ms()
            for rid in ids:
                contacts.update(int(rid), {"lead_source": new_source[rid]}, at_ms=stamp)
    else:
        # Edits as users make them, one after another.
        for rid in ids:
            p.app.edit_record("contacts", rid, {"lead_source": new_source[rid]})
    p.clear_log()

    result = sync(store, p)

    expected = {t: as_text(t, p.truth[t]) for t in TABLES}
    expected["leads"] = expected["leads"].with_columns(
        source=pl.col("id").replace_strict(new_source, return_dtype=pl.String)
    )
    assert differences(expected, canonical(store), typed=False) == {}
    assert result.stats.updated == len(ids)
    searches = [e for e in p.log() if e["path"] == "/crm/v3/objects/contacts/search"]
    assert all(e["status"] == 200 for e in searches)  # never asked past the cap
    # 200 a page. Spread out, a window restart re-reads at most a page's worth; at one timestamp
    # the order inside it is undocumented, so the capped window is read again ordered by id.
    pages = len(ids) // 200
    assert len(searches) <= (2 * pages if when == "one_timestamp" else pages) + 6
    store.close()
