"""The connectors' exceptions, grouped by what the caller does about them.

::

    ConnectorError                 root: every failure a connector raises (carries crm, object,
    │                              record_id; never a token, secret or request body)
    ├── RetriableError             try again later: 429, 5xx, timeouts, dropped connections,
    │   │                          Salesforce UNABLE_TO_LOCK_ROW / concurrent-request limits
    │   └── RateLimited            the CRM said how long to wait (``retry_after`` seconds)
    ├── FatalError                 stop the sync; retrying cannot help
    │   ├── AuthError              credentials refused, token cannot be renewed
    │   ├── ConfigError            settings or mapping do not fit the CRM (unknown field, ...)
    │   └── ApiError               any other refusal (malformed query, permission, 404 ...)
    ├── BudgetPaused               the configured share of the daily API allowance is spent:
    │                              the run stops cleanly and resumes from its cursors later
    └── SkippableRecord            one record cannot be normalised: quarantine it, go on

Only :class:`RetriableError` is retried (``connectors.http.retrying``).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator


class ConnectorError(Exception):
    """Root of every connector failure."""

    def __init__(
        self,
        message: str,
        *,
        crm: str | None = None,
        object: str | None = None,
        record_id: str | None = None,
        status: int | None = None,
    ) -> None:
        where = "/".join(p for p in (crm, object, record_id) if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.message = message
        self.crm = crm
        self.object = object
        self.record_id = record_id
        self.status = status


class RetriableError(ConnectorError):
    """A transient failure; the same request may succeed later.

    ``reason`` (one of ``connectors.http.RETRY_REASONS``) says why, where the status alone does
    not (a lock error); by default it is derived from the status.
    """

    def __init__(self, message: str, *, reason: str | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.reason = reason


class RateLimited(RetriableError):
    """The CRM asked us to slow down, possibly saying for how long."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class FatalError(ConnectorError):
    """The sync cannot go on; retrying will not help."""


class AuthError(FatalError):
    """Authentication failed or the session cannot be renewed."""


class ConfigError(FatalError):
    """The settings (connection or mapping) do not fit what the CRM offers."""


class ApiError(FatalError):
    """The CRM refused a request for a reason that is not transient."""


class BudgetPaused(ConnectorError):
    """The API budget for this period is spent: the sync pauses and resumes from its cursors."""

    def __init__(self, message: str, *, used: int, limit: int, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.used = used
        self.limit = limit


class SkippableRecord(ConnectorError):
    """One record cannot be normalised; it goes to quarantine with this message as reason."""


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps: causes, contexts, and the exceptions requests and
    urllib3 carry as arguments or ``reason`` rather than as causes."""
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        e = stack.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        stack.extend((e.__cause__, e.__context__, getattr(e, "reason", None), *e.args))


def transport_error(
    exc: BaseException, what: str, *, crm: str, object: str | None = None
) -> ConnectorError:
    """The error for a request that failed below HTTP (connection, TLS, timeout).

    Retriable, except a certificate the configured CA bundle does not trust: no retry can fix
    that, and retrying it for minutes would only hide a misconfiguration (or an interception).
    """
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return ConfigError(
                f"{what}: the server's TLS certificate is not trusted ({cause.verify_message}); "
                "check the connection's URL and ca_bundle",
                crm=crm,
                object=object,
            )
    return RetriableError(f"{what} ({type(exc).__name__})", crm=crm, object=object)
