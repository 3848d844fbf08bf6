"""Paging through more than 100,000 records, linearly, with simple-salesforce ``query_all``."""

from __future__ import annotations

import statistics
from collections.abc import Iterator

import pytest
from simple_salesforce import Salesforce

from sandbox.salesforce.testing import SalesforceSandbox, build_sandbox
from sandbox.server import SandboxServer

N_OPPORTUNITIES = 100_500


@pytest.fixture(scope="module")
def big_org() -> Iterator[SalesforceSandbox]:
    app, tables = build_sandbox(N_OPPORTUNITIES, 5)
    with SandboxServer([app]) as server:
        yield SalesforceSandbox(server, app, tables)


def test_query_all_pages_through_100k_records(big_org: SalesforceSandbox) -> None:
    sf: Salesforce = big_org.client()
    result = sf.query_all("SELECT Id, CloseDate FROM Opportunity")
    ids = [r["Id"] for r in result["records"]]
    assert result["totalSize"] == N_OPPORTUNITIES == len(ids) == len(set(ids))
    assert ids == big_org.canonical["opportunities"]["id"].to_list()

    pages = [
        e
        for e in big_org.server.requests_log("salesforce")
        if e["endpoint"] == "GET /services/data/v{version}/query/{locator}"
        or e["endpoint"] == "/services/data/v{version}/query/{locator}"
    ]
    assert len(pages) == -(-N_OPPORTUNITIES // 2000) - 1
    # Linear paging: a late page costs what an early one does (no re-scan from the start).
    early = statistics.median(e["duration_ms"] for e in pages[:10])
    late = statistics.median(e["duration_ms"] for e in pages[-10:])
    assert late < early * 3 + 5


def test_bulk2_streams_the_same_rows(big_org: SalesforceSandbox) -> None:
    sf = big_org.client()
    rows = 0
    for page in sf.bulk2.Opportunity.query(
        "SELECT Id FROM Opportunity", max_records=60_000, wait=0.1
    ):
        rows += page.count("\n") - 1
    assert rows == N_OPPORTUNITIES
