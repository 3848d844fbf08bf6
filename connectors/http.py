"""The shared HTTP machinery of both connectors: retry policy, rate limiter, API budget.

Each connector owns one choke point that sends every CRM call through :class:`CallGuard`:
the rate limiter spaces calls, the budget guard refuses to start a call once the configured
share of the daily allowance is spent (:class:`~connectors.errors.BudgetPaused`), and
:func:`retrying` retries only :class:`~connectors.errors.RetriableError` with jittered
exponential backoff that honours ``Retry-After`` and is capped.

Every retry is reported (:func:`report_retry`): one log line on ``kpisync.api`` naming the
connection, the CRM, the call and the reason, and a call to the observer of the current
:func:`retry_scope` (the service counts them in ``kpisync_api_retries_total``). Reasons are few and
fixed (:data:`RETRY_REASONS`) so they can label a metric.

Calls may come from several threads at once (``connectors.base`` pulls independent objects side
by side): the limiters, the budget guard and the call counter are locked. Within a
:func:`stop_scope` every wait (limiter, backoff) ends early and no call starts once the scope's
event is set: a pull that failed elsewhere stops the others at once (:class:`Stopped`).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import tenacity

from connectors.errors import BudgetPaused, RateLimited, RetriableError

T = TypeVar("T")

log = logging.getLogger("kpisync.api")

#: Why a call (or a record) was tried again; the label values of ``kpisync_api_retries_total``.
RETRY_REASONS = ("server_error", "rate_limited", "expired_session", "connection", "lock_error")


def retry_reason(exc: BaseException) -> str:
    """The :data:`RETRY_REASONS` value of a retriable failure."""
    if isinstance(exc, RateLimited):
        return "rate_limited"
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason in RETRY_REASONS:
        return reason
    status = getattr(exc, "status", None)
    if status == 401:
        return "expired_session"
    if status == 429:
        return "rate_limited"
    if isinstance(status, int) and status >= 500:
        return "server_error"
    return "connection"


@dataclass(frozen=True)
class RetryEvent:
    """One retry: of which call, on which CRM, why, and the wait before it."""

    crm: str
    call: str
    reason: str
    attempt: int
    wait_s: float
    error: str


RetryObserver = Callable[[str | None, RetryEvent], None]
_scope: contextvars.ContextVar[tuple[str | None, RetryObserver | None]] = contextvars.ContextVar(
    "kpisync_retry_scope", default=(None, None)
)


@contextlib.contextmanager
def retry_scope(connection: str, observer: RetryObserver | None = None) -> Iterator[None]:
    """Within the block, retries are logged as ``connection``'s and passed to ``observer``."""
    token = _scope.set((connection, observer))
    try:
        yield
    finally:
        _scope.reset(token)


class Stopped(BaseException):
    """The pull this call belongs to is stopping (another object's pull failed or was
    interrupted): the call does not start, or its wait is cut short. A ``BaseException``, like
    ``KeyboardInterrupt``, so that no ``except Exception`` on the way swallows it; it never
    reaches the caller of the sync, who gets the failure that stopped it."""


_stop: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "kpisync_stop", default=None
)


@contextlib.contextmanager
def stop_scope(event: threading.Event) -> Iterator[None]:
    """Within the block, calls and their waits raise :class:`Stopped` once ``event`` is set."""
    token = _stop.set(event)
    try:
        yield
    finally:
        _stop.reset(token)


def check_stop() -> None:
    """Raise :class:`Stopped` if the current :func:`stop_scope` is stopping."""
    event = _stop.get()
    if event is not None and event.is_set():
        raise Stopped


def pause(seconds: float) -> None:
    """Sleep ``seconds``, or until the current :func:`stop_scope` stops (:class:`Stopped`)."""
    event = _stop.get()
    if event is None:
        time.sleep(seconds)
    elif event.wait(seconds):
        raise Stopped


