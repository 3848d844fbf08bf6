"""Bulk API 2.0 query jobs (``/services/data/vXX.X/jobs/query``) and ingest jobs (``jobs/ingest``).

Follows api_asynch query_create_job.htm, query_get_job_results.htm and bulk_api_2_job_states.htm:
a job is created ``UploadComplete``, runs ``InProgress``, ends ``JobComplete``
(or ``Failed``/``Aborted``).  Results before completion are 412.  Results are CSV pages of at most
``maxRecords`` rows with ``Sforce-NumberOfRecords`` and ``Sforce-Locator`` (an opaque cursor,
here base64 of the next row offset, and the string ``"null"`` on the last page) — simple-salesforce
``bulk2`` requires the first header and stops on the second being ``"null"``.

A job's query runs once, in a background thread, into the columnar result; pages are sliced from
it and streamed out in 10,000-row CSV chunks, so a million-row job never exists as one string.

Ingest jobs (insert/update/upsert/delete) follow create ``Open`` → ``PUT batches`` (201) →
``PATCH state=UploadComplete`` (answered at once: the job is queued) → ``InProgress`` →
``JobComplete``; a background thread applies the records one by one (per-record lock/validation
faults apply), as Salesforce processes a closed job asynchronously (bulk_api_2_job_states.htm),
so a client can upload its next job while one runs. Results are reported through
``successfulResults`` (``sf__Id``, ``sf__Created``), ``failedResults`` (``sf__Id``,
``sf__Error``) and ``unprocessedrecords``.
"""

from __future__ import annotations

import base64
import csv
import io
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from sandbox.http import Headers, Request, Response, Router, empty, json_response
from sandbox.salesforce.errors import RecordError, SalesforceError, not_found
from sandbox.salesforce.org import Prepared, format_sf_datetime
from sandbox.salesforce.query import QueryResult, csv_frame, execute, validate
from sandbox.salesforce.soql import parse

if TYPE_CHECKING:
    from sandbox.salesforce.app import SalesforceApp

DEFAULT_MAX_RECORDS = 50_000
#: Results of this many finished query jobs are kept in memory; older ones are released (the
#: real API keeps them 7 days; a million-row result costs real memory here).
MAX_RETAINED_RESULTS = 20
CSV_CHUNK_ROWS = 10_000
DELIMITERS = {"COMMA": ",", "TAB": "\t", "SEMICOLON": ";", "PIPE": "|", "CARET": "^",
              "BACKQUOTE": "`"}  # fmt: skip
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}


@dataclass
class QueryJob:
    id: str
    operation: str
    query: str
    object: str
    version: str
    column_delimiter: str
    line_ending: str
    created: datetime
    created_by: str
    ready_at: float
    state: str = "UploadComplete"
    frame: pl.DataFrame | None = None
    error: str | None = None
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    def info(self, detail: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": self.created_by,
            "createdDate": format_sf_datetime(self.created),
            "systemModstamp": format_sf_datetime(self.created),
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.version),
            "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter,
        }
        if detail:
            d["jobType"] = "V2Query"
            d["numberRecordsProcessed"] = self.frame.height if self.frame is not None else 0
            d["retries"] = 0
            d["totalProcessingTime"] = int(((self.finished or time.monotonic()) - self.started)
                                           * 1000)  # fmt: skip
            if self.error:
                d["errorMessage"] = self.error
        return d


