"""The one HTTP choke point of the HubSpot connector: client, auth, limits, retries, budget.

Every call goes through :meth:`HubSpotHttp.call` around a *generated* API method of
hubspot-api-client 12 (``crm.objects.basic_api.get_page``, ``crm.objects.search_api.do_search``,
``crm.associations.v4.batch_api.get_page``...) invoked with ``_preload_content=False``, so that

* the JSON is parsed once with :func:`orjson.loads` (the generated models deep-copy a Configuration
  per record — far too slow for 100k-record pulls) and models that drop fields (``PublicTeam``
  has no ``parentTeamId``) lose nothing;
* the response headers are at hand for the ``X-HubSpot-RateLimit-*`` API budget;
* the body is read *inside* the retried function: a connection dropped half-way through a body is
  retried like any other transport error.

Endpoints with no generated API (the currencies settings API) go through the same generated
``ApiClient.call_api`` rather than ``HubSpot.api_request``: that helper uses bare ``requests``
without our CA bundle or pool, prints errors to stdout, and ``REQUESTS_CA_BUNDLE`` (set on these
machines) overrides its TLS settings (psf/requests#3829; hubspot-api-client 12
``utils/requests/http_request_builder.py``).

Built on the shared machinery (``connectors.http``, ``connectors.errors``): one
:class:`~connectors.http.CallGuard` (budget check, general rate limiter, tenacity retries of
:class:`~connectors.errors.RetriableError` honouring ``Retry-After``) plus a second limiter for
the search API.  What is retried: 429 (as :class:`~connectors.errors.RateLimited` with the
server's ``Retry-After``), 5xx, status 0 (TLS/transport errors the client wraps), timeouts and
dropped connections.  urllib3's own ``Retry`` is not used for this: it does not retry POST, and
search and every batch endpoint are POSTs (HubSpot/hubspot-api-python#117).  Each sub-package has
its own ``ApiException`` class (hubspot-api-client 12 ``crm/*/exceptions.py``), so errors are
recognised by their attributes (``status``, ``headers``, ``body``), never by class.

Limits: general calls stay under ``requests_per_10s`` (HubSpot allows 100 per 10 s on
Free/Starter and 190 on Professional/Enterprise, usage-guidelines page) and searches under
``searches_per_second`` (5 per second per account, search guide).  The daily budget comes from
``X-HubSpot-RateLimit-Daily`` / ``-Daily-Remaining`` (search responses carry none, OAuth calls no
daily pair); past ``budget_share`` of the day the run pauses (:class:`BudgetPaused`).

Thread-safe: the connector pulls up to ``Limits.concurrency`` objects side by side, all through
one :class:`HubSpotHttp`. The call counter, limiters and budget are locked (``connectors.http``),
the cache of generated API objects too, and an expired OAuth token is renewed once however many
calls were refused with it; the urllib3 pool of each API object keeps a connection per thread.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import urllib3

from connectors.errors import (
    ApiError,
    AuthError,
    ConfigError,
    RateLimited,
    RetriableError,
    transport_error,
)
from connectors.http import (
    BudgetGuard,
    CallGuard,
    RateLimiter,
    RetryEvent,
    RetryPolicy,
    WindowLimiter,
    report_retry,
)

log = logging.getLogger(__name__)

CRM = "hubspot"
_WINDOW_MS = 10_000  # the general limit's window ("per 10 seconds", usage-guidelines page)

__all__ = ["HubSpotCredentials", "HubSpotHttp", "Limits"]


@dataclass(frozen=True)
class HubSpotCredentials:
    """A private-app token, or an OAuth app's refresh token (secrets never in repr or logs)."""

    access_token: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)

    @property
    def oauth(self) -> bool:
        return bool(self.refresh_token)

    def check(self) -> None:
        if self.oauth:
            if not (self.client_id and self.client_secret):
                raise ConfigError("OAuth needs client_id and client_secret", crm=CRM)
        elif not self.access_token:
            raise ConfigError("set access_token (private app) or refresh_token (OAuth)", crm=CRM)