def report_retry(event: RetryEvent) -> None:
    """Log one retry (the error text carries no secret: connectors never put one there) and
    hand it to the observer of the current :func:`retry_scope`."""
    connection, observer = _scope.get()
    log.info(
        "%s%s: retry %d of %s (%s) in %.2fs: %s",
        f"{connection}: " if connection else "", event.crm, event.attempt, event.call,
        event.reason, event.wait_s, event.error[:200],
        extra={"connection": connection, "crm": event.crm, "call": event.call,
               "reason": event.reason},
    )  # fmt: skip
    if observer is not None:
        observer(connection, event)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to retry transient failures."""

    attempts: int = 8
    base_s: float = 0.5
    cap_s: float = 60.0
    # Never wait longer than this for one Retry-After (a CRM asking for an hour means "pause").
    max_retry_after_s: float = 300.0


def _wait(policy: RetryPolicy) -> Callable[[tenacity.RetryCallState], float]:
    def wait(state: tenacity.RetryCallState) -> float:
        # Full jitter (AWS architecture blog "Exponential Backoff And Jitter"): spreads clients
        # that failed together so they do not retry together.
        exp = min(policy.cap_s, policy.base_s * 2 ** (state.attempt_number - 1))
        delay = random.uniform(0, exp)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, policy.max_retry_after_s))
        return delay

    return wait


def retrying(
    policy: RetryPolicy,
    fn: Callable[[], T],
    *,
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> T:
    """Call ``fn``; retry only retriable failures, per ``policy``; re-raise the last one."""

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            exc = state.outcome.exception()
            if exc is not None:
                on_retry(exc, state.next_action.sleep if state.next_action else 0.0)

    retryer = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(RetriableError),
        wait=_wait(policy),
        sleep=pause,
        stop=tenacity.stop_after_attempt(policy.attempts),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retryer(fn)


class RateLimiter:
    """Token bucket: at most ``rate`` calls per second on average, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int = 1, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Block until a call may go; returns the seconds waited."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
        if wait:
            pause(wait)
        return wait


#: The longest a call waits for the first usage report of a client (a call's own timeout
#: bounds it anyway; this only guards against a call that never settles).
FIRST_REPORT_WAIT_S = 120.0


#: Within this many calls of the budget's share, calls are admitted one at a time (more than
#: the most calls ever in flight, [sync] hubspot_concurrency ≤ 16).
SERIAL_MARGIN_CALLS = 32


