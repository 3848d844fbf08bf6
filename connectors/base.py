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

Objects are pulled one after another, unless the source asks for more at once
(``concurrent_objects``, HubSpot's ``[sync] hubspot_concurrency``): then each object's pages are
fetched in a worker thread of its own, so that the CRM's latency is paid side by side, while every
page is still stored — and every store read a source makes (:func:`read_store`) still runs — in
the calling thread, the only one that uses the store. Objects of one canonical table are stored in
their declared order (the first stored record wins an id both claim), an object waits for those
it names in :attr:`ObjectSpec.after`, and at most :data:`RECORDS_AHEAD` records of an object wait
in memory to be stored. Beyond that, a worker whose object waits for an earlier one of its table
writes its pages to a temporary file (:class:`_Spill`) and goes on fetching, so the CRM's latency
is still paid side by side; a worker whose object is being stored waits for room. A failure in
any thread stops the others and is raised as a sequential pull would raise it; a cursor is only
ever stored with its page.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import os
import pickle
import queue
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar, cast

from connectors.contract import claimed_ids, row_problems, safe_text
from connectors.errors import BudgetPaused, ConnectorError, SkippableRecord
from connectors.http import Stopped, check_stop, stop_scope
from connectors.store import CanonicalRow, Cursor, RunStats, Store

log = logging.getLogger(__name__)

T = TypeVar("T")
RawRecord = dict[str, Any]
Normaliser = Callable[[RawRecord], CanonicalRow]

#: Records (and deletions) of one object fetched and held in memory, not yet stored, at most,
#: when objects are pulled side by side (a page larger than this goes alone). A HubSpot record
#: takes ~2 KB in memory, so each object holds ~40 MB at most. Beyond it, an object waiting for
#: an earlier one of its table (HubSpot emails, meetings and tasks, fetched while calls are
#: stored) spills its pages to disk (~0.5 KB a record); one being stored waits for room.
RECORDS_AHEAD = 20_000


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
    #: Objects (declared earlier) whose pages must all be stored before this one is pulled:
    #: its records need what they hold (a HubSpot deal's stage label comes from the pipelines).
    #: Declared order honours it already; objects pulled side by side wait for it.
    after: tuple[str, ...] = ()

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

    Optional:

    * ``prepare(cursors, *, full)`` — called once per run before any ``pages`` (the Salesforce
      source describes and batch-probes every object there);
    * ``concurrent_objects: int`` — how many objects' pages may be fetched at once (default 1:
      one after another). Above 1, ``pages`` runs in worker threads: the source's own state must
      be thread-safe, and it reads the store only through :func:`read_store`;
    * ``thread_api_calls: int`` — the calls made so far from the calling thread (each object
      pulled side by side is charged the calls of its own thread).
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


_store_thread: contextvars.ContextVar[Callable[[Callable[[], Any]], Any] | None] = (
    contextvars.ContextVar("kpisync_store_thread", default=None)
)


def read_store(fn: Callable[[], T]) -> T:
    """``fn()`` — a store read a source makes inside ``pages`` — run in the thread that stores
    the pages, after every page the object yielded before it is stored.

    Pulled side by side, an object's ``pages`` runs in a worker thread, but the store is used
    from one thread only: the read is handed over in line with the object's pages, so it sees
    the store as a pull in declared order would for that object (its own pages, and the objects
    it comes :attr:`~ObjectSpec.after`). Called anywhere else, it is just ``fn()``. ``fn`` must
    return materialised data (a list, not a lazy iterator over a store connection).
    """
    run = _store_thread.get()
    return fn() if run is None else cast(T, run(fn))


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
        workers = int(getattr(source, "concurrent_objects", 1) or 1)
        if workers > 1 and len(specs) > 1:
            _SideBySide(store, connection, source, specs, cursors, full=full, workers=workers,
                        progress=progress, after_batch=after_batch, stats=stats,
                        per_object=per_object, calls_at_start=calls_at_start).run()  # fmt: skip
        else:
            for spec in specs:
                siblings = _siblings(spec, specs)
                obj_stats = per_object.setdefault(spec.name, RunStats(objects=[spec.name]))
                stats.objects.append(spec.name)
                progress.start(spec.name)
                # Each object's own calls: those made since the previous object ended (calls
                # made in ``prepare`` — describes, the batched first pages — belong to no one
                # object).
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


