"""What both CRM connectors share: objects described as data, and one generic extract loop.

A connector declares its CRM objects as :class:`ObjectSpec` values (name, id field, cursor field,
fields, canonical table, normaliser) and implements :class:`Source` — "give me the pages of this
object after this cursor". :func:`sync_connection` does the rest for every CRM alike:

* each page is normalised record by record; a record whose normaliser raises
  :class:`~connectors.errors.SkippableRecord` (or any ``ValueError``/``KeyError``/``TypeError``)
  is quarantined with the reason and the page goes on;
* raw records, canonical rows, deletions, quarantine entries **and the page's cursor** are written
  in ONE store transaction (``Store.batch``) — a crash loses or duplicates nothing;
* a run is logged (records in/inserted/updated/deleted/quarantined, API calls, duration, outcome);
  :class:`~connectors.errors.BudgetPaused` ends the run as ``paused``, not ``failed``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from connectors.contract import claimed_ids, row_problems, safe_text
from connectors.errors import BudgetPaused, ConnectorError, SkippableRecord
from connectors.store import CanonicalRow, Cursor, RunStats, Store

log = logging.getLogger(__name__)

RawRecord = dict[str, Any]
Normaliser = Callable[[RawRecord], CanonicalRow]


@dataclass(frozen=True)
class ObjectSpec:
    """One CRM object as data: where it comes from and where it lands.

    ``mode="upsert"``: each record is one canonical row keyed by its id (``row_key`` may pick
    another key). ``mode="update"``: records fill columns of rows another object owns (a
    Salesforce OpportunityCompetitor fills ``competitor`` on its opportunity), keyed by
    ``row_key``; on deletion the ``cleared`` columns are set to null.
    """

    name: str
    table: str | None
    id_field: str = "Id"
    cursor_field: str | None = None
    fields: tuple[str, ...] = ()
    required_fields: tuple[str, ...] = ()
    normalise: Normaliser | None = None
    mode: Literal["upsert", "update"] = "upsert"
    row_key: Callable[[RawRecord], str | None] | None = None
    cleared: tuple[str, ...] = ()
    #: The object may be missing in an org (a feature that is off): skip it, don't fail.
    optional: bool = False

    def key_of(self, record: RawRecord) -> str | None:
        if self.row_key is not None:
            return self.row_key(record)
        value = record.get(self.id_field)
        return None if value is None else str(value)


@dataclass
class Page:
    """One batch from the CRM, written in one transaction with the cursor that follows it."""

    records: list[RawRecord] = field(default_factory=list)
    #: Deleted records: the record as last returned (with its fields) or just ``{id_field: id}``.
    deleted: list[RawRecord] = field(default_factory=list)
    #: Where the next pull starts once this page is stored; ``None`` leaves the cursor alone.
    cursor: Cursor | None = None


class Source(Protocol):
    """A connector's CRM side, as the extract loop sees it.

    Optional: ``prepare(cursors, *, full)`` — called once per run before any ``pages`` (the
    Salesforce source describes and batch-probes every object there).
    """

    crm: str

    def objects(self) -> Sequence[ObjectSpec]:
        """The objects to sync, in order."""
        ...

    def pages(self, spec: ObjectSpec, cursor: Cursor | None, *, full: bool) -> Iterator[Page]: ...

    @property
    def api_calls(self) -> int: ...

    def finish(self, store: Store, connection: str) -> None:
        """Cross-object touches after every object is stored (idempotent)."""
        ...


class Progress(Protocol):
    def start(self, obj: str) -> None: ...
    def advance(self, obj: str, records: int, calls: int) -> None: ...
    def done(self, obj: str) -> None: ...


class _NoProgress:
    def start(self, obj: str) -> None:
        pass

    def advance(self, obj: str, records: int, calls: int) -> None:
        pass

    def done(self, obj: str) -> None:
        pass


@dataclass
class SyncResult:
    connection: str
    crm: str
    run_id: int
    outcome: str  # ok | paused | failed
    message: str
    stats: RunStats
    seconds: float
    per_object: dict[str, RunStats] = field(default_factory=dict)
    #: What the source noticed (missing optional objects or mapped fields ...).
    notes: list[str] = field(default_factory=list)


# Tests (and only tests) hook in here to simulate a crash after N stored batches.
AfterBatch = Callable[[str, int], None]


def _normalise(spec: ObjectSpec, record: RawRecord) -> tuple[str | None, CanonicalRow | str]:
    """(row key, row) or (row key, reason) when the record cannot be normalised."""
    key = None
    try:
        key = spec.key_of(record)
        if spec.normalise is None:
            return key, {}
        if key is None:
            raise SkippableRecord(f"no {spec.id_field}")
        return key, spec.normalise(record)
    except SkippableRecord as exc:
        return key, exc.message
    except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
        return key, f"{type(exc).__name__}: {exc}"


def store_page(
    store: Store,
    connection: str,
    spec: ObjectSpec,
    page: Page,
    stats: RunStats,
    siblings: Sequence[str] = (),
) -> None:
    """Write one page — records, rows, deletions, quarantine and cursor — in one transaction.

    ``siblings``: the other objects whose records are rows of the same canonical table (a row
    one of them already holds is not taken over: the record is quarantined instead).
    """
    latest: dict[str, RawRecord] = {}
    for record in page.records:
        rid = record.get(spec.id_field)
        if rid is None:
            stats.quarantined += 1
            log.warning("%s record without %s skipped", spec.name, spec.id_field)
            continue
        # The same record twice in one page is one record (its last copy), counted once.
        latest[str(rid)] = record
    raw: list[tuple[str, RawRecord]] = list(latest.items())
    bad: list[tuple[str, str, RawRecord]] = []
    normalised: list[tuple[str, str, CanonicalRow]] = []
    for rid, record in raw:
        key, result = _normalise(spec, record)
        if isinstance(result, str):
            bad.append((rid, result, record))
        elif spec.table is not None and key is not None:
            normalised.append((rid, key, result))
    if spec.table is not None and normalised:
        problems = row_problems(spec.table, [r for _, _, r in normalised],
                                partial=spec.mode == "update")  # fmt: skip
        held = claimed_ids(store, connection, siblings, [k for _, k, _ in normalised])
        for i, (_, key, _) in enumerate(normalised):
            if i not in problems and key in held:
                problems[i] = f"id {key} is already held by a {held[key]} record"
        bad += [(rid, problems[i], latest[rid]) for i, (rid, _, _) in enumerate(normalised)
                if i in problems]  # fmt: skip
        normalised = [n for i, n in enumerate(normalised) if i not in problems]
    rows: list[tuple[str, CanonicalRow]] = [(key, row) for _, key, row in normalised]
    bad = [(rid, safe_text(reason), record) for rid, reason, record in bad]
    gone = [str(r[spec.id_field]) for r in page.deleted if r.get(spec.id_field) is not None]
    with store.batch(connection) as b:
        inserted, updated = b.upsert_raw(spec.name, raw)
        if spec.table is not None and rows:
            # Rows of one call must share their columns (Store contract): group by column set.
            groups: dict[tuple[str, ...], list[tuple[str, CanonicalRow]]] = {}
            for key, row in rows:
                groups.setdefault(tuple(row), []).append((key, row))
            for group in groups.values():
                if spec.mode == "upsert":
                    b.upsert_rows(spec.table, group)
                else:
                    b.update_rows(spec.table, group)
        rejected = {rid for rid, _, _ in bad}
        b.release(spec.name, [rid for rid, _ in raw if rid not in rejected])
        for rid, reason, record in bad:
            b.quarantine(spec.name, rid, reason, record)
        if gone:
            if spec.mode == "update" and spec.table is not None:
                keys = [k for k in (spec.key_of(r) for r in page.deleted) if k]
                b.update_rows(spec.table, [(k, dict.fromkeys(spec.cleared)) for k in keys])
                stats.deleted += b.delete(spec.name, gone)
            else:
                stats.deleted += b.delete(spec.name, gone, table=spec.table)
        if page.cursor is not None:
            b.set_cursor(spec.name, page.cursor)
    stats.records_in += len(page.records)
    stats.inserted += inserted
    stats.updated += updated
    stats.quarantined += len(bad)


def sync_connection(
    store: Store,
    connection: str,
    source: Source,
    *,
    full: bool = False,
    progress: Progress | None = None,
    after_batch: AfterBatch | None = None,
) -> SyncResult:
    """Pull every object of ``source`` into ``store``; never raises for a paused budget."""
    progress = progress or _NoProgress()
    started = time.perf_counter()
    mode = "full" if full else "incremental"
    run_id = store.start_run(connection, crm=source.crm, mode=mode)
    stats = RunStats()
    per_object: dict[str, RunStats] = {}
    calls_at_start = source.api_calls
    outcome, message = "ok", ""
    try:
        if full:
            store.reset_cursors(connection)
        cursors = store.cursors(connection)
        prepare = getattr(source, "prepare", None)
        if prepare is not None:
            prepare(cursors, full=full)
        specs = list(source.objects())
        for spec in specs:
            siblings = [s.name for s in specs if spec.mode == "upsert" and s.mode == "upsert"
                        and s.table == spec.table and s.name != spec.name]  # fmt: skip
            obj_stats = per_object.setdefault(spec.name, RunStats(objects=[spec.name]))
            stats.objects.append(spec.name)
            progress.start(spec.name)
            # Each object's own calls: those made since the previous object ended (calls made
            # in ``prepare`` — describes, the batched first pages — belong to no one object).
            calls_at_object = source.api_calls
            pages = source.pages(spec, cursors.get(spec.name), full=full)
            for batches, page in enumerate(pages, start=1):
                store_page(store, connection, spec, page, obj_stats, siblings)
                obj_stats.api_calls = source.api_calls - calls_at_object
                progress.advance(spec.name, len(page.records) + len(page.deleted),
                                 source.api_calls - calls_at_start)  # fmt: skip
                if after_batch is not None:
                    after_batch(spec.name, batches)
            obj_stats.api_calls = source.api_calls - calls_at_object
            progress.done(spec.name)
        source.finish(store, connection)
    except BudgetPaused as exc:
        outcome, message = "paused", str(exc)
    except ConnectorError as exc:
        outcome, message = "failed", str(exc)
        raise
    except BaseException as exc:
        outcome, message = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        for s in per_object.values():
            for name in ("records_in", "inserted", "updated", "deleted", "quarantined"):
                setattr(stats, name, getattr(stats, name) + getattr(s, name))
        stats.api_calls = source.api_calls - calls_at_start
        store.finish_run(run_id, stats, outcome=outcome, message=message)
    notes = [str(n) for n in getattr(source, "notes", None) or []]
    return SyncResult(connection, source.crm, run_id, outcome, message, stats,
                      time.perf_counter() - started, per_object, notes)  # fmt: skip


def utc_text(value: dt.datetime) -> str:
    """A UTC timestamp in canonical text (``2025-03-01T09:30:00Z``)."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
