"""Salesforce: install the KPI report object, fields and permissions; write KPI rows back.

Everything goes through :class:`connectors.salesforce.SalesforceClient` (auth, re-login,
retries, limits, API budget). Creation uses the **Tooling REST API** (``sobjects/CustomObject``,
``sobjects/CustomField``): simple-salesforce's ``mdapi`` builds its own zeep transport and would
bypass the client's session (simple-salesforce 1.12 ``metadata.py``). A field created that way
has no field-level security (simple-salesforce#621): install grants it through a permission set
(``ObjectPermissions`` + ``FieldPermissions``, sforce_api_objects_fieldpermissions.htm) assigned
to the API user and the configured assignees (``PermissionSetAssignment``).

Writes use **sObject Collections** (resources_composite_sobjects_collections_upsert.htm): snapshot
rows ``PATCH composite/sobjects/KPI_Snapshot__c/Key__c`` (upsert by the external id, at most 200
records, ``allOrNone: false``, per-record ``{id, success, created, errors[{statusCode}]}`` in input
order); current-period User fields ``PATCH composite/sobjects`` (update by id); deletions
``DELETE composite/sobjects?ids=``. More than :data:`BULK_MIN_ROWS` snapshot rows at once (the
first load, a recomputed history) go as **Bulk API 2.0 ingest** upsert jobs instead
(api_asynch ``create_job.htm``, ``upload_job_data.htm``, ``get_job_successful_results.htm``,
``get_job_failed_results.htm``): create, one CSV upload, close, a few polls and two result reads,
about 7 calls for up to :data:`BULK_JOB_ROWS` rows where collections take one call per 200. The
results name each row by its external id, so every row still gets its own ledger answer; a row in
neither result (unprocessed) is re-sent like a locked one. The ready-made report is created with
the Analytics REST API (``POST analytics/reports``, sforce_analytics_rest_api_create_report.htm).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
import urllib.parse
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from simple_salesforce.api import Salesforce
from simple_salesforce.format import format_soql

from connectors.errors import ApiError
from connectors.salesforce import SalesforceClient, await_bulk_job
from connectors.store import Store
from writeback import ledger
from writeback.install import Action, Status
from writeback.ledger import Installed, LedgerEntry
from writeback.plan import Outcome, Payload, Row, plain_number, record_field_rows, snapshot_rows
from writeback.settings import WritebackSettings
from writeback.spec import Column, Kind, TargetSpec

CRM = "salesforce"
#: sObject Collections take at most 200 records per call
#: (resources_composite_sobjects_collections_create.htm).
BATCH = 200
#: Above this many snapshot rows a write is a Bulk API 2.0 ingest job ("Bulk API 2.0 is ...
#: for more than 2,000 records", Salesforce's "Which API Do I Use?" guide).
BULK_MIN_ROWS = 2_000
#: Rows per ingest job: ~300 bytes of CSV each, far below the 100 MB an upload may hold
#: (simple-salesforce ``MAX_INGEST_JOB_FILE_SIZE``; the API allows 150 MB base64-encoded,
#: api_asynch ``upload_job_data.htm``), and one job's results stay a bounded download.
BULK_JOB_ROWS = 100_000
#: How a Bulk API 2.0 CSV sets a field to null ("#N/A"; an empty cell leaves it unchanged,
#: api_asynch ``datafiles_prepare_csv.htm``).
BULK_NULL = "#N/A"
_RETRIABLE = frozenset({"UNABLE_TO_LOCK_ROW"})
_GONE = frozenset({"ENTITY_IS_DELETED", "NOT_FOUND", "INVALID_CROSS_REFERENCE_KEY"})
#: Metadata type -> the describe type it shows as (drift check).
_DESCRIBED = {"Text": "string", "Number": "double", "Date": "date", "DateTime": "datetime",
              "Lookup": "reference"}  # fmt: skip
#: Report columns besides the name field.
_REPORT_COLUMNS = ("metric", "scope", "subject_id", "period_start", "period_type", "value",
                   "unit", "target")  # fmt: skip


def _meta(col: Column, spec: TargetSpec) -> dict[str, Any]:
    """CustomField Metadata of one snapshot column (api_meta CustomField field types)."""
    base: dict[str, Any] = {"label": col.label, "description": "Written by kpisync"}
    if col.kind is Kind.TEXT:
        return {**base, "type": "Text", "length": col.length}
    if col.kind is Kind.NUMBER:
        return {**base, "type": "Number", "precision": 18, "scale": 6}
    if col.kind is Kind.DATE:
        return {**base, "type": "Date"}
    if col.kind is Kind.DATETIME:
        return {**base, "type": "DateTime"}
    return {**base, "type": "Lookup", "referenceTo": "User", "deleteConstraint": "SetNull",
            "relationshipName": f"{spec.prefix}KPI_Snapshots"}  # fmt: skip


class SalesforceWriter:
    """The Salesforce side of ``writeback.run`` (snapshot object + User fields)."""

    crm = CRM

    def __init__(self, client: SalesforceClient, spec: TargetSpec, settings: WritebackSettings):
        self.client = client
        self.spec = spec
        self.settings = settings
        #: (API name, payload key) of the snapshot columns, asked for per written row.
        self._columns = [(api, col.key) for api, col in spec.sf_columns().items()]

    @property
    def calls(self) -> int:
        return self.client.calls

    # -- what to write ----------------------------------------------------------------------------
    def desired(self, store: Store, connection: str, today: dt.date) -> dict[str, dict[str, Row]]:
        kpis = store.read_kpis(connection)
        reps = store.table_text(connection, "reps")
        teams = dict(zip(reps["id"].to_list(), reps["team_id"].to_list(), strict=True))
        out = {self.spec.sf_object: snapshot_rows(kpis, teams, self.spec.targets)}
        if self.spec.user_fields:
            out["User"] = record_field_rows(kpis, self.spec.user_fields, "rep", today)
        return out

    def fields(self) -> list[str]:
        obj = self.spec.sf_object
        names = [f"{obj}.{n}" for n in self.spec.sf_columns()]
        names.append(f"{obj}.{self.spec.sf_key_field}")
        names.extend(f.full_name for f in self.spec.user_fields)
        return names

    def owned(self, store: Store, connection: str) -> list[str]:
        mine = {i.name for i in ledger.installed(store, connection)
                if i.crm == CRM and i.kind in ("object", "field")}  # fmt: skip
        allowed = mine | set(self.settings.mapped_fields)
        return [f for f in self.fields() if f not in allowed]

    def batch_size(self, target: str, pending: int = 0) -> int:
        if target == self.spec.sf_object and pending > BULK_MIN_ROWS:
            return pending  # one send: its jobs are all queued before any is awaited
        return BATCH

    def history(self, target: str) -> bool:
        return target == self.spec.sf_object

    # -- sending ----------------------------------------------------------------------------------
    def record(self, row: Row, stamp: str) -> dict[str, Any]:
        """A snapshot row as a Salesforce record (``stamp``: its Computed At, formatted)."""
        p = row.payload
        rec: dict[str, Any] = {"attributes": {"type": self.spec.sf_object},
                               self.spec.sf_key_field: row.key}  # fmt: skip
        rec["Name"] = _record_name(p)
        for api, key in self._columns:
            rec[api] = stamp if key == "computed_at" else p.get(key)
        return rec

    def send(self, target: str, rows: Sequence[Row], computed_at: dt.datetime) -> list[Outcome]:
        if target == self.spec.sf_object and len(rows) > BATCH:
            return self._send_bulk(target, rows, computed_at)
        if target == self.spec.sf_object:
            path = f"composite/sobjects/{target}/{self.spec.sf_key_field}"
            stamp = _sf_datetime(computed_at)
            records = [self.record(r, stamp) for r in rows]
        else:
            path = "composite/sobjects"
            records = [{"attributes": {"type": target}, "id": r.key, **r.payload} for r in rows]
        body = {"allOrNone": False, "records": records}
        result = self.client.call(
            lambda sf: sf.restful(path, method="PATCH", json=body), obj=target
        )
        if not isinstance(result, list) or len(result) != len(rows):
            raise ApiError("sObject Collections answered without one result per record",
                           crm=CRM, object=target)  # fmt: skip
        out = []
        for row, res in zip(rows, result, strict=True):
            if res.get("success"):
                out.append(Outcome(row.key, row.hash, True, crm_id=res.get("id")))
                continue
            errors = res.get("errors") or [{}]
            codes = {str(e.get("statusCode", "")) for e in errors}
            message = "; ".join(f"{e.get('statusCode')}: {e.get('message')}" for e in errors)
            out.append(Outcome(row.key, row.hash, False, error=message,
                               retriable=bool(codes & _RETRIABLE)))  # fmt: skip
        return out

    def _send_bulk(
        self, target: str, rows: Sequence[Row], computed_at: dt.datetime
    ) -> list[Outcome]:
        """Bulk API 2.0 upsert jobs of up to :data:`BULK_JOB_ROWS` rows: every job is uploaded
        and closed (queued) before the first is awaited, so the CRM works on one job while the
        next is built and sent; each row's answer comes from its job's results."""
        key_field = self.spec.sf_key_field
        stamp = _sf_datetime(computed_at)
        poll_s = self.client.cfg.options.bulk_poll_s
        queued: list[tuple[Sequence[Row], str, float]] = []
        for i in range(0, len(rows), BULK_JOB_ROWS):
            chunk = rows[i : i + BULK_JOB_ROWS]
            data = self._csv(chunk, stamp)
            job_id = self.client.call(partial(_ingest_submit, obj=target, key_field=key_field,
                                              data=data), obj=target)  # fmt: skip
            queued.append((chunk, job_id, time.monotonic()))
        outcomes: list[Outcome] = []
        for chunk, job_id, submitted in queued:
            first = poll_s - (time.monotonic() - submitted)
            collect = partial(_ingest_results, obj=target, job_id=job_id, poll_s=poll_s,
                              first_wait_s=first)  # fmt: skip
            results = self.client.call(collect, obj=target)
            outcomes += _bulk_outcomes(chunk, results, key_field)
        return outcomes

    def _csv(self, rows: Sequence[Row], stamp: str) -> str:
        """Snapshot rows as a Bulk API 2.0 CSV (external id, Name, the snapshot columns)."""
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow([self.spec.sf_key_field, "Name", *(api for api, _ in self._columns)])
        for r in rows:
            p = r.payload
            cells = (stamp if key == "computed_at" else _csv_value(p.get(key))
                     for _, key in self._columns)  # fmt: skip
            w.writerow([r.key, _record_name(p), *cells])
        return out.getvalue()

    def delete(self, target: str, entries: Sequence[LedgerEntry]) -> list[Outcome]:
        if target != self.spec.sf_object:
            return []  # User fields are never deleted, only updated
        ids = [e.crm_id for e in entries if e.crm_id]
        params = {"ids": ",".join(ids), "allOrNone": "false"}
        result = self.client.call(
            lambda sf: sf.restful("composite/sobjects", params=params, method="DELETE"),
            obj=target,
        )
        out = []
        for e, res in zip(entries, result or [], strict=False):
            codes = {str(x.get("statusCode", "")) for x in res.get("errors") or []}
            ok = bool(res.get("success")) or bool(codes & _GONE)
            out.append(Outcome(e.key, "", ok, error=None if ok else str(res.get("errors"))))
        return out


def _record_name(p: Payload) -> str:
    """A snapshot record's Name (80 characters at most, the Name field's length)."""
    return f"{p['metric']} {p['scope']} {p['subject_id']} {p['period_start'] or ''}"[:80]


def _sf_datetime(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _csv_value(value: Any) -> str:
    """A record value as a Bulk API 2.0 CSV cell (numbers in plain decimal notation)."""
    if value is None:
        return BULK_NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return plain_number(value)
    return str(value)


def _ingest_submit(sf: Salesforce, obj: str, key_field: str, data: str) -> str:
    """Create an upsert ingest job, upload ``data`` and close it (queued); the job id. A retry
    after a transport error creates a new job: an upsert by external id is idempotent, and a
    job left open is discarded by Salesforce."""
    from simple_salesforce.bulk2 import ColumnDelimiter, LineEnding, Operation

    client = getattr(sf.bulk2, obj)._client
    job = client.create_job(Operation.upsert, None, ColumnDelimiter.COMMA, LineEnding.LF,
                            external_id_field=key_field)  # fmt: skip
    job_id = str(job["id"])
    client.upload_job_data(job_id, data)
    client.close_job(job_id)
    return job_id


def _ingest_results(
    sf: Salesforce, obj: str, job_id: str, poll_s: float, first_wait_s: float
) -> dict[str, str]:
    """Await a closed ingest job; its successful and failed results (CSV). Rows in neither
    (unprocessed, a job aborted part-way) are re-sent by the caller."""
    from simple_salesforce.bulk2 import ResultsType

    client = getattr(sf.bulk2, obj)._client
    await_bulk_job(client, job_id, poll_s, query=False, first_wait_s=first_wait_s)
    return {
        "successful": client.get_ingest_results(job_id, ResultsType.successful),
        "failed": client.get_ingest_results(job_id, ResultsType.failed),
    }


def _bulk_outcomes(rows: Sequence[Row], results: dict[str, str], key_field: str) -> list[Outcome]:
    """Each row's answer from its job's results, matched by the external id."""
    answers: dict[str, tuple[bool, str | None, str | None]] = {}
    for done in csv.DictReader(io.StringIO(results["successful"])):
        answers[done.get(key_field, "")] = (True, done.get("sf__Id") or None, None)
    for refused in csv.DictReader(io.StringIO(results["failed"])):
        error = refused.get("sf__Error") or "refused"
        answers[refused.get(key_field, "")] = (False, None, error)
    outcomes = []
    for row in rows:
        ok, crm_id, error = answers.get(row.key, (False, None, None))
        if ok:
            outcomes.append(Outcome(row.key, row.hash, True, crm_id=crm_id))
        elif error is None:
            # Unprocessed or missing from the results: sent again next round, like a locked row.
            outcomes.append(Outcome(row.key, row.hash, False, retriable=True,
                                    error="not processed by the Bulk API job"))  # fmt: skip
        else:
            # sf__Error is "STATUS_CODE:message:fields --" (get_job_failed_results.htm).
            code = error.split(":", 1)[0]
            outcomes.append(Outcome(row.key, row.hash, False, error=error.rstrip(" -"),
                                    retriable=code in _RETRIABLE))  # fmt: skip
    return outcomes


# -- install / check / uninstall ------------------------------------------------------------------
def _records(client: SalesforceClient, soql: str, *, tooling: bool = False) -> list[dict[str, Any]]:
    if tooling:
        q = urllib.parse.quote_plus(soql)
        res = client.call(lambda sf: sf.toolingexecute(f"query/?q={q}"), obj="tooling")
        return list(res.get("records", []))
    return list(client.call(lambda sf: sf.query_all(soql)).get("records", []))


class _OrgState:
    """What the org holds of kpisync's things (a handful of queries)."""

    def __init__(self, client: SalesforceClient, spec: TargetSpec) -> None:
        obj_dev = spec.sf_object.removesuffix("__c")
        objs = _records(client, format_soql(
            "SELECT Id, DeveloperName FROM CustomObject WHERE DeveloperName = {}", obj_dev
        ), tooling=True)  # fmt: skip
        self.object_id: str | None = objs[0]["Id"] if objs else None
        tables = ["User"] + ([self.object_id] if self.object_id else [])
        fields = _records(client, format_soql(
            "SELECT Id, DeveloperName, TableEnumOrId FROM CustomField WHERE TableEnumOrId IN {}",
            tables,
        ), tooling=True)  # fmt: skip
        self.fields: dict[str, str] = {}
        for f in fields:
            table = spec.sf_object if f["TableEnumOrId"] == self.object_id else f["TableEnumOrId"]
            self.fields[f"{table}.{f['DeveloperName']}__c"] = f["Id"]
        sets = _records(client, format_soql(
            "SELECT Id FROM PermissionSet WHERE Name = {}", spec.permission_set
        ))  # fmt: skip
        self.ps_id: str | None = sets[0]["Id"] if sets else None
        self.field_perms: dict[str, str] = {}
        self.object_perms: dict[str, str] = {}
        self.assigned: dict[str, str] = {}
        if self.ps_id:
            for r in _records(client, format_soql(
                "SELECT Id, Field FROM FieldPermissions WHERE ParentId = {}", self.ps_id
            )):  # fmt: skip
                self.field_perms[r["Field"]] = r["Id"]
            for r in _records(client, format_soql(
                "SELECT Id, SobjectType FROM ObjectPermissions WHERE ParentId = {}", self.ps_id
            )):  # fmt: skip
                self.object_perms[r["SobjectType"]] = r["Id"]
            for r in _records(client, format_soql(
                "SELECT Id, AssigneeId FROM PermissionSetAssignment WHERE PermissionSetId = {}",
                self.ps_id,
            )):  # fmt: skip
                self.assigned[r["AssigneeId"]] = r["Id"]
        reports = client.call(lambda sf: sf.restful("analytics/reports")) or []
        self.report_id: str | None = next(
            (r["id"] for r in reports if r.get("name") == spec.report_name), None
        )


