"""One writeback cycle for one connection: build the desired rows, plan, push, record.

The CRM-specific part is a :class:`Writer` (``writeback.salesforce``, ``writeback.hubspot``): which
targets exist, how many rows one call takes, and how a batch is sent and answered per row. The
cycle itself is shared:

* **plan** per target (``writeback.plan.diff`` against ``writeback.ledger``); a dry run stops here;
* **push** in the largest batches the API takes; every call's per-row answers are recorded at
  once (crash-safe: nothing is recorded that the CRM did not confirm). A writer that declares
  ``concurrent_sends`` > 1 has that many calls in flight at once, sent from worker threads; their
  answers are still recorded one call at a time, in the order the calls were submitted, by the
  calling thread (the only one that uses the store);
* a call refused as a whole (one bad row poisoning a HubSpot batch) is split in halves until the
  bad rows stand alone, so a partial batch never blocks the rest;
* rows refused as locked are re-sent in the same run (``lock_retries``); any other refusal waits
  for its backoff in a later run, and is parked after ``max_failures``.

Before any write, every field the writer would touch must be one install created (recorded in
the store) or one the admin mapped explicitly (``mapped_fields``): :class:`NotOwned` otherwise.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from connectors.errors import ApiError, FatalError
from connectors.http import RetryEvent, report_retry, stop_scope
from connectors.store import Store
from writeback import ledger
from writeback.ledger import LedgerEntry
from writeback.plan import Outcome, Plan, Row, diff
from writeback.settings import WritebackSettings


class NotOwned(FatalError):
    """Writeback would write a field or object that install did not create nor the admin map."""


class Writer(Protocol):
    """The CRM-specific part of a writeback.

    A writer may also have ``concurrent_sends: int`` (read with ``getattr``, default 1): how many
    :meth:`send` calls of one target may be in flight at once. Above 1, :meth:`send` and the
    ``calls`` count must be safe to use from several threads; the store is never touched there.
    """

    crm: str

    @property
    def calls(self) -> int: ...

    def desired(self, store: Store, connection: str, today: dt.date) -> dict[str, dict[str, Row]]:
        """Target name -> rows that should be in the CRM, by key."""
        ...

    def owned(self, store: Store, connection: str) -> list[str]:
        """``Object.Field`` names the writer would write that are not owned (empty = fine)."""
        ...

    def batch_size(self, target: str, pending: int = 0) -> int:
        """Rows per :meth:`send` of ``target`` when ``pending`` rows wait (deletes: 0)."""
        ...

    def history(self, target: str) -> bool: ...

    def send(self, target: str, rows: Sequence[Row], computed_at: dt.datetime) -> list[Outcome]:
        """One call; raises ``ApiError`` when the CRM refuses the call as a whole."""
        ...

    def delete(self, target: str, entries: Sequence[LedgerEntry]) -> list[Outcome]: ...


@dataclass
class TargetReport:
    target: str
    planned: int = 0
    deletes: int = 0
    unchanged: int = 0
    waiting: int = 0
    parked: int = 0
    written: int = 0
    deleted: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    sample: list[Row] = field(default_factory=list)


@dataclass
class Report:
    connection: str
    crm: str
    dry_run: bool
    targets: dict[str, TargetReport] = field(default_factory=dict)
    calls: int = 0
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return sum(t.failed for t in self.targets.values())


#: Called after each call's answers are recorded (``kpisync`` uses it for progress; tests use it
#: to stop a run between a send and its record).
AfterCall = Callable[[str, Sequence[Outcome]], None]


def writeback(
    store: Store, connection: str, writer: Writer, settings: WritebackSettings, *,
    dry_run: bool = False, today: dt.date | None = None, now: dt.datetime | None = None,
    before_record: AfterCall | None = None, sample: int = 5,
) -> Report:  # fmt: skip
    """Plan and (unless ``dry_run``) push one connection's KPI values to its CRM."""
    started = time.perf_counter()
    now = now or dt.datetime.now(dt.UTC)
    today = today or now.date()
    calls0 = writer.calls
    report = Report(connection, writer.crm, dry_run)
    desired = writer.desired(store, connection, today)
    plans: dict[str, tuple[Plan, dict[str, LedgerEntry]]] = {}
    for target, rows in desired.items():
        previous = ledger.load(store, connection, target)
        plan = diff(target, rows, previous, now, history=writer.history(target))
        plans[target] = (plan, previous)
        report.targets[target] = TargetReport(
            target, planned=len(plan.upserts), deletes=len(plan.deletes),
            unchanged=plan.unchanged, waiting=plan.waiting, parked=plan.parked,
            sample=plan.upserts[:sample],
        )  # fmt: skip
    if dry_run or all(p.empty for p, _ in plans.values()):
        report.seconds = time.perf_counter() - started
        return report
    missing = writer.owned(store, connection)
    if missing:
        raise NotOwned(
            "refusing to write to fields kpisync did not create and that are not in "
            f"[writeback] mapped_fields: {', '.join(missing[:10])} (run `kpisync install`)",
            crm=writer.crm,
        )
    for target, (plan, previous) in plans.items():
        _push(store, connection, writer, settings, plan, previous, report.targets[target], now,
              before_record)  # fmt: skip
    report.calls = writer.calls - calls0
    report.seconds = time.perf_counter() - started
    return report