def encode_locator(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def decode_locator(locator: str) -> int:
    try:
        raw = base64.b64decode(locator + "=" * (-len(locator) % 4), validate=True)
        return int(raw.decode())
    except (ValueError, UnicodeDecodeError):
        raise SalesforceError(400, "INVALIDLOCATOR", f"Invalid locator: {locator}") from None


class BulkHandlers:
    def __init__(self, app: SalesforceApp) -> None:
        self.app = app
        self.jobs: dict[str, QueryJob] = {}
        self.jobs_created = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def register(self, r: Router, d: str) -> None:
        r.add("POST", f"{d}/jobs/query", self.create)
        r.add("GET", f"{d}/jobs/query", self.list_jobs)
        r.add("GET", f"{d}/jobs/query/{{job_id}}", self.get)
        r.add("PATCH", f"{d}/jobs/query/{{job_id}}", self.patch)
        r.add("DELETE", f"{d}/jobs/query/{{job_id}}", self.delete)
        r.add("GET", f"{d}/jobs/query/{{job_id}}/results", self.results)

    def shutdown(self) -> None:
        for t in self._threads:
            t.join(timeout=30)
        self._threads.clear()

    def _job(self, job_id: str) -> QueryJob:
        job = self.jobs.get(job_id)
        if job is None:
            raise not_found("The requested resource does not exist")
        self._advance(job)
        return job

    def _advance(self, job: QueryJob) -> None:
        # A finished query still reports InProgress until the minimum job time has passed, so
        # clients see the real state machine (and a 412 if they skip polling).
        with self._lock:
            if job.state in ("UploadComplete", "InProgress") and job.finished is not None:
                if job.error:
                    job.state = "Failed"
                elif time.monotonic() >= job.ready_at:
                    job.state = "JobComplete"
                else:
                    job.state = "InProgress"

    def create(self, request: Request, version: str) -> Response:
        body = request.json() or {}
        if not isinstance(body, dict):
            raise SalesforceError(400, "INVALIDJOB", "Invalid job request")
        op = body.get("operation")
        if op not in ("query", "queryAll"):
            raise SalesforceError(400, "INVALIDJOB", f"Invalid operation: {op}")
        delim = str(body.get("columnDelimiter") or "COMMA")
        ending = str(body.get("lineEnding") or "LF")
        if delim not in DELIMITERS or ending not in LINE_ENDINGS:
            raise SalesforceError(400, "INVALIDJOB", "Invalid columnDelimiter or lineEnding")
        soql = str(body.get("query") or "")
        try:
            parsed = parse(soql)
            # Bulk API 2.0 rejects GROUP BY, OFFSET and aggregate functions such as COUNT()
            # (api_asynch queries.htm, "SOQL Considerations").
            if parsed.count_only or parsed.is_aggregate or parsed.group_by:
                raise SalesforceError(
                    400, "INVALIDJOB", "Aggregate queries are not supported by Bulk API 2.0"
                )
            if parsed.offset is not None:
                raise SalesforceError(400, "INVALIDJOB", "OFFSET is not supported by Bulk API 2.0")
            obj = validate(parsed, self.app.org.catalog())
        except SalesforceError as exc:
            raise SalesforceError(400, "INVALIDJOB", exc.message) from None
        job = QueryJob(
            id=self.app.org.ids.new("750"), operation=str(op), query=soql, object=obj.name,
            version=version, column_delimiter=delim, line_ending=ending,
            created=datetime.now(UTC).replace(microsecond=0), created_by=self.app.auth.user_id,
            ready_at=time.monotonic() + self.app.bulk_min_job_seconds,
        )  # fmt: skip
        with self._lock:
            self.jobs[job.id] = job
            self.jobs_created += 1
            kept = [j for j in self.jobs.values() if j.frame is not None]
            for old in kept[: max(0, len(kept) - MAX_RETAINED_RESULTS)]:
                self.jobs.pop(old.id, None)
        t = threading.Thread(target=self._run, args=(job,), name=f"bulk2-{job.id}", daemon=True)
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()
        return json_response(200, job.info())

    def _run(self, job: QueryJob) -> None:
        try:
            org = self.app.org
            with org.lock:
                result: QueryResult = execute(
                    parse(job.query), org.catalog(), include_deleted=job.operation == "queryAll"
                )
            frame = csv_frame(result)
            with self._lock:
                job.frame = frame
        except SalesforceError as exc:
            job.error = exc.message
        except Exception as exc:  # a job failure, never a crashed server thread
            job.error = f"UNKNOWN_EXCEPTION: {exc}"
        finally:
            job.finished = time.monotonic()

    def list_jobs(self, request: Request, version: str) -> Response:
        for j in list(self.jobs.values()):
            self._advance(j)
        return json_response(200, {
            "done": True, "nextRecordsUrl": None,
            "records": [j.info() | {"jobType": "V2Query"} for j in self.jobs.values()],
        })  # fmt: skip

    def get(self, request: Request, version: str, job_id: str) -> Response:
        return json_response(200, self._job(job_id).info(detail=True))

    def patch(self, request: Request, version: str, job_id: str) -> Response:
        job = self._job(job_id)
        body = request.json() or {}
        if not isinstance(body, dict) or body.get("state") != "Aborted":
            raise SalesforceError(400, "INVALIDJOB", "Only state Aborted can be set on a query "
                                  "job")  # fmt: skip
        if job.state in ("JobComplete", "Failed", "Aborted"):
            raise SalesforceError(400, "INVALIDJOB", f"Job is already {job.state}")
        job.state = "Aborted"
        return json_response(200, job.info())

    def delete(self, request: Request, version: str, job_id: str) -> Response:
        job = self._job(job_id)
        if job.state in ("UploadComplete", "InProgress"):
            raise SalesforceError(400, "INVALIDJOB", "Job must be completed or aborted before "
                                  "it can be deleted")  # fmt: skip
        with self._lock:
            self.jobs.pop(job_id, None)
        return empty(204)

    def results(self, request: Request, version: str, job_id: str) -> Response:
        job = self._job(job_id)
        if job.state != "JobComplete" or job.frame is None:
            # 412 before JobComplete (query_get_job_results.htm).  The error code
            # text is not documented; JOB_NOT_COMPLETE names the condition.
            raise SalesforceError(412, "JOB_NOT_COMPLETE",
                                  f"Job {job_id} is not complete: {job.state}")  # fmt: skip
        if job.version != version:
            raise SalesforceError(409, "INVALIDJOBSTATE", "use the API version of the job's "
                                  "creation to get its results")  # fmt: skip
        max_records = request.arg("maxRecords")
        try:
            limit = int(max_records) if max_records else DEFAULT_MAX_RECORDS
        except ValueError:
            raise SalesforceError(400, "INVALIDPARAMETER", "maxRecords must be a number") from None
        if limit <= 0:
            raise SalesforceError(400, "INVALIDPARAMETER", "maxRecords must be positive")
        locator = request.arg("locator")
        start = decode_locator(locator) if locator else 0
        total = job.frame.height
        if start > total:
            raise SalesforceError(400, "INVALIDLOCATOR", f"Invalid locator: {locator}")
        stop = min(total, start + limit)
        headers = Headers({
            "Content-Type": "text/csv",
            "Sforce-NumberOfRecords": str(stop - start),
            "Sforce-Locator": encode_locator(stop) if stop < total else "null",
        })  # fmt: skip
        return Response(200, headers, _csv_stream(job, start, stop))


def _csv_stream(job: QueryJob, start: int, stop: int) -> Iterator[bytes]:
    assert job.frame is not None
    frame = job.frame
    sep = DELIMITERS[job.column_delimiter]
    eol = LINE_ENDINGS[job.line_ending]
    first = True
    pos = start
    while first or pos < stop:
        chunk = frame.slice(pos, max(0, min(CSV_CHUNK_ROWS, stop - pos)))
        text = chunk.write_csv(
            include_header=first, separator=sep, line_terminator=eol, quote_style="always",
            null_value="",
        )  # fmt: skip
        first = False
        pos += chunk.height
        yield text.encode("utf-8")
        if chunk.height == 0:
            break


# ---- Bulk API 2.0 ingest ----------------------------------------------------------------------

INGEST_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")


@dataclass
class IngestJob:
    """One ingest job (api_asynch create_job.htm / upload_job_data.htm / get_job_results.htm)."""

    id: str
    operation: str
    object: str
    external_id: str | None
    version: str
    column_delimiter: str
    line_ending: str
    created: datetime
    created_by: str
    state: str = "Open"
    data: list[bytes] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    #: (record id, created, the row's position in the upload): the row itself is read again
    #: from ``data`` for the results, rather than held twice (a 100,000-row job).
    successes: list[tuple[str, bool, int]] = field(default_factory=list)
    failures: list[tuple[str, str, list[str]]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)
    ready_at: float = 0.0
    processing_ms: int = 0
    processed: bool = False

    def info(self, detail: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id, "operation": self.operation, "object": self.object,
            "createdById": self.created_by, "createdDate": format_sf_datetime(self.created),
            "systemModstamp": format_sf_datetime(self.created), "state": self.state,
            "externalIdFieldName": self.external_id, "concurrencyMode": "Parallel",
            "contentType": "CSV", "apiVersion": float(self.version),
            "contentUrl": f"services/data/v{self.version}/jobs/ingest/{self.id}/batches",
            "lineEnding": self.line_ending, "columnDelimiter": self.column_delimiter,
        }  # fmt: skip
        if detail:
            d.update({
                "jobType": "V2Ingest", "numberRecordsProcessed": len(self.successes)
                + len(self.failures), "numberRecordsFailed": len(self.failures), "retries": 0,
                "totalProcessingTime": self.processing_ms, "apiActiveProcessingTime":
                self.processing_ms, "apexProcessingTime": 0,
            })  # fmt: skip
        return d


def _uploaded_rows(job: IngestJob) -> list[list[str]]:
    """The job's uploaded CSV as rows (header first)."""
    text = b"".join(job.data).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text, newline=""),
                           delimiter=DELIMITERS[job.column_delimiter]))  # fmt: skip