def _api_user(client: SalesforceClient) -> str:
    # OpenID Connect UserInfo endpoint (remoteaccess_using_userinfo_endpoint.htm): user_id.
    info = client.call(lambda sf: sf.oauth2("userinfo")) or {}
    return str(info["user_id"])


def _assignees(client: SalesforceClient, settings: WritebackSettings) -> list[str]:
    ids = [a for a in settings.assignees if a.startswith("005")]
    names = [a for a in settings.assignees if not a.startswith("005")]
    if names:
        found = _records(client, format_soql(
            "SELECT Id, Username FROM User WHERE Username IN {}", names
        ))  # fmt: skip
        known = {r["Username"].lower(): r["Id"] for r in found}
        missing = [n for n in names if n.lower() not in known]
        if missing:
            raise ApiError(f"writeback.assignees: no such user {', '.join(missing)}", crm=CRM)
        ids.extend(known[n.lower()] for n in names)
    return [_api_user(client), *ids]


class SalesforceInstaller:
    """Install, check and uninstall for one Salesforce connection."""

    def __init__(
        self, client: SalesforceClient, spec: TargetSpec, settings: WritebackSettings,
        store: Store, connection: str,
    ) -> None:  # fmt: skip
        self.client = client
        self.spec = spec
        self.settings = settings
        self.store = store
        self.connection = connection

    def _mine(self) -> dict[tuple[str, str], Installed]:
        return {(i.kind, i.name): i for i in ledger.installed(self.store, self.connection)
                if i.crm == CRM}  # fmt: skip

    def _field_specs(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(object, field, Metadata) of every field install creates."""
        s = self.spec
        out = [(s.sf_object, api, _meta(col, s)) for api, col in s.sf_columns().items()]
        out.append((s.sf_object, s.sf_key_field, {
            "label": "Key", "type": "Text", "length": 255, "externalId": True, "unique": True,
            "caseSensitive": True, "description": "kpisync row key (upsert external id)",
        }))  # fmt: skip
        for f in s.user_fields:
            out.append(("User", f.name, {
                "label": f.kpi.label[:40], "type": "Number", "precision": 18, "scale": 6,
                "description": f"kpisync: {f.kpi.label}, current period",
            }))  # fmt: skip
        return out

    def _remember(self, kind: str, name: str, crm_id: str | None, **detail: Any) -> None:
        ledger.remember(self.store, self.connection, Installed(kind, name, CRM, crm_id, detail))

    def install(self, *, dry_run: bool = False) -> list[Action]:
        st = _OrgState(self.client, self.spec)
        mine = self._mine()
        acts: list[Action] = []
        s = self.spec
        mapped = set(self.settings.mapped_fields)

        def step(kind: str, name: str, exists: bool, create: Callable[[], str | None],
                 **detail: Any) -> str | None:  # fmt: skip
            if exists:
                if (kind, name) in mine:
                    acts.append(Action(CRM, kind, name, Status.OK))
                elif name in mapped:
                    acts.append(Action(CRM, kind, name, Status.MAPPED))
                else:
                    acts.append(
                        Action(
                            CRM,
                            kind,
                            name,
                            Status.CONFLICT,
                            "exists but was not created by kpisync; left alone",
                        )
                    )
                return None
            acts.append(Action(CRM, kind, name, Status.CREATE))
            if dry_run:
                return None
            crm_id = create()
            self._remember(kind, name, crm_id, **detail)
            return crm_id

        def tooling(sobject: str, full: str, meta: dict[str, Any]) -> Callable[[], str | None]:
            data = {"FullName": full, "Metadata": meta}
            return lambda: str(self.client.call(
                lambda sf: sf.toolingexecute(f"sobjects/{sobject}", method="POST", data=data),
                obj=sobject,
            )["id"])  # fmt: skip

        obj_meta = {
            "label": "KPI Snapshot",
            "pluralLabel": "KPI Snapshots",
            "nameField": {"label": "KPI Snapshot Name", "type": "Text"},
            "deploymentStatus": "Deployed",
            "sharingModel": "ReadWrite",
            "enableReports": True,
            "description": "KPI values written by kpisync",
        }
        step("object", s.sf_object, st.object_id is not None,
             tooling("CustomObject", s.sf_object, obj_meta))  # fmt: skip
        for obj, fname, meta in self._field_specs():
            full = f"{obj}.{fname}"
            step("field", full, full in st.fields, tooling("CustomField", full, meta),
                 type=meta["type"])  # fmt: skip
        ps_id = step(
            "permission_set",
            s.permission_set,
            st.ps_id is not None,
            lambda: self._create(
                "PermissionSet",
                {
                    "Name": s.permission_set,
                    "Label": "kpisync writeback",
                    "Description": "Field access for the KPI values kpisync writes",
                },
            ),
        )
        ps_id = ps_id or st.ps_id
        step(
            "object_permission",
            s.sf_object,
            s.sf_object in st.object_perms,
            lambda: self._create(
                "ObjectPermissions",
                {
                    "ParentId": ps_id,
                    "SobjectType": s.sf_object,
                    "PermissionsRead": True,
                    "PermissionsCreate": True,
                    "PermissionsEdit": True,
                    "PermissionsDelete": True,
                },
            ),
        )
        # Field-level security only for fields kpisync owns (or the admin mapped).
        theirs = {a.name for a in acts if a.kind == "field" and a.status is Status.CONFLICT}
        todo = [f"{o}.{f}" for o, f, _ in self._field_specs() if f"{o}.{f}" not in theirs]
        missing = [f for f in todo if f not in st.field_perms]
        for f in todo:
            if f in st.field_perms:
                step("field_permission", f, True, lambda: None)
        if missing:
            acts.extend(Action(CRM, "field_permission", f, Status.CREATE) for f in missing)
            if not dry_run:
                self._field_permissions(str(ps_id), missing)
        users = [] if dry_run and ps_id is None else _assignees(self.client, self.settings)
        for user in users:
            step(
                "assignment",
                user,
                user in st.assigned,
                lambda u=user: self._create(
                    "PermissionSetAssignment",  # type: ignore[misc]
                    {"PermissionSetId": ps_id, "AssigneeId": u},
                ),
            )
        cols = [f"{s.sf_object}.Name"] + [
            f"{s.sf_object}.{api}" for api, c in s.sf_columns().items() if c.key in _REPORT_COLUMNS
        ]
        report = {"reportMetadata": {
            "name": s.report_name, "reportFormat": "TABULAR",
            "reportType": {"type": f"CustomEntity${s.sf_object}"}, "detailColumns": cols,
            "description": "KPI values written by kpisync"}}  # fmt: skip
        step(
            "report",
            s.report_name,
            st.report_id is not None,
            lambda: self._create_report(report),
        )
        return acts

    def _create_report(self, report: dict[str, Any]) -> str:
        res = self.client.call(
            lambda sf: sf.restful("analytics/reports", method="POST", json=report)
        )
        return str((res or {})["reportMetadata"]["id"])

    def _create(self, sobject: str, values: dict[str, Any]) -> str:
        res = self.client.call(lambda sf: getattr(sf, sobject).create(values), obj=sobject)
        return str(res["id"])

    def _field_permissions(self, ps_id: str, names: list[str]) -> None:
        """FieldPermissions in batches of 200 through sObject Collections (one call each)."""
        for i in range(0, len(names), BATCH):
            chunk = names[i : i + BATCH]
            records = [{"attributes": {"type": "FieldPermissions"}, "ParentId": ps_id,
                        "SobjectType": n.split(".")[0], "Field": n, "PermissionsRead": True,
                        "PermissionsEdit": True} for n in chunk]  # fmt: skip
            body = {"allOrNone": False, "records": records}
            res = self.client.call(
                lambda sf, b=body: sf.restful("composite/sobjects", method="POST", json=b),  # type: ignore[misc]
                obj="FieldPermissions",
            )
            for name, r in zip(chunk, res, strict=True):
                if not r.get("success"):
                    raise ApiError(f"FieldPermissions {name}: {r.get('errors')}", crm=CRM)
                self._remember("field_permission", name, str(r["id"]))

    def check(self) -> list[Action]:
        """What is missing or drifted (no writes)."""
        st = _OrgState(self.client, self.spec)
        mine = self._mine()
        acts: list[Action] = []
        s = self.spec
        mapped = set(self.settings.mapped_fields)

        def seen(kind: str, name: str, exists: bool) -> None:
            if not exists:
                acts.append(Action(CRM, kind, name, Status.MISSING))
            elif (kind, name) in mine:
                acts.append(Action(CRM, kind, name, Status.OK))
            elif name in mapped:
                acts.append(Action(CRM, kind, name, Status.MAPPED))
            else:
                acts.append(Action(CRM, kind, name, Status.CONFLICT,
                                   "exists but was not created by kpisync"))  # fmt: skip

        seen("object", s.sf_object, st.object_id is not None)
        described: dict[str, dict[str, str]] = {}
        for obj in {s.sf_object, "User"}:
            if obj == s.sf_object and st.object_id is None:
                continue
            try:
                d = self.client.call(lambda sf, o=obj: getattr(sf, o).describe(), obj=obj)  # type: ignore[misc]
            except ApiError:
                continue
            described[obj] = {f["name"]: f["type"] for f in d.get("fields", [])}
        for obj, fname, meta in self._field_specs():
            full = f"{obj}.{fname}"
            seen("field", full, full in st.fields)
            if full not in st.fields:
                continue
            got = described.get(obj, {}).get(fname)
            want = _DESCRIBED[meta["type"]]
            if got is None:
                acts.append(
                    Action(
                        CRM,
                        "field",
                        full,
                        Status.DRIFT,
                        "not visible to the API user (field-level security)",
                    )
                )
            elif got != want:
                acts.append(Action(CRM, "field", full, Status.DRIFT, f"type {got}, not {want}"))
        seen("permission_set", s.permission_set, st.ps_id is not None)
        seen("object_permission", s.sf_object, s.sf_object in st.object_perms)
        for obj, fname, _ in self._field_specs():
            seen("field_permission", f"{obj}.{fname}", f"{obj}.{fname}" in st.field_perms)
        for user in _assignees(self.client, self.settings):
            seen("assignment", user, user in st.assigned)
        seen("report", s.report_name, st.report_id is not None)
        return acts

    def uninstall(self, *, dry_run: bool = False) -> list[Action]:
        """Remove what install recorded, newest dependants first; nothing else."""
        order = ("report", "assignment", "field_permission", "object_permission",
                 "permission_set", "field", "object")  # fmt: skip
        items = sorted(self._mine().values(), key=lambda i: order.index(i.kind))
        acts: list[Action] = []
        obj_gone = False
        for item in items:
            if item.kind == "field" and item.name.startswith(f"{self.spec.sf_object}."):
                # Deleting the custom object deletes its fields (and its records) with it.
                acts.append(Action(CRM, item.kind, item.name, Status.REMOVE, "with its object"))
                if not dry_run:
                    ledger.unremember(self.store, self.connection, item.kind, item.name)
                continue
            if dry_run:
                acts.append(Action(CRM, item.kind, item.name, Status.REMOVE))
                continue
            gone = self._delete(item)
            acts.append(Action(CRM, item.kind, item.name, Status.GONE if gone else Status.REMOVE))
            ledger.unremember(self.store, self.connection, item.kind, item.name)
            obj_gone = obj_gone or item.kind == "object"
        if not dry_run:
            ledger.forget(self.store, self.connection, None, None)
        return acts

    def _delete(self, item: Installed) -> bool:
        """Delete one recorded thing; True when it was already gone."""
        cid = item.crm_id
        try:
            if item.kind == "report":
                self.client.call(lambda sf: sf.restful(f"analytics/reports/{cid}",
                                                       method="DELETE"))  # fmt: skip
            elif item.kind in ("object", "field"):
                sobject = "CustomObject" if item.kind == "object" else "CustomField"
                self.client.call(lambda sf: _tooling_delete(sf, sobject, str(cid)), obj=sobject)
            else:
                sobject = {"assignment": "PermissionSetAssignment",
                           "field_permission": "FieldPermissions",
                           "object_permission": "ObjectPermissions",
                           "permission_set": "PermissionSet"}[item.kind]  # fmt: skip
                self.client.call(lambda sf: getattr(sf, sobject).delete(cid), obj=sobject)
        except ApiError as exc:
            if exc.status == 404:
                return True
            raise
        return False


def _tooling_delete(sf: Salesforce, sobject: str, rid: str) -> None:
    sf.toolingexecute(f"sobjects/{sobject}/{rid}", method="DELETE")