@dataclass(frozen=True)
class Limits:
    """Client-side limits and retry policy.

    The general pace follows the portal: every response but a search's carries
    ``X-HubSpot-RateLimit-Max`` calls per ``X-HubSpot-RateLimit-Interval-Milliseconds`` and the
    ``-Remaining`` count of the current window (usage-guidelines page, developers.hubspot.com/
    docs/api/usage-details; HubSpot's changelog "Burst limits are increasing for API key
    authenticated calls" recommends using these headers "so you can automatically take advantage
    of future increases", and "Rate limit headers will now appear for OAuth authenticated calls"
    extends them to OAuth apps). ``requests_per_10s`` is the pace until the first response
    says otherwise (under Free/Starter's 100, the lowest tier); ``max_requests_per_10s`` caps
    what the portal allows, to leave room for the customer's other integrations.
    """

    requests_per_10s: int = 90
    #: Never more than this many calls per 10 s, whatever the portal allows (0 = no cap).
    max_requests_per_10s: int = 0
    # The CRM search endpoints are limited apart, 5 requests per second per account, and send no
    # rate-limit headers (CRM search guide, "Limitations"): 4 leaves a margin.
    searches_per_second: float = 4.0
    budget_share: float = 0.2  # pause once 20 % of the day's allowance is used
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_s: float = 60.0
    #: Objects pulled side by side, so calls in flight at once (``[sync] hubspot_concurrency``).
    #: HubSpot limits calls per 10 seconds and per day, not calls in flight (usage-guidelines
    #: page, developers.hubspot.com/docs/api/usage-details): the window above paces them all,
    #: whatever this is; it only keeps the latency of one call from holding up the next.
    concurrency: int = 4


def _header(headers: Mapping[str, str], name: str) -> str | None:
    low = name.lower()
    for k, v in headers.items():
        if k.lower() == low:
            return str(v)
    return None


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    value = _header(headers or {}, "Retry-After")
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None


def _error_message(body: Any) -> str | None:
    """HubSpot's error ``message`` (v3 error body) and nothing else of the response."""
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return body[:300] or None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])[:300]
    return None


