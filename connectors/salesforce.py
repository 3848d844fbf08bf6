"""Salesforce connector: simple-salesforce over one guarded ``requests.Session``.

* **Auth** (:class:`SalesforceAuth`): OAuth client-credentials (HTTP Basic, as simple-salesforce
  sends it), JWT bearer (RS256 assertion signed with the key file) or refresh token, all against
  ``token_url``. A 401 ``INVALID_SESSION_ID`` logs in again and retries the call.
* **One choke point** (:meth:`SalesforceClient.call`): every call passes the budget guard and the
  rate limiter, is counted, reads ``Sforce-Limit-Info`` (headers_api_usage.htm), and maps
  simple-salesforce's status exceptions (simple-salesforce 1.12 ``util.py``
  ``exception_handler``) onto ``connectors.errors``; only retriable ones are retried. Salesforce
  answers API-limit and concurrency refusals with 403 ``REQUEST_LIMIT_EXCEEDED``
  (errorcodes.htm), not 429: when the header says the daily allowance is spent that is a budget
  pause, otherwise a rate limit to back off from.
* **Incremental** by ``SystemModstamp`` (system_fields.htm): an object is read with
  ``queryAll`` ordered by ``SystemModstamp, Id``, de-duplicated by id in the store; ``IsDeleted``
  rows are deletions. **Which** objects to read is asked first, of all of them at once, in one
  Composite call ("The entire series of requests counts as a single call toward your API limits",
  resources_composite_composite_post.htm): per object an sObject Get Updated and a Get Deleted
  over the window since its ``covered`` mark (resources_getupdated.htm, resources_getdeleted.htm).
  Only objects with changes are queried, from that mark; the next mark is the answer's
  ``latestDateCovered``, which stays at the start of a long-running transaction until it commits
  (GetUpdatedResult), so its late-stamped records are not lost and nothing is re-read when
  nothing changed: a quiet org costs one call per cycle. Objects Get Updated cannot serve (not
  ``replicateable``, no modstamp, no mark yet, a mark past its 30/15-day reach) take the query
  path from ``min(cursor, last sync start - look-back)`` (airbyte #27146: late-committed
  modstamps), their first pages riding in the same Composite call as query subrequests (at most
  5 a call). ``composite/batch`` is not used: "Each subrequest counts against rate limits"
  (resources_composite_batch.htm).
* **Bulk API 2.0** (``sf.bulk2``, query_get_job_results.htm) when the row count the first page
  reports makes a job (create, polls with a doubling wait, one call per 50,000-row result set)
  cheaper in calls than the further REST pages, or above ``bulk_threshold`` rows: the CSV result
  pages stream into the store one page at a time.
* Field lists come from sObject Describe, every stale object's in one Composite call (25 a call;
  an object the API user cannot see answers 404), cached in the cursor state for
  ``describe_ttl_s``; every SOQL literal goes through ``simple_salesforce.format_soql``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, TypeVar

import polars as pl
import requests
import sqlalchemy as sa
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceOperationError,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)
from simple_salesforce.format import format_soql

from connectors import schema as db
from connectors import values as v
from connectors.base import ObjectSpec, Page, RawRecord
from connectors.config import ConnectionConfig
from connectors.errors import (
    ApiError,
    AuthError,
    BudgetPaused,
    ConfigError,
    RateLimited,
    RetriableError,
    transport_error,
)
from connectors.http import BudgetGuard, CallGuard, RateLimiter, RetryPolicy
from connectors.salesforce_map import SalesforceMapping, build_objects
from connectors.store import Cursor, Store

log = logging.getLogger(__name__)
T = TypeVar("T")

CRM = "salesforce"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_TOKEN_PATH = "/services/oauth2/token"
_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")
# Composite: "up to 25 subrequests ... up to 5 of these subrequests can be sObject Collections or
# query operations, including Query and QueryAll requests" (resources_composite_composite_post.htm).
COMPOSITE_MAX = 25
COMPOSITE_MAX_QUERIES = 5
# Bulk API 2.0 result sets: ``maxRecords`` is "the maximum number of records to retrieve per set
# of results", with no documented maximum, and omitted "the server uses a default value based on
# the service"; very large sets risk "a timeout before receiving all the data"
# (query_get_job_results.htm). Each set is one call, and one set is held in memory while it is
# parsed (a set at a time, never the whole job): a full pull of the 10k bench org peaks at
# ~290 MiB with sets of 50,000 rows against ~210-245 MiB with sets of 10,000, for a fifth of the
# result calls; the set, not the org, bounds it.
BULK_RESULT_SET = 50_000
# A query job's state is polled until JobComplete (query_walkthrough.htm): the first look after
# ``bulk_poll_s``, then at twice the previous wait up to this cap, so a long job costs a few
# calls, not one per interval, and a short one is seen finished soon after it is.
BULK_POLL_CAP_S = 30.0
BULK_WAIT_S = 6 * 3600.0
# Get Updated answers "for no more than 30 days previous to the day the call is executed"
# (resources_getupdated.htm); Get Deleted no further back than the recycle bin, 15 days
# (resources_getdeleted.htm). A day's margin on each.
UPDATED_REACH = dt.timedelta(days=29)
DELETED_REACH = dt.timedelta(days=14)
# ``finish`` revisits the leads of these objects' stored records; past _TOUCHED_MAX ids it runs
# one statement over the whole connection instead of id lists of _IN_CHUNK.
_CONVERSION_OBJECTS = frozenset({"Lead", "Opportunity"})
_TOUCHED_MAX = 20_000
_IN_CHUNK = 500
_RETRIABLE_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "QUERY_TIMEOUT"})
_TRANSPORT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


def _error_code(exc: SalesforceError) -> str:
    content = exc.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return str(content[0].get("errorCode", ""))
    if isinstance(content, dict):
        return str(content.get("errorCode", content.get("error", "")))
    return ""


class _GuardedSession(requests.Session):
    """A session with a default timeout; never takes proxies/CA bundles from the environment."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s
        #: "METHOD /path" of the last request sent (no query string: it may hold SOQL literals);
        #: names the call in retry log lines.
        self.last_call = "request"
        # REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE would override ``verify`` (psf/requests#3829):
        # settings decide which CA to trust, not the environment.
        self.trust_env = False

    def request(self, method: str | bytes, url: str | bytes, *a: Any, **kw: Any) -> Any:
        kw.setdefault("timeout", self.timeout_s)
        m = method.decode() if isinstance(method, bytes) else method
        u = url.decode() if isinstance(url, bytes) else url
        self.last_call = f"{m.upper()} {urllib.parse.urlsplit(u).path}"
        return super().request(method, url, *a, **kw)


