"""The local store: what each CRM connection last showed us, and the KPIs computed from it.

SQLAlchemy 2 Core over SQLite (a file, the default) or PostgreSQL (by URL); the schema is created
and upgraded by the Alembic migrations in ``connectors/migrations`` through :meth:`Store.migrate`.
Everything is keyed by *connection* (the ``[connections.NAME]`` name of the settings), so one
store can hold several CRMs side by side.

Public API (the contract the connectors code against)::

    store = Store("sqlite:///kpisync.db")           # or postgresql+psycopg://...; schema="name"
    store.migrate()                                 # idempotent; run once at start-up

    with store.batch("sf-prod") as b:               # ONE database transaction
        b.upsert_raw("Opportunity", [(record_id, record_dict), ...])     -> (inserted, updated)
        b.upsert_rows("opportunities", [(row_key, {"id": ..., ...}), ...])
        b.update_rows("opportunities", [(row_key, {"competitor": ...}), ...])  # existing only
        b.delete("Opportunity", ids, table="opportunities", deleted_at=ts) -> number deleted
        b.quarantine("Opportunity", record_id, reason, payload)
        b.release("Opportunity", ids)               # records that normalise again leave quarantine
        b.set_cursor("Opportunity", Cursor(value="2025-03-01T09:30:00Z", state={...}))
    # leaving the block commits everything above together; an exception rolls it all back.

    store.cursor("sf-prod", "Opportunity") -> Cursor | None
    store.cursors("sf-prod") -> dict[str, Cursor]
    store.reset_cursors("sf-prod")                  # a --full sync starts from scratch
    store.raw_records("sf-prod", "Opportunity") -> Iterator[tuple[str, dict]]
    store.canonical_text("sf-prod") -> dict[str, pl.DataFrame]       # every cell a str or null
    store.read_canonical("sf-prod", corporate_currency="EUR") -> CanonicalTables  # typed frames
    store.quarantined("sf-prod") -> list[QuarantineEntry]; store.quarantine_counts("sf-prod")
    run_id = store.start_run("sf-prod", crm="salesforce", mode="incremental")
    store.finish_run(run_id, RunStats(...), outcome="ok" | "paused" | "failed", message="")
    store.runs("sf-prod", limit=10) -> list[RunRecord]
    store.record_api_usage("sf-prod", used=.., limit=..)  /  store.api_usage("sf-prod")
    store.write_kpis("sf-prod", values_frame, computed_at) -> rows  # replaces the connection's KPIs
                                                    # (writing only the rows that differ)
    store.read_kpis("sf-prod") -> pl.DataFrame
    store.select_rows("writeback_ledger", columns, "sf-prod", where={...}) -> list[tuple]
    store.connections() -> list[str]

Transaction and cursor contract:

* A cursor advances only inside the :meth:`Store.batch` that stores the records it covers, so a
  crash anywhere leaves either the batch *and* its cursor, or neither. Re-running a sync from the
  stored cursor re-reads at most one batch (plus the connector's look-back), and every write is an
  upsert keyed by record id, so a replay duplicates nothing.
* Canonical rows are stored as canonical *text* (the CSV conventions of CANONICAL.md: timestamps
  ``2025-03-01T09:30:00Z``, dates ``YYYY-MM-DD``, booleans ``true``/``false``, decimal text), one
  table ``canonical_<name>`` per canonical table, keyed by ``(connection, row_key)``. The row key is
  the CRM record id the row comes from (``id`` for tables that have one; the quota/rate record's
  own id for ``quotas`` and ``fx_rates``). Text keeps money exact and works the same on SQLite and
  PostgreSQL; :meth:`Store.read_canonical` types it with ``kpis.validate`` (bad rows are dropped
  there, exactly as for a CSV import).
* ``upsert_rows`` writes only the columns present in the row mappings (all rows of one call must
  have the same keys), so two CRM objects can fill one canonical row (Salesforce: Opportunity and
  OpportunityCompetitor). ``update_rows`` never creates a row.
* Raw records are stored as JSON, as last seen, so rows can be re-normalised without re-pulling.
  Secrets never reach the store: only CRM records, cursors and counts are written.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from connectors import schema as db
from kpis.tables import TABLES, CanonicalTables

RowKey = str
CanonicalRow = Mapping[str, str | None]

__all__ = [
    "Batch",
    "CanonicalRow",
    "Cursor",
    "QuarantineEntry",
    "RunRecord",
    "RunStats",
    "Store",
]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# One encoder for every record stored: ``json.dumps`` with options builds a new one per call.
_JSON = json.JSONEncoder(sort_keys=True, default=str)
# Datetimes (and anything else JSON lacks) are written as ``str()`` writes them, as _JSON does.
_ORJSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def record_json(record: Mapping[str, Any]) -> str:
    """A raw record as stored: compact JSON with sorted keys (orjson: the record text is most
    of a sync's encoding work). What orjson refuses (integers beyond 64 bits, keys that are
    not text) goes through the json module."""
    try:
        return orjson.dumps(record, default=str, option=_ORJSON_OPTIONS).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _JSON.encode(record)


def _same_json(stored: str, new: str) -> bool:
    """Whether two record texts hold the same JSON (texts stored by an older encoder differ in
    spacing only)."""
    if stored == new:
        return True
    try:
        return bool(orjson.loads(stored) == orjson.loads(new))
    except ValueError:
        return bool(json.loads(stored) == json.loads(new))


@dataclass(frozen=True)
class Cursor:
    """Where the next incremental pull of one object starts (opaque to the store)."""

    value: str | None
    state: Mapping[str, Any] = field(default_factory=dict)
    updated_at: dt.datetime | None = None


@dataclass
class RunStats:
    """What one sync run did; filled in by the extract loop, logged by ``finish_run``."""

    objects: list[str] = field(default_factory=list)
    records_in: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    quarantined: int = 0
    api_calls: int = 0


@dataclass(frozen=True)
class RunRecord:
    id: int
    connection: str
    crm: str
    mode: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    duration_s: float | None
    outcome: str | None
    message: str | None
    stats: RunStats


@dataclass(frozen=True)
class QuarantineEntry:
    object: str
    record_id: str
    reason: str
    payload: Mapping[str, Any]
    recorded_at: dt.datetime


def _as_utc(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite hands back naive datetimes even for timezone=True columns; they were written as UTC.
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


class Batch:
    """The writes of one transaction; obtained from :meth:`Store.batch`, never built directly."""

    def __init__(self, conn: Connection, connection: str, dialect: str) -> None:
        self._conn = conn
        self._connection = connection
        self._dialect = dialect
        # "?" for sqlite3 (qmark), "%s" for psycopg (format): the driver's own paramstyle.
        self._mark = "?" if dialect == "sqlite" else "%s"

    # -- bulk writes at the driver ------------------------------------------------------------
    # The page writes of a sync (raw records, canonical rows) are most of its time: their rows
    # go to the driver's executemany as tuples, with SQL built once per table and column set,
    # instead of through SQLAlchemy's per-row parameter processing. The statement is the same
    # on both databases: INSERT .. ON CONFLICT (key) DO UPDATE SET c = excluded.c
    # (https://www.sqlite.org/lang_upsert.html,
    # https://www.postgresql.org/docs/current/sql-insert.html#SQL-ON-CONFLICT).
    def _upsert_sql(self, table: sa.Table, columns: Sequence[str], keys: Sequence[str]) -> str:
        cache_key = (table.name, tuple(columns), tuple(keys), self._dialect)
        sql = _SQL_CACHE.get(cache_key)
        if sql is None:
            q = self._conn.dialect.identifier_preparer.quote
            names = ", ".join(q(c) for c in columns)
            marks = ", ".join([self._mark] * len(columns))
            updates = ", ".join(f"{q(c)} = excluded.{q(c)}" for c in columns if c not in keys)
            action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
            sql = (
                f"INSERT INTO {q(table.name)} ({names}) VALUES ({marks}) "
                f"ON CONFLICT ({', '.join(q(k) for k in keys)}) {action}"
            )
            _SQL_CACHE[cache_key] = sql
        return sql

    def _upsert_many(
        self,
        table: sa.Table,
        columns: Sequence[str],
        keys: Sequence[str],
        params: Sequence[tuple[Any, ...]],
    ) -> None:
        """Upsert ``params`` (tuples in ``columns`` order, already in the driver's types)."""
        if params:
            self._conn.exec_driver_sql(self._upsert_sql(table, columns, keys), list(params))

    def upsert_mappings(
        self, table: sa.Table, rows: Sequence[Mapping[str, Any]], keys: Sequence[str]
    ) -> None:
        """Upsert ``rows`` (mappings with the same columns, ``keys`` among them) of any store
        table through the driver's executemany, values converted as SQLAlchemy would."""
        if not rows:
            return
        columns = list(rows[0])
        convert = [table.c[c].type.bind_processor(self._conn.dialect) for c in columns]
        params = [
            tuple(v if f is None or v is None else f(v)
                  for f, v in zip(convert, (r[c] for c in columns), strict=True))
            for r in rows
        ]  # fmt: skip
        self._upsert_many(table, columns, keys, params)

    def _bind(self, column: sa.Column[Any], value: Any) -> Any:
        """``value`` as SQLAlchemy would hand it to the driver for ``column`` (a SQLite
        timestamp is text in SQLAlchemy's format, so reads through SQLAlchemy still parse it)."""
        process = column.type.bind_processor(self._conn.dialect)
        return value if process is None else process(value)

    def _has_rows(self, table: sa.Table, obj: str) -> bool:
        """Whether ``table`` holds anything of this connection's ``obj`` (one index probe)."""
        found = self._conn.execute(
            sa.select(sa.literal(1))
            .where(table.c.connection == self._connection, table.c.object == obj)
            .limit(1)
        ).first()
        return found is not None

    def _existing_data(self, obj: str, ids: Sequence[str]) -> dict[str, str]:
        """record id -> stored JSON, of ``ids`` already stored."""
        q = self._conn.dialect.identifier_preparer.quote
        existing: dict[str, str] = {}
        for chunk in _chunks(ids, 500):
            sql = (
                f"SELECT {q('record_id')}, {q('data')} FROM {q('raw_records')} "
                f"WHERE {q('connection')} = {self._mark} AND {q('object')} = {self._mark} "
                f"AND {q('record_id')} IN ({', '.join([self._mark] * len(chunk))})"
            )
            result = self._conn.exec_driver_sql(sql, (self._connection, obj, *chunk))
            existing.update({str(rid): str(data) for rid, data in result})
        return existing

    # -- generic upsert ---------------------------------------------------------------------
    def _upsert(
        self, table: sa.Table, rows: list[dict[str, Any]], keys: Sequence[str], update: bool
    ) -> None:
        if not rows:
            return
        if self._dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt = pg_insert(table)
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(table)  # type: ignore[assignment]
        columns = [c for c in rows[0] if c not in keys]
        if update and columns:
            stmt = stmt.on_conflict_do_update(
                index_elements=list(keys), set_={c: stmt.excluded[c] for c in columns}
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
        self._conn.execute(stmt, rows)

    # -- raw records ------------------------------------------------------------------------
    def upsert_raw(
        self, obj: str, records: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> tuple[int, int]:
        """Store records as last seen; returns (inserted, updated) counts."""
        if not records:
            return 0, 0
        t = db.raw_records
        # The last copy of a record wins; rows go in key order (B-tree inserts stay local).
        data = {rid: record_json(rec) for rid, rec in records}
        ids = sorted(data)
        existing = self._existing_data(obj, ids)
        seen_at = self._bind(t.c.seen_at, utcnow())
        columns = ("connection", "object", "record_id", "data", "seen_at")
        keys = ("connection", "object", "record_id")
        params = [(self._connection, obj, rid, data[rid], seen_at) for rid in ids]
        self._upsert_many(t, columns, keys, params)
        # A record that comes back after a deletion is alive again (nothing to do when none of
        # the object's records was ever deleted: one probe instead of a delete per 500 ids).
        d = db.deletions
        if self._has_rows(d, obj):
            for chunk in _chunks(ids, 500):
                self._conn.execute(
                    sa.delete(d).where(
                        d.c.connection == self._connection,
                        d.c.object == obj,
                        d.c.record_id.in_(chunk),
                    )
                )
        # A record re-read unchanged (look-back window, replay after a crash) is no update.
        inserted = sum(1 for rid in ids if rid not in existing)
        updated = sum(1 for rid in ids
                      if rid in existing and not _same_json(existing[rid], data[rid]))  # fmt: skip
        return inserted, updated

    # -- canonical rows ---------------------------------------------------------------------
    def upsert_rows(self, table: str, rows: Sequence[tuple[RowKey, CanonicalRow]]) -> None:
        """Insert or update canonical rows; only the columns given are written."""
        self._write_rows(table, rows, insert=True)

    def update_rows(self, table: str, rows: Sequence[tuple[RowKey, CanonicalRow]]) -> None:
        """Update columns of rows that exist; keys without a row are ignored."""
        self._write_rows(table, rows, insert=False)

    def _write_rows(
        self, table: str, rows: Sequence[tuple[RowKey, CanonicalRow]], *, insert: bool
    ) -> None:
        if not rows:
            return
        t = db.canonical[table]
        valid = set(db.canonical_columns(table))
        first = rows[0][1]
        unknown = set(first) - valid
        if unknown:
            raise ValueError(f"{table}: unknown canonical column(s) {sorted(unknown)}")
        cols = list(first)
        if insert:
            dedup = {key: row for key, row in rows}  # the last row of a key wins
            columns = ("connection", "row_key", *cols)
            params = [(self._connection, key, *[dedup[key][c] for c in cols])
                      for key in sorted(dedup)]  # fmt: skip
            self._upsert_many(t, columns, ("connection", "row_key"), params)
            return
        dedup_rows = {
            key: {"connection": self._connection, "row_key": key, **dict(row)} for key, row in rows
        }
        values = list(dedup_rows.values())
        stmt = (
            sa.update(t)
            .where(t.c.connection == sa.bindparam("b_connection"))
            .where(t.c.row_key == sa.bindparam("b_row_key"))
            .values({c: sa.bindparam(f"b_{c}") for c in cols})
        )
        self._conn.execute(stmt, [{f"b_{k}": v for k, v in r.items()} for r in values])

    # -- deletions --------------------------------------------------------------------------
    def delete(
        self,
        obj: str,
        ids: Sequence[str],
        *,
        table: str | None = None,
        deleted_at: dt.datetime | None = None,
    ) -> int:
        """Forget deleted records (raw and canonical rows) and log the deletion."""
        if not ids:
            return 0
        when = deleted_at or utcnow()
        count = 0
        raw = db.raw_records
        for chunk in _chunks(list(dict.fromkeys(ids)), 500):
            res = self._conn.execute(
                sa.delete(raw).where(
                    raw.c.connection == self._connection,
                    raw.c.object == obj,
                    raw.c.record_id.in_(chunk),
                )
            )
            count += res.rowcount or 0
            if table is not None:
                ct = db.canonical[table]
                self._conn.execute(
                    sa.delete(ct).where(
                        ct.c.connection == self._connection, ct.c.row_key.in_(chunk)
                    )
                )
            self.release(obj, chunk)
        rows = [
            {
                "connection": self._connection,
                "object": obj,
                "record_id": rid,
                "deleted_at": when,
                "recorded_at": utcnow(),
            }
            for rid in dict.fromkeys(ids)
        ]
        self._upsert(db.deletions, rows, ("connection", "object", "record_id"), True)
        return count

    # -- quarantine -------------------------------------------------------------------------
    def quarantine(self, obj: str, record_id: str, reason: str, payload: Mapping[str, Any]) -> None:
        """Keep a record that could not be normalised, with the reason (latest wins)."""
        row = {
            "connection": self._connection,
            "object": obj,
            "record_id": record_id,
            "reason": reason[:2000],
            "payload": _JSON.encode(payload),
            "recorded_at": utcnow(),
        }
        self._upsert(db.quarantine, [row], ("connection", "object", "record_id"), True)

    def release(self, obj: str, ids: Sequence[str]) -> None:
        """Drop quarantine entries of records that are now fine (or gone)."""
        q = db.quarantine
        if not ids or not self._has_rows(q, obj):
            return  # nothing of the object is in quarantine: one probe, no deletes
        for chunk in _chunks(list(ids), 500):
            self._conn.execute(
                sa.delete(q).where(
                    q.c.connection == self._connection, q.c.object == obj, q.c.record_id.in_(chunk)
                )
            )

    # -- cursors ----------------------------------------------------------------------------
    def set_cursor(self, obj: str, cursor: Cursor) -> None:
        row = {
            "connection": self._connection,
            "object": obj,
            "value": cursor.value,
            "state": json.dumps(dict(cursor.state), sort_keys=True),
            "updated_at": utcnow(),
        }
        self._upsert(db.cursors, [row], ("connection", "object"), True)


# SQL of the driver-level upserts, by (table, columns, key, dialect).
_SQL_CACHE: dict[tuple[str, tuple[str, ...], tuple[str, ...], str], str] = {}


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class Store:
    """One store database; see the module docstring for the contract."""

    def __init__(self, url: str = "sqlite:///kpisync.db", *, schema: str | None = None) -> None:
        self.url = url
        self.schema = schema
        kwargs: dict[str, Any] = {}
        if url.startswith("postgresql") and schema:
            # A schema per deployment (or per test run): every statement resolves there.
            kwargs["connect_args"] = {"options": f"-csearch_path={schema}"}
        self.engine: Engine = sa.create_engine(url, **kwargs)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self.dialect = self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema -----------------------------------------------------------------------------
    def migrate(self, revision: str = "head") -> None:
        """Create or upgrade the schema to the latest migration, or to ``revision`` (no
        alembic.ini needed). The whole upgrade is one transaction: a process killed in the
        middle leaves the store at the revision it started from."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        with self.engine.connect() as conn, _transactional_ddl(conn):
            if self.dialect == "postgresql" and self.schema:
                conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    # -- writing ----------------------------------------------------------------------------
    @contextmanager
    def batch(self, connection: str) -> Iterator[Batch]:
        """One transaction: every write inside commits together, or none does."""
        with self.engine.begin() as conn:
            yield Batch(conn, connection, self.dialect)

    # -- cursors ----------------------------------------------------------------------------
    def cursor(self, connection: str, obj: str) -> Cursor | None:
        return self.cursors(connection).get(obj)

    def cursors(self, connection: str) -> dict[str, Cursor]:
        t = db.cursors
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t).where(t.c.connection == connection)).mappings()
            return {
                r["object"]: Cursor(r["value"], json.loads(r["state"] or "{}"),
                                    _as_utc(r["updated_at"]))
                for r in rows
            }  # fmt: skip

    def reset_cursors(self, connection: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(db.cursors).where(db.cursors.c.connection == connection))

    # -- reading ----------------------------------------------------------------------------
    def raw_records(self, connection: str, obj: str) -> Iterator[tuple[str, dict[str, Any]]]:
        t = db.raw_records
        with self.engine.connect() as conn:
            result = conn.execute(
                sa.select(t.c.record_id, t.c.data)
                .where(t.c.connection == connection, t.c.object == obj)
                .order_by(t.c.record_id)
            )
            for rid, data in result:
                yield rid, orjson.loads(data)

    def raw_count(self, connection: str) -> dict[str, int]:
        t = db.raw_records
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.c.object, sa.func.count())
                .where(t.c.connection == connection)
                .group_by(t.c.object)
            )
            return {obj: int(n) for obj, n in rows}

    def canonical_text(self, connection: str) -> dict[str, pl.DataFrame]:
        """Every canonical table as text columns, sorted by row key (stable exports)."""
        return {name: self.table_text(connection, name) for name in TABLES}

    def select_rows(
        self, table: str, columns: Sequence[str], connection: str, *,
        where: Mapping[str, Any] | None = None, order: Sequence[str] = (),
    ) -> list[tuple[Any, ...]]:  # fmt: skip
        """``columns`` of the connection's rows of ``table`` (``where``: more column = value
        filters) as the driver returns them.

        Every compute and writeback reads whole tables (hundreds of thousands of rows): through
        the driver's own cursor and ``fetchall`` this takes about half the time of building
        SQLAlchemy rows. Values are the driver's types (SQLite: text for dates and timestamps,
        integers for booleans).
        """
        q = self.engine.dialect.identifier_preparer.quote
        mark = "?" if self.dialect == "sqlite" else "%s"
        filters = {"connection": connection, **(where or {})}
        sql = (f"SELECT {', '.join(q(c) for c in columns)} FROM {q(table)} WHERE "
               + " AND ".join(f"{q(c)} = {mark}" for c in filters))  # fmt: skip
        if order:
            sql += f" ORDER BY {', '.join(q(c) for c in order)}"
        with self.engine.connect() as conn:
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(sql, tuple(filters.values()))
                return list(cursor.fetchall())
            finally:
                cursor.close()

    def table_text(self, connection: str, table: str, *, with_key: bool = False) -> pl.DataFrame:
        """One canonical table as text columns (plus ``row_key`` if asked), by row key."""
        cols = (["row_key"] if with_key else []) + db.canonical_columns(table)
        rows = self.select_rows(db.canonical[table].name, cols, connection, order=["row_key"])
        return pl.DataFrame(rows, schema={c: pl.String for c in cols}, orient="row")

    def read_canonical(self, connection: str, corporate_currency: str = "EUR") -> CanonicalTables:
        """The connection's canonical tables, typed as the KPI engine reads them."""
        from kpis.validate import validate_tables

        return validate_tables(self.canonical_text(connection), corporate_currency).tables

    # -- quarantine -------------------------------------------------------------------------
    def quarantined(self, connection: str) -> list[QuarantineEntry]:
        q = db.quarantine
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(q).where(q.c.connection == connection).order_by(q.c.object, q.c.record_id)
            ).mappings()
            return [
                QuarantineEntry(r["object"], r["record_id"], r["reason"],
                                json.loads(r["payload"] or "{}"),
                                _as_utc(r["recorded_at"]) or utcnow())
                for r in rows
            ]  # fmt: skip

    def quarantine_counts(self, connection: str) -> dict[str, int]:
        q = db.quarantine
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(q.c.object, sa.func.count())
                .where(q.c.connection == connection)
                .group_by(q.c.object)
            )
            return {obj: int(n) for obj, n in rows}

    def deleted_ids(self, connection: str, obj: str) -> set[str]:
        d = db.deletions
        with self.engine.connect() as conn:
            return set(
                conn.execute(
                    sa.select(d.c.record_id).where(d.c.connection == connection, d.c.object == obj)
                ).scalars()
            )

    # -- run log ----------------------------------------------------------------------------
    def start_run(self, connection: str, *, crm: str, mode: str) -> int:
        """Log the start of a sync run (outcome ``running`` until :meth:`finish_run`).

        A connection is synced by one process at a time (``service.locks``), so a run of it still
        ``running`` when the next one starts belongs to a process that died before finishing it
        (SIGKILL, OOM, a lost machine): it is marked ``abandoned`` rather than shown as running
        forever.
        """
        t = db.sync_runs
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(t)
                .where(t.c.connection == connection, t.c.outcome == "running")
                .values(outcome="abandoned",
                        message="the process running it stopped without finishing")
            )  # fmt: skip
            res = conn.execute(
                sa.insert(db.sync_runs).values(
                    connection=connection, crm=crm, mode=mode, started_at=utcnow(),
                    outcome="running",
                )
            )  # fmt: skip
            key = res.inserted_primary_key
            assert key is not None
            return int(key[0])

    def finish_run(self, run_id: int, stats: RunStats, *, outcome: str, message: str = "") -> None:
        t = db.sync_runs
        now = utcnow()
        with self.engine.begin() as conn:
            started = conn.execute(sa.select(t.c.started_at).where(t.c.id == run_id)).scalar_one()
            conn.execute(
                sa.update(t)
                .where(t.c.id == run_id)
                .values(
                    finished_at=now,
                    duration_s=(now - (_as_utc(started) or now)).total_seconds(),
                    outcome=outcome,
                    message=message[:2000],
                    objects=json.dumps(stats.objects),
                    records_in=stats.records_in,
                    inserted=stats.inserted,
                    updated=stats.updated,
                    deleted=stats.deleted,
                    quarantined=stats.quarantined,
                    api_calls=stats.api_calls,
                )
            )

    def runs(self, connection: str, limit: int = 10) -> list[RunRecord]:
        t = db.sync_runs
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t)
                .where(t.c.connection == connection)
                .order_by(t.c.id.desc())
                .limit(limit)
            ).mappings()
            return [_run_record(dict(r)) for r in rows]

    # -- API budget -------------------------------------------------------------------------
    def record_api_usage(self, connection: str, *, used: int, limit: int) -> None:
        row = {
            "connection": connection,
            "used": used,
            "daily_limit": limit,
            "observed_at": utcnow(),
        }
        with self.batch(connection) as b:
            b._upsert(db.api_usage, [row], ("connection",), True)

    def api_usage(self, connection: str) -> tuple[int, int, dt.datetime] | None:
        """(used, daily limit, when observed) as last reported by the CRM, if ever."""
        t = db.api_usage
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(t).where(t.c.connection == connection)).mappings().first()
            if r is None:
                return None
            return int(r["used"]), int(r["daily_limit"]), _as_utc(r["observed_at"]) or utcnow()

    # -- KPI values -------------------------------------------------------------------------
    def write_kpis(
        self, connection: str, values: pl.DataFrame, computed_at: dt.datetime | None = None
    ) -> int:
        """Replace the connection's KPI values with ``values`` (the KPI output format).

        Only the difference is written, in one transaction: rows whose numbers changed are
        updated (``computed_at`` is when a value was computed as it stands), new rows inserted,
        rows no longer computed deleted. A cycle after one edited deal changes a few dozen of
        several hundred thousand values, so this is a few statements, not a rewrite of the table.
        Returns the number of values the connection now has.
        """
        when = computed_at or utcnow()
        new = _kpi_frame(values)
        if new.select(pl.struct(_KPI_KEY).is_duplicated().any()).item():
            return self._replace_kpis(connection, new, when)
        old = self._kpi_rows(connection, with_id=True)
        joined = new.with_row_index("_new").join(
            old.select(["id", *_KPI_KEY, *(pl.col(c).alias(f"{c}_old") for c in _KPI_DATA)]),
            on=list(_KPI_KEY), how="full", nulls_equal=True, coalesce=True,
        )  # fmt: skip
        inserted = joined.filter(pl.col("id").is_null())
        deleted = joined.filter(pl.col("_new").is_null()).get_column("id").to_list()
        both = joined.filter(pl.col("id").is_not_null() & pl.col("_new").is_not_null())
        changed = both.filter(
            pl.any_horizontal(pl.col(c).ne_missing(pl.col(f"{c}_old")) for c in _KPI_DATA)
        )
        t = db.kpi_values
        with self.engine.begin() as conn:
            if deleted:
                for chunk in _chunks(deleted, 500):
                    conn.execute(sa.delete(t).where(t.c.id.in_(chunk)))
            if changed.height:
                # Bind names must differ from the column names (SQLAlchemy reserves those).
                sets: dict[str, Any] = {
                    c: sa.bindparam(f"b_{c}") for c in (*_KPI_DATA, "computed_at")
                }
                stmt = sa.update(t).where(t.c.id == sa.bindparam("b_id")).values(sets)
                conn.execute(stmt, [
                    {"b_id": r["id"], "b_computed_at": when,
                     **{f"b_{c}": r[c] for c in _KPI_DATA}}
                    for r in changed.iter_rows(named=True)
                ])  # fmt: skip
            if inserted.height:
                conn.execute(sa.insert(t), [
                    {"connection": connection, "computed_at": when,
                     **{c: r[c] for c in db.KPI_COLUMNS}}
                    for r in inserted.iter_rows(named=True)
                ])  # fmt: skip
        return new.height

    def _replace_kpis(self, connection: str, new: pl.DataFrame, when: dt.datetime) -> int:
        t = db.kpi_values
        rows = [{"connection": connection, "computed_at": when, **r}
                for r in new.iter_rows(named=True)]  # fmt: skip
        with self.engine.begin() as conn:
            conn.execute(sa.delete(t).where(t.c.connection == connection))
            if rows:
                conn.execute(sa.insert(t), rows)
        return len(rows)

    def _kpi_rows(self, connection: str, *, with_id: bool = False) -> pl.DataFrame:
        cols = (["id"] if with_id else []) + list(db.KPI_COLUMNS)
        rows = self.select_rows(db.kpi_values.name, cols, connection)
        schema = {**({"id": pl.Int64()} if with_id else {}), **db.KPI_SCHEMA}
        if self.dialect != "sqlite":
            return pl.DataFrame(rows, schema=schema, orient="row")
        # SQLite hands dates back as the ISO text SQLAlchemy stored.
        text = {c: (pl.String() if dtype == pl.Date() else dtype) for c, dtype in schema.items()}
        frame = pl.DataFrame(rows, schema=text, orient="row")
        return frame.with_columns(
            pl.col(c).str.to_date("%Y-%m-%d") for c, d in schema.items() if d == pl.Date()
        )

    def read_kpis(self, connection: str) -> pl.DataFrame:
        return self._kpi_rows(connection).sort(list(_KPI_KEY), nulls_last=False)

    def connections(self) -> list[str]:
        with self.engine.connect() as conn:
            names: set[str] = set()
            for t in (db.cursors, db.sync_runs, db.raw_records):
                names.update(conn.execute(sa.select(t.c.connection).distinct()).scalars())
            return sorted(names)


