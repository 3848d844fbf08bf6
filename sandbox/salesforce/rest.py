"""REST data API handlers: query/queryAll paging, sObject CRUD/describe, getUpdated/getDeleted,
sObject Collections and ``composite/batch``.

References: resources_query.htm and headers_queryoptions.htm (2,000-row pages,
``Sforce-Query-Options: batchSize`` between 200 and 2,000, path-only ``nextRecordsUrl``);
dome_upsert.htm (201 + ``created: true`` / 200 + ``created: false`` from API 46, 300 on several
matches); resources_composite_sobjects_collections_*.htm (≤200 records, HTTP 200 with per-record
``statusCode`` errors, ``ALL_OR_NONE_OPERATION_ROLLED_BACK``); resources_composite_batch.htm
(≤25 subrequests, ``hasErrors``, ``BATCH_PROCESSING_HALTED``); resources_getupdated.htm and
resources_getdeleted.htm (30-day / 15-day windows, seconds truncated).
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import polars as pl

from sandbox.http import Request, Response, empty, json_response
from sandbox.salesforce.errors import RecordError, SalesforceError, not_found
from sandbox.salesforce.org import Prepared, format_sf_datetime, now_utc, parse_datetime
from sandbox.salesforce.query import QueryResult, execute, render_page_json
from sandbox.salesforce.schema import ObjectDef
from sandbox.salesforce.soql import parse

if TYPE_CHECKING:
    from sandbox.salesforce.app import SalesforceApp

DEFAULT_BATCH = 2000
MIN_BATCH = 200
MAX_COLLECTION = 200
MAX_BATCH_SUBREQUESTS = 25
#: Get Updated: "There is a limit of 600,000 IDs returned from this resource".
MAX_UPDATED_IDS = 600_000
#: Get Deleted reaches back as far as the recycle bin keeps records: 15 days.
RECYCLE_BIN_DAYS = 15
#: "Each user can have up to 10 query cursors open at a time"; opening another releases the
#: oldest (SOAP API guide, queryMore()).  Its nextRecordsUrl then gives INVALID_QUERY_LOCATOR.
MAX_CURSORS = 10


@dataclass
class Cursor:
    result: QueryResult
    batch: int
    endpoint: str  # "query" or "queryAll"


class Cursors:
    """Open query locators, the oldest released beyond ``MAX_CURSORS``."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, Cursor] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, locator: str, cursor: Cursor) -> None:
        with self._lock:
            self._items[locator] = cursor
            while len(self._items) > MAX_CURSORS:
                self._items.popitem(last=False)

    def get(self, locator: str) -> Cursor | None:
        with self._lock:
            return self._items.get(locator)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def batch_size(request: Request) -> int:
    opts = request.headers.get("Sforce-Query-Options") or ""
    m = re.search(r"batchSize\s*=\s*(\d+)", opts, re.I)
    if not m:
        return DEFAULT_BATCH
    return max(MIN_BATCH, min(DEFAULT_BATCH, int(m.group(1))))