@dataclass
class BudgetGuard:
    """Pause before the sync spends more than ``share`` of the CRM's daily API allowance.

    ``used``/``limit`` come from the CRM's own usage reports (Salesforce ``Sforce-Limit-Info``,
    HubSpot ``X-HubSpot-RateLimit-Daily*``). ``share`` bounds the whole org's usage, so kpisync
    never pushes the org past it — it leaves the rest to the customer's other integrations.

    Calls may overlap (objects pulled side by side): a call is admitted (:meth:`admit`) only if
    the last report plus the calls admitted and not yet reported on stay under the allowance,
    and a report older than one already applied (an earlier call answering later) does not lower
    ``used``. One call at a time, this is exactly "pause once the last report reaches it".
    """

    share: float = 0.2
    used: int | None = None
    limit: int | None = None
    _lock: threading.Condition = field(
        default_factory=threading.Condition, init=False, repr=False, compare=False
    )
    _local: threading.local = field(
        default_factory=threading.local, init=False, repr=False, compare=False
    )
    _pending: int = field(default=0, init=False, repr=False, compare=False)
    _admitted: int = field(default=0, init=False, repr=False, compare=False)
    _applied: int = field(default=0, init=False, repr=False, compare=False)
    #: Tickets of calls that ended without a report (HubSpot searches carry none): the CRM
    #: counted them, ``used`` does not until a later call's report.
    _unreported: list[int] = field(default_factory=list, init=False, repr=False, compare=False)

    def _calls(self) -> list[list[int]]:
        """This thread's admitted calls, innermost last: ``[ticket, reported]``."""
        calls: list[list[int]] | None = getattr(self._local, "calls", None)
        if calls is None:
            calls = self._local.calls = []
        return calls

    def observe(self, used: int, limit: int) -> None:
        """A usage report (``used`` counts the call it came with)."""
        with self._lock:
            calls, ticket = self._calls(), None
            if calls and not calls[-1][1]:
                calls[-1][1] = 1
                ticket = calls[-1][0]
                self._pending -= 1
            newest = ticket is None or ticket > self._applied
            if newest or limit != self.limit or self.used is None or used > self.used:
                self.used, self.limit = used, limit
                self._applied = max(self._applied, ticket or 0)
                # A report of a later call covers the unreported calls that ended before it.
                self._unreported = [t for t in self._unreported if t > self._applied]
            self._lock.notify_all()

    @property
    def allowance(self) -> int | None:
        limit = self.limit
        return None if limit is None else int(limit * self.share)

    def check(self, crm: str) -> None:
        """Raise :class:`BudgetPaused` if one more call would go past the share."""
        with self._lock:
            self._check(crm)

    def _check(self, crm: str) -> None:
        used, limit = self.used, self.limit
        if used is None or limit is None:
            return
        allowance = int(limit * self.share)
        ahead = self._pending + len(self._unreported)
        if used + ahead >= allowance:
            going = f" and {ahead} under way or not yet reported" if ahead else ""
            raise BudgetPaused(
                f"API budget spent: {used} of {limit} daily calls used{going}, the budget is "
                f"{self.share:.0%} ({allowance}); the sync resumes from its cursors later",
                used=used, limit=limit, crm=crm,
            )  # fmt: skip

    def _near_the_end(self) -> bool:
        used, limit = self.used, self.limit
        if used is None or limit is None:
            return False
        return int(limit * self.share) - used <= SERIAL_MARGIN_CALLS

    def admit(self, crm: str) -> None:
        """:meth:`check`, and count the call as under way until :meth:`settle`.

        Before the first usage report nothing says where the day stands: calls then go one at
        a time (a new client's side-by-side calls would otherwise all go out unchecked), and
        the first answer's report admits the rest.
        """
        with self._lock:
            if not any(not reported for _, reported in self._calls()):
                self._lock.wait_for(lambda: self.used is not None or self._pending == 0,
                                    timeout=FIRST_REPORT_WAIT_S)  # fmt: skip
                # Near the end of the share, calls go one at a time again: reports of calls
                # answered out of order can lag, and the share must hold to the call.
                if self._near_the_end():
                    self._lock.wait_for(lambda: self._pending == 0, timeout=FIRST_REPORT_WAIT_S)
            self._check(crm)
            self._admitted += 1
            self._pending += 1
            self._calls().append([self._admitted, 0])

    def settle(self) -> None:
        """The call admitted last by this thread is over (reported on or not)."""
        with self._lock:
            calls = self._calls()
            if calls:
                ticket, reported = calls.pop()
                if not reported:
                    self._pending -= 1
                    if self.used is not None:
                        self._unreported.append(ticket)
            self._lock.notify_all()


#: How often a Salesforce connection paused on its budget looks again (one call each time).
SALESFORCE_BUDGET_PROBE_S = 3600.0


def budget_resumes_at(crm: str, paused_at: dt.datetime, *, tz: str = "UTC") -> dt.datetime:
    """When a connection that spent its API budget at ``paused_at`` may call its CRM again.

    * HubSpot: the daily limit resets at midnight in the portal's time zone (usage-details
      guide, developers.hubspot.com/docs/guides/apps/api-usage/usage-details): the next local
      midnight of ``tz``.
    * Salesforce: the allocation is a rolling 24 hours; calls are refused "until usage for the
      preceding 24 hours drops below the limit" (Salesforce Help, System Overview: API Usage).
      The allowance comes back as old calls age out, at no moment kpisync can know, so it
      looks again after :data:`SALESFORCE_BUDGET_PROBE_S` (one call tells: Sforce-Limit-Info).
    """
    from zoneinfo import ZoneInfo

    if crm == "hubspot":
        local = paused_at.astimezone(ZoneInfo(tz))
        midnight = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(),
                                       tzinfo=local.tzinfo)  # fmt: skip
        return midnight.astimezone(dt.UTC)
    return paused_at + dt.timedelta(seconds=SALESFORCE_BUDGET_PROBE_S)