#: What identifies a KPI value, and what it holds.
_KPI_KEY = ("metric", "scope", "subject_id", "period_start", "period_end", "dimension")
_KPI_DATA = tuple(c for c in db.KPI_COLUMNS if c not in _KPI_KEY)


def _kpi_frame(values: pl.DataFrame) -> pl.DataFrame:
    """``values`` with exactly the stored KPI columns and types (missing optional ones null)."""
    cols = []
    for name, dtype in db.KPI_SCHEMA.items():
        if name in values.columns:
            cols.append(pl.col(name).cast(dtype))
        else:
            cols.append(pl.lit(None, dtype=dtype).alias(name))
    return values.select(cols)


def _run_record(r: Mapping[str, Any]) -> RunRecord:
    stats = RunStats(
        objects=json.loads(r["objects"] or "[]"),
        records_in=r["records_in"] or 0,
        inserted=r["inserted"] or 0,
        updated=r["updated"] or 0,
        deleted=r["deleted"] or 0,
        quarantined=r["quarantined"] or 0,
        api_calls=r["api_calls"] or 0,
    )
    return RunRecord(
        id=int(r["id"]), connection=r["connection"], crm=r["crm"], mode=r["mode"],
        started_at=_as_utc(r["started_at"]) or utcnow(), finished_at=_as_utc(r["finished_at"]),
        duration_s=r["duration_s"], outcome=r["outcome"], message=r["message"], stats=stats,
    )  # fmt: skip


