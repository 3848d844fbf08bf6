"""Alembic environment: runs on the connection ``Store.migrate`` passes in (no alembic.ini)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Collection, Mapping
from typing import Any

from alembic import context
from alembic.migration import MigrationContext, MigrationInfo

from connectors.schema import metadata

#: Test-only: seconds to sleep after each migration step is applied, before the upgrade commits.
#: The crash tests (tests/chaos/test_crash.py) set it so that a process can be killed in the
#: middle of an upgrade at a known point instead of by luck; nothing else should set it.
PAUSE_ENV = "KPISYNC_TEST_MIGRATION_PAUSE_S"

log = logging.getLogger("kpisync.store")


def _pause_after_step(
    ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]
) -> None:
    pause = float(os.environ.get(PAUSE_ENV) or 0)
    if pause > 0:
        log.warning("migration %s applied, not committed; pausing %.1fs (%s)",
                    step.up_revision_id, pause, PAUSE_ENV)  # fmt: skip
        time.sleep(pause)


connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only Store.migrate drives migrations
    raise RuntimeError("run migrations through connectors.store.Store.migrate()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things in place; batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    on_version_apply=_pause_after_step,
)
with context.begin_transaction():
    context.run_migrations()
