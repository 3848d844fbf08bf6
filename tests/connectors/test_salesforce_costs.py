"""What a Salesforce sync costs: API calls as the org counts them, per object, and the work a
quiet cycle does in the store (nothing that grows with the org)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.salesforce import SalesforceSource
from connectors.store import Store

from .conftest import SfOrg
from .sf_helpers import run

PAGE = 200


@pytest.fixture
def statements(sqlite_store: Store) -> Iterator[list[str]]:
    """Every SQL statement the store runs while the test runs."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    sa.event.listen(sqlite_store.engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(sqlite_store.engine, "before_cursor_execute", record)


def test_a_new_process_quiet_cycle_costs_the_org_one_api_call(
    sf_org: SfOrg, sqlite_store: Store
) -> None:
    run(sqlite_store, SalesforceSource(sf_org.config()))
    # A new process: a new client, so a new OAuth token first.
    fresh = SalesforceSource(sf_org.config())
    sf_org.clear_log()
    used_before = sf_org.app.api_usage
    result = run(sqlite_store, fresh)
    sent = Counter(f"{e['method']} {e['endpoint']}" for e in sf_org.requests())
    assert sent["POST /services/oauth2/token"] == 1
    assert sum(sent.values()) == 2
    # The org charged one request (the token request is a login) and we count exactly that.
    assert sf_org.app.api_usage - used_before == 1 == result.stats.api_calls
    assert fresh.client.auth_calls == 1
    assert (result.stats.inserted, result.stats.updated, result.stats.deleted) == (0, 0, 0)


def test_each_object_reports_its_own_calls(sf_org: SfOrg, sqlite_store: Store) -> None:
    source = SalesforceSource(sf_org.config(), page_size=PAGE)
    result = run(sqlite_store, source)
    frames = sf_org.app._frames
    jobs = [e for e in sf_org.requests() if "/jobs/query" in e["path"]]
    for name, stats in result.per_object.items():
        more = math.ceil(frames[name].height / PAGE) - 1
        if name == "Task":
            # ≈1,300 rows: 6 more pages of 200 cost more than a Bulk API 2.0 job (create, its
            # polls, one result set), all charged to Task.
            assert stats.api_calls == len(jobs) < more
            continue
        # The first page came with four other objects' in one Composite call (made in prepare);
        # each further page is one queryMore of this object alone.
        assert stats.api_calls == more, name
    spent_in_prepare = result.stats.api_calls - sum(s.api_calls for s in result.per_object.values())
    # one Composite of every describe, one Composite per five first pages (a Composite call
    # takes at most five queries; composite/batch would be charged one call for every
    # subrequest, resources_composite_batch.htm)
    n = len(result.per_object)
    assert spent_in_prepare == 1 + math.ceil(n / 5)


def test_a_quiet_cycle_reads_no_whole_lead_or_opportunity_table(
    sf_org: SfOrg, sqlite_store: Store, statements: list[str]
) -> None:
    source = SalesforceSource(sf_org.config())
    run(sqlite_store, source)
    statements.clear()
    run(sqlite_store, SalesforceSource(sf_org.config()))
    # Nothing changed, so nothing is read again (no look-back re-read): neither table is touched.
    assert not [s for s in statements if "canonical_leads" in s or "canonical_opportunities" in s]
    lead = sf_org.app._frames["Lead"]["Id"][0]
    sf_org.edit("Lead", lead, {"Status": "Working"})
    statements.clear()
    run(sqlite_store, SalesforceSource(sf_org.config()))
    touching = [s for s in statements if "canonical_leads" in s or "canonical_opportunities" in s]
    # The changed lead is written again, and the conversion times are revisited for exactly the
    # records read (an id list); nothing scans either table of the connection.
    assert touching
    for statement in touching:
        keyed = " IN (" in statement or ".row_key = ?" in statement
        assert statement.startswith("INSERT") or keyed, statement


def test_a_converted_lead_read_again_keeps_its_conversion_instant(
    sf_org: SfOrg, store: Store
) -> None:
    """On SQLite and on PostgreSQL: the conversion fix is one SQL statement on each."""
    source = SalesforceSource(sf_org.config())
    run(store, source)
    truth = sf_org.canonical["leads"]
    converted = truth.filter(truth["converted_opportunity_id"].is_not_null())
    lead = converted.row(0, named=True)
    instant = lead["converted_at"].strftime("%Y-%m-%dT%H:%M:%SZ")
    # The true instant is not midnight, so a date-only value would be wrong.
    assert not instant.endswith("T00:00:00Z")
    sf_org.edit("Lead", lead["id"], {"Status": "Working"})
    result = run(store, source)
    assert result.stats.updated >= 1
    leads = store.table_text("sf", "leads")
    got = leads.filter(leads["id"] == lead["id"])["converted_at"].to_list()
    assert got == [instant]
