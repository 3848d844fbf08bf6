"""Faults, crashes and the API budget: the sync still ends with exactly the right store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connectors.base import sync_connection
from connectors.config import Secret
from connectors.errors import AuthError
from connectors.salesforce import SalesforceSource
from connectors.store import Store

from .conftest import SfOrg, make_store
from .sf_helpers import assert_same_tables, export_csvs, run, seed_csvs

PAGE = 200


@pytest.mark.parametrize(
    "rule",
    [
        {"kind": "rate_limit_storm", "count": 6},
        {"kind": "http_5xx", "count": 3, "statuses": [500, 503]},
        {"kind": "drop_connection", "count": 3, "path": "/query"},
        {"kind": "expired_session", "count": 2, "path": "/query"},
    ],
    ids=lambda r: str(r["kind"]),
)
def test_faults_are_ridden_out(
    sf_org: SfOrg, sqlite_store: Store, tmp_path: Path, rule: dict[str, Any]
) -> None:
    sf_org.fault(**rule)
    source = SalesforceSource(sf_org.config(), page_size=PAGE)
    result = run(sqlite_store, source)
    assert result.stats.quarantined == 0
    statuses = [e.get("status") for e in sf_org.requests()]
    assert any(s is None or s >= 400 for s in statuses) or rule["kind"] == "drop_connection"
    assert_same_tables(seed_csvs(sf_org.canonical, tmp_path / "seed"),
                       export_csvs(sqlite_store, "sf", tmp_path / "export"))  # fmt: skip


class Crash(Exception):
    pass


def test_a_crash_mid_sync_then_a_rerun_equals_an_uninterrupted_run(
    sf_org: SfOrg, tmp_path: Path
) -> None:
    (tmp_path / "clean").mkdir()
    (tmp_path / "crashed").mkdir()
    clean = next(make_store("sqlite", tmp_path / "clean"))
    run(clean, SalesforceSource(sf_org.config(), page_size=PAGE))

    crashed = next(make_store("sqlite", tmp_path / "crashed"))
    stored = 0

    def crash_after_batches(obj: str, n: int) -> None:
        nonlocal stored
        stored += 1
        # Mid-object (Lead: two REST pages of 200), cursors of earlier objects already stored.
        # Task, at 200 rows a page, is cheaper as one Bulk API 2.0 job: a single page.
        if obj == "Lead" and n == 1:
            raise Crash

    with pytest.raises(Crash):
        sync_connection(crashed, "sf", SalesforceSource(sf_org.config(), page_size=PAGE),
                        after_batch=crash_after_batches)  # fmt: skip
    assert crashed.runs("sf")[0].outcome == "failed"
    # The restarted process: a new source, the same store.
    run(crashed, SalesforceSource(sf_org.config(), page_size=PAGE))
    after_crash, uninterrupted = crashed.canonical_text("sf"), clean.canonical_text("sf")
    assert after_crash.keys() == uninterrupted.keys()
    for table, frame in uninterrupted.items():
        assert after_crash[table].equals(frame), table
    for obj in clean.raw_count("sf"):
        assert list(crashed.raw_records("sf", obj)) == list(clean.raw_records("sf", obj))
    assert crashed.raw_count("sf") == clean.raw_count("sf")


def test_the_budget_pauses_the_sync_and_it_resumes_later(sf_org: SfOrg, sqlite_store: Store,
                                                         tmp_path: Path) -> None:  # fmt: skip
    # The org has 1000 calls a day and other integrations used 195: a 20 % budget is 200.
    sf_org.app.configure({"daily_api_requests": 1000, "api_usage": 195})
    source = SalesforceSource(sf_org.config(budget_share=0.2), page_size=PAGE)
    result = sync_connection(sqlite_store, "sf", source)
    assert result.outcome == "paused"
    assert "budget" in result.message
    assert sqlite_store.runs("sf")[0].outcome == "paused"
    # A new day: the allowance is back; the next run finishes from the stored cursors.
    sf_org.app.configure({"api_usage": 0})
    run(sqlite_store, SalesforceSource(sf_org.config(), page_size=PAGE))
    assert_same_tables(seed_csvs(sf_org.canonical, tmp_path / "seed"),
                       export_csvs(sqlite_store, "sf", tmp_path / "export"))  # fmt: skip


def test_refresh_token_and_jwt_bearer_logins(sf_org: SfOrg, sqlite_store: Store) -> None:
    from dataclasses import replace

    from sandbox.salesforce.auth import generate_jwt_keypair

    info = sf_org.info
    cfg = replace(sf_org.config(), auth="refresh_token", client_secret=None,
                  refresh_token=Secret(info["refresh_token"]))  # fmt: skip
    run(sqlite_store, SalesforceSource(cfg))

    private, public = generate_jwt_keypair()
    sf_org.app.configure({"jwt_public_key": public.decode()})
    cfg = replace(sf_org.config(), auth="jwt", client_secret=None, username=info["username"],
                  private_key=Secret(private.decode()))  # fmt: skip
    run(sqlite_store, SalesforceSource(cfg))


def test_a_refused_login_is_fatal_and_names_no_secret(sf_org: SfOrg, sqlite_store: Store) -> None:
    from dataclasses import replace

    cfg = replace(sf_org.config(), client_secret=Secret("wrong-secret-value"))
    with pytest.raises(AuthError) as err:
        sync_connection(sqlite_store, "sf", SalesforceSource(cfg))
    assert "wrong-secret-value" not in str(err.value)
    assert "wrong-secret-value" not in repr(cfg)
    assert sqlite_store.runs("sf")[0].outcome == "failed"
