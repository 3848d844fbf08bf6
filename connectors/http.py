"""The shared HTTP machinery of both connectors: retry policy, rate limiter, API budget.

Each connector owns one choke point that sends every CRM call through :class:`CallGuard`:
the rate limiter spaces calls, the budget guard refuses to start a call once the configured
share of the daily allowance is spent (:class:`~connectors.errors.BudgetPaused`), and
:func:`retrying` retries only :class:`~connectors.errors.RetriableError` with jittered
exponential backoff that honours ``Retry-After`` and is capped.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from connectors.errors import BudgetPaused, RateLimited, RetriableError

T = TypeVar("T")


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
            time.sleep(wait)
        return wait


@dataclass
class BudgetGuard:
    """Pause before the sync spends more than ``share`` of the CRM's daily API allowance.

    ``used``/``limit`` come from the CRM's own usage reports (Salesforce ``Sforce-Limit-Info``,
    HubSpot ``X-HubSpot-RateLimit-Daily*``). ``share`` bounds the whole org's usage, so kpisync
    never pushes the org past it — it leaves the rest to the customer's other integrations.
    """

    share: float = 0.2
    used: int | None = None
    limit: int | None = None

    def observe(self, used: int, limit: int) -> None:
        self.used, self.limit = used, limit

    @property
    def allowance(self) -> int | None:
        return None if self.limit is None else int(self.limit * self.share)

    def check(self, crm: str) -> None:
        allowance = self.allowance
        if self.used is None or self.limit is None or allowance is None:
            return
        if self.used >= allowance:
            raise BudgetPaused(
                f"API budget spent: {self.used} of {self.limit} daily calls used, the budget is "
                f"{self.share:.0%} ({allowance}); the sync resumes from its cursors later",
                used=self.used, limit=self.limit, crm=crm,
            )  # fmt: skip


class CallGuard:
    """The per-connection choke point state: limiter, budget, retry policy, call counter."""

    def __init__(
        self, crm: str, *, policy: RetryPolicy, limiter: RateLimiter, budget: BudgetGuard
    ) -> None:
        self.crm = crm
        self.policy = policy
        self.limiter = limiter
        self.budget = budget
        self.calls = 0
        self._lock = threading.Lock()

    def before_call(self) -> None:
        self.budget.check(self.crm)
        self.limiter.acquire()

    def count(self, n: int = 1) -> None:
        with self._lock:
            self.calls += n

    def run(self, fn: Callable[[], T]) -> T:
        def attempt() -> T:
            self.before_call()
            return fn()

        return retrying(self.policy, attempt)
