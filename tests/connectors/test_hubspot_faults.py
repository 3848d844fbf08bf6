"""HubSpot faults and crashes: the sync rides them out and ends with exactly the right store."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from connectors.hubspot import HubSpotCredentials, sync_hubspot
from connectors.store import Store
from tests.connectors.test_hubspot_support import (
    CONNECTION,
    Portal,
    canonical,
    differences,
    fresh_portal,
    portal,
    store,
    sync,
)

__all__ = ["fresh_portal", "portal", "store"]  # fixtures


def _fault(p: Portal, **rule: Any) -> None:
    p.server.faults.add_json({"crm": "hubspot", **rule})


@pytest.mark.parametrize(
    "rule",
    [
        {"kind": "rate_limit_storm", "count": 6},
        {"kind": "http_5xx", "count": 4, "statuses": [502, 503]},
        # Dropped answers of list pages and of the owners/teams metadata.
        {"kind": "drop_connection", "count": 3, "path": "/crm/v3/objects/"},
        {"kind": "drop_connection", "count": 2, "path": "/crm/v3/owners"},
        {"kind": "latency_ms", "rate": 0.2, "latency_ms": 30},
    ],
    ids=lambda r: f"{r['kind']}-{r.get('path', 'any')}",
)
def test_faults_are_ridden_out(fresh_portal: Portal, store: Store, rule: dict[str, Any]) -> None:
    p = fresh_portal
    _fault(p, **rule)
    result = sync(store, p)
    assert result.stats.quarantined == 0
    assert differences(p.truth, canonical(store)) == {}
    fired = [e for e in p.log() if e["faults"]]
    assert fired, "the fault never fired"
    if rule["kind"] in ("rate_limit_storm", "http_5xx"):
        assert any(e["status"] >= 429 for e in fired)


def test_an_expired_oauth_token_is_refreshed(fresh_portal: Portal, store: Store) -> None:
    p = fresh_portal
    info = p.app.connection_info()
    oauth = HubSpotCredentials(
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        refresh_token=info["refresh_token"],
    )
    # Two expiries on two different calls (a fresh token that expires at once is not renewed
    # again: that is a broken OAuth app, reported as such).
    _fault(p, kind="expired_session", count=1, path="/crm/v3/owners")
    _fault(p, kind="expired_session", count=1, path="/crm/v3/objects/")
    result = sync_hubspot(store, replace(p.settings(), credentials=oauth))
    assert result.outcome == "ok", result.message
    assert differences(p.truth, canonical(store)) == {}
    token_calls = [e for e in p.log() if e["path"] == "/oauth/v1/token"]
    assert len(token_calls) == 3  # the first login and one refresh after each expiry
    assert any(e["status"] == 401 for e in p.log())


class Crash(Exception):
    pass


def test_a_crash_mid_sync_then_a_rerun_equals_an_uninterrupted_run(
    fresh_portal: Portal, tmp_path: Path
) -> None:
    p = fresh_portal
    clean = Store(f"sqlite:///{tmp_path / 'clean.db'}")
    clean.migrate()
    sync(clean, p)

    crashed = Store(f"sqlite:///{tmp_path / 'crashed.db'}")
    crashed.migrate()

    def crash(obj: str, n: int) -> None:
        if obj == "calls" and n == 2:  # mid-object; earlier objects' cursors already stored
            raise Crash

    with pytest.raises(Crash):
        sync_hubspot(crashed, p.settings(), after_batch=crash)
    assert crashed.runs(CONNECTION)[0].outcome == "failed"
    # A copy of the crashed store file stands in for the restarted process.
    crashed.close()
    shutil.copyfile(tmp_path / "crashed.db", tmp_path / "restarted.db")
    restarted = Store(f"sqlite:///{tmp_path / 'restarted.db'}")
    sync(restarted, p)

    after, uninterrupted = canonical(restarted), canonical(clean)
    assert after.keys() == uninterrupted.keys()
    for table, frame in uninterrupted.items():
        assert after[table].equals(frame), table
    restarted.close()
    clean.close()