def _siblings(spec: ObjectSpec, specs: Sequence[ObjectSpec]) -> list[str]:
    """The other objects whose records are rows of ``spec``'s canonical table (upserts)."""
    return [s.name for s in specs if spec.mode == "upsert" and s.mode == "upsert"
            and s.table == spec.table and s.name != spec.name]  # fmt: skip


class _Reply:
    """A store read handed from a worker to the storing thread, and its outcome."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.ready = False
        self.value: Any = None
        self.error: BaseException | None = None


#: Records of pages waiting back to back stored in one transaction, at most, when objects are
#: pulled side by side (a larger page goes alone); pages wait until that many have come, the
#: object ends, or nothing has come for :data:`STORE_WAIT_S`.
STORE_RECORDS = 2_000
STORE_WAIT_S = 0.05


def _joined(pages: Sequence[Page]) -> Page:
    """Consecutive pages as one: every record, the deletions (of the last page only, see
    :meth:`_SideBySide._store`), and the last cursor that moves."""
    cursors = [p.cursor for p in pages if p.cursor is not None]
    return Page(
        records=[r for p in pages for r in p.records],
        deleted=[d for p in pages for d in p.deleted],
        cursor=cursors[-1] if cursors else None,
    )


@dataclass(frozen=True)
class _Spilled:
    """Where a spilled page lies in its lane's :class:`_Spill` file."""

    offset: int
    length: int


class _Spill:
    """Pages of one object written ahead to an unnamed temporary file (deleted on close, and by
    the OS if the process dies): written by the lane's worker, read back by the storing thread.
    Reads and writes name their offsets, so the two threads share the file without a lock."""

    def __init__(self) -> None:
        # Closed by close() once the pull ends: it outlives any one block of code.
        self._file = tempfile.TemporaryFile(prefix="kpisync-pull-")  # noqa: SIM115
        self._end = 0

    def put(self, page: Page) -> _Spilled:
        data = pickle.dumps(page, protocol=pickle.HIGHEST_PROTOCOL)
        at = self._end
        written = 0
        while written < len(data):  # pwrite may write less than asked
            written += os.pwrite(self._file.fileno(), data[written:], at + written)
        self._end = at + len(data)
        return _Spilled(at, len(data))

    def take(self, where: _Spilled) -> Page:
        data = bytearray()
        while len(data) < where.length:
            chunk = os.pread(self._file.fileno(), where.length - len(data),
                             where.offset + len(data))  # fmt: skip
            if not chunk:
                raise OSError(f"spilled page cut short at {where.offset + len(data)}")
            data += chunk
        # Safe to unpickle: a file this process wrote, unlinked from the start.
        page: Page = pickle.loads(data)
        return page

    def close(self) -> None:
        self._file.close()


@dataclass
class _Lane:
    """One object of a side-by-side pull: its worker, and what waits to be stored."""

    spec: ObjectSpec
    siblings: list[str]
    stats: RunStats
    #: Objects stored before this one may be: the earlier objects of its canonical table.
    before: list[str]
    #: Objects stored in full before this one starts (``ObjectSpec.after``).
    after: list[str]
    #: What the worker handed over, in its order: ("page", (page, held, calls, records)),
    #: ("read", reply), ("end", calls).
    waiting: deque[tuple[str, Any]] = field(default_factory=deque)
    held: int = 0  # records and deletions handed over in memory, not yet stored
    queued: int = 0  # records and deletions of the pages waiting (in memory or spilled)
    spill: _Spill | None = None  # pages written ahead to disk (created on first need)
    spilled: int = 0  # pages spilled
    thread: threading.Thread | None = None
    ended: bool = False  # the worker is finished (its "end" may still wait to be processed)
    done: bool = False  # every page stored
    batches: int = 0


