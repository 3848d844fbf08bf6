"""The writeback ledger: what each CRM confirmed, per target and row key, in the store database.

A row's ``value_hash`` changes **only** from the CRM's per-row answer (:func:`record`), in the
transaction that follows the call. A crash between a send and its record leaves the old hash, so
the next run sends the row again — an upsert by the same key, never a second record.

A refused row keeps its last confirmed hash, and gets ``pending_hash`` (the version refused),
``failures``, ``last_error`` and ``next_attempt_at`` (exponential backoff). After
``max_failures`` refusals of the same version it is parked: no more sends until its value changes.

The same module keeps the list of what ``kpisync install`` created (``writeback_installed``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from connectors import schema as db
from connectors.store import Store

if TYPE_CHECKING:
    from writeback.plan import Outcome

DAY_S = 86_400.0


@dataclass(frozen=True)
class LedgerEntry:
    target: str
    key: str
    value_hash: str | None
    crm_id: str | None
    pending_hash: str | None
    failures: int
    last_error: str | None
    next_attempt_at: dt.datetime | None
    parked: bool


@dataclass(frozen=True)
class Installed:
    """One thing install created in a CRM."""

    kind: str
    name: str
    crm: str
    crm_id: str | None
    detail: dict[str, Any]


def _utc(v: dt.datetime | None) -> dt.datetime | None:
    if v is None:
        return None
    return v if v.tzinfo else v.replace(tzinfo=dt.UTC)


def _upsert(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]],
            keys: Sequence[str]) -> None:  # fmt: skip
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(table)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table)  # type: ignore[assignment]
    cols = [c for c in rows[0] if c not in keys]
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={c: stmt.excluded[c] for c in cols}
    )
    for i in range(0, len(rows), 500):
        conn.execute(stmt, rows[i : i + 500])


def load(store: Store, connection: str, target: str) -> dict[str, LedgerEntry]:
    t = db.writeback_ledger
    cols = ("row_key", "value_hash", "crm_id", "pending_hash", "failures", "last_error",
            "next_attempt_at", "parked")  # fmt: skip
    # Read through the driver (a ledger has a row per KPI value): SQLite hands the timestamp
    # back as the ISO text SQLAlchemy stored and the flag as 0/1.
    return {
        key: LedgerEntry(target, key, value_hash, crm_id, pending, int(failures), error,
                         _utc(dt.datetime.fromisoformat(at) if isinstance(at, str) else at),
                         bool(parked))
        for key, value_hash, crm_id, pending, failures, error, at, parked in store.select_rows(
            t.name, cols, connection, where={"target": target})
    }  # fmt: skip


def backoff_s(failures: int, base_s: float) -> float:
    return float(min(DAY_S, base_s * 2 ** max(0, failures - 1)))


def record(
    store: Store, connection: str, target: str, outcomes: Iterable[Outcome],
    previous: Mapping[str, LedgerEntry], *, max_failures: int, retry_base_s: float,
    now: dt.datetime | None = None,
) -> None:  # fmt: skip
    """Store the CRM's per-row answers of one call (one transaction)."""
    now = now or dt.datetime.now(dt.UTC)
    done: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    for o in outcomes:
        e = previous.get(o.key)
        base = {"connection": connection, "target": target, "row_key": o.key, "updated_at": now}
        if o.ok:
            done.append({**base, "value_hash": o.hash,
                         "crm_id": o.crm_id or (e.crm_id if e else None), "written_at": now,
                         "pending_hash": None, "failures": 0, "last_error": None,
                         "next_attempt_at": None, "parked": False})  # fmt: skip
            continue
        same = e is not None and e.pending_hash == o.hash
        failures = (e.failures if same and e is not None else 0) + 1
        wait = dt.timedelta(seconds=backoff_s(failures, retry_base_s))
        # written_at is left out: a refusal keeps the time of the last confirmed write.
        refused.append({**base, "value_hash": e.value_hash if e else None,
                        "crm_id": e.crm_id if e else None, "pending_hash": o.hash,
                        "failures": failures, "last_error": (o.error or "")[:2000],
                        "next_attempt_at": now + wait,
                        "parked": failures >= max_failures})  # fmt: skip
    keys = ("connection", "target", "row_key")
    with store.batch(connection) as b:
        b.upsert_mappings(db.writeback_ledger, done, keys)
        b.upsert_mappings(db.writeback_ledger, refused, keys)


def forget(store: Store, connection: str, target: str | None, keys: Sequence[str] | None) -> None:
    """Drop ledger rows (records deleted in the CRM); all of a target's, or every target's."""
    t = db.writeback_ledger
    with store.engine.begin() as conn:
        where = [t.c.connection == connection]
        if target is not None:
            where.append(t.c.target == target)
        if keys is None:
            conn.execute(sa.delete(t).where(*where))
            return
        for i in range(0, len(keys), 500):
            conn.execute(sa.delete(t).where(*where, t.c.row_key.in_(keys[i : i + 500])))


def parked_counts(store: Store, connection: str) -> dict[str, int]:
    """Parked rows per target (``kpisync status``)."""
    t = db.writeback_ledger
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.c.target, sa.func.count())
            .where(t.c.connection == connection, t.c.parked.is_(True))
            .group_by(t.c.target)
        )
        return {str(target): int(n) for target, n in rows}


def failing(store: Store, connection: str, limit: int = 20) -> list[LedgerEntry]:
    """Rows waiting for a retry or parked, most failures first."""
    t = db.writeback_ledger
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t)
            .where(t.c.connection == connection, t.c.failures > 0)
            .order_by(t.c.failures.desc(), t.c.row_key)
            .limit(limit)
        ).mappings()
        return [
            LedgerEntry(
                r["target"],
                r["row_key"],
                r["value_hash"],
                r["crm_id"],
                r["pending_hash"],
                int(r["failures"]),
                r["last_error"],
                _utc(r["next_attempt_at"]),
                bool(r["parked"]),
            )
            for r in rows
        ]


# -- what install created -------------------------------------------------------------------------
def installed(store: Store, connection: str) -> list[Installed]:
    t = db.writeback_installed
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t).where(t.c.connection == connection).order_by(t.c.created_at, t.c.name)
        ).mappings()
        return [Installed(r["kind"], r["name"], r["crm"], r["crm_id"],
                          json.loads(r["detail"] or "{}")) for r in rows]  # fmt: skip


def remember(store: Store, connection: str, item: Installed) -> None:
    row = {"connection": connection, "kind": item.kind, "name": item.name, "crm": item.crm,
           "crm_id": item.crm_id, "detail": json.dumps(item.detail, sort_keys=True),
           "created_at": dt.datetime.now(dt.UTC)}  # fmt: skip
    with store.engine.begin() as conn:
        _upsert(conn, db.writeback_installed, [row], ("connection", "kind", "name"))


def unremember(store: Store, connection: str, kind: str, name: str) -> None:
    t = db.writeback_installed
    with store.engine.begin() as conn:
        conn.execute(
            sa.delete(t).where(t.c.connection == connection, t.c.kind == kind, t.c.name == name)
        )