class RestHandlers:
    def __init__(self, app: SalesforceApp) -> None:
        self.app = app
        self.org = app.org
        self.cursors = Cursors()

    # -- resources -------------------------------------------------------------------------------

    def resources(self, request: Request, version: str) -> Response:
        base = f"/services/data/v{version}"
        names = ["sobjects", "query", "queryAll", "limits", "tooling", "composite", "jobs",
                 "analytics", "search"]  # fmt: skip
        return json_response(200, {n: f"{base}/{n}" for n in names})

    def limits(self, request: Request, version: str) -> Response:
        return json_response(200, self.app.limits_json())

    # -- query -----------------------------------------------------------------------------------

    def query(self, request: Request, version: str) -> Response:
        return self._query(request, version, include_deleted=False)

    def query_all(self, request: Request, version: str) -> Response:
        return self._query(request, version, include_deleted=True)

    def _query(self, request: Request, version: str, *, include_deleted: bool) -> Response:
        q = request.arg("q")
        if q is None:
            raise SalesforceError(400, "MALFORMED_QUERY", "A query string must be provided.")
        parsed = parse(q)
        with self.org.lock:
            result = execute(parsed, self.org.catalog(), include_deleted=include_deleted)
        endpoint = "queryAll" if include_deleted else "query"
        if result.count_only:
            return json_response(200, {"totalSize": result.total_size, "done": True,
                                       "records": []})  # fmt: skip
        if result.group_rows is not None:
            return json_response(200, {"totalSize": len(result.group_rows), "done": True,
                                       "records": result.group_rows})  # fmt: skip
        size = batch_size(request)
        cursor = Cursor(result, size, endpoint)
        locator = self.org.ids.new("01g")
        if result.total_size > size:
            self.cursors.add(locator, cursor)
        return self._page(locator, cursor, 0, version)

    def _page(self, locator: str, c: Cursor, start: int, version: str) -> Response:
        total = c.result.total_size
        stop = min(total, start + c.batch)
        head: dict[str, Any] = {"totalSize": total, "done": stop >= total}
        if stop < total:
            head["nextRecordsUrl"] = f"/services/data/v{version}/{c.endpoint}/{locator}-{stop}"
        # The records array is serialised by polars and spliced into the envelope.
        envelope = json.dumps(head, separators=(",", ":"))[:-1].encode()
        records = render_page_json(c.result, start, stop, version)
        response = json_response(200, None)
        response.body = envelope + b',"records":' + records + b"}"
        return response

    def query_more(self, request: Request, version: str, locator: str) -> Response:
        loc, _, offset = locator.rpartition("-")
        cursor = self.cursors.get(loc) if loc else None
        if cursor is None or not offset.isdigit() or int(offset) > cursor.result.total_size:
            raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(loc, cursor, int(offset), version)

    # -- describe --------------------------------------------------------------------------------

    def describe_global(self, request: Request, version: str) -> Response:
        return json_response(
            200,
            {
                "encoding": "UTF-8",
                "maxBatchSize": 200,
                "sobjects": [o.summary(version) for o in self.org.objects.values()],
            },
        )

    def sobject_info(self, request: Request, version: str, sobject: str) -> Response:
        obj = self.org.rest_object(sobject)
        return json_response(200, {"objectDescribe": obj.summary(version), "recentItems": []})

    def describe(self, request: Request, version: str, sobject: str) -> Response:
        obj = self.org.rest_object(sobject)
        return json_response(200, self.describe_json(obj, version))

    def describe_json(self, obj: ObjectDef, version: str) -> dict[str, Any]:
        d = obj.summary(version)
        d["fields"] = []
        for f in self.org.visible_fields(obj):
            fd = f.describe()
            if not self.org.editable(obj, f):
                # Read-only field-level security: described, but not createable/updateable.
                fd["createable"] = fd["updateable"] = False
            d["fields"].append(fd)
        d["childRelationships"] = self._children(obj)
        d["recordTypeInfos"] = []
        d["supportedScopes"] = [{"label": "All records", "name": "everything"}]
        return d

    def _children(self, obj: ObjectDef) -> list[dict[str, Any]]:
        out = []
        for child in self.org.objects.values():
            for f in child.fields.values():
                if obj.name in f.reference_to and f.relationship_name:
                    out.append({
                        "cascadeDelete": False, "childSObject": child.name, "field": f.name,
                        "relationshipName": None, "restrictedDelete": False,
                    })  # fmt: skip
        return out

    # -- CRUD ------------------------------------------------------------------------------------

    def _lock_faults(self, request: Request) -> None:
        if request.record_fault("lock_error"):
            raise RecordError(
                "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record"
            )
        if request.record_fault("partial_batch_failure"):
            raise RecordError(
                "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                "Sandbox validation rule rejected this record (injected failure)",
            )

    def create(self, request: Request, version: str, sobject: str) -> Response:
        obj = self.org.rest_object(sobject)
        values = self.org.coerce(obj, _json_object(request))
        try:
            self._lock_faults(request)
            with self.org.lock:
                p = self.org.prepare_create(obj, values)
                self.org.commit(p)
        except RecordError as exc:
            raise exc.as_rest_error() from None
        self.app.after_write(obj)
        return json_response(201, {"id": p.row["Id"], "success": True, "errors": []})

    def get_record(self, request: Request, version: str, sobject: str, record_id: str) -> Response:
        obj = self.org.rest_object(sobject)
        row = self.org.tables[obj.name].get(record_id)
        if row is None or row["IsDeleted"]:
            raise not_found()
        fields = request.arg("fields")
        names = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
        return json_response(200, self.org.record_json(obj, row, version, names))

    def update(self, request: Request, version: str, sobject: str, record_id: str) -> Response:
        obj = self.org.rest_object(sobject)
        values = self.org.coerce(obj, _json_object(request))
        try:
            self._lock_faults(request)
            with self.org.lock:
                p = self.org.prepare_update(obj, record_id, values)
                self.org.commit(p)
        except RecordError as exc:
            status = 404 if exc.status_code in ("NOT_FOUND", "ENTITY_IS_DELETED") else 400
            raise exc.as_rest_error(status) from None
        self.app.after_write(obj)
        return empty(204)

    def delete(self, request: Request, version: str, sobject: str, record_id: str) -> Response:
        obj = self.org.rest_object(sobject)
        try:
            self._lock_faults(request)
            with self.org.lock:
                self.org.commit(self.org.prepare_delete(obj, record_id))
        except RecordError as exc:
            status = 404 if exc.status_code in ("NOT_FOUND", "ENTITY_IS_DELETED") else 400
            raise exc.as_rest_error(status) from None
        self.app.after_write(obj)
        return empty(204)

    def _external_field(self, obj: ObjectDef, field: str) -> Any:
        f = obj.field(field)
        if f is None or not self.org.visible(obj, f):
            raise not_found(f"Provided external ID field does not exist or is not accessible: "
                            f"{field}")  # fmt: skip
        if not (f.external_id or f.name == "Id"):
            raise SalesforceError(
                400, "INVALID_FIELD",
                f"Field {f.name} is not an External ID or indexed field for {obj.name}",
            )  # fmt: skip
        return f

    def get_by_external_id(
        self, request: Request, version: str, sobject: str, field: str, value: str
    ) -> Response:
        obj = self.org.rest_object(sobject)
        f = self._external_field(obj, field)
        ids = self.org.find_by_external_id(obj, f, value)
        if not ids:
            raise not_found()
        if len(ids) > 1:
            return json_response(300, [f"/services/data/v{version}/sobjects/{obj.name}/{i}"
                                       for i in ids])  # fmt: skip
        row = self.org.tables[obj.name].get(ids[0])
        assert row is not None
        return json_response(200, self.org.record_json(obj, row, version))

    def upsert(
        self, request: Request, version: str, sobject: str, field: str, value: str
    ) -> Response:
        obj = self.org.rest_object(sobject)
        f = self._external_field(obj, field)
        body = _json_object(request)
        values = self.org.coerce(obj, body)
        try:
            self._lock_faults(request)
            with self.org.lock:
                created, p_id = self._upsert_one(obj, f, value, values, request)
        except _MultipleMatches as exc:
            return json_response(300, [f"/services/data/v{version}/sobjects/{obj.name}/{i}"
                                       for i in exc.ids])  # fmt: skip
        except RecordError as exc:
            raise exc.as_rest_error() from None
        self.app.after_write(obj)
        # API 46+: 201/200 with a body, both carrying "created" (dome_upsert.htm).
        return json_response(
            201 if created else 200, {"id": p_id, "success": True, "errors": [], "created": created}
        )

    def _upsert_one(
        self, obj: ObjectDef, f: Any, value: Any, values: dict[str, Any], request: Request,
        *, commit: bool = True,
    ) -> tuple[bool, str]:  # fmt: skip
        p = self._prepare_upsert(obj, f, value, values, request)
        if commit:
            self.org.commit(p)
        return p.created, str(p.row["Id"])

    def _prepare_upsert(
        self, obj: ObjectDef, f: Any, value: Any, values: dict[str, Any], request: Request
    ) -> Prepared:
        if value in (None, ""):
            if f.name == "Id":
                return self.org.prepare_create(obj, values)
            raise RecordError("MISSING_ARGUMENT", f"{f.name} not specified", [f.name])
        ids = self.org.find_by_external_id(obj, f, str(value))
        if len(ids) > 1:
            raise _MultipleMatches(ids)
        if ids:
            values = {k: v for k, v in values.items() if k != f.name}
            return self.org.prepare_update(obj, ids[0], values)
        if f.name == "Id":
            raise RecordError("NOT_FOUND", "Provided external ID field does not exist or is "
                              "not accessible: Id")  # fmt: skip
        values = {**values, f.name: self.org.coerce(obj, {f.name: value})[f.name]}
        return self.org.prepare_create(obj, values)

    # -- updated / deleted -----------------------------------------------------------------------
    # sObject Get Updated / Get Deleted (resources_getupdated.htm, resources_getdeleted.htm) and
    # the SOAP API's data-replication rules they follow (sforce_api_calls_getupdated.htm,
    # polling_for_changes.htm):
    # * the seconds of start and end are ignored ("a timespan between 12:30:15 and 12:35:15 ...
    #   between 12:30:00 and 12:35:00"), and start must precede end, else
    #   INVALID_REPLICATION_DATE;
    # * Get Updated answers for no more than 30 days back, Get Deleted no further back than
    #   ``earliestDateAvailable`` (the recycle bin: 15 days);
    # * only replicateable objects are served (object-specific_requirements_for_data_replication);
    # * ``latestDateCovered`` is never later than the end, and while a long-running transaction
    #   is open it is that transaction's start ("the value in this field is the start time of
    #   that long-running transaction until it completes", GetUpdatedResult): the next window
    #   starts there, so what the transaction commits later is not missed.

    def _window(self, request: Request, max_days: int) -> tuple[datetime, datetime, datetime]:
        """(start, end, latestDateCovered) of a Get Updated / Get Deleted request."""
        try:
            start = parse_datetime(request.arg("start") or "")
            end = parse_datetime(request.arg("end") or "")
        except ValueError:
            raise SalesforceError(400, "INVALID_REPLICATION_DATE",
                                  "start and end must be ISO 8601 dateTimes") from None  # fmt: skip
        start = start.replace(second=0, microsecond=0)
        end = end.replace(second=0, microsecond=0)
        if start >= end:
            raise SalesforceError(400, "INVALID_REPLICATION_DATE",
                                  "startDate must chronologically precede endDate")  # fmt: skip
        now = now_utc()
        if start < now - timedelta(days=max_days):
            raise SalesforceError(400, "INVALID_REPLICATION_DATE",
                                  f"startDate cannot be more than {max_days} days ago")  # fmt: skip
        horizon = min(end, now)
        return start, horizon, self.app.covered_until(horizon)

    def _replicated(self, sobject: str) -> ObjectDef:
        obj = self.org.rest_object(sobject)
        if not obj.replicateable:
            # The org's wording is not documented; the rule is (replicateable must be true).
            raise SalesforceError(400, "INVALID_TYPE",
                                  f"sObject type '{obj.name}' is not replicateable")  # fmt: skip
        return obj

    def updated(self, request: Request, version: str, sobject: str) -> Response:
        obj = self._replicated(sobject)
        start, horizon, covered = self._window(request, 30)
        with self.org.lock:
            frame = self.org.tables[obj.name].frame()
        # "inclusive" (polling_for_changes.htm): the end minute itself is covered.
        frame = frame.filter(
            (pl.col("SystemModstamp") >= start) & (pl.col("SystemModstamp") <= horizon)
            & ~pl.col("IsDeleted")
        )  # fmt: skip
        if frame.height > MAX_UPDATED_IDS:
            raise SalesforceError(400, "EXCEEDED_ID_LIMIT", "too many ids (> 600,000)")
        return json_response(200, {"ids": frame.get_column("Id").to_list(),
                                   "latestDateCovered": format_sf_datetime(covered)})  # fmt: skip

    def deleted(self, request: Request, version: str, sobject: str) -> Response:
        obj = self._replicated(sobject)
        if not obj.deletable:
            raise SalesforceError(400, "INVALID_TYPE",
                                  f"sObject type '{obj.name}' cannot be deleted")  # fmt: skip
        start, horizon, covered = self._window(request, RECYCLE_BIN_DAYS)
        earliest = (now_utc() - timedelta(days=RECYCLE_BIN_DAYS)).replace(second=0)
        if start < earliest:
            raise SalesforceError(400, "INVALID_REPLICATION_DATE",
                                  "startDate is before earliestDateAvailable")  # fmt: skip
        table = self.org.tables[obj.name]
        with table.lock:
            items = [(i, d) for i, d in table.deleted.items() if start <= d <= horizon]
        return json_response(200, {
            "deletedRecords": [{"id": i, "deletedDate": format_sf_datetime(d)} for i, d in items],
            "earliestDateAvailable": format_sf_datetime(earliest),
            "latestDateCovered": format_sf_datetime(covered),
        })  # fmt: skip

    # -- sObject Collections ---------------------------------------------------------------------

    def _records(self, request: Request) -> tuple[list[dict[str, Any]], bool]:
        body = _json_object(request)
        records = body.get("records")
        if not isinstance(records, list):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "records is required")
        if len(records) > MAX_COLLECTION:
            # Wording as the API returns it (e.g. sorenkrabbe/Chrome-Salesforce-inspector#134).
            raise SalesforceError(
                400, "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
            )  # fmt: skip
        return records, bool(body.get("allOrNone", False))

    def _run_collection(
        self, request: Request, items: list[tuple[str | None, Any]], all_or_none: bool,
        upsert: bool = False,
    ) -> Response:  # fmt: skip
        """``items`` are (id, prepare-callable); results keep the input order."""
        results: list[dict[str, Any]] = []
        prepared: list[Prepared | None] = []
        failed = False
        with self.org.lock:
            batch_keys: dict[tuple[str, str, Any], str] = {}
            for rid, prep in items:
                try:
                    self._lock_faults(request)
                    p = prep()
                    _check_batch_unique(p, batch_keys)
                    prepared.append(p)
                    res = {"id": p.row["Id"], "success": True, "errors": []}
                    if upsert:
                        res["created"] = p.created
                    results.append(res)
                except (RecordError, _MultipleMatches) as exc:
                    err = (exc.as_collection_error() if isinstance(exc, RecordError) else
                           {"statusCode": "DUPLICATE_EXTERNAL_ID", "message":
                            f"more than one record found for external id: {exc.ids}",
                            "fields": []})  # fmt: skip
                    failed = True
                    prepared.append(None)
                    res = {"success": False, "errors": [err]}
                    if rid:
                        res["id"] = rid
                    results.append(res)
            if all_or_none and failed:
                rolled = {
                    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "message": "Record rolled back because not all records were valid and the "
                    "request was using AllOrNone header",
                    "fields": [],
                }
                for i, p in enumerate(prepared):
                    if p is not None:
                        results[i] = {"success": False, "errors": [rolled]}
                        if not p.created:
                            results[i]["id"] = p.row["Id"]
            else:
                touched: set[str] = set()
                for p in prepared:
                    if p is not None:
                        self.org.commit(p)
                        touched.add(p.obj.name)
                for name in touched:
                    self.app.after_write(self.org.objects[name])
        return json_response(200, results)

    def collection_create(self, request: Request, version: str) -> Response:
        records, aon = self._records(request)
        items: list[tuple[str | None, Any]] = []
        for rec in records:
            obj = self._record_type(rec)
            values = self.org.coerce(obj, rec)
            items.append((None, lambda o=obj, v=values: self.org.prepare_create(o, v)))
        return self._run_collection(request, items, aon)

    def collection_update(self, request: Request, version: str) -> Response:
        records, aon = self._records(request)
        items: list[tuple[str | None, Any]] = []
        for rec in records:
            obj = self._record_type(rec)
            rid = rec.get("id") or rec.get("Id")
            values = self.org.coerce(obj, {k: v for k, v in rec.items() if k not in ("id", "Id")})

            def prep(o: ObjectDef = obj, r: Any = rid, v: dict[str, Any] = values) -> Prepared:
                if not r:
                    raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call")
                return self.org.prepare_update(o, str(r), v)

            items.append((rid, prep))
        return self._run_collection(request, items, aon)

    def collection_upsert(
        self, request: Request, version: str, sobject: str, field: str
    ) -> Response:
        obj = self.org.rest_object(sobject)
        f = self._external_field(obj, field)
        records, aon = self._records(request)
        items: list[tuple[str | None, Any]] = []
        for rec in records:
            if self._record_type(rec).name != obj.name:
                raise SalesforceError(400, "INVALID_TYPE", "all records must be of type "
                                      f"{obj.name}")  # fmt: skip
            values = self.org.coerce(obj, rec)
            ext = rec.get(f.name) if f.name != "Id" else (rec.get("Id") or rec.get("id"))
            items.append(
                (None, lambda v=values, x=ext: self._prepare_upsert(obj, f, x, v, request))
            )
        return self._run_collection(request, items, aon, upsert=True)

    def collection_delete(self, request: Request, version: str) -> Response:
        ids = [i for i in (request.arg("ids") or "").split(",") if i]
        if len(ids) > MAX_COLLECTION:
            raise SalesforceError(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot "
                                  "submit more than 200 records into this call")  # fmt: skip
        aon = (request.arg("allOrNone") or "false").lower() == "true"
        items: list[tuple[str | None, Any]] = []
        for rid in ids:
            obj = self._object_for_id(rid)

            def prep(o: ObjectDef | None = obj, r: str = rid) -> Prepared:
                if o is None:
                    raise RecordError("MALFORMED_ID", f"malformed id {r}")
                return self.org.prepare_delete(o, r)

            items.append((rid, prep))
        return self._run_collection(request, items, aon)

    def collection_get(self, request: Request, version: str, sobject: str) -> Response:
        obj = self.org.rest_object(sobject)
        if request.method == "POST":
            body = _json_object(request)
            ids, fields = body.get("ids") or [], body.get("fields") or []
        else:
            ids = [i for i in (request.arg("ids") or "").split(",") if i]
            fields = [f for f in (request.arg("fields") or "").split(",") if f]
        if not fields:
            raise SalesforceError(400, "MISSING_ARGUMENT", "fields is required")
        rows = self.org.tables[obj.name].get_many(ids)
        out = []
        for i in ids:
            row = rows.get(i)
            out.append(None if row is None or row["IsDeleted"]
                       else self.org.record_json(obj, row, version, fields))  # fmt: skip
        return json_response(200, out)

    def _record_type(self, rec: Any) -> ObjectDef:
        if not isinstance(rec, dict):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "each record must be an object")
        t = (rec.get("attributes") or {}).get("type")
        if not t:
            raise SalesforceError(400, "INVALID_TYPE", "Must send a concrete entity type.")
        return self.org.object(str(t))

    def _object_for_id(self, rid: str) -> ObjectDef | None:
        for obj in self.org.objects.values():
            if rid.startswith(obj.key_prefix):
                return obj
        return None

    # -- composite/batch -------------------------------------------------------------------------

    def composite_batch(self, request: Request, version: str) -> Response:
        body = _json_object(request)
        subs = body.get("batchRequests")
        if not isinstance(subs, list) or not subs:
            raise SalesforceError(400, "JSON_PARSER_ERROR", "batchRequests is required")
        if len(subs) > MAX_BATCH_SUBREQUESTS:
            raise SalesforceError(400, "INVALID_BATCH_REQUEST",
                                  "A batch can contain up to 25 subrequests")  # fmt: skip
        halt = bool(body.get("haltOnError", False))
        results: list[dict[str, Any]] = []
        has_errors = False
        halted = False
        for i, sub in enumerate(subs):
            if halted:
                results.append({"statusCode": 412, "result": [{
                    "errorCode": "BATCH_PROCESSING_HALTED",
                    "message": "Batch processing halted per request"}]})  # fmt: skip
                continue
            # "Each subrequest counts against rate limits" (resources_composite_batch.htm): the
            # batch request itself paid for the first; every further one pays its own.
            if i and not self.app.charge():
                results.append({"statusCode": 403, "result": [{
                    "errorCode": "REQUEST_LIMIT_EXCEEDED",
                    "message": "TotalRequests Limit exceeded."}]})  # fmt: skip
                has_errors = True
                halted = halt
                continue
            resp = self.app.subrequest(request, str(sub.get("method", "GET")),
                                       str(sub.get("url", "")), sub.get("richInput"))  # fmt: skip
            result = resp.json() if resp.body else None
            results.append({"statusCode": resp.status, "result": result})
            if resp.status >= 400:
                has_errors = True
                halted = halt
        return json_response(200, {"hasErrors": has_errors, "results": results})


def _check_batch_unique(p: Prepared, seen: dict[tuple[str, str, Any], str]) -> None:
    """Unique fields also hold *within* one request: the table does not see rows of the same
    batch until commit, so compare them here (DUPLICATE_VALUE, as the unique index would)."""
    for f in p.obj.fields.values():
        value = p.row.get(f.name)
        if not f.unique or value is None:
            continue
        key = (p.obj.name, f.name, value.lower() if isinstance(value, str) else value)
        other = seen.get(key)
        if other is not None and other != p.row["Id"]:
            raise RecordError(
                "DUPLICATE_VALUE",
                f"duplicate value found: {f.name} duplicates value on record with id: {other}",
                [f.name],
            )
        seen[key] = str(p.row["Id"])


class _MultipleMatches(Exception):
    def __init__(self, ids: list[str]) -> None:
        super().__init__(ids)
        self.ids = ids


def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = request.json()
    except ValueError:
        raise SalesforceError(400, "JSON_PARSER_ERROR", "Unexpected character: the request "
                              "body is not valid JSON") from None  # fmt: skip
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise SalesforceError(
            400, "JSON_PARSER_ERROR", "Cannot deserialize instance of object from START_ARRAY"
        )
    return body