class SalesforceAuth:
    """Gets an access token by the configured OAuth flow (never logs a secret)."""

    def __init__(self, cfg: ConnectionConfig, session: requests.Session) -> None:
        self.cfg = cfg
        self.session = session
        if not cfg.instance_url and not cfg.token_url:
            raise ConfigError("instance_url or token_url is required", crm=CRM)

    @property
    def token_url(self) -> str:
        if self.cfg.token_url:
            return self.cfg.token_url
        return f"{(self.cfg.instance_url or '').rstrip('/')}/services/oauth2/token"

    def _form(self) -> tuple[dict[str, str], tuple[str, str] | None]:
        cfg = self.cfg
        if cfg.auth == "client_credentials":
            if not cfg.client_id or cfg.client_secret is None:
                raise ConfigError("client_credentials needs client_id and client_secret", crm=CRM)
            return {"grant_type": "client_credentials"}, (cfg.client_id, cfg.client_secret.get())
        if cfg.auth == "refresh_token":
            if not cfg.client_id or cfg.refresh_token is None:
                raise ConfigError("refresh_token auth needs client_id and refresh_token", crm=CRM)
            form = {"grant_type": "refresh_token", "client_id": cfg.client_id,
                    "refresh_token": cfg.refresh_token.get()}  # fmt: skip
            if cfg.client_secret is not None:
                form["client_secret"] = cfg.client_secret.get()
            return form, None
        if cfg.auth == "jwt":
            if not cfg.client_id or not cfg.username or cfg.private_key is None:
                raise ConfigError("jwt auth needs client_id, username and private_key", crm=CRM)
            import jwt  # pyjwt: a dependency of simple-salesforce

            # remoteaccess_oauth_jwt_flow.htm: iss = consumer key, sub = username, aud = login
            # host, exp within 3 minutes, RS256.
            claims = {"iss": cfg.client_id, "sub": cfg.username, "aud": cfg.jwt_audience,
                      "exp": int(time.time()) + 180}  # fmt: skip
            assertion = jwt.encode(claims, cfg.private_key.get(), algorithm="RS256")
            return {"grant_type": JWT_GRANT, "assertion": assertion}, None
        raise ConfigError(f"unknown auth {cfg.auth!r}", crm=CRM)

    def token(self) -> tuple[str, str]:
        """(access token, instance URL)."""
        form, basic = self._form()
        try:
            r = self.session.post(self.token_url, data=form, auth=basic)
        except _TRANSPORT_ERRORS as exc:
            raise transport_error(exc, "token request failed", crm=CRM) from None
        if r.status_code == 429 or r.status_code >= 500:
            raise RetriableError(f"token endpoint answered {r.status_code}", crm=CRM,
                                 status=r.status_code)  # fmt: skip
        try:
            body = r.json()
        except ValueError:
            raise RetriableError("token endpoint sent a truncated answer", crm=CRM) from None
        if r.status_code == 403 and _limit_refusal(body):
            # A concurrency refusal can reach the token call too (errorcodes.htm,
            # REQUEST_LIMIT_EXCEEDED): it passes like any other, so it is retried.
            raise RateLimited("token endpoint: request limit exceeded", crm=CRM, status=403)
        if r.status_code >= 300 or "access_token" not in body:
            # error/error_description name the problem; the request (with secrets) is not echoed.
            code = body.get("error", r.status_code) if isinstance(body, dict) else r.status_code
            raise AuthError(f"login refused ({code})", crm=CRM, status=r.status_code)
        instance = self.cfg.instance_url or str(body.get("instance_url", ""))
        return str(body["access_token"]), instance


def _bulk_results(
    sf: Salesforce, *, obj: str, job: str, locator: str, page_size: int
) -> dict[str, Any]:
    """One page of a Bulk API 2.0 query job's CSV results."""
    results: dict[str, Any] = getattr(sf.bulk2, obj)._client.get_query_results(
        job, locator, page_size
    )
    return results


def _described(result: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, bool]]:
    """Field types and the ``replicateable`` / ``deletable`` flags of an sObject Describe."""
    types = {str(f["name"]): str(f.get("type", "string")) for f in result.get("fields", [])}
    flags = {k: bool(result.get(k, False)) for k in ("replicateable", "deletable")}
    return types, flags


def _answer_error(body: Any) -> tuple[str, str]:
    """(errorCode, message) of a refused Composite subrequest (a list of errors)."""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return str(body[0].get("errorCode", "")), str(body[0].get("message", ""))[:300]
    return "", str(body)[:300]


def _limit_refusal(body: Any) -> bool:
    """Whether an error body is Salesforce's ``REQUEST_LIMIT_EXCEEDED`` list."""
    return isinstance(body, list) and any(
        isinstance(e, dict) and e.get("errorCode") == "REQUEST_LIMIT_EXCEEDED" for e in body
    )