class CallGuard:
    """The per-connection choke point state: limiter, budget, retry policy, call counter.

    ``calls`` counts every call of every thread exactly; :attr:`thread_calls` those of the
    calling thread (the concurrent extract loop gives each object's pull its own thread and so
    knows each object's calls)."""

    def __init__(
        self, crm: str, *, policy: RetryPolicy, limiter: RateLimiter, budget: BudgetGuard
    ) -> None:
        self.crm = crm
        self.policy = policy
        self.limiter = limiter
        self.budget = budget
        self.calls = 0
        self._lock = threading.Lock()
        self._local = threading.local()

    def count(self, n: int = 1) -> None:
        with self._lock:
            self.calls += n
        self._local.calls = getattr(self._local, "calls", 0) + n

    @property
    def thread_calls(self) -> int:
        """Calls counted so far from the calling thread."""
        calls: int = getattr(self._local, "calls", 0)
        return calls

    def run(self, fn: Callable[[], T], call: Callable[[], str] | str = "call") -> T:
        """``fn()`` under the budget, limiter and retry policy; ``call`` names it in the retry
        log (a callable is asked after the failure: the connector knows the request by then)."""
        attempts = 0

        def attempt() -> T:
            nonlocal attempts
            attempts += 1
            check_stop()
            self.budget.admit(self.crm)
            try:
                self.limiter.acquire()
                return fn()
            finally:
                self.budget.settle()

        def on_retry(exc: BaseException, wait: float) -> None:
            name = call() if callable(call) else call
            report_retry(RetryEvent(self.crm, name, retry_reason(exc), attempts, wait,
                                    str(exc)))  # fmt: skip

        return retrying(self.policy, attempt, on_retry=on_retry)


class WindowLimiter:
    """At most ``limit`` calls in any rolling ``window_s`` seconds — the shape of a CRM limit
    such as HubSpot's "N requests per 10 seconds" — with limits that may change as the CRM
    reports them (:meth:`configure`) and a pause when the CRM says the window is spent
    (:meth:`hold`). Unlike a token bucket, a full window is used without overshooting it."""

    def __init__(
        self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = max(1, limit)
        self.window_s = window_s
        self._clock = clock
        self._sent: deque[float] = deque()
        self._held_until = 0.0
        self._lock = threading.Lock()

    def configure(self, limit: int, window_s: float) -> None:
        with self._lock:
            self.limit, self.window_s = max(1, limit), window_s

    def hold(self, seconds: float) -> None:
        """Send nothing for ``seconds`` from now."""
        with self._lock:
            self._held_until = max(self._held_until, self._clock() + seconds)

    def delay(self) -> float:
        """Seconds until a call may go, reserving its slot when it is 0."""
        with self._lock:
            now = self._clock()
            while self._sent and now - self._sent[0] >= self.window_s:
                self._sent.popleft()
            wait = max(0.0, self._held_until - now)
            if len(self._sent) >= self.limit:
                # The oldest calls must leave the window first.
                oldest = self._sent[len(self._sent) - self.limit]
                wait = max(wait, oldest + self.window_s - now)
            if wait <= 0:
                self._sent.append(now)
            return wait

    def acquire(self) -> float:
        """Block until a call may go; returns the seconds waited."""
        waited = 0.0
        while (wait := self.delay()) > 0:
            pause(wait)
            waited += wait
        return waited
