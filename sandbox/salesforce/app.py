"""The sandbox Salesforce org as a :class:`sandbox.server.CrmApp`.

Routes (``vXX.X`` = any API version from 20.0 to 62.0; a trailing slash is optional everywhere,
as simple-salesforce sends ``query/`` and ``sobjects/X/``):

* ``POST /services/oauth2/token`` (also under ``/<anything>.salesforce.com/…``, which is where
  simple-salesforce's login helpers land when given ``domain="127.0.0.1:PORT/x"``),
  ``GET /services/oauth2/userinfo`` (and the identity URL ``/id/{org}/{user}``),
  ``POST /services/oauth2/revoke``, ``POST /services/Soap/u/{v}`` (SOAP login)
* ``/services/data/`` versions; ``/services/data/vXX.X/`` resources; ``limits``
* ``query``/``queryAll`` (+ ``/{locator}-{offset}``), ``sobjects`` (global describe), per-object
  info/describe/create/get/update/delete, external-id get/upsert, ``updated``/``deleted``
* ``composite/sobjects`` (collections), ``composite/batch``, ``composite``, ``search`` (a SOSL
  subset)
* ``jobs/query`` and ``jobs/ingest`` (Bulk API 2.0), ``tooling/...``, ``analytics/reports``

Every API call spends one unit of the org's daily budget and answers with ``Sforce-Limit-Info``
(headers_api_usage.htm); once spent the API answers 403 ``REQUEST_LIMIT_EXCEEDED``. A
``composite/batch`` spends one unit per subrequest ("Each subrequest counts against rate limits",
resources_composite_batch.htm); a ``composite`` request spends one in all ("The entire series of
requests counts as a single call toward your API limits", resources_composite_composite_post.htm).
"""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, unquote_plus

import polars as pl

from sandbox.http import (
    Handler,
    Headers,
    MethodNotAllowed,
    Request,
    Response,
    Router,
    json_response,
)
from sandbox.salesforce.auth import AuthService
from sandbox.salesforce.bulk import BulkHandlers, IngestHandlers
from sandbox.salesforce.composite import CompositeHandler
from sandbox.salesforce.errors import RecordError, SalesforceError, invalid_session, not_found
from sandbox.salesforce.ids import to18
from sandbox.salesforce.org import Org, format_sf_datetime, now_utc, parse_datetime
from sandbox.salesforce.rest import RestHandlers
from sandbox.salesforce.schema import NUMBER_TYPES, STRING_TYPES, FieldDef, ObjectDef
from sandbox.salesforce.search import search
from sandbox.salesforce.tooling import ToolingHandlers

_DOMAIN_HACK = re.compile(r"^/[^/]*\.salesforce\.com(/services/.*)$")
_VERSION = re.compile(r"^(\d{2})\.0$")
MIN_VERSION, MAX_VERSION = 20, 62
DEFAULT_DAILY_API_REQUESTS = 1_000_000

ORG_ID = to18("00D5g00000Sbx01")
_NO_FIELD = FieldDef("", "string")
API_USER_ID = to18("0055g00000Sbx01")