class IngestHandlers:
    def __init__(self, app: SalesforceApp) -> None:
        self.app = app
        self.jobs: dict[str, IngestJob] = {}
        self._lock = threading.Lock()

    def register(self, r: Router, d: str) -> None:
        r.add("POST", f"{d}/jobs/ingest", self.create)
        r.add("GET", f"{d}/jobs/ingest", self.list_jobs)
        r.add("GET", f"{d}/jobs/ingest/{{job_id}}", self.get)
        r.add("PATCH", f"{d}/jobs/ingest/{{job_id}}", self.patch)
        r.add("DELETE", f"{d}/jobs/ingest/{{job_id}}", self.delete)
        r.add("PUT", f"{d}/jobs/ingest/{{job_id}}/batches", self.upload)
        r.add("GET", f"{d}/jobs/ingest/{{job_id}}/{{kind}}", self.results)

    def _job(self, job_id: str) -> IngestJob:
        job = self.jobs.get(job_id)
        if job is None:
            raise not_found()
        with self._lock:
            if job.state in ("UploadComplete", "InProgress") and job.processed:
                job.state = "JobComplete" if time.monotonic() >= job.ready_at else "InProgress"
            elif job.state == "UploadComplete":
                job.state = "InProgress"
        return job

    def create(self, request: Request, version: str) -> Response:
        body = request.json() or {}
        if not isinstance(body, dict):
            raise SalesforceError(400, "INVALIDJOB", "Invalid job request")
        op = str(body.get("operation") or "")
        if op not in INGEST_OPERATIONS:
            raise SalesforceError(400, "INVALIDJOB", f"Invalid operation: {op}")
        try:
            obj = self.app.org.object(str(body.get("object") or ""))
        except SalesforceError as exc:
            raise SalesforceError(400, "INVALIDJOB", exc.message) from None
        ext = body.get("externalIdFieldName")
        if op == "upsert" and not ext:
            raise SalesforceError(400, "INVALIDJOB",
                                  "External ID field is required for upsert")  # fmt: skip
        delim = str(body.get("columnDelimiter") or "COMMA")
        ending = str(body.get("lineEnding") or "LF")
        if delim not in DELIMITERS or ending not in LINE_ENDINGS:
            raise SalesforceError(400, "INVALIDJOB", "Invalid columnDelimiter or lineEnding")
        job = IngestJob(
            id=self.app.org.ids.new("750"), operation=op, object=obj.name,
            external_id=str(ext) if ext else None, version=version, column_delimiter=delim,
            line_ending=ending, created=datetime.now(UTC).replace(microsecond=0),
            created_by=self.app.auth.user_id,
        )  # fmt: skip
        with self._lock:
            self.jobs[job.id] = job
        return json_response(200, job.info())

    def upload(self, request: Request, version: str, job_id: str) -> Response:
        job = self._job(job_id)
        if job.state != "Open":
            raise SalesforceError(409, "INVALIDJOBSTATE", f"Job is {job.state}, not Open")
        job.data.append(request.body)
        # simple-salesforce 1.12 checks for exactly 201 Created (``bulk2.py``).
        return Response(201, Headers(), b"")

    def patch(self, request: Request, version: str, job_id: str) -> Response:
        job = self._job(job_id)
        body = request.json() or {}
        state = body.get("state") if isinstance(body, dict) else None
        if state == "Aborted":
            if job.state in ("JobComplete", "Failed", "Aborted"):
                raise SalesforceError(400, "INVALIDJOBSTATE", f"Job is already {job.state}")
            job.state = "Aborted"
            return json_response(200, job.info())
        if state != "UploadComplete":
            raise SalesforceError(400, "INVALIDJOB", f"Invalid state: {state}")
        if job.state != "Open":
            raise SalesforceError(409, "INVALIDJOBSTATE", f"Job is {job.state}, not Open")
        job.state = "UploadComplete"
        job.ready_at = time.monotonic() + self.app.bulk_min_job_seconds
        answer = json_response(200, job.info())
        t = threading.Thread(target=self._run, args=(job, request), name=f"ingest-{job.id}",
                             daemon=True)  # fmt: skip
        t.start()
        return answer

    def _run(self, job: IngestJob, request: Request) -> None:
        started = time.monotonic()
        try:
            self._process(job, request)
        except Exception as exc:  # a job failure, never a crashed server thread
            job.failures.append(("", f"UNKNOWN_EXCEPTION:{exc}: --", []))
        finally:
            job.processing_ms = int((time.monotonic() - started) * 1000)
            with self._lock:
                job.processed = True

    def _process(self, job: IngestJob, request: Request) -> None:
        org = self.app.org
        obj = org.object(job.object)
        rows = _uploaded_rows(job)
        if not rows:
            return
        job.header = rows[0]
        for position, raw in enumerate(rows[1:], start=1):
            if not any(raw):
                continue
            values = dict(zip(job.header, raw, strict=False))
            rid = values.get("Id") or values.get("id") or ""
            try:
                if request.record_fault("lock_error"):
                    raise RecordError("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access "
                                      "to this record")  # fmt: skip
                if request.record_fault("partial_batch_failure"):
                    raise RecordError(
                        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                        "Sandbox validation rule rejected this record",
                    )
                fields = {k: (None if v == "#N/A" else v) for k, v in values.items()
                          if v != "" and k.lower() != "id"}  # fmt: skip
                try:
                    typed = org.coerce(obj, fields)
                except SalesforceError as exc:
                    raise RecordError(exc.error_code, exc.message) from None
                with org.lock:
                    p: Prepared
                    if job.operation == "insert":
                        p = org.prepare_create(obj, typed)
                    elif job.operation == "update":
                        if not rid:
                            raise RecordError("MISSING_ARGUMENT", "Id not specified")
                        p = org.prepare_update(obj, rid, typed)
                    elif job.operation == "upsert":
                        p = self._upsert(job, obj, typed, values)
                    else:
                        p = org.prepare_delete(obj, rid)
                    org.commit(p)
                job.successes.append((str(p.row["Id"]), p.created, position))
            except RecordError as exc:
                fields_txt = ",".join(exc.fields)
                job.failures.append((rid, f"{exc.status_code}:{exc.message}:{fields_txt} --", raw))

    def _upsert(self, job: IngestJob, obj: Any, typed: dict[str, Any],
                values: dict[str, str]) -> Any:  # fmt: skip
        rest = self.app.rest
        assert job.external_id is not None
        f = obj.field(job.external_id)
        if f is None or not (f.external_id or f.name == "Id"):
            raise RecordError("INVALID_FIELD", f"{job.external_id} is not an external id field")
        key = values.get(f.name) or values.get(job.external_id) or ""
        if f.name == "Id":
            key = values.get("Id") or values.get("id") or ""
        return rest._prepare_upsert(obj, f, key, typed, Request("PATCH", ""))

    def list_jobs(self, request: Request, version: str) -> Response:
        return json_response(
            200,
            {
                "done": True,
                "nextRecordsUrl": None,
                "records": [j.info() for j in self.jobs.values()],
            },
        )

    def get(self, request: Request, version: str, job_id: str) -> Response:
        return json_response(200, self._job(job_id).info(detail=True))

    def delete(self, request: Request, version: str, job_id: str) -> Response:
        job = self._job(job_id)
        if job.state in ("Open", "UploadComplete", "InProgress"):
            raise SalesforceError(400, "INVALIDJOBSTATE", "Job must be completed or aborted "
                                  "before it can be deleted")  # fmt: skip
        with self._lock:
            self.jobs.pop(job_id, None)
        return empty(204)

    def results(self, request: Request, version: str, job_id: str, kind: str) -> Response:
        job = self._job(job_id)
        # simple-salesforce asks for "unprocessedRecords"; the docs spell "unprocessedrecords".
        kind = kind.lower()
        if kind not in ("successfulresults", "failedresults", "unprocessedrecords"):
            raise not_found()
        if job.state not in ("JobComplete", "Failed", "Aborted"):
            raise SalesforceError(409, "INVALIDJOBSTATE",
                                  f"Job {job_id} is not complete: {job.state}")  # fmt: skip
        out = io.StringIO()
        w = csv.writer(
            out,
            delimiter=DELIMITERS[job.column_delimiter],
            lineterminator=LINE_ENDINGS[job.line_ending],
            quoting=csv.QUOTE_ALL,
        )
        if kind == "successfulresults":
            w.writerow(["sf__Id", "sf__Created", *job.header])
            uploaded = _uploaded_rows(job)
            for rid, created, position in job.successes:
                w.writerow([rid, "true" if created else "false", *uploaded[position]])
        elif kind == "failedresults":
            w.writerow(["sf__Id", "sf__Error", *job.header])
            for rid, err, raw in job.failures:
                w.writerow([rid, err, *raw])
        else:
            w.writerow(job.header)
            for raw in job.unprocessed:
                w.writerow(raw)
        return Response(200, Headers({"Content-Type": "text/csv"}), out.getvalue().encode())
