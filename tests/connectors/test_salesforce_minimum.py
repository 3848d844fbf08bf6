"""A full Salesforce pull costs the fewest calls the API allows for the org's volume
(``bench.targets.salesforce_minimum``), as the org's own usage counter charges them: every
describe in one Composite call, first pages five to a Composite call, then per object the cheaper
of REST pages and a Bulk API 2.0 job, whose state is polled with a doubling wait."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator

import pytest

from bench.targets import SF_BULK_PAGE, SF_REST_PAGE, salesforce_minimum
from connectors.salesforce import SalesforceClient, SalesforceSource
from connectors.store import Store

from .conftest import SF_SEED, SfOrg
from .sf_helpers import run

#: Opportunities of the org: Task (~4.3 per opportunity, ~10,700 rows) would take 5 more REST
#: pages, so a Bulk API 2.0 job (create + poll + one result set) is cheaper; Lead and Opportunity
#: take one further REST page, cheaper than a job; the other objects fit in their first page.
ORG_SIZE = 2_500
JOB = "/services/data/v{version}/jobs/query/{job_id}"


@pytest.fixture(scope="module")
def mid_org() -> Iterator[SfOrg]:
    from sandbox.salesforce.testing import build_sandbox
    from sandbox.server import SandboxServer

    app, tables = build_sandbox(ORG_SIZE, SF_SEED)
    with SandboxServer([app]) as server:
        org = SfOrg(server, app, tables)
        org.app.configure({"api_usage": 0, "daily_api_requests": 1_000_000})
        yield org


def _rows(org: SfOrg, source: SalesforceSource) -> dict[str, int]:
    frames = org.app._frames
    return {spec.name: frames[spec.name].height for spec in source.objects()}


def test_a_full_pull_costs_the_fewest_calls_the_api_allows(
    mid_org: SfOrg, sqlite_store: Store
) -> None:
    # The first status poll comes after the sandbox's shortest job time (0.3 s): one poll a job,
    # as the minimum counts (how the wait grows is the next test's subject).
    source = SalesforceSource(mid_org.config(bulk_poll_s=0.5))
    rows = _rows(mid_org, source)
    minimum, how = salesforce_minimum(rows)
    bulk = [n for n, count in rows.items() if 2 + math.ceil(count / SF_BULK_PAGE)
            < math.ceil(count / SF_REST_PAGE) - 1]  # fmt: skip
    rest = [n for n, count in rows.items() if count > SF_REST_PAGE and n not in bulk]
    # Both paths are taken, or the test would not tell one from the other.
    assert bulk and rest, rows
    mid_org.clear_log()
    used_before = mid_org.app.api_usage
    result = run(sqlite_store, source)

    charged = mid_org.app.api_usage - used_before
    assert charged == result.stats.api_calls
    assert charged == minimum, f"{charged} calls against the minimum {minimum} ({how})"
    sent = Counter(f"{e['method']} {e['endpoint']}" for e in mid_org.requests())
    # The describes and the first pages: 1 + ceil(11 / 5) Composite calls; no Describe Global,
    # no describe on its own.
    assert sent["POST /services/data/v{version}/composite"] == 1 + math.ceil(len(rows) / 5)
    assert sent["GET /services/data/v{version}/sobjects"] == 0
    assert sent["GET /services/data/v{version}/sobjects/{sobject}/describe"] == 0
    assert sent["POST /services/data/v{version}/jobs/query"] == len(bulk)
    assert sent[f"GET {JOB}/results"] == sum(math.ceil(rows[n] / SF_BULK_PAGE) for n in bulk)
    more_pages = sum(math.ceil(rows[n] / SF_REST_PAGE) - 1 for n in rest)
    assert sent["GET /services/data/v{version}/queryAll/{locator}"] == more_pages
    for name in bulk:
        assert result.per_object[name].api_calls == 2 + math.ceil(rows[name] / SF_BULK_PAGE)
    # Every record came, whichever way.
    assert result.stats.records_in == sum(rows.values())


def test_describes_cost_one_call_and_an_absent_object_is_skipped(
    sf_org: SfOrg, sqlite_store: Store
) -> None:
    client = SalesforceClient(sf_org.config())
    names = ["Account", "Opportunity", "Lead", "NoSuchObject__c"]
    used_before = sf_org.app.api_usage
    described = client.describe_objects(names)
    assert sf_org.app.api_usage - used_before == 1 == client.calls
    assert described["NoSuchObject__c"] is None
    types, flags = described["Opportunity"] or ({}, {})
    assert types["Amount"] == "currency" and types["CloseDate"] == "date"
    assert flags == {"replicateable": True, "deletable": True}
    # The same answers as the describe of one object.
    assert described["Lead"] == client.describe_object("Lead")


def test_a_bulk_job_is_polled_with_a_doubling_wait(sf_org: SfOrg, sqlite_store: Store) -> None:
    # A 1.5 s job polled from 0.1 s: looks at 0.1, 0.3, 0.7, 1.5 (maybe 3.1) s, where a fixed
    # interval (simple-salesforce's wait_for_job) would look some 15 times.
    sf_org.app.configure({"bulk_min_job_seconds": 1.5})
    try:
        client = SalesforceClient(sf_org.config(bulk_poll_s=0.1))
        sf_org.clear_log()
        pages = list(client.bulk_pages("Task", "SELECT Id FROM Task", 500))
    finally:
        sf_org.app.configure({"bulk_min_job_seconds": 0.3})
    sent = Counter(f"{e['method']} {e['endpoint']}" for e in sf_org.requests())
    assert 4 <= sent[f"GET {JOB}"] <= 5, sent
    rows = sf_org.app._frames["Task"].height
    # maxRecords is what the caller asked: one call per set of 500.
    assert sent[f"GET {JOB}/results"] == len(pages) == math.ceil(rows / 500)
    assert sum(page.count("\n") - 1 for page in pages) == rows


def test_a_first_page_decides_rest_or_bulk_by_calls(sf_org: SfOrg) -> None:
    source = SalesforceSource(sf_org.config())
    # 2,000-row pages: 10,000 rows are 4 more pages, a job 3 calls.
    assert source._bulk_is_cheaper({"totalSize": 10_000, "records": [{}] * 2000})
    # 7,500 rows: 3 more pages against a job's 3 calls: REST keeps its ordered, resumable pages.
    assert not source._bulk_is_cheaper({"totalSize": 7_500, "records": [{}] * 2000})
    # The server's page size counts, not the one asked for: 200-row pages make 1,000 rows dear.
    assert source._bulk_is_cheaper({"totalSize": 1_000, "records": [{}] * 200})
    # Past bulk_threshold, Bulk whatever the count.
    forced = SalesforceSource(sf_org.config(bulk_threshold=150))
    assert forced._bulk_is_cheaper({"totalSize": 151, "records": [{}] * 150})