class SalesforceApp:
    """One sandbox org; see the module docstring for the routes."""

    name = "salesforce"

    def __init__(
        self,
        frames: dict[str, pl.DataFrame] | None = None,
        *,
        corporate_currency: str = "EUR",
        daily_api_requests: int = DEFAULT_DAILY_API_REQUESTS,
        client_id: str | None = None,
        client_secret: str | None = None,
        bulk_min_job_seconds: float = 0.2,
    ) -> None:
        self._frames = frames or {}
        self.corporate_currency = corporate_currency
        self.base_url = ""
        self.auth = AuthService(
            org_id=ORG_ID, user_id=API_USER_ID, client_id=client_id, client_secret=client_secret
        )
        self.daily_max = daily_api_requests
        self._initial_daily_max = daily_api_requests
        self.bulk_min_job_seconds = bulk_min_job_seconds
        self._usage_lock = threading.Lock()
        self.api_usage = 0
        #: Custom fields deleted through the control plane, by ``Object.Field``: undeletable.
        self._deleted_fields: dict[str, tuple[FieldDef, list[str]]] = {}
        #: Start times of long-running transactions still open on the instance (control plane):
        #: sObject Get Updated / Get Deleted cover no later than the earliest of them.
        self.long_transactions: list[datetime] = []
        self._build()

    @classmethod
    def from_generator(cls, size: str | int, seed: int, **kw: Any) -> SalesforceApp:
        """An org seeded from ``sandbox.generator`` (``size`` as for ``spec_for``)."""
        from sandbox.generator import generate_org, spec_for

        return cls.from_org(generate_org(spec_for(size, seed)), **kw)

    @classmethod
    def from_org(cls, org: Any, **kw: Any) -> SalesforceApp:
        """An org seeded from a generated ``CanonicalOrg`` (neutral or Salesforce ids)."""
        from sandbox.generator import with_crm_ids
        from sandbox.salesforce.seed import seed_frames

        reps = org.tables["reps"]
        if reps.height and not str(reps["id"][0]).startswith("005"):
            org = with_crm_ids(org, "salesforce")
        spec = org.spec
        frames = seed_frames(
            org.tables, corporate_currency=spec.corporate_currency, api_user_id=API_USER_ID,
            org_start=spec.start,
        )  # fmt: skip
        return cls(frames, corporate_currency=spec.corporate_currency, **kw)

    def _build(self) -> None:
        self._deleted_fields = {}
        self.started_at = datetime.now(UTC).replace(microsecond=0)
        self.org = Org(self._frames, api_user_id=API_USER_ID, org_id=ORG_ID,
                       corporate_currency=self.corporate_currency)  # fmt: skip
        self.rest = RestHandlers(self)
        self.bulk = BulkHandlers(self)
        self.ingest = IngestHandlers(self)
        self.tooling = ToolingHandlers(self)
        self.composite = CompositeHandler(self)
        self.router = self._routes()

    def _routes(self) -> Router:
        r = _DecodingRouter()
        rest, bulk, tooling = self.rest, self.bulk, self.tooling
        d = "/services/data/v{version}"
        r.add("GET", f"{d}", rest.resources)
        r.add("GET", f"{d}/limits", rest.limits)
        r.add("GET", f"{d}/query", rest.query)
        r.add("GET", f"{d}/queryAll", rest.query_all)
        r.add("GET", f"{d}/query/{{locator}}", rest.query_more)
        r.add("GET", f"{d}/queryAll/{{locator}}", rest.query_more)
        r.add("GET", f"{d}/sobjects", rest.describe_global)
        r.add("GET", f"{d}/sobjects/{{sobject}}", rest.sobject_info)
        r.add("POST", f"{d}/sobjects/{{sobject}}", rest.create)
        r.add("GET", f"{d}/sobjects/{{sobject}}/describe", rest.describe)
        r.add("GET", f"{d}/sobjects/{{sobject}}/updated", rest.updated)
        r.add("GET", f"{d}/sobjects/{{sobject}}/deleted", rest.deleted)
        r.add("GET", f"{d}/sobjects/{{sobject}}/{{record_id}}", rest.get_record)
        r.add("PATCH", f"{d}/sobjects/{{sobject}}/{{record_id}}", rest.update)
        r.add("DELETE", f"{d}/sobjects/{{sobject}}/{{record_id}}", rest.delete)
        r.add("GET", f"{d}/sobjects/{{sobject}}/{{field}}/{{value}}", rest.get_by_external_id)
        r.add("PATCH", f"{d}/sobjects/{{sobject}}/{{field}}/{{value}}", rest.upsert)
        r.add("POST", f"{d}/composite/sobjects", rest.collection_create)
        r.add("PATCH", f"{d}/composite/sobjects", rest.collection_update)
        r.add("DELETE", f"{d}/composite/sobjects", rest.collection_delete)
        r.add("GET|POST", f"{d}/composite/sobjects/{{sobject}}", rest.collection_get)
        r.add("PATCH", f"{d}/composite/sobjects/{{sobject}}/{{field}}", rest.collection_upsert)
        r.add("POST", f"{d}/composite/batch", rest.composite_batch)
        r.add("POST", f"{d}/composite", self.composite.handle)
        r.add("GET", f"{d}/search", lambda request, version: search(self.org, request, version))
        bulk.register(r, d)
        self.ingest.register(r, d)
        tooling.register(r, d)
        return r

    # -- CrmApp ----------------------------------------------------------------------------------

    def bind(self, base_url: str) -> None:
        self.base_url = base_url
        self.auth.base_url = base_url

    def reset(self) -> None:
        self.auth.reset()
        self.bulk.shutdown()
        self.long_transactions = []
        with self._usage_lock:
            self.api_usage = 0
            self.daily_max = self._initial_daily_max
        self._build()

    def requires_auth(self, request: Request) -> bool:
        path = _normalise(request.path)
        return path.startswith("/services/data/v") or path.startswith("/services/async/")

    def rate_limit_response(self, request: Request) -> Response:
        # Salesforce has no 429: concurrency and API limits both come back as 403
        # REQUEST_LIMIT_EXCEEDED (errorcodes.htm).
        return self._with_limit_header(SalesforceError(
            403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded."
        ).response())  # fmt: skip

    def expired_session_response(self, request: Request) -> Response:
        self.auth.revoke(request)
        return self._with_limit_header(invalid_session().response())

    def server_error_response(self, request: Request, status: int) -> Response:
        if status == 503:
            err = SalesforceError(503, "SERVER_UNAVAILABLE", "Server temporarily unavailable")
        else:
            err = SalesforceError(status, "UNKNOWN_EXCEPTION",
                                  "An unexpected error occurred. Please include this ErrorId "
                                  "if you contact support: 1234567890-12345 "
                                  "(-1234567890)")  # fmt: skip
        # Sforce-Limit-Info rides on every API response, errors included (headers_api_usage.htm).
        return self._with_limit_header(err.response())

    def edit_record(
        self, object_name: str, record_id: str, fields: dict[str, Any]
    ) -> dict[str, Any]:
        """Change a record as a user in the UI would: every field is writable, and the modstamp
        moves to now unless ``SystemModstamp`` is given (to simulate a late commit)."""
        obj = self._control_object(object_name)
        try:
            values = self.org.coerce(obj, fields)
        except SalesforceError as exc:
            raise ValueError(exc.message) from None
        try:
            with self.org.lock:
                # A user in the UI may touch any field the API user cannot (e.g. IsWon follows
                # StageName), so writability is not checked; system fields still are not set.
                p = self.org.prepare_update(obj, record_id, values, check=False)
                # An explicit SystemModstamp/LastModifiedDate simulates a change committed late
                # (a long transaction): it lands *behind* a sync's watermark
                # (airbytehq/airbyte#27146).
                for stamp in ("SystemModstamp", "LastModifiedDate"):
                    if values.get(stamp) is not None:
                        p.row[stamp] = values[stamp]
                self.org.commit(p)
        except RecordError as exc:
            if exc.status_code in ("NOT_FOUND",):
                raise KeyError(record_id) from None
            raise ValueError(exc.message) from None
        self.after_write(obj)
        return self.org.record_json(obj, p.row, "59.0")

    def raw_put(self, object_name: str, records: list[dict[str, Any]]) -> list[str]:
        """Store records as a data import or a broken integration leaves them: no required-field,
        picklist, reference or derived-field rules (``IsWon`` does not follow ``StageName``),
        no length limits, and dates outside the platform's 1700-01-01..4000-12-31 range (Data
        Loader guide, "Data Import Dates": a broken integration is what breaks that rule
        here). A record with an
        ``Id`` that exists is overwritten field by field; any other record is created (with its
        ``Id`` if given). System fields may be given (an import's ``CreatedDate``); the
        modstamp moves to now unless given, so incremental syncs see the change.

        What Salesforce stores is still typed: a currency field holds a number, never text
        (REST API guide, "Valid Date and DateTime Formats" and field types), so a value of the
        wrong type for its column is
        refused (``ValueError``, 400 on the control plane), as no import could store it either.
        Returns the ids written, in order."""
        obj = self._control_object(object_name)
        table = self.org.tables[obj.name]
        ids: list[str] = []
        with self.org.lock:
            for fields in records:
                values = {f.name: _raw_value(f, v) for f, v in self._raw_fields(obj, fields)}
                rid = values.get("Id")
                current = table.get(str(rid)) if rid else None
                now = now_utc()
                if current is not None:
                    row = dict(current)
                    row["LastModifiedDate"] = row["SystemModstamp"] = now
                    row.update(values)
                    table.put(row)
                else:
                    row = {name: None for name in obj.fields}
                    for f in obj.fields.values():
                        if f.type == "boolean":
                            row[f.name] = False
                    row.update(self.org._system_row(str(rid or self.org.ids.new(obj.key_prefix)),
                                                    now))  # fmt: skip
                    row.update({k: v for k, v in values.items() if k != "Id"})
                    table.insert(row)
                ids.append(str(row["Id"]))
        self.after_write(obj)
        return ids

    def _raw_fields(self, obj: ObjectDef, fields: dict[str, Any]) -> list[tuple[FieldDef, Any]]:
        out = []
        for key, value in fields.items():
            f = obj.field(key)
            if f is None:
                raise ValueError(f"No such column '{key}' on entity '{obj.name}'")
            out.append((f, value))
        return out

    def delete_record(self, object_name: str, record_id: str) -> dict[str, Any]:
        obj = self._control_object(object_name)
        try:
            with self.org.lock:
                p = self.org.prepare_delete(obj, record_id)
                self.org.commit(p)
        except RecordError as exc:
            if exc.status_code == "NOT_FOUND":
                raise KeyError(record_id) from None
            raise ValueError(exc.message) from None
        self.after_write(obj)
        return {"id": record_id, "deleted": True}

    def _control_object(self, name: str) -> ObjectDef:
        try:
            return self.org.object(name)
        except SalesforceError:
            raise KeyError(name) from None

    def configure(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Knobs: ``daily_api_requests`` (budget), ``api_usage`` (spent so far),
        ``session_ttl_s``, ``bulk_min_job_seconds``, ``expire_sessions`` (true = revoke all),
        ``jwt_public_key`` (PEM to accept for JWT bearer); schema drift as an admin makes it,
        each a list of ``"Object.Field"``: ``delete_fields`` / ``undelete_fields`` (a deleted
        custom field keeps its data and can be undeleted, as from Setup's Deleted Fields),
        ``revoke_fls`` / ``grant_fls`` (the API user's field-level security on the field);
        ``long_transactions``: the start times (ISO 8601) of the long-running transactions now
        open on the instance (``[]``: all committed), which hold back Get Updated's
        ``latestDateCovered``; ``replicateable``: ``{"Object": false}`` makes an object one the
        org does not replicate (describe's ``replicateable``; Get Updated / Get Deleted refuse
        it), as some objects are not."""
        unknown = set(settings) - {
            "daily_api_requests", "api_usage", "session_ttl_s", "bulk_min_job_seconds",
            "expire_sessions", "jwt_public_key", "delete_fields", "undelete_fields",
            "revoke_fls", "grant_fls", "long_transactions", "replicateable",
        }  # fmt: skip
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}")
        self._drift(settings)
        self._replication(settings)
        with self._usage_lock:
            if "daily_api_requests" in settings:
                self.daily_max = int(settings["daily_api_requests"])
            if "api_usage" in settings:
                self.api_usage = int(settings["api_usage"])
        if "session_ttl_s" in settings:
            self.auth.session_ttl_s = float(settings["session_ttl_s"])
        if "bulk_min_job_seconds" in settings:
            self.bulk_min_job_seconds = float(settings["bulk_min_job_seconds"])
        if settings.get("expire_sessions"):
            self.auth.expire_all()
        if "jwt_public_key" in settings:
            self.auth.register_jwt_key(str(settings["jwt_public_key"]))
        return {
            "deleted_fields": sorted(self._deleted_fields),
            "revoked_fls": sorted(self.org.revoked_fls),
            "daily_api_requests": self.daily_max,
            "api_usage": self.api_usage,
            "session_ttl_s": self.auth.session_ttl_s,
            "bulk_min_job_seconds": self.bulk_min_job_seconds,
            "long_transactions": [format_sf_datetime(t) for t in self.long_transactions],
        }

    def _replication(self, settings: dict[str, Any]) -> None:
        """Apply the ``long_transactions`` and ``replicateable`` knobs of :meth:`configure`."""
        flags = settings.get("replicateable") or {}
        if not isinstance(flags, dict):
            raise ValueError('replicateable: expected {"Object": true|false}')
        objs = {name: self._control_object(name) for name in flags}
        if "long_transactions" in settings:
            starts = settings["long_transactions"] or []
            if not isinstance(starts, list):
                raise ValueError("long_transactions: expected a list of ISO 8601 dateTimes")
            try:
                self.long_transactions = sorted(parse_datetime(str(t)) for t in starts)
            except ValueError:
                raise ValueError("long_transactions: expected ISO 8601 dateTimes") from None
        for name, flag in flags.items():
            objs[name].replicateable = bool(flag)

    def covered_until(self, horizon: datetime) -> datetime:
        """Get Updated's ``latestDateCovered`` for a window ending at ``horizon``: no later than
        the start of a long-running transaction still open (GetUpdatedResult)."""
        return min([horizon, *self.long_transactions])

    def _drift(self, settings: dict[str, Any]) -> None:
        """Apply the schema-drift knobs of :meth:`configure` (names checked before any change)."""
        lists = {k: settings.get(k) or [] for k in
                 ("delete_fields", "undelete_fields", "revoke_fls", "grant_fls")}  # fmt: skip
        targets: dict[str, tuple[ObjectDef, str]] = {}
        for key, names in lists.items():
            if not isinstance(names, list):
                raise ValueError(f"{key}: expected a list of 'Object.Field'")
            for full in names:
                obj_name, _, field = str(full).partition(".")
                obj = self._control_object(obj_name)
                known = obj.field(field) is not None or f"{obj.name}.{field}" in (
                    self._deleted_fields)  # fmt: skip
                if not field or not known:
                    raise KeyError(full)
                if key == "delete_fields" and not (obj.field(field) or _NO_FIELD).custom:
                    raise ValueError(f"{full}: only custom fields can be deleted")
                targets[full] = (obj, field)
        with self.org.lock:
            for full in lists["delete_fields"]:
                obj, field = targets[full]
                f = obj.field(field)
                if f is not None:
                    self._deleted_fields[f"{obj.name}.{f.name}"] = (f, list(obj.fields))
                    obj.remove_field(f.name)
            for full in lists["undelete_fields"]:
                obj, field = targets[full]
                deleted = self._deleted_fields.pop(f"{obj.name}.{field}", None)
                if deleted is not None:
                    f, order = deleted
                    obj.add_field(f)
                    # Back in its place: the table's columns follow the field order.
                    rank = {name: i for i, name in enumerate(order)}
                    place = sorted(obj.fields, key=lambda name: rank.get(name, len(rank)))
                    obj.fields = {name: obj.fields[name] for name in place}
            for full in lists["revoke_fls"]:
                obj, field = targets[full]
                self.org.revoked_fls.add(f"{obj.name}.{field}")
            for full in lists["grant_fls"]:
                obj, field = targets[full]
                self.org.revoked_fls.discard(f"{obj.name}.{field}")

    def connection_info(self) -> dict[str, Any]:
        return {
            "instance_url": self.base_url,
            "token_url": f"{self.base_url}/services/oauth2/token",
            "client_id": self.auth.client_id,
            "client_secret": self.auth.client_secret,
            "username": self.auth.username,
            "password": self.auth.password,
            "refresh_token": self.auth.refresh_token,
            "api_version": "59.0",
        }

    # -- request handling ------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        path = _normalise(request.path)
        if path == "/services/oauth2/token":
            request.route = "/services/oauth2/token"
            return self.auth.token(request)
        if path == "/services/oauth2/userinfo" or path.startswith("/id/"):
            request.route = "/id/{org}/{user}" if path.startswith("/id/") else path
            return self.auth.userinfo(request)
        if path == "/services/oauth2/revoke" and request.method in ("POST", "GET"):
            request.route = path
            return self.auth.revoke_token(request)
        m = re.match(r"^/services/Soap/u/([\d.]+)$", path)
        if m and request.method == "POST":
            request.route = "/services/Soap/u/{version}"
            return self.auth.soap_login(request, m.group(1))
        if path == "/services/data":
            request.route = "/services/data/"
            return json_response(200, [
                {"label": f"v{v}.0", "url": f"/services/data/v{v}.0", "version": f"{v}.0"}
                for v in range(MIN_VERSION, MAX_VERSION + 1)
            ])  # fmt: skip
        if not self.requires_auth(request):
            return not_found().response()
        return self._with_limit_header(self._api_call(request, path))

    def _api_call(self, request: Request, path: str) -> Response:
        if self.auth.session_for(request) is None:
            return invalid_session().response()
        if not self.charge():
            return SalesforceError(403, "REQUEST_LIMIT_EXCEEDED",
                                   "TotalRequests Limit exceeded.").response()  # fmt: skip
        return self.dispatch(request, path)

    def charge(self) -> bool:
        """Spend one unit of the daily API allowance; ``False`` (nothing spent) once spent."""
        with self._usage_lock:
            if self.api_usage >= self.daily_max:
                return False
            self.api_usage += 1
            return True

    def dispatch(self, request: Request, path: str) -> Response:
        request.path = path
        m = re.match(r"^/services/data/v([^/]+)", path)
        if m and not self._version_ok(m.group(1)):
            return not_found().response()
        try:
            response = self.router.dispatch(request)
        except MethodNotAllowed as exc:
            return SalesforceError(
                405, "METHOD_NOT_ALLOWED",
                f"HTTP Method '{request.method}' not allowed. Allowed are "
                f"{','.join(exc.allowed)}",
            ).response()  # fmt: skip
        except SalesforceError as exc:
            return exc.response()
        return response if response is not None else not_found().response()

    @staticmethod
    def _version_ok(version: str) -> bool:
        m = _VERSION.match(version)
        return bool(m) and MIN_VERSION <= int(m.group(1)) <= MAX_VERSION  # type: ignore[union-attr]

    def _with_limit_header(self, response: Response) -> Response:
        response.headers["Sforce-Limit-Info"] = f"api-usage={self.api_usage}/{self.daily_max}"
        return response

    def subrequest(
        self, parent: Request, method: str, url: str, body: Any,
        headers: dict[str, str] | None = None,
    ) -> Response:  # fmt: skip
        """A ``composite/batch`` or ``composite`` subrequest: same session; what it costs is
        the caller's to charge."""
        path, _, qs = url.partition("?")
        if not path.startswith("/"):
            path = "/services/data/" + path
        sub_headers = Headers(parent.headers.items())
        for name, value in (headers or {}).items():
            sub_headers[str(name)] = str(value)
        sub = Request(
            method=method.upper(), path=path, query=parse_qs(qs, keep_blank_values=True),
            headers=sub_headers,
            body=json.dumps(body).encode() if body is not None else b"",
            base_url=parent.base_url, faults=parent.faults,
        )  # fmt: skip
        return self.dispatch(sub, _normalise(path))

    def after_write(self, obj: ObjectDef) -> None:
        """Hook after any committed write (nothing cached outside the tables today)."""

    def limits_json(self) -> dict[str, Any]:
        def lim(mx: int, remaining: int) -> dict[str, int]:
            return {"Max": mx, "Remaining": max(0, remaining)}

        return {
            "DailyApiRequests": lim(self.daily_max, self.daily_max - self.api_usage),
            "DailyBulkApiBatches": lim(15000, 15000),
            "DailyBulkV2QueryJobs": lim(10000, 10000 - self.bulk.jobs_created),
            "DailyBulkV2QueryFileStorageMB": lim(1048576, 1048576),
            "DailyAsyncApexExecutions": lim(250000, 250000),
            "DailyStreamingApiEvents": lim(1000000, 1000000),
            "DataStorageMB": lim(1024, 1024),
            "FileStorageMB": lim(1024, 1024),
            "HourlyODataCallout": lim(10000, 10000),
            "SingleEmail": lim(5000, 5000),
        }


def _raw_value(f: FieldDef, value: Any) -> Any:
    """A JSON value as the column stores it, with only the checks the column type itself makes."""
    if value is None:
        return None
    refused = ValueError(f"{f.name} is a {f.type} field; it cannot hold {str(value)[:40]!r}")
    if f.type in STRING_TYPES or f.type not in NUMBER_TYPES | {"boolean", "date", "datetime"}:
        if not isinstance(value, str):
            raise refused
        return value
    if f.type == "boolean":
        if not isinstance(value, bool):
            raise refused
        return value
    if f.type in NUMBER_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise refused
        return int(value) if f.type == "int" else float(value)
    if not isinstance(value, str):
        raise refused
    try:
        return date.fromisoformat(value[:10]) if f.type == "date" else parse_datetime(value)
    except ValueError:
        raise refused from None


class _DecodingRouter(Router):
    """Path parameters arrive percent-decoded, as the real API decodes them.

    ``get_by_custom_id`` sends the external id through ``quote_plus`` (simple-salesforce 1.12
    ``api.py``), so a GET's ``value`` is decoded with ``+`` as a space; elsewhere ``+`` stays a
    plus.
    """

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        def decoded(request: Request, **params: str) -> Response:
            out = {}
            for k, v in params.items():
                plus = k == "value" and request.method == "GET"
                out[k] = unquote_plus(v) if plus else unquote(v)
            return handler(request, **out)

        super().add(method, pattern, decoded)


def _normalise(path: str) -> str:
    m = _DOMAIN_HACK.match(path)
    if m:
        path = m.group(1)
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    return path