@contextmanager
def _transactional_ddl(conn: Connection) -> Iterator[None]:
    """One transaction around DDL and data alike, committed at the end of the block.

    PostgreSQL's DDL is transactional as it is. Python's sqlite3 driver opens a transaction only
    before INSERT/UPDATE/DELETE/REPLACE and runs a CREATE TABLE outside any transaction
    (https://docs.python.org/3.11/library/sqlite3.html#sqlite3-controlling-transactions), so each
    table a migration creates would commit on its own, and a process killed mid-upgrade would
    leave tables behind without the version stamp that made them: every later start would fail
    with "table ... already exists". The SQLAlchemy recipe for transactional DDL on pysqlite —
    the driver in autocommit mode and an explicit BEGIN — closes that gap
    (https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#serializable-isolation-savepoints-transactional-ddl).
    """
    if conn.dialect.name != "sqlite":
        with conn.begin():
            yield
        return
    driver = conn.connection.driver_connection
    assert driver is not None
    level = driver.isolation_level
    driver.isolation_level = None  # the driver issues no BEGIN/COMMIT of its own
    try:
        # IMMEDIATE: take the write lock now (busy_timeout waits for it), not at the first write.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        yield
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        driver.isolation_level = level


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets `kpisync status` read while a sync writes; busy_timeout waits instead of failing.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
