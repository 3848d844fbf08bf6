"""Fixtures for the connector tests: stores (SQLite and PostgreSQL) and a Salesforce sandbox.

PostgreSQL: set ``KPISYNC_TEST_PG_URL`` (e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432/test``);
each test gets its own schema, dropped afterwards. Without the variable the PostgreSQL cases are
skipped — except under ``CI=true``, where they fail instead, so CI cannot silently skip them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from connectors.config import ConnectionConfig, Secret, SyncOptions
from connectors.store import Store

PG_ENV = "KPISYNC_TEST_PG_URL"
SF_SEED = 11
# Fast retries: the fault tests exercise backoff, not wall-clock patience.
FAST = SyncOptions(retry_base_s=0.01, retry_cap_s=0.05, rate_per_s=0, bulk_poll_s=0.05)


def _pg_url() -> str | None:
    url = os.environ.get(PG_ENV)
    if not url and os.environ.get("CI") == "true":
        pytest.fail(f"{PG_ENV} must be set under CI=true (PostgreSQL store tests may not skip)")
    return url


def make_store(kind: str, tmp_path: Path) -> Iterator[Store]:
    if kind == "sqlite":
        store = Store(f"sqlite:///{tmp_path / 'store.db'}")
        store.migrate()
        yield store
        store.close()
        return
    url = _pg_url()
    if not url:
        pytest.skip(f"{PG_ENV} not set")
    schema = f"kpisync_test_{uuid.uuid4().hex[:12]}"
    store = Store(url, schema=schema)
    store.migrate()
    try:
        yield store
    finally:
        store.close()
        import sqlalchemy as sa

        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty, migrated store — once on SQLite, once on PostgreSQL."""
    yield from make_store(request.param, tmp_path)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    yield from make_store("sqlite", tmp_path)


@dataclass
class SfOrg:
    """A running sandbox Salesforce org and what it was seeded from."""

    server: Any
    app: Any
    canonical: dict[str, Any]

    @property
    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = self.app.connection_info()
        return info

    def config(self, **options: Any) -> ConnectionConfig:
        i = self.info
        return ConnectionConfig(
            name="sf", crm="salesforce", instance_url=i["instance_url"],
            token_url=i["token_url"], client_id=i["client_id"],
            client_secret=Secret(i["client_secret"]), ca_bundle=self.server.ca_bundle,
            options=replace(FAST, **options),
        )  # fmt: skip

    def requests(self) -> list[dict[str, Any]]:
        log: list[dict[str, Any]] = self.server.requests_log("salesforce")
        return log

    def clear_log(self) -> None:
        self.server._stats.clear()

    def fault(self, **rule: Any) -> None:
        rule.setdefault("crm", "salesforce")
        self.server.faults.add_json(rule)

    def edit(self, obj: str, record_id: str, fields: dict[str, Any]) -> None:
        self.app.edit_record(obj, record_id, fields)

    def delete(self, obj: str, record_id: str) -> None:
        self.app.delete_record(obj, record_id)


@pytest.fixture(scope="session")
def sf_server() -> Iterator[SfOrg]:
    from sandbox.salesforce.testing import build_sandbox
    from sandbox.server import SandboxServer

    app, tables = build_sandbox("small", SF_SEED)
    with SandboxServer([app]) as server:
        yield SfOrg(server, app, tables)


@pytest.fixture
def sf_org(sf_server: SfOrg) -> Iterator[SfOrg]:
    """The org reset to its seed, with no faults, an unspent budget and an empty request log."""
    sf_server.app.reset()
    sf_server.server.faults.clear()
    sf_server.app.configure({"api_usage": 0, "daily_api_requests": 1_000_000})
    sf_server.clear_log()
    yield sf_server
    sf_server.server.faults.clear()