def _push(
    store: Store, connection: str, writer: Writer, settings: WritebackSettings, plan: Plan,
    previous: dict[str, LedgerEntry], tr: TargetReport, now: dt.datetime,
    before_record: AfterCall | None,
) -> None:  # fmt: skip
    target = plan.target

    def keep(outcomes: Sequence[Outcome]) -> None:
        if before_record is not None:
            before_record(target, outcomes)
        ledger.record(store, connection, target, outcomes, previous,
                      max_failures=settings.max_failures, retry_base_s=settings.retry_base_s,
                      now=now)  # fmt: skip

    pending = list(plan.upserts)
    with _Sender(writer, target, now) as sender:
        for round_ in range(settings.lock_retries + 1):
            size = writer.batch_size(target, len(pending))
            retry: list[Row] = []
            by_key = {r.key: r for r in pending}
            chunks = [pending[i : i + size] for i in range(0, len(pending), size)]
            for outcomes in sender.answers(chunks):
                last = round_ == settings.lock_retries
                final: list[Outcome] = []
                for o in outcomes:
                    if o.ok or not o.retriable or last:
                        final.append(o)
                    else:
                        retry.append(by_key[o.key])
                        # One line and one count per re-sent row, like a retried call.
                        wait = min(2.0, 0.2 * 2**round_)
                        report_retry(RetryEvent(writer.crm, f"write {target} {o.key}",
                                                "lock_error", round_ + 1, wait,
                                                o.error or ""))  # fmt: skip
                keep(final)
                tr.written += sum(o.ok for o in final)
                tr.failed += sum(not o.ok for o in final)
                tr.errors.extend(f"{o.key}: {o.error}" for o in final if not o.ok)
            if not retry:
                break
            time.sleep(min(2.0, 0.2 * 2**round_))
            pending = retry
    if plan.forget:
        ledger.forget(store, connection, target, plan.forget)
    size = writer.batch_size(target)
    for i in range(0, len(plan.deletes), size):
        chunk = plan.deletes[i : i + size]
        outcomes = writer.delete(target, chunk)
        gone = [o.key for o in outcomes if o.ok]
        ledger.forget(store, connection, target, gone)
        tr.deleted += len(gone)
        tr.errors.extend(f"{o.key}: delete: {o.error}" for o in outcomes if not o.ok)


class _Sender:
    """Sends chunks of one target and hands back each call's answers in submission order.

    With ``concurrent_sends`` <= 1 every chunk is sent when its answers are asked for, as a plain
    loop would. Above, up to that many chunks are sent at once from worker threads (each in a
    copy of the caller's context: retry scope and observer reach their calls). A chunk is
    submitted only once an earlier one's answers are recorded, so never more than
    ``concurrent_sends`` chunks are sent but unrecorded; none is submitted once a call in flight
    has failed. Leaving the ``with`` block on an exception stops the workers (no call starts, no
    retry wait goes on) and waits for the calls in flight: their answers are dropped unrecorded,
    and those rows are sent again next run (an upsert by key: the same records, no duplicates).
    """

    def __init__(self, writer: Writer, target: str, now: dt.datetime) -> None:
        self.writer, self.target, self.now = writer, target, now
        self.workers = max(1, int(getattr(writer, "concurrent_sends", 1) or 1))
        self.stop = threading.Event()
        self.pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> _Sender:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if self.pool is None:
            return
        if kind is not None:
            self.stop.set()
        # Interrupted (Ctrl-C): do not wait; the workers stop at their next call or wait.
        self.pool.shutdown(wait=kind is None or issubclass(kind, Exception), cancel_futures=True)

    def _call(self, rows: list[Row]) -> list[list[Outcome]]:
        with stop_scope(self.stop):
            return _send(self.writer, self.target, rows, self.now)

    def answers(self, chunks: Sequence[list[Row]]) -> Iterator[list[Outcome]]:
        """Each call's per-row answers (a refused call split in halves answers as several), in
        the order of ``chunks``; the caller records one before asking for the next."""
        if self.workers == 1 or len(chunks) <= 1:
            for rows in chunks:
                yield from _send(self.writer, self.target, rows, self.now)
            return
        if self.pool is None:
            self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="kpisync-write")
        flying: deque[Future[list[list[Outcome]]]] = deque()
        todo = deque(chunks)
        while todo or flying:
            while todo and len(flying) < self.workers and not _failed(flying):
                context = contextvars.copy_context()  # one per thread: a context runs once
                flying.append(self.pool.submit(context.run, self._call, todo.popleft()))
            head = flying.popleft()
            yield from head.result()  # raises what the call raised, as a send in order would


def _failed(flying: deque[Future[list[list[Outcome]]]]) -> bool:
    return any(f.done() and f.exception() is not None for f in flying)


def _send(writer: Writer, target: str, rows: list[Row], now: dt.datetime) -> list[list[Outcome]]:
    """Send ``rows`` in one call; a call refused as a whole is split until the culprits are
    alone (each refused row then gets the CRM's message)."""
    try:
        return [writer.send(target, rows, now)]
    except ApiError as exc:
        if len(rows) == 1:
            r = rows[0]
            return [[Outcome(r.key, r.hash, False, error=exc.message)]]
        mid = len(rows) // 2
        return _send(writer, target, rows[:mid], now) + _send(writer, target, rows[mid:], now)
