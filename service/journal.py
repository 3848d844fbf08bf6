"""What ``kpisync run`` records in the store: the cycles it ran and when each connection is due.

Both tables are written only by the process holding the connection's lock (``service.locks``),
so they need no locking of their own. ``kpisync status`` reads them (:func:`status`).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from connectors import schema as db
from connectors.store import Store, utcnow

__all__ = ["CycleRecord", "abandon_unfinished", "cycles", "finish", "next_run", "start", "status"]

RUNNING, ABANDONED = "running", "abandoned"


@dataclass(frozen=True)
class CycleRecord:
    id: int
    connection: str
    holder: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    outcome: str
    failed_step: str | None
    message: str | None
    seconds: dict[str, float]
    kpi_values: int | None
    written: int | None


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def start(store: Store, connection: str, holder: str) -> int:
    """Log the start of a cycle (outcome ``running`` until :func:`finish`)."""
    with store.engine.begin() as conn:
        res = conn.execute(
            sa.insert(db.service_cycles).values(
                connection=connection, holder=holder, started_at=utcnow(), outcome=RUNNING
            )
        )
        key = res.inserted_primary_key
        assert key is not None
        return int(key[0])


def finish(
    store: Store, cycle_id: int, *, outcome: str, failed_step: str | None = None,
    message: str = "", seconds: dict[str, float] | None = None, kpi_values: int | None = None,
    written: int | None = None,
) -> None:  # fmt: skip
    t = db.service_cycles
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(t).where(t.c.id == cycle_id).values(
                finished_at=utcnow(), outcome=outcome, failed_step=failed_step,
                message=message[:2000], seconds=json.dumps(seconds or {}), kpi_values=kpi_values,
                written=written,
            )
        )  # fmt: skip


def abandon_unfinished(store: Store, connection: str) -> int:
    """Mark cycles still ``running`` as abandoned: only the lock holder may call this, so their
    process is gone. Returns how many."""
    t = db.service_cycles
    with store.engine.begin() as conn:
        res = conn.execute(
            sa.update(t)
            .where(t.c.connection == connection, t.c.outcome == RUNNING)
            .values(outcome=ABANDONED, message="the process running it stopped without finishing")
        )
        return int(res.rowcount or 0)


def cycles(store: Store, connection: str, limit: int = 10) -> list[CycleRecord]:
    """The latest cycles of ``connection``, newest first."""
    t = db.service_cycles
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t).where(t.c.connection == connection).order_by(t.c.id.desc()).limit(limit)
        ).mappings()
        return [
            CycleRecord(
                r["id"],
                r["connection"],
                r["holder"],
                _utc(r["started_at"]) or utcnow(),
                _utc(r["finished_at"]),
                r["outcome"],
                r["failed_step"],
                r["message"],
                json.loads(r["seconds"] or "{}"),
                r["kpi_values"],
                r["written"],
            )
            for r in rows
        ]


def set_next_run(store: Store, connection: str, when: dt.datetime | None) -> None:
    t = db.service_schedule
    with store.engine.begin() as conn:
        done = conn.execute(
            sa.update(t)
            .where(t.c.connection == connection)
            .values(next_run_at=when, updated_at=utcnow())
        )
        if not done.rowcount:
            conn.execute(
                sa.insert(t).values(connection=connection, next_run_at=when, updated_at=utcnow())
            )


def next_run(store: Store, connection: str) -> dt.datetime | None:
    t = db.service_schedule
    with store.engine.connect() as conn:
        value = conn.execute(
            sa.select(t.c.next_run_at).where(t.c.connection == connection)
        ).scalar()
    return _utc(value)


def status(store: Store, connection: str, limit: int = 5) -> dict[str, Any]:
    """The service part of ``kpisync status``: next scheduled run and the last cycles."""
    when = next_run(store, connection)
    last = cycles(store, connection, limit)
    paused = None
    if last and last[0].outcome == "paused" and when is not None:
        # The API budget is spent: the cycle due next is when it comes back.
        paused = {"reason": last[0].message, "resumes_at": when.isoformat()}
    return {
        "next_run_at": when.isoformat() if when else None,
        "paused": paused,
        "last_cycles": [
            {
                "id": c.id,
                "holder": c.holder,
                "started_at": c.started_at.isoformat(),
                "finished_at": c.finished_at.isoformat() if c.finished_at else None,
                "outcome": c.outcome,
                "failed_step": c.failed_step,
                "message": c.message,
                "seconds": c.seconds,
                "kpi_values": c.kpi_values,
                "written": c.written,
            }
            for c in last
        ],
    }