class HubSpotHttp:
    """Builds the hubspot-api-client and runs every call through limits, retries and budget."""

    def __init__(
        self,
        credentials: HubSpotCredentials,
        *,
        base_url: str | None = None,
        ca_bundle: str | None = None,
        limits: Limits | None = None,
    ) -> None:
        credentials.check()
        self.credentials = credentials
        self.base_url = base_url.rstrip("/") if base_url else None
        self.ca_bundle = ca_bundle
        self.limits = lim = limits or Limits()
        # General calls are paced by ``window`` (a rolling window like the portal's own, sized
        # from its rate-limit headers), not by the guard's token bucket.
        self.guard = CallGuard(
            CRM,
            policy=lim.retry,
            limiter=RateLimiter(0),
            budget=BudgetGuard(share=lim.budget_share),
        )
        first = lim.requests_per_10s
        if lim.max_requests_per_10s > 0:
            first = min(first, lim.max_requests_per_10s)
        self.window = WindowLimiter(first, _WINDOW_MS / 1000)
        self.search_limiter = RateLimiter(lim.searches_per_second, burst=1)
        self._token = credentials.access_token
        self._apis: dict[str, Any] = {}
        self._client: Any = None
        self._lock = threading.Lock()  # the client and its API objects
        self._renewing = threading.Lock()  # one OAuth refresh at a time
        self._generation = 0  # bumped by every _build: which token a call went out with
        if credentials.oauth:
            self._refresh()
        self._build()

    @property
    def calls(self) -> int:
        return self.guard.calls

    # -- client ------------------------------------------------------------------------------
    def _kwargs(self) -> dict[str, Any]:
        # urllib3's default Retry(3) re-sends a GET answered 429/503 with Retry-After, and a GET
        # whose connection failed, on its own: unseen by the budget, the limiter and the retry
        # log. Every retry is this class's, so urllib3 makes none (its answer comes back as is).
        kw: dict[str, Any] = {
            "retry": urllib3.Retry(0, respect_retry_after_header=False, raise_on_status=False)
        }
        if self.base_url:
            # host for the generated APIs, base_url for api_request (hubspot-api-client 12
            # ``discovery/discovery_base.py``, ``utils/requests/http_request_builder.py``).
            kw.update(host=self.base_url, base_url=self.base_url)
        if self.ca_bundle:
            kw["ssl_ca_cert"] = self.ca_bundle
        # A connection per thread in each API object's pool (one more for the storing thread),
        # or a full pool drops connections and opens new ones (a TLS handshake a call): the
        # generated Configuration sizes urllib3's pool from it (hubspot-api-client 12
        # ``crm/objects/rest.py``; its default is 5 per CPU).
        kw["connection_pool_maxsize"] = max(4, self.limits.concurrency + 1)
        return kw

    def _build(self) -> None:
        from hubspot import HubSpot

        client = HubSpot(access_token=self._token, **self._kwargs())
        with self._lock:
            self._client = client
            self._apis.clear()  # API objects carry the token in their Configuration
            self._generation += 1

    def api(self, path: str) -> Any:
        """A generated API object by attribute path, e.g. ``"crm.objects.search_api"``; cached,
        because every ``client.crm..._api`` access builds a new ApiClient and connection pool."""
        with self._lock:
            got = self._apis.get(path)
            if got is None:
                got = self._client
                for part in path.split("."):
                    got = getattr(got, part)
                self._apis[path] = got
            return got

    def _renew(self, generation: int) -> None:
        """OAuth: a new access token, unless another thread renewed the one that
        ``generation``'s calls went out with already."""
        with self._renewing:
            if self._generation == generation:
                self._refresh()
                self._build()

    def _refresh(self) -> None:
        """OAuth: trade the refresh token for an access token (POST /oauth/v1/token)."""
        from hubspot import HubSpot

        c = self.credentials
        tokens = HubSpot(**self._kwargs()).oauth.tokens_api
        try:
            body = self._guarded(
                "oauth.tokens_api.create",
                lambda: tokens.create(
                    grant_type="refresh_token",
                    client_id=c.client_id,
                    client_secret=c.client_secret,
                    refresh_token=c.refresh_token,
                    _preload_content=False,
                    _request_timeout=self.limits.timeout_s,
                ),
                search=False,
                obj="oauth",
            )
        except ApiError as exc:
            if exc.status != 400:
                raise
            # The token endpoint refuses a bad client or refresh token with a 400 whose status
            # names it (BAD_REFRESH_TOKEN, BAD_CLIENT_SECRET: OAuth guide, "Refresh an access
            # token"): the credentials are refused, retrying cannot help.
            raise AuthError(
                f"OAuth refresh refused: {exc.message}", crm=CRM, object="oauth", status=400
            ) from None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not token:
            raise AuthError("the token endpoint returned no access_token", crm=CRM)
        self._token = str(token)

    # -- calls -------------------------------------------------------------------------------
    def call(self, method: str, *args: Any, obj: str, search: bool = False, **kwargs: Any) -> Any:
        """Run one generated API method (``"crm.objects.basic_api.get_page"``); returns the
        parsed JSON body, or None for an empty one (204)."""
        kwargs.setdefault("_preload_content", False)
        kwargs.setdefault("_request_timeout", self.limits.timeout_s)
        path, _, name = method.rpartition(".")
        refreshed = False
        while True:
            generation = self._generation
            try:
                # Resolved per attempt: an OAuth refresh rebuilds the API objects.
                return self._guarded(
                    method,
                    lambda: getattr(self.api(path), name)(*args, **kwargs),
                    search=search,
                    obj=obj,
                )
            except AuthError as exc:
                if not self.credentials.oauth or refreshed:
                    raise
                refreshed = True  # an access token lives 30 minutes: renew once, then give up
                report_retry(
                    RetryEvent(CRM, f"{method} ({obj})", "expired_session", 1, 0.0, str(exc))
                )
                self._renew(generation)

    def raw(self, path: str, *, obj: str, query: list[tuple[str, Any]] | None = None) -> Any:
        """GET an endpoint without a generated API, through a generated ``ApiClient``."""

        def go() -> Any:
            api_client = self.api("settings.users.users_api").api_client
            return api_client.call_api(
                path,
                "GET",
                {},
                query or [],
                {"Accept": "application/json"},
                auth_settings=["oauth2"],
                _preload_content=False,
                _request_timeout=self.limits.timeout_s,
                _return_http_data_only=True,
            )

        refreshed = False
        while True:
            generation = self._generation
            try:
                return self._guarded(f"GET {path}", go, search=False, obj=obj)
            except AuthError as exc:
                if not self.credentials.oauth or refreshed:
                    raise
                refreshed = True
                report_retry(
                    RetryEvent(CRM, f"GET {path} ({obj})", "expired_session", 1, 0.0, str(exc))
                )
                self._renew(generation)

    def _guarded(self, call: str, once: Callable[[], Any], *, search: bool, obj: str) -> Any:
        def attempt() -> Any:
            if search:
                self.search_limiter.acquire()
            else:
                self.window.acquire()
            self.guard.count()
            return self._once(once, obj)

        return self.guard.run(attempt, call=f"{call} ({obj})")

    def _once(self, once: Callable[[], Any], obj: str) -> Any:
        try:
            resp = once()
            data = resp.data if hasattr(resp, "data") else resp  # reads the body: may drop
            headers = dict(resp.headers) if hasattr(resp, "headers") else {}
            if hasattr(resp, "release_conn"):
                resp.release_conn()  # body read in full: the connection goes back to the pool
        except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as exc:
            raise transport_error(exc, "transport error", crm=CRM, object=obj) from exc
        except Exception as exc:
            status = getattr(exc, "status", None)
            if status is None or not hasattr(exc, "body"):
                raise
            raise self._classify(exc, int(status), obj) from exc
        self._note_budget(headers)
        self._note_limits(headers)
        if isinstance(data, bytes | bytearray):
            if not data:
                return None
            try:
                return orjson.loads(data)  # a page's parse is a fifth of a full pull's work
            except ValueError:
                pass
            try:  # what orjson refuses and json reads: integers beyond 64 bits
                return json.loads(data)
            except ValueError as exc:  # a truncated body that still looked complete
                raise RetriableError("unreadable response body", crm=CRM, object=obj) from exc
        return data

    @staticmethod
    def _classify(exc: Exception, status: int, obj: str) -> Exception:
        headers = getattr(exc, "headers", None) or {}
        message = _error_message(getattr(exc, "body", None)) or f"HTTP {status}"
        if status == 429:
            return RateLimited(
                message, retry_after=_retry_after(headers), crm=CRM, object=obj, status=status
            )
        if status == 0:
            # The client wraps TLS errors as ApiException(status=0), the ssl error its context.
            return transport_error(exc, "transport error", crm=CRM, object=obj)
        if 500 <= status <= 599:
            return RetriableError(message, crm=CRM, object=obj, status=status)
        if status in (401, 403):
            return AuthError(message, crm=CRM, object=obj, status=status)
        return ApiError(message, crm=CRM, object=obj, status=status)

    # -- pacing -----------------------------------------------------------------------------
    def _capped(self, per_window: int, window_ms: int) -> int:
        """Calls to send per window: the portal's limit under the configured cap, less a margin
        (our window and the portal's are not aligned to the millisecond)."""
        cap = self.limits.max_requests_per_10s
        if cap > 0:
            per_window = min(per_window, max(1, cap * window_ms // _WINDOW_MS))
        return max(1, per_window - max(1, per_window // 20))

    def _note_limits(self, headers: Mapping[str, str]) -> None:
        """Follow the portal's advertised window (``X-HubSpot-RateLimit-Max`` per
        ``-Interval-Milliseconds``); a spent window (``-Remaining: 0``: other integrations
        share it) pauses general calls until it has rolled over."""
        most = _header(headers, "X-HubSpot-RateLimit-Max")
        interval = _header(headers, "X-HubSpot-RateLimit-Interval-Milliseconds")
        if not (most and interval and most.isdigit() and interval.isdigit() and int(interval)):
            return
        window_ms = int(interval)
        limit = self._capped(int(most), window_ms)
        if (limit, window_ms / 1000) != (self.window.limit, self.window.window_s):
            self.window.configure(limit, window_ms / 1000)
        remaining = _header(headers, "X-HubSpot-RateLimit-Remaining")
        if remaining is not None and remaining.strip() == "0":
            self.window.hold(window_ms / 1000)

    # -- API budget --------------------------------------------------------------------------
    def _note_budget(self, headers: Mapping[str, str]) -> None:
        daily = _header(headers, "X-HubSpot-RateLimit-Daily")
        remaining = _header(headers, "X-HubSpot-RateLimit-Daily-Remaining")
        if daily and remaining and daily.isdigit() and remaining.isdigit():
            self.guard.budget.observe(max(0, int(daily) - int(remaining)), int(daily))

    @property
    def budget(self) -> BudgetGuard:
        return self.guard.budget