class _SideBySide:
    """Objects' pages fetched in worker threads, stored in the calling thread (see the module
    docstring). Events from workers arrive on one queue as ``(object, kind, payload)``."""

    def __init__(
        self,
        store: Store,
        connection: str,
        source: Source,
        specs: Sequence[ObjectSpec],
        cursors: dict[str, Cursor],
        *,
        full: bool,
        workers: int,
        progress: Progress,
        after_batch: AfterBatch | None,
        stats: RunStats,
        per_object: dict[str, RunStats],
        calls_at_start: int,
    ) -> None:
        self.store, self.connection, self.source = store, connection, source
        self.cursors, self.full, self.workers = cursors, full, workers
        self.progress, self.after_batch = progress, after_batch
        self.stats, self.per_object, self.calls_at_start = stats, per_object, calls_at_start
        self.events: queue.Queue[tuple[str, str, Any]] = queue.Queue()
        self.stop = threading.Event()
        #: Workers wait on it for room (``held``) or for a store read; notified when either moves
        #: and when the pull stops.
        self.changed = threading.Condition()
        self.lanes: dict[str, _Lane] = {}
        for i, spec in enumerate(specs):
            earlier = [s.name for s in specs[:i]]
            later = {s.name for s in specs[i + 1 :]}
            if bad := [a for a in spec.after if a in later or a == spec.name]:
                raise ValueError(f"{spec.name} comes after {bad}, declared later")
            self.lanes[spec.name] = _Lane(
                spec=spec,
                siblings=_siblings(spec, specs),
                stats=RunStats(objects=[spec.name]),
                before=[s.name for s in specs[:i] if spec.table and s.table == spec.table],
                after=[a for a in spec.after if a in earlier],
            )

    # -- the calling thread ----------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._start_ready()
            while not all(lane.done for lane in self.lanes.values()):
                # Pages are stored once STORE_RECORDS of an object wait, its worker asks or
                # ends, or nothing has come for a moment: a transaction per 100-record page
                # would cost more than the records in it.
                queued = any(lane.queued for lane in self.lanes.values())
                try:
                    name, kind, payload = self.events.get(timeout=STORE_WAIT_S if queued else None)
                except queue.Empty:
                    self._store_ready()
                    self._start_ready()
                    continue
                if kind == "error":
                    raise payload  # what the worker's pull raised, as a pull in order would
                lane = self.lanes[name]
                if kind == "end":
                    lane.ended = True
                lane.waiting.append((kind, payload))
                if kind == "page":
                    lane.queued += payload[3]
                    if lane.queued < STORE_RECORDS:
                        continue
                self._store_ready()
                self._start_ready()
        except BaseException as exc:
            self._stop(wait=isinstance(exc, Exception))
            raise
        self._stop(wait=True)

    def _start_ready(self) -> None:
        """Start objects in declared order while fewer than ``workers`` run: one whose
        ``after`` objects are stored and whose table's earlier objects have started."""
        running = sum(1 for lane in self.lanes.values() if lane.thread and not lane.ended)
        for lane in self.lanes.values():
            if running >= self.workers:
                return
            if lane.thread is not None:
                continue
            if all(self.lanes[a].done for a in lane.after) and all(
                self.lanes[b].thread is not None for b in lane.before
            ):
                self._start(lane)
                running += 1

    def _start(self, lane: _Lane) -> None:
        name = lane.spec.name
        self.per_object[name] = lane.stats
        self.stats.objects.append(name)
        self.progress.start(name)
        # Each thread runs in a copy of this context: the retry scope (connection, observer)
        # reaches the calls of the worker too.
        context = contextvars.copy_context()
        lane.thread = threading.Thread(
            target=context.run, args=(self._work, lane), name=f"kpisync-pull {name}", daemon=True
        )
        lane.thread.start()

    def _store_ready(self) -> None:
        """Process what waits, object by object in declared order, for every object whose
        table's earlier objects are stored; an object that ends may free the next one."""
        progressed = True
        while progressed:
            progressed = False
            for lane in self.lanes.values():
                if lane.done or not all(self.lanes[b].done for b in lane.before):
                    continue
                while lane.waiting:
                    kind, payload = lane.waiting.popleft()
                    if kind == "page":
                        self._store(lane, payload)
                    elif kind == "read":
                        self._answer(payload)
                    else:  # end
                        if lane.spilled:
                            log.debug("%s: %d pages were written ahead to disk",
                                      lane.spec.name, lane.spilled)  # fmt: skip
                        lane.stats.api_calls = payload
                        self.progress.done(lane.spec.name)
                        lane.done = progressed = True

    def _store(self, lane: _Lane, first: tuple[Page | _Spilled, int, int, int]) -> None:
        """Store a page, and with it the pages waiting right behind it, in one transaction.

        Pages of 100 records (HubSpot) each stored alone spend most of the time on what every
        transaction costs (validation frames, probes, the cursor, the commit): up to
        :data:`STORE_RECORDS` records go together. A group ends with a page that deletes, so
        deletions still follow every record listed before them, as page by page.
        """
        name = lane.spec.name
        pages: list[Page] = []
        size = calls = records = 0
        item: tuple[Page | _Spilled, int, int, int] | None = first
        while item is not None:
            page, held, calls, count = item
            if isinstance(page, _Spilled):
                assert lane.spill is not None
                page = lane.spill.take(page)
            pages.append(page)
            size += held
            lane.queued -= count
            records += len(page.records) + len(page.deleted)
            item = None
            if (not page.deleted and records < STORE_RECORDS and lane.waiting
                    and lane.waiting[0][0] == "page"):  # fmt: skip
                item = lane.waiting.popleft()[1]
        page = pages[0] if len(pages) == 1 else _joined(pages)
        store_page(self.store, self.connection, lane.spec, page, lane.stats, lane.siblings)
        with self.changed:
            lane.held -= size
            self.changed.notify_all()
        lane.stats.api_calls = calls
        lane.batches += 1
        self.progress.advance(name, len(page.records) + len(page.deleted),
                              self.source.api_calls - self.calls_at_start)  # fmt: skip
        if self.after_batch is not None:
            self.after_batch(name, lane.batches)

    def _answer(self, reply: _Reply) -> None:
        value, error = None, None
        try:
            value = reply.fn()
        except Exception as exc:  # the worker raises it where the source asked
            error = exc
        with self.changed:
            reply.value, reply.error, reply.ready = value, error, True
            self.changed.notify_all()

    def _stop(self, *, wait: bool) -> None:
        """Stop every worker: none starts another call or waits any longer; then wait for
        them (a call in flight ends first). Interrupted (Ctrl-C), wait a moment at most: the
        workers are daemon threads and stop at their next call or wait."""
        with self.changed:
            self.stop.set()
            self.changed.notify_all()
        deadline = None if wait else time.monotonic() + 2.0
        for lane in self.lanes.values():
            if lane.thread is not None:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                lane.thread.join(left)
            if lane.spill is not None and (lane.thread is None or not lane.thread.is_alive()):
                lane.spill.close()
                lane.spill = None

    # -- worker threads --------------------------------------------------------------------------
    def _calls_here(self) -> int:
        return int(getattr(self.source, "thread_api_calls", 0))

    def _work(self, lane: _Lane) -> None:
        name = lane.spec.name
        token = _store_thread.set(lambda fn: self._read(lane, fn))
        try:
            with stop_scope(self.stop):
                calls_at = self._calls_here()
                pages = self.source.pages(lane.spec, self.cursors.get(name), full=self.full)
                try:
                    for page in pages:
                        size = max(1, len(page.records) + len(page.deleted))
                        handed: Page | _Spilled = page
                        spill = False
                        with self.changed:
                            while lane.held and lane.held + size > RECORDS_AHEAD:
                                check_stop()
                                # Its table's earlier objects are still being stored: write
                                # ahead to disk rather than stop fetching.
                                if spill := self._blocked(lane):
                                    break
                                self.changed.wait()
                            check_stop()
                            if not spill:
                                lane.held += size
                        if spill:
                            if lane.spill is None:
                                lane.spill = _Spill()
                            handed, size = lane.spill.put(page), 0
                            lane.spilled += 1
                        calls = self._calls_here() - calls_at
                        count = max(1, len(page.records) + len(page.deleted))
                        self.events.put((name, "page", (handed, size, calls, count)))
                finally:
                    close = getattr(pages, "close", None)
                    if close is not None:
                        close()  # the generator's own clean-up runs in this thread
                self.events.put((name, "end", self._calls_here() - calls_at))
        except Stopped:
            pass  # the pull is stopping: the calling thread raises what stopped it
        except BaseException as exc:
            # The others stop now, not once the storing thread has seen this.
            with self.changed:
                self.stop.set()
                self.changed.notify_all()
            self.events.put((name, "error", exc))
        finally:
            _store_thread.reset(token)

    def _blocked(self, lane: _Lane) -> bool:
        """Whether the lane's pages cannot be stored yet (an earlier object of its table is
        not stored in full)."""
        return not all(self.lanes[b].done for b in lane.before)

    def _read(self, lane: _Lane, fn: Callable[[], Any]) -> Any:
        reply = _Reply(fn)
        self.events.put((lane.spec.name, "read", reply))
        with self.changed:
            while not reply.ready:
                check_stop()
                self.changed.wait()
        if reply.error is not None:
            raise reply.error
        return reply.value


def utc_text(value: dt.datetime) -> str:
    """A UTC timestamp in canonical text (``2025-03-01T09:30:00Z``)."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
