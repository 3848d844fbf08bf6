"""Shared pieces of the HubSpot connector tests: a running sandbox portal over HTTPS, a fresh
store, the connector settings pointing at the sandbox, and the canonical comparison.

(Named ``test_*`` so it sits with the tests it serves; it holds no tests itself.)
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import requests

from connectors.base import SyncResult
from connectors.http import RetryPolicy
from connectors.hubspot import HubSpotCredentials, HubSpotSettings, Limits, sync_hubspot
from connectors.store import Store
from sandbox.generator import generate_org, spec_for, with_crm_ids
from sandbox.hubspot import create_app
from sandbox.hubspot.app import HubSpotApp

ORG_SEED = 3
CONNECTION = "hs-test"
# Canonical tables a HubSpot portal can hold (costs come from elsewhere: HubSpot has none).
TABLES = ("teams", "reps", "accounts", "leads", "opportunities", "activities", "quotas",
          "fx_rates")  # fmt: skip
KEYS = {"quotas": ["owner_id", "period_start"], "fx_rates": ["currency", "start_date"]}
OBJECT_TABLE = {"companies": "accounts", "contacts": "leads", "deals": "opportunities",
                "goal_targets": "quotas"}  # fmt: skip
KIND_OBJECT = {"call": "calls", "email": "emails", "meeting": "meetings", "task": "tasks"}


@dataclass
class Portal:
    """A running sandbox portal and the canonical org it was seeded from (the ground truth)."""

    app: HubSpotApp
    server: Any  # sandbox.server.SandboxServer
    truth: dict[str, pl.DataFrame]

    @property
    def base_url(self) -> str:
        return str(self.server.url("hubspot"))

    @property
    def token(self) -> str:
        return str(self.app.auth.config.private_app_token)

    def settings(self, **kw: Any) -> HubSpotSettings:
        limits = kw.pop("limits", None) or Limits(
            # The sandbox runs the "unlimited" tier; the real defaults (90 / 10 s, 4 searches
            # a second) are exercised by the rate-limit tests.
            requests_per_10s=100_000, searches_per_second=1_000,
            retry=RetryPolicy(attempts=8, base_s=0.02, cap_s=0.3),
        )  # fmt: skip
        return HubSpotSettings(
            credentials=HubSpotCredentials(access_token=self.token), connection=CONNECTION,
            base_url=self.base_url, ca_bundle=self.server.ca_bundle, limits=limits, **kw,
        )  # fmt: skip

    def control(self, method: str, path: str, body: Any = None) -> Any:
        s = requests.Session()
        # REQUESTS_CA_BUNDLE must not override the sandbox CA (psf/requests#3829)
        s.trust_env = False
        s.verify = self.server.ca_bundle
        r = s.request(method, f"{self.base_url}/__sandbox/{path}", json=body)
        assert r.status_code < 300, r.text
        return r.json()

    def client(self) -> Any:
        from hubspot import HubSpot

        return HubSpot(access_token=self.token, host=self.base_url, base_url=self.base_url,
                       ssl_ca_cert=self.server.ca_bundle)  # fmt: skip

    def log(self) -> list[dict[str, Any]]:
        return list(self.server.requests_log("hubspot"))

    def clear_log(self) -> None:
        self.server._stats.clear()

    def reset(self) -> None:
        self.server.faults.clear()
        self.app.reset()
        self.app.configure({"tier": "unlimited", "reset_limits": True})
        self.clear_log()


def start_portal(tables: dict[str, pl.DataFrame] | None = None) -> Portal:
    from sandbox.hubspot.testing import start_server

    if tables is None:
        org = generate_org(spec_for("small", ORG_SEED))
        tables = with_crm_ids(org, "hubspot").tables
        app = create_app(org=org, tier="unlimited")
    else:
        app = create_app(tables=tables, tier="unlimited", company_currency="EUR")
    return Portal(app, start_server(app), tables)


@pytest.fixture(scope="module")
def portal() -> Iterator[Portal]:
    p = start_portal()
    try:
        yield p
    finally:
        p.server.stop()


@pytest.fixture
def fresh_portal(portal: Portal) -> Iterator[Portal]:
    """The module's portal, reset to its seed before and after the test."""
    portal.reset()
    yield portal
    portal.reset()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'store.db'}")
    s.migrate()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def synced_db(portal: Portal, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store file holding one full sync of the module's (freshly reset) portal."""
    portal.reset()
    path = tmp_path_factory.mktemp("hubspot") / "synced.db"
    s = Store(f"sqlite:///{path}")
    s.migrate()
    sync(s, portal)
    s.close()  # the last connection closing checkpoints the WAL into the file
    portal.clear_log()
    return path


@pytest.fixture
def synced(synced_db: Path, fresh_portal: Portal, tmp_path: Path) -> Iterator[Store]:
    """A store already holding a full sync of the (freshly reset) portal."""
    path = tmp_path / "store.db"
    shutil.copyfile(synced_db, path)
    s = Store(f"sqlite:///{path}")
    try:
        yield s
    finally:
        s.close()


def sync(store: Store, portal: Portal, **kw: Any) -> SyncResult:
    settings = kw.pop("settings", None) or portal.settings()
    result = sync_hubspot(store, settings, **kw)
    assert result.outcome == "ok", result.message
    return result


# -- canonical comparison ------------------------------------------------------------------------
def as_text(table: str, df: pl.DataFrame) -> pl.DataFrame:
    """Typed canonical frame → the canonical text the store keeps (CSV conventions)."""
    places = 6 if table == "fx_rates" else 2
    exprs = []
    for c, dtype in df.schema.items():
        col = pl.col(c)
        if isinstance(dtype, pl.Datetime):
            e = col.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        elif dtype == pl.Date:
            e = col.dt.strftime("%Y-%m-%d")
        elif dtype == pl.Boolean:
            e = pl.when(col).then(pl.lit("true")).when(col.not_()).then(pl.lit("false"))
        elif dtype.is_float():
            e = col.map_elements(lambda x: f"{x:.{places}f}", return_dtype=pl.String)
        else:
            e = col.cast(pl.String)
        exprs.append(e.alias(c))
    return df.select(exprs)


def differences(
    expected: dict[str, pl.DataFrame], got: dict[str, pl.DataFrame], *, typed: bool = True
) -> dict[str, Any]:
    """Per table: row-count or per-column mismatches (empty dict = identical)."""
    out: dict[str, Any] = {}
    for t in TABLES:
        a = as_text(t, expected[t]) if typed else expected[t]
        b = got[t].select(a.columns)
        keys = KEYS.get(t, ["id"])
        a, b = a.sort(keys), b.sort(keys)
        if a.height != b.height:
            missing = a.join(b, on=keys, how="anti")[keys[0]].head(3).to_list()
            extra = b.join(a, on=keys, how="anti")[keys[0]].head(3).to_list()
            out[t] = (
                f"{a.height} rows expected, {b.height} stored; missing {missing}, extra {extra}"
            )
            continue
        for c in a.columns:
            x, y = a[c], b[c]
            if t == "fx_rates" and c == "rate":
                # HubSpot keeps the inverse rate to 6 decimals, so the canonical rate comes back
                # within one unit of the 6th decimal (see connectors.hubspot_mapping).
                bad = [
                    i for i, (p, q) in enumerate(zip(x.to_list(), y.to_list(), strict=True))
                    if not math.isclose(float(p), float(q), abs_tol=1.5e-6)
                ]  # fmt: skip
            else:
                bad = (x.fill_null("∅") != y.fill_null("∅")).arg_true().to_list()
            if bad:
                out.setdefault(t, []).append(
                    (c, len(bad), [(x[i], y[i], a[keys[0]][i]) for i in bad[:3]])
                )
    return out


def canonical(store: Store) -> dict[str, pl.DataFrame]:
    return store.canonical_text(CONNECTION)


def calls_by_endpoint(log: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in log:
        key = f"{e['method']} {e['path']}"
        out[key] = out.get(key, 0) + 1
    return out