class SalesforceClient:
    """The one HTTP choke point of a Salesforce connection."""

    def __init__(self, cfg: ConnectionConfig) -> None:
        self.cfg = cfg
        o = cfg.options
        self.session = _GuardedSession(o.timeout_s)
        if cfg.ca_bundle:
            self.session.verify = cfg.ca_bundle
        self.session.hooks["response"].append(self._on_response)
        self.guard = CallGuard(
            CRM,
            policy=RetryPolicy(o.retry_attempts, o.retry_base_s, o.retry_cap_s),
            limiter=RateLimiter(o.rate_per_s, burst=max(1, int(o.rate_per_s))),
            budget=BudgetGuard(o.budget_share),
        )
        self.auth = SalesforceAuth(cfg, self.session)
        #: OAuth token requests sent (not API requests: see ``_on_response``).
        self.auth_calls = 0
        self._sf: Salesforce | None = None

    def _on_response(self, r: requests.Response, *args: Any, **kwargs: Any) -> None:
        if urllib.parse.urlsplit(r.url).path.endswith(_TOKEN_PATH):
            # An OAuth token request is a login, not an API request: login calls count toward
            # the login rate limit (sforce_api_calls_login.htm: "login() calls count toward your
            # login rate limit"), usage reports cover "all calls, except for login()"
            # (sforce_api_header_limitinfo.htm), and the token endpoint answers without the
            # Sforce-Limit-Info that every REST API request carries (headers_api_usage.htm).
            # Counted apart, so ``calls`` is what the org's daily allocation is charged.
            self.auth_calls += 1
            return
        self.guard.count()
        m = _LIMIT_INFO.search(r.headers.get("Sforce-Limit-Info", ""))
        if m:
            self.guard.budget.observe(int(m.group(1)), int(m.group(2)))

    @property
    def calls(self) -> int:
        return self.guard.calls

    @property
    def sf(self) -> Salesforce:
        if self._sf is None:
            token, instance = self.auth.token()
            self._sf = Salesforce(
                instance_url=instance, session_id=token, session=self.session,
                version=self.cfg.api_version,
            )  # fmt: skip
        return self._sf

    def call(self, fn: Callable[[Salesforce], T], *, obj: str | None = None) -> T:
        """Run ``fn(sf)`` through the guard; errors become ``connectors.errors``."""

        def attempt() -> T:
            try:
                return fn(self.sf)
            except SalesforceExpiredSession:
                self._sf = None  # log in again on the next attempt
                raise RetriableError("session expired", crm=CRM, object=obj, status=401) from None
            except SalesforceRefusedRequest as exc:
                self._refused(exc, obj)
                raise  # unreachable: _refused always raises
            except (SalesforceGeneralError, SalesforceMalformedRequest) as exc:
                code = _error_code(exc)
                if exc.status >= 500 or code in _RETRIABLE_CODES:
                    reason = "lock_error" if code == "UNABLE_TO_LOCK_ROW" else None
                    raise RetriableError(f"{exc.status} {code}", crm=CRM, object=obj,
                                         status=exc.status, reason=reason) from None  # fmt: skip
                if code in ("INVALID_FIELD", "INVALID_TYPE"):
                    raise ConfigError(f"{code}: {_message(exc)}", crm=CRM, object=obj,
                                      status=exc.status) from None  # fmt: skip
                raise ApiError(f"{exc.status} {code}: {_message(exc)}", crm=CRM, object=obj,
                               status=exc.status) from None  # fmt: skip
            except SalesforceResourceNotFound as exc:
                raise ApiError(f"404 {_message(exc)}", crm=CRM, object=obj, status=404) from None
            except SalesforceOperationError as exc:
                # Bulk job failed or timed out: worth another try of the whole job.
                raise RetriableError(f"bulk job: {str(exc)[:200]}", crm=CRM, object=obj) from None
            except _TRANSPORT_ERRORS as exc:
                raise transport_error(exc, "connection problem", crm=CRM, object=obj) from None
            except ValueError as exc:
                # A body cut short by a dropped connection fails JSON decoding.
                raise RetriableError(f"unreadable answer: {type(exc).__name__}", crm=CRM,
                                     object=obj) from None  # fmt: skip

        def name() -> str:
            return f"{self.session.last_call} ({obj})" if obj else self.session.last_call

        return self.guard.run(attempt, call=name)

    def _refused(self, exc: SalesforceRefusedRequest, obj: str | None) -> None:
        code = _error_code(exc)
        budget = self.guard.budget
        if code == "REQUEST_LIMIT_EXCEEDED":
            if budget.used is not None and budget.limit and budget.used >= budget.limit:
                raise BudgetPaused("the org's daily API allowance is spent", used=budget.used,
                                   limit=budget.limit, crm=CRM, object=obj) from None  # fmt: skip
            raise RateLimited("request limit exceeded (concurrency)", crm=CRM, object=obj,
                              status=403) from None  # fmt: skip
        raise ApiError(f"403 {code}: {_message(exc)}", crm=CRM, object=obj, status=403) from None

    # -- API helpers ------------------------------------------------------------------------
    def describe_global(self) -> set[str]:
        result = self.call(lambda sf: sf.describe())
        return {str(o["name"]) for o in (result or {}).get("sobjects", [])}

    def describe_fields(self, obj: str) -> dict[str, str]:
        """Field name → SOAP type (``boolean``, ``double``, ``datetime`` ...)."""
        return self.describe_object(obj)[0]

    def describe_object(self, obj: str) -> tuple[dict[str, str], dict[str, bool]]:
        """Field types (as :meth:`describe_fields`) and the object's ``replicateable`` and
        ``deletable`` flags (Get Updated / Get Deleted serve only objects that are:
        object-specific_requirements_for_data_replication.htm)."""
        result = self.call(lambda sf: getattr(sf, obj).describe(), obj=obj)
        return _described(result)

    def describe_objects(
        self, names: Sequence[str]
    ) -> dict[str, tuple[dict[str, str], dict[str, bool]] | None]:
        """:meth:`describe_object` of every one of ``names``, 25 to a Composite call (sObject
        Describe is an sObject resource, which Composite carries, and "the entire series of
        requests counts as a single call toward your API limits",
        resources_composite_composite_post.htm). ``None``: the object is not available to the
        API user (its describe answers 404 ``NOT_FOUND``, as it is then absent from Describe
        Global too), so no Describe Global call is needed to find out."""
        version = f"/services/data/v{self.cfg.api_version}"
        subs = [{"method": "GET", "referenceId": f"describe_{name}",
                 "url": f"{version}/sobjects/{name}/describe"} for name in names]  # fmt: skip
        described: dict[str, tuple[dict[str, str], dict[str, bool]] | None] = {}
        for start in range(0, len(subs), COMPOSITE_MAX):
            chunk = subs[start : start + COMPOSITE_MAX]
            for name, answer in zip(names[start : start + COMPOSITE_MAX],
                                    self.composite(chunk), strict=True):  # fmt: skip
                status = int(answer.get("httpStatusCode") or 0)
                body = answer.get("body")
                if status == 200 and isinstance(body, dict):
                    described[name] = _described(body)
                elif status == 404:
                    described[name] = None
                else:
                    code, message = _answer_error(body)
                    kind = RetriableError if status >= 500 or code in _RETRIABLE_CODES else ApiError
                    raise kind(f"describe answered {status} {code}: {message}", crm=CRM,
                               object=name, status=status)  # fmt: skip
        return described

    def _options(self, page_size: int | None) -> dict[str, str]:
        # Sforce-Query-Options batchSize: 200..2000, default 2000 (headers_queryoptions.htm).
        if page_size is None:
            return {}
        return {"Sforce-Query-Options": f"batchSize={max(200, min(2000, page_size))}"}

    def query(self, soql: str, *, obj: str, page_size: int | None = None) -> dict[str, Any]:
        headers = self._options(page_size)
        result: dict[str, Any] = self.call(
            lambda sf: sf.query(soql, include_deleted=True, headers=headers), obj=obj
        )
        return result

    def query_more(
        self, next_url: str, *, obj: str, page_size: int | None = None
    ) -> dict[str, Any]:
        headers = self._options(page_size)
        result: dict[str, Any] = self.call(
            lambda sf: sf.query_more(
                next_url, identifier_is_url=True, include_deleted=True, headers=headers
            ),
            obj=obj,
        )
        return result

    def composite(self, subrequests: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """One Composite call (independent subrequests, ``allOrNone`` false): the
        ``compositeResponse`` entries, in order."""
        body = {"allOrNone": False, "compositeRequest": list(subrequests)}
        result = self.call(lambda sf: sf.restful("composite", method="POST", json=body))
        answers = list((result or {}).get("compositeResponse", []))
        if len(answers) != len(subrequests):
            # One LIMIT_EXCEEDED entry instead of an answer per subrequest: nothing ran.
            raise ApiError(f"composite request refused: {str(answers)[:200]}", crm=CRM)
        return answers

    def bulk_pages(self, obj: str, soql: str, page_size: int) -> Iterator[str]:
        """CSV pages of a Bulk API 2.0 queryAll job (the whole job retried on failure)."""
        # Streaming from inside a retried call is not possible; the job is created and awaited
        # in one guarded call, then every results page is its own guarded call.
        job = self.call(lambda sf: _bulk_create(sf, obj, soql, self.cfg.options.bulk_poll_s),
                        obj=obj)  # fmt: skip
        locator = ""
        while True:
            result = self.call(partial(_bulk_results, obj=obj, job=job, locator=locator,
                                       page_size=page_size), obj=obj)  # fmt: skip
            yield str(result["records"])
            locator = str(result.get("locator") or "")
            if not locator:
                return


def _bulk_create(sf: Salesforce, obj: str, soql: str, poll_s: float) -> str:
    """Create a queryAll job and wait for it to complete; its id."""
    from simple_salesforce.bulk2 import ColumnDelimiter, LineEnding, Operation

    client = getattr(sf.bulk2, obj)._client
    job = client.create_job(Operation.query_all, soql, ColumnDelimiter.COMMA, LineEnding.LF)
    job_id = str(job["id"])
    await_bulk_job(client, job_id, poll_s, query=True)
    return job_id


def await_bulk_job(
    client: Any, job_id: str, poll_s: float, *, query: bool, first_wait_s: float | None = None
) -> dict[str, Any]:
    """Poll a Bulk API 2.0 job (query or ingest) until ``JobComplete``; its last job info.

    simple-salesforce's ``wait_for_job`` polls every ``wait`` seconds whatever the job's age: a
    minute-long job at a 2 s interval is some 30 calls. Here each wait doubles the last
    (BULK_POLL_CAP_S at most): ~log2(job time / poll_s) polls. ``first_wait_s``: the first
    look's wait when it is not ``poll_s`` (a job submitted a while ago is looked at at once).
    """
    wait = max(poll_s, 0.01)
    sleep = wait if first_wait_s is None else max(first_wait_s, 0.0)
    deadline = time.monotonic() + BULK_WAIT_S
    state = ""
    while time.monotonic() < deadline:
        time.sleep(sleep)
        info: dict[str, Any] = dict(client.get_job(job_id, query))
        state = str(info.get("state", ""))
        # bulk_api_2_job_states.htm: UploadComplete and InProgress are still running; results
        # can be read once JobComplete (a 412 before it, query_get_job_results.htm).
        if state == "JobComplete":
            return info
        if state in ("Failed", "Aborted"):
            raise SalesforceOperationError(
                f"Job failure. Response content: {info.get('errorMessage') or info}"
            )
        wait = min(wait * 2, BULK_POLL_CAP_S)
        sleep = wait
    raise SalesforceOperationError(f"Job timeout. Job status: {state}")


def _minute(stamp: dt.datetime) -> dt.datetime:
    return stamp.astimezone(dt.UTC).replace(second=0, microsecond=0)


def _iso(stamp: dt.datetime) -> str:
    """UTC ISO 8601 to the second, as :func:`connectors.values.timestamp` writes it."""
    return stamp.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _covered(cursor: Cursor | None) -> dt.datetime | None:
    """The object's ``covered`` mark: every change stamped before it has been read."""
    raw = None if cursor is None else cursor.state.get("covered")
    stamp = v.timestamp(raw) if raw else None
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None


def _chunks(subs: Sequence[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Subrequests packed into Composite calls of at most 25, at most 5 of them queries."""
    chunk: list[dict[str, Any]] = []
    queries = 0
    for sub in subs:
        is_query = "/queryAll/" in str(sub["url"]) or "/query/" in str(sub["url"])
        if len(chunk) == COMPOSITE_MAX or (is_query and queries == COMPOSITE_MAX_QUERIES):
            yield chunk
            chunk, queries = [], 0
        chunk.append(sub)
        queries += is_query
    if chunk:
        yield chunk


def _message(exc: SalesforceError) -> str:
    content = exc.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return str(content[0].get("message", ""))[:300]
    return str(content)[:300]


def _strip(record: Mapping[str, Any]) -> RawRecord:
    return {k: val for k, val in record.items() if k != "attributes"}


def _is_deleted(record: Mapping[str, Any]) -> bool:
    return v.boolean(record.get("IsDeleted")) == "true"


def _csv_value(raw: str | None, kind: str) -> Any:
    """One Bulk API CSV value as the REST API would have returned it (JSON types, REST datetime
    format), so a record reads the same whichever API fetched it and re-reads are no-ops."""
    if raw is None or raw == "":
        return None  # Bulk API 2.0 CSV: an empty field is null
    if kind == "boolean":
        return raw.lower() == "true"
    if kind == "int":
        return int(float(raw))
    if kind in ("double", "currency", "percent"):
        return float(raw)
    if kind == "datetime":
        stamp = dt.datetime.fromisoformat(raw).astimezone(dt.UTC)
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}+0000"
    return raw


# Bulk API 2.0 writes datetimes in UTC with milliseconds and a ``Z``
# ("2025-03-01T09:30:00.000Z", query_get_job_results.htm); REST writes the same instant as
# "2025-03-01T09:30:00.000+0000".
_CSV_DATETIME = "%Y-%m-%dT%H:%M:%S%.3fZ"
_REST_DATETIME = "%Y-%m-%dT%H:%M:%S%.3f+0000"


def _csv_expr(name: str, kind: str) -> pl.Expr:
    """:func:`_csv_value` of a whole column; a value it cannot read becomes null."""
    col = pl.col(name)
    if kind == "boolean":
        return col.str.to_lowercase() == "true"
    if kind == "int":
        return col.cast(pl.Float64, strict=False).cast(pl.Int64, strict=False)
    if kind in ("double", "currency", "percent"):
        return col.cast(pl.Float64, strict=False)
    if kind == "datetime":
        parsed = col.str.strptime(pl.Datetime("ms"), _CSV_DATETIME, strict=False)
        return parsed.dt.strftime(_REST_DATETIME)
    return col


def _csv_records(text: str, types: Mapping[str, str]) -> list[RawRecord]:
    """A Bulk API CSV results page as records, the REST way (see :func:`_csv_value`).

    The page is parsed and typed column by column in polars; a column holding a value the
    vectorised reading cannot take (another offset, a number Python reads and polars does not)
    is read again value by value with :func:`_csv_value`, which also raises what it always did.
    """
    if not text.strip():
        return []
    frame = pl.read_csv(text.encode("utf-8"), infer_schema=False)  # every column as text
    if frame.height == 0:
        return []
    names = frame.columns
    text_frame = frame.select(pl.when(pl.col(c) != "").then(pl.col(c)).alias(c) for c in names)
    typed = text_frame.select(_csv_expr(c, types.get(c, "string")).alias(c) for c in names)
    redo = [c for c in names if typed[c].null_count() != text_frame[c].null_count()]
    records = typed.to_dicts()
    if redo:
        kinds = {c: types.get(c, "string") for c in redo}
        for record, original in zip(records, text_frame.select(redo).iter_rows(named=True),
                                    strict=True):  # fmt: skip
            for c, raw in original.items():
                record[c] = _csv_value(raw, kinds[c])
    return records


def _latest_stamp(values: Sequence[Any]) -> str | None:
    """The latest of a page's modstamps, as canonical text."""
    present = [x for x in values if x]
    if all(isinstance(x, str) and len(x) == 28 and x.endswith("+0000") for x in present):
        # All in the REST format (UTC, fixed width): the greatest text is the latest instant.
        return v.timestamp(max(present, default=None))
    return max((t for t in map(v.timestamp, present) if t), default=None)


class SalesforceSource:
    """A Salesforce connection as the extract loop's :class:`~connectors.base.Source`."""

    crm = CRM

    def __init__(
        self,
        cfg: ConnectionConfig,
        mapping: SalesforceMapping | None = None,
        *,
        client: SalesforceClient | None = None,
        page_size: int = 2000,
    ) -> None:
        self.cfg = cfg
        self.mapping = mapping or SalesforceMapping()
        self.client = client or SalesforceClient(cfg)
        self.page_size = page_size
        self.notes: list[str] = []
        self._specs = build_objects(self.mapping)
        self._fields: dict[str, list[str] | None] = {}
        self._types: dict[str, dict[str, str]] = {}
        self._described: dict[str, str] = {}
        self._first: dict[str, dict[str, Any]] = {}
        self._flags: dict[str, dict[str, bool]] = {}
        #: This run's ``covered`` mark per object (the next Get Updated window starts there).
        self._covered: dict[str, str] = {}
        #: Objects Get Updated / Get Deleted found changed: read from their previous mark.
        self._since: dict[str, dt.datetime] = {}
        #: Objects Get Updated / Get Deleted found unchanged: nothing to read.
        self._quiet: set[str] = set()
        self._start = dt.datetime.now(dt.UTC)
        self._touched: dict[str, set[str]] = {}
        self._touched_all = False

    @property
    def api_calls(self) -> int:
        return self.client.calls

    def objects(self) -> Sequence[ObjectSpec]:
        return self._specs

    # -- planning ---------------------------------------------------------------------------
    def prepare(self, cursors: Mapping[str, Cursor], *, full: bool) -> None:
        """Describe what is stale, then ask in one Composite call which objects changed (and
        fetch the first page of those Get Updated cannot serve)."""
        self._start = dt.datetime.now(dt.UTC)
        for plan in (self._first, self._covered, self._since, self._quiet):
            plan.clear()
        ttl = dt.timedelta(seconds=self.cfg.options.describe_ttl_s)
        stale: list[ObjectSpec] = []
        synced: dict[str, list[str]] = {}
        for spec in self._specs:
            state = cursors[spec.name].state if spec.name in cursors else {}
            described = state.get("described_at")
            fresh = described and self._start - dt.datetime.fromisoformat(described) < ttl
            known = "fields" in state and "flags" in state
            if full or not fresh or (not known and not state.get("absent")):
                stale.append(spec)
                synced[spec.name] = list(state.get("fields") or [])
            else:
                self._fields[spec.name] = None if state.get("absent") else list(state["fields"])
                self._types[spec.name] = dict(state.get("types", {}))
                self._flags[spec.name] = dict(state.get("flags", {}))
                self._described[spec.name] = str(described)
        if stale:
            described = self.client.describe_objects([spec.name for spec in stale])
            for spec in stale:
                self._describe(spec, described[spec.name], synced.get(spec.name))
        self._plan({n: None if full else c for n, c in cursors.items()})

    def _plan(self, cursors: Mapping[str, Cursor | None]) -> None:
        """Get Updated / Get Deleted for every object that has a ``covered`` mark within their
        reach, a first-page query for the others; then the first pages of the changed ones."""
        version = f"/services/data/v{self.cfg.api_version}"
        # The seconds of start and end are ignored (polling_for_changes.htm: "a timespan between
        # 12:30:15 and 12:35:15 ... between 12:30:00 and 12:35:00"): the window ends at the next
        # whole minute so that it covers this one. What it answers never reaches past the call
        # itself, and latestDateCovered ("less than or equal to endDate", GetUpdatedResult) is
        # where the next window starts.
        end = _minute(self._start) + dt.timedelta(minutes=1)
        asks: list[tuple[str, str, dict[str, Any]]] = []
        queried: list[str] = []
        marks: dict[str, dt.datetime] = {}
        recent: list[str] = []
        for spec in self._specs:
            name = spec.name
            if self._fields.get(name) is None:
                continue
            mark = _covered(cursors.get(name))
            flags = self._flags.get(name, {})
            if (
                mark is None or self._cursor_field(name) is None
                or not flags.get("replicateable") or mark < self._start - UPDATED_REACH
                or (flags.get("deletable") and mark < self._start - DELETED_REACH)
            ):  # fmt: skip
                queried.append(name)
                continue
            marks[name] = mark
            last = v.timestamp((cursors.get(name) or Cursor(None)).value)
            if last is not None and last >= _iso(_minute(mark)):
                # Read in the very minute its mark is in: Get Updated, reading whole minutes,
                # will name those records again. Its first page comes along instead of a second
                # call (re-reading only that minute's records).
                recent.append(name)
            window = urllib.parse.urlencode({"start": _iso(mark), "end": _iso(end)})
            kinds = ("updated", "deleted") if flags.get("deletable") else ("updated",)
            for kind in kinds:
                url = f"{version}/sobjects/{name}/{kind}/?{window}"
                asks.append((name, kind, {"method": "GET", "referenceId": f"{kind}_{name}",
                                          "url": url}))  # fmt: skip
        room = min(COMPOSITE_MAX - len(asks), COMPOSITE_MAX_QUERIES) - len(queried)
        recent = recent[: max(0, room)]
        self._since = {name: _minute(marks[name]) for name in recent}
        answers = self._composite(asks, queried + recent, cursors)
        changed: dict[str, dt.datetime] = {}
        seen: dict[str, list[dict[str, Any]]] = {}
        for (name, _kind, _sub), answer in zip(asks, answers, strict=True):
            seen.setdefault(name, []).append(answer)
        for name, got in seen.items():
            mark = marks[name]
            if any(a.get("httpStatusCode") != 200 or not isinstance(a.get("body"), dict)
                   for a in got):  # fmt: skip
                # Refused (a window out of reach, an object no longer replicated...): the query
                # path, from the mark, finds what changed since.
                changed[name] = mark
                continue
            covered = min(v.timestamp(a["body"].get("latestDateCovered")) or _iso(mark)
                          for a in got)  # fmt: skip
            self._covered[name] = covered
            if name in self._first:
                continue  # its first page came along: read as a changed object
            if any(a["body"].get("ids") or a["body"].get("deletedRecords") for a in got):
                changed[name] = mark
            else:
                self._quiet.add(name)
        # What changed since the mark (its minute, as Get Updated read it) is read in full: the
        # records a long transaction stamped early are there, since the mark waited for them.
        self._since.update({name: _minute(mark) for name, mark in changed.items()})
        self._composite([], [n for n in changed if n not in self._first], cursors)

    def _composite(
        self, asks: list[tuple[str, str, dict[str, Any]]], queried: list[str],
        cursors: Mapping[str, Cursor | None],
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Send ``asks`` and the first-page queries of ``queried`` in as few Composite calls as
        the limits allow; keep the query answers as first pages; return the others' answers."""
        version = f"/services/data/v{self.cfg.api_version}"
        # Sforce-Query-Options batchSize: 200..2000, default 2000 (headers_queryoptions.htm);
        # a subrequest may carry the headers of its resource (requests_composite.htm).
        headers = self.client._options(self.page_size)
        subs = [sub for _, _, sub in asks]
        for name in queried:
            soql = self._soql(self._spec(name), cursors.get(name))
            url = f"{version}/queryAll/?q={urllib.parse.quote_plus(soql)}"
            subs.append({"method": "GET", "referenceId": f"query_{name}", "httpHeaders": headers,
                         "url": url})  # fmt: skip
        answers: list[dict[str, Any]] = []
        for chunk in _chunks(subs):
            answers += self.client.composite(chunk)
        for name, answer in zip(queried, answers[len(asks) :], strict=True):
            if answer.get("httpStatusCode") == 200 and isinstance(answer.get("body"), dict):
                self._first[name] = answer["body"]
            # Anything else: pages() queries that object on its own (and maps the error).
        return answers[: len(asks)]

    def _spec(self, name: str) -> ObjectSpec:
        return next(spec for spec in self._specs if spec.name == name)

    def _describe(
        self,
        spec: ObjectSpec,
        described: tuple[dict[str, str], dict[str, bool]] | None,
        synced: Sequence[str] | None = None,
    ) -> None:
        """Fields, types and flags of ``spec`` from its describe (``None``: not available to the
        API user); ``synced``: the fields it was read with so far."""
        self._described[spec.name] = self._start.isoformat()
        if described is None:
            if not spec.optional:
                raise ConfigError("object not available to the API user", crm=CRM,
                                  object=spec.name)  # fmt: skip
            self._fields[spec.name] = None
            self.notes.append(f"{spec.name}: not in this org (feature off); skipped")
            return
        have, self._flags[spec.name] = described
        wanted = list(dict.fromkeys(spec.fields))
        missing = [f for f in wanted if f not in have]
        if "Id" in missing:
            raise ConfigError("object has no Id field", crm=CRM, object=spec.name)
        gone = [f"{spec.name}.{f}" for f in synced or () if f in missing]
        if gone:
            # A quiet cycle reads no object, so a field deleted (or made unreadable) since the
            # last read may first show here, when the describe is renewed: dropping it would
            # null its stored values at the object's next change (G9). Stop, as a query would.
            raise ConfigError(f"mapped field {', '.join(gone)} is no longer readable by the API "
                              "user (deleted, or its field-level security removed)", crm=CRM,
                              object=spec.name)  # fmt: skip
        for f in missing:
            if f not in ("IsDeleted", "SystemModstamp", "LastModifiedDate"):
                self.notes.append(f"{spec.name}.{f}: field not in org; column left empty")
        self._fields[spec.name] = [f for f in wanted if f in have]
        self._types[spec.name] = {f: have[f] for f in wanted if f in have}

    def _cursor_field(self, name: str) -> str | None:
        fields = self._fields.get(name) or []
        for f in ("SystemModstamp", "LastModifiedDate"):
            if f in fields:
                return f
        return None

    def _soql(self, spec: ObjectSpec, cursor: Cursor | None) -> str:
        fields = self._fields[spec.name] or []
        base = f"SELECT {', '.join(fields)} FROM {spec.name}"
        cf = self._cursor_field(spec.name)
        if cf is None:
            return base  # no modstamp: small reference objects are re-read every cycle
        mark = self._since.get(spec.name) or self._watermark(cursor)
        where = "" if mark is None else format_soql(f" WHERE {cf} >= {{}}", mark)
        return f"{base}{where} ORDER BY {cf}, Id"

    def _watermark(self, cursor: Cursor | None) -> dt.datetime | None:
        """min(last modstamp stored, last sync start - look-back): late commits are re-read."""
        if cursor is None or not cursor.value:
            return None
        mark = dt.datetime.fromisoformat(cursor.value)
        synced = cursor.state.get("synced_at")
        if synced:
            back = dt.datetime.fromisoformat(synced) - dt.timedelta(
                seconds=self.cfg.options.lookback_s
            )
            mark = min(mark, back)
        return mark.replace(microsecond=0)

    # -- extraction -------------------------------------------------------------------------
    def pages(self, spec: ObjectSpec, cursor: Cursor | None, *, full: bool) -> Iterator[Page]:
        for page in self._object_pages(spec, cursor, full=full):
            self._touch(spec.name, page.records)
            yield page

    def _object_pages(
        self, spec: ObjectSpec, cursor: Cursor | None, *, full: bool
    ) -> Iterator[Page]:
        state: dict[str, Any] = {"described_at": self._described.get(spec.name),
                                 "synced_at": self._start.isoformat()}  # fmt: skip
        fields = self._fields.get(spec.name)
        if fields is None:
            yield Page(cursor=Cursor(None, {**state, "absent": True}))
            return
        state["fields"] = fields
        state["types"] = self._types.get(spec.name, {})
        state["flags"] = self._flags.get(spec.name, {})
        cf = self._cursor_field(spec.name)
        last = None if full or cursor is None else cursor.value
        # The covered mark moves with the object's last page only: a pull cut short resumes
        # from the old one. Read by the query path, an object's next window starts where this
        # run's look-back would have (min(cursor, start - look-back)).
        before = None if full or cursor is None else cursor.state.get("covered")
        done_state = {**state, "covered": self._covered.get(spec.name) or _iso(
            _minute(self._start - dt.timedelta(seconds=self.cfg.options.lookback_s)))}  # fmt: skip
        if before:
            state["covered"] = before
        if spec.name in self._quiet:
            yield Page(cursor=Cursor(last, done_state))
            return
        first = self._first.pop(spec.name, None)
        soql = self._soql(spec, None if full else cursor)
        if first is None:
            try:
                first = self.client.query(soql, obj=spec.name, page_size=self.page_size)
            except ConfigError as exc:
                # A field vanished since the cached describe (G9): describe again, once.
                before = list(self._fields.get(spec.name) or [])
                self._describe(spec, self.client.describe_objects([spec.name])[spec.name])
                fields = self._fields.get(spec.name) or []
                gone = [f"{spec.name}.{f}" for f in before if f not in fields]
                if gone:
                    # Deleted, or its field-level security removed: both read as INVALID_FIELD
                    # "No such column" in SOQL and as absent from describe (Salesforce Help,
                    # "Field-Level Security": a field a user cannot read is hidden from them, in
                    # the API too). Going on without it would overwrite its stored values with
                    # nulls: stop here.
                    raise ConfigError(
                        f"mapped field {', '.join(gone)} is no longer readable by the API user "
                        f"(deleted, or its field-level security removed); {exc.message}",
                        crm=CRM, object=spec.name,
                    ) from None  # fmt: skip
                state["fields"] = fields
                state["types"] = self._types.get(spec.name, {})
                soql = self._soql(spec, None if full else cursor)
                first = self.client.query(soql, obj=spec.name, page_size=self.page_size)
        if not first.get("done", True) and self._bulk_is_cheaper(first):
            yield from self._bulk(spec, soql.split(" ORDER BY ")[0], done_state, last, cf)
            return
        result = first
        while True:
            records = [_strip(r) for r in result.get("records", [])]
            if cf is not None and records and records[-1].get(cf):
                last = v.timestamp(records[-1][cf]) or last
            final = bool(result.get("done", True) or not result.get("nextRecordsUrl"))
            page = Page(
                records=[r for r in records if not _is_deleted(r)],
                deleted=[r for r in records if _is_deleted(r)],
                cursor=Cursor(last, dict(done_state if final else state)),
            )
            yield page
            if final:
                return
            result = self.client.query_more(
                str(result["nextRecordsUrl"]), obj=spec.name, page_size=self.page_size
            )

    def _bulk_is_cheaper(self, first: Mapping[str, Any]) -> bool:
        """Whether the rest of an object is read through Bulk API 2.0 rather than REST pages,
        from the row count its first page reports (``totalSize``).

        Calls are what the org's daily allocation is charged (the ``api-usage`` of
        Sforce-Limit-Info, headers_api_usage.htm; ``budget_share`` of it is kpisync's). REST
        costs one queryMore per further page of the first page's size; a Bulk API 2.0 job costs
        its create, a status poll (more for a long job) and one call per result set of
        :data:`BULK_RESULT_SET` rows, and reads the first page again. Bulk only when strictly
        cheaper: REST pages come in modstamp order, so the cursor moves with every page and a
        pull cut short resumes where it stopped, and there is no job to wait for. Past
        ``bulk_threshold`` rows Bulk is used whatever the count."""
        total = int(first.get("totalSize", 0))
        if total > self.cfg.options.bulk_threshold:
            return True
        got = len(first.get("records") or [])
        more_pages = math.ceil(max(0, total - got) / max(1, got))
        bulk_calls = 2 + math.ceil(total / BULK_RESULT_SET)
        return bulk_calls < more_pages

    def _bulk(
        self, spec: ObjectSpec, soql: str, state: dict[str, Any], last: str | None, cf: str | None
    ) -> Iterator[Page]:
        """Stream a Bulk API 2.0 job page by page; the cursor moves with the last page only
        (bulk results are unordered, so an earlier page cannot vouch for a modstamp)."""
        top = last
        pending: Page | None = None
        for text in self.client.bulk_pages(spec.name, soql, BULK_RESULT_SET):
            rows = _csv_records(text, self._types.get(spec.name, {}))
            stamp = _latest_stamp([r.get(cf) for r in rows]) if cf else None
            if stamp and (top is None or stamp > top):
                top = stamp
            if pending is not None:
                yield pending
            live: list[RawRecord] = []
            deleted: list[RawRecord] = []
            for r in rows:
                (deleted if _is_deleted(r) else live).append(r)
            pending = Page(records=live, deleted=deleted)
        final = pending or Page()
        yield replace(final, cursor=Cursor(top, dict(state)))

    # -- after all objects --------------------------------------------------------------------
    def _touch(self, name: str, records: Sequence[RawRecord]) -> None:
        """Note the leads and opportunities a page brings: ``finish`` revisits only those."""
        if name not in _CONVERSION_OBJECTS or self._touched_all:
            return
        ids = self._touched.setdefault(name, set())
        ids.update(str(r["Id"]) for r in records if r.get("Id") is not None)
        if len(ids) > _TOUCHED_MAX:
            # A large pull: one statement over the connection is cheaper than id lists.
            self._touched_all = True
            self._touched.clear()

    def finish(self, store: Store, connection: str) -> None:
        """Conversion time: ConvertedDate is a date; conversion creates the opportunity, so its
        CreatedDate on that day is the conversion instant (idempotent).

        Done in SQL, for the leads this run stored (their ``converted_at`` came back as a date)
        and the leads of the opportunities it stored — after a run that did not finish, for
        every lead of the connection: a quiet cycle touches no lead row."""
        touched_all, touched = self._touched_all, self._touched
        self._touched_all, self._touched = False, {}
        # A run that ended early (crash, pause, failure) stored pages but never got here: its
        # leads are revisited all at once (runs[0] is this run).
        runs = store.runs(connection, limit=2)
        if len(runs) > 1 and runs[1].outcome != "ok":
            touched_all = True
        if not touched_all and not any(touched.values()):
            return
        leads, opps = db.canonical["leads"], db.canonical["opportunities"]
        opp = opps.alias("opp")
        match = (opp.c.connection == connection) & (
            opp.c.row_key == leads.c.converted_opportunity_id
        )
        created = sa.select(opp.c.created_at).where(match).scalar_subquery()
        base = sa.and_(
            leads.c.connection == connection,
            leads.c.converted_at.is_not(None),
            sa.exists().where(
                match,
                opp.c.created_at.is_not(None),
                opp.c.created_at != leads.c.converted_at,
                sa.func.substr(opp.c.created_at, 1, 10)
                == sa.func.substr(leads.c.converted_at, 1, 10),
            ),
        )
        update = sa.update(leads).values(converted_at=created)
        with store.engine.begin() as conn:
            if touched_all:
                conn.execute(update.where(base))
                return
            lead_ids = sorted(touched.get("Lead", ()))
            opp_ids = sorted(touched.get("Opportunity", ()))
            for i in range(0, len(lead_ids), _IN_CHUNK):
                conn.execute(update.where(base, leads.c.row_key.in_(lead_ids[i : i + _IN_CHUNK])))
            for i in range(0, len(opp_ids), _IN_CHUNK):
                chunk = opp_ids[i : i + _IN_CHUNK]
                conn.execute(update.where(base, leads.c.converted_opportunity_id.in_(chunk)))
