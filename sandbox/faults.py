"""Fault injection for the sandbox CRMs, shared by every CRM app.

A :class:`FaultRule` fires either **by rate** (each matching call with probability ``rate``, drawn
from a seeded RNG so runs repeat) or **by count** (the next ``count`` matching calls, then the rule
is spent).  Rules may be narrowed to one CRM (``crm``), an HTTP method and a path regex (``path``,
``re.search`` against the request path).  Control-plane paths (``/__sandbox/``) are never faulted.

Kinds
-----
Request level (decided by the server before the app runs):

* ``latency_ms``         sleep ``latency_ms`` milliseconds, then continue normally.
* ``http_5xx``           answer with a status from ``statuses`` (default ``[503]``); the body comes
                         from ``app.server_error_response``.
* ``rate_limit_storm``   answer with ``app.rate_limit_response`` (Salesforce: 403
                         ``REQUEST_LIMIT_EXCEEDED``; HubSpot: 429 with ``Retry-After``).
* ``expired_session``    the app revokes the caller's token and answers as for an expired session
                         (``app.expired_session_response``); only on requests where
                         ``app.requires_auth(request)`` is true.
* ``drop_connection``    the app answers normally, but the server sends the headers and about half
                         of the body, then closes the socket.

Record level (asked by batch/collection handlers per record, via ``request.record_fault(kind)``):

* ``lock_error``             the record fails with a lock error (Salesforce ``UNABLE_TO_LOCK_ROW``).
* ``partial_batch_failure``  the record fails validation; with ``rate=0.3`` about 30 % of the
                             records of each batch fail.

JSON form accepted by ``POST /__sandbox/faults``::

    {"kind": "http_5xx", "count": 2, "statuses": [503], "crm": "salesforce", "path": "/query"}
    {"kind": "latency_ms", "rate": 1.0, "latency_ms": 200}
    {"kind": "lock_error", "rate": 0.5, "seed": 7}
"""

from __future__ import annotations

import itertools
import random
import re
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

REQUEST_KINDS = frozenset(
    {"latency_ms", "http_5xx", "rate_limit_storm", "expired_session", "drop_connection"}
)
RECORD_KINDS = frozenset({"lock_error", "partial_batch_failure"})
KINDS = REQUEST_KINDS | RECORD_KINDS


class FaultSpecError(ValueError):
    """A fault rule that cannot be understood."""


@dataclass
class FaultRule:
    kind: str
    rate: float | None = None
    count: int | None = None
    crm: str | None = None
    path: str | None = None
    method: str | None = None
    latency_ms: int = 0
    statuses: list[int] = field(default_factory=lambda: [503])
    seed: int = 0
    id: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FaultSpecError(
                f"unknown fault kind {self.kind!r}; expected one of {sorted(KINDS)}"
            )
        if (self.rate is None) == (self.count is None):
            raise FaultSpecError("give exactly one of 'rate' (0..1) or 'count' (next N calls)")
        if self.rate is not None and not 0.0 <= self.rate <= 1.0:
            raise FaultSpecError("'rate' must be between 0 and 1")
        if self.count is not None and self.count < 0:
            raise FaultSpecError("'count' must be >= 0")
        if self.kind == "latency_ms" and self.latency_ms <= 0:
            raise FaultSpecError("a latency_ms rule needs 'latency_ms' > 0")
        if self.kind == "http_5xx" and not all(500 <= s <= 599 for s in self.statuses):
            raise FaultSpecError("'statuses' must be 5xx codes")
        self._regex = re.compile(self.path) if self.path else None
        self._rng = random.Random(self.seed)

    @classmethod
    def from_json(cls, obj: Any) -> FaultRule:
        if not isinstance(obj, dict):
            raise FaultSpecError("a fault rule is a JSON object")
        allowed = {
            "kind",
            "rate",
            "count",
            "crm",
            "path",
            "method",
            "latency_ms",
            "statuses",
            "seed",
        }
        unknown = set(obj) - allowed
        if unknown:
            raise FaultSpecError(f"unknown keys {sorted(unknown)}")
        try:
            return cls(**obj)
        except TypeError as exc:  # wrong value types
            raise FaultSpecError(str(exc)) from exc
        except re.error as exc:
            raise FaultSpecError(f"bad 'path' regex: {exc}") from exc

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return d

    def matches(self, crm: str, method: str, path: str) -> bool:
        if self.crm is not None and self.crm != crm:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return not (self._regex is not None and not self._regex.search(path))

    def fire(self) -> bool:
        """Decide (and account for) one matching call.  Caller holds the injector lock."""
        if self.count is not None:
            if self.count <= 0:
                return False
            self.count -= 1
            self.fired += 1
            return True
        assert self.rate is not None
        if self._rng.random() < self.rate:
            self.fired += 1
            return True
        return False

    @property
    def spent(self) -> bool:
        return self.count is not None and self.count <= 0


@dataclass(frozen=True)
class RequestFault:
    """What the request-level rules decided for one request."""

    latency_ms: int = 0
    status: int | None = None  # http_5xx
    rate_limited: bool = False
    expired_session: bool = False
    drop_connection: bool = False

    @property
    def any(self) -> bool:
        return bool(
            self.latency_ms
            or self.status
            or self.rate_limited
            or self.expired_session
            or self.drop_connection
        )

    def describe(self) -> list[str]:
        out = []
        if self.latency_ms:
            out.append(f"latency_ms={self.latency_ms}")
        if self.status:
            out.append(f"http_{self.status}")
        if self.rate_limited:
            out.append("rate_limit_storm")
        if self.expired_session:
            out.append("expired_session")
        if self.drop_connection:
            out.append("drop_connection")
        return out


class FaultInjector:
    """Thread-safe rule set shared by all CRM apps of one :class:`~sandbox.server.SandboxServer`."""

    def __init__(self, base_latency_ms: int = 0) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)
        #: Latency added to every CRM call (``serve --latency-ms``); survives clear().
        self.base_latency_ms = base_latency_ms

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            rule.id = next(self._ids)
            self._rules.append(rule)
        return rule

    def add_json(self, obj: Any) -> FaultRule:
        return self.add(FaultRule.from_json(obj))

    def clear(self, rule_id: int | None = None) -> int:
        """Remove one rule or all; returns how many were removed."""
        with self._lock:
            before = len(self._rules)
            self._rules = [] if rule_id is None else [r for r in self._rules if r.id != rule_id]
            return before - len(self._rules)

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.to_json() for r in self._rules]

    def _fire(self, kind: str, crm: str, method: str, path: str) -> FaultRule | None:
        for r in self._rules:
            if r.kind == kind and not r.spent and r.matches(crm, method, path) and r.fire():
                return r
        return None

    def for_request(self, crm: str, method: str, path: str, auth_required: bool) -> RequestFault:
        """Evaluate the request-level rules for one CRM call."""
        with self._lock:
            latency = self.base_latency_ms
            lat = self._fire("latency_ms", crm, method, path)
            if lat is not None:
                latency += lat.latency_ms
            status = None
            err = self._fire("http_5xx", crm, method, path)
            if err is not None:
                status = err.statuses[err._rng.randrange(len(err.statuses))]
            rate_limited = status is None and self._fire("rate_limit_storm", crm, method, path)
            expired = (
                status is None
                and not rate_limited
                and auth_required
                and self._fire("expired_session", crm, method, path)
            )
            failed = status is not None or bool(rate_limited) or bool(expired)
            drop = not failed and self._fire("drop_connection", crm, method, path)
            return RequestFault(
                latency_ms=latency,
                status=status,
                rate_limited=bool(rate_limited),
                expired_session=bool(expired),
                drop_connection=bool(drop),
            )

    def record_fault(self, kind: str, crm: str, method: str, path: str) -> bool:
        if kind not in RECORD_KINDS:
            raise FaultSpecError(f"{kind!r} is not a record-level fault")
        with self._lock:
            return self._fire(kind, crm, method, path) is not None


@dataclass
class RequestFaults:
    """Per-request handle given to the app as ``request.faults``."""

    injector: FaultInjector
    crm: str
    method: str
    path: str
    fired: list[str] = field(default_factory=list)

    def record_fault(self, kind: str) -> bool:
        hit = self.injector.record_fault(kind, self.crm, self.method, self.path)
        if hit:
            self.fired.append(kind)
        return hit
