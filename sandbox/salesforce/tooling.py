"""Tooling API (CustomObject, CustomField) and the Analytics reports API.

Tooling (api_tooling customfield.htm / customobject.htm; simple-salesforce#621 on field
creation): ``POST tooling/sobjects/CustomField`` with ``{"FullName": "Account.Foo__c",
"Metadata": {"label", "type", ...}}`` adds the field to the org, **without field-level
security**: describe and SOQL do not show it to the API user until a ``FieldPermissions`` row
(``ParentId`` = a permission set assigned to the API user, ``Field`` = ``Account.Foo__c``,
``PermissionsRead`` = true) exists — exactly the trap simple-salesforce#621/#681 users fall into.
``tooling/query`` runs the same SOQL engine over the CustomObject/CustomField rows.

Analytics (sforce_analytics_rest_api_*): ``POST analytics/reports`` creates a report from
``reportMetadata`` (name, reportFormat, reportType.type naming an object, detailColumns);
``GET analytics/reports`` lists them; ``GET analytics/reports/{id}/describe`` describes one,
``GET analytics/reports/{id}`` runs a tabular report, ``DELETE`` removes it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from sandbox.http import Request, Response, Router, empty, json_response
from sandbox.salesforce.errors import SalesforceError, not_found
from sandbox.salesforce.org import now_utc, render_value
from sandbox.salesforce.query import Catalog, execute, render_records
from sandbox.salesforce.schema import FieldDef, ObjectDef, custom_object, make_object
from sandbox.salesforce.soql import parse
from sandbox.salesforce.store import Table

if TYPE_CHECKING:
    from sandbox.salesforce.app import SalesforceApp

# Metadata field type → sObject field type.
FIELD_TYPES = {
    "Text": "string", "TextArea": "textarea", "LongTextArea": "textarea", "Email": "email",
    "Phone": "phone", "Url": "url", "Number": "double", "Currency": "currency",
    "Percent": "percent", "Date": "date", "DateTime": "datetime", "Checkbox": "boolean",
    "Picklist": "picklist", "Lookup": "reference",
}  # fmt: skip
# sObject field type → Analytics column dataType (sforce_analytics_rest_api_reportdata.htm).
_REPORT_TYPES = {
    "string": "string", "textarea": "textarea", "email": "email", "phone": "phone",
    "url": "url", "picklist": "picklist", "id": "id", "reference": "id", "boolean": "boolean",
    "double": "double", "int": "int", "currency": "currency", "percent": "percent",
    "date": "date", "datetime": "datetime",
}  # fmt: skip
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*__c$")


def _tooling_objects() -> dict[str, ObjectDef]:
    F = FieldDef
    return {
        "CustomObject": make_object("CustomObject", "01I", [
            F("DeveloperName", "string"), F("FullName", "string"), F("NamespacePrefix", "string"),
            F("ExternalName", "string"), F("ManageableState", "string"),
        ], label="Custom Object"),
        "CustomField": make_object("CustomField", "00N", [
            F("DeveloperName", "string"), F("FullName", "string"), F("NamespacePrefix", "string"),
            F("TableEnumOrId", "string"), F("ManageableState", "string"),
            F("Description", "string"), F("InlineHelpText", "string"),
        ], label="Custom Field"),
    }  # fmt: skip


class ToolingHandlers:
    def __init__(self, app: SalesforceApp) -> None:
        self.app = app
        self.org = app.org
        self.objects = _tooling_objects()
        self.tables = {n: Table(o) for n, o in self.objects.items()}
        #: Full Metadata by tooling id, as returned by GET .../CustomField/{id}.
        self.metadata: dict[str, dict[str, Any]] = {}
        self.full_names: dict[str, str] = {}
        self._prefix_counter = 0
        self.reports: dict[str, dict[str, Any]] = {}

    def register(self, r: Router, d: str) -> None:
        t = f"{d}/tooling"
        r.add("GET", f"{t}/sobjects", self.list_sobjects)
        r.add("GET", f"{t}/sobjects/{{sobject}}/describe", self.describe)
        r.add("POST", f"{t}/sobjects/{{sobject}}", self.create)
        r.add("GET", f"{t}/sobjects/{{sobject}}/{{record_id}}", self.get)
        r.add("DELETE", f"{t}/sobjects/{{sobject}}/{{record_id}}", self.delete)
        r.add("PATCH", f"{t}/sobjects/{{sobject}}/{{record_id}}", self.update)
        r.add("GET", f"{t}/query", self.query)
        a = f"{d}/analytics/reports"
        r.add("GET", a, self.list_reports)
        r.add("POST", a, self.create_report)
        r.add("GET", f"{a}/{{report_id}}/describe", self.describe_report)
        r.add("GET|POST", f"{a}/{{report_id}}", self.run_report)
        r.add("PATCH", f"{a}/{{report_id}}", self.update_report)
        r.add("DELETE", f"{a}/{{report_id}}", self.delete_report)

    def _tobj(self, name: str) -> ObjectDef:
        for k, o in self.objects.items():
            if k.lower() == name.lower():
                return o
        raise not_found()

    # -- tooling sobjects ------------------------------------------------------------------------

    def list_sobjects(self, request: Request, version: str) -> Response:
        return json_response(
            200,
            {
                "encoding": "UTF-8",
                "maxBatchSize": 200,
                "sobjects": [o.summary(version) for o in self.objects.values()],
            },
        )

    def describe(self, request: Request, version: str, sobject: str) -> Response:
        o = self._tobj(sobject)
        d = o.summary(version)
        d["fields"] = [f.describe() for f in o.fields.values()]
        d["fields"] += [FieldDef("Metadata", "string").describe()]
        return json_response(200, d)

    def create(self, request: Request, version: str, sobject: str) -> Response:
        o = self._tobj(sobject)
        body = request.json() or {}
        if not isinstance(body, dict):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "body must be an object")
        full = str(body.get("FullName") or "")
        meta = body.get("Metadata") or {}
        if not isinstance(meta, dict):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "Metadata must be an object")
        with self.org.lock:
            if o.name == "CustomObject":
                rid = self._create_object(full, meta)
            else:
                rid = self._create_field(full, meta)
        return json_response(201, {"id": rid, "success": True, "errors": [], "warnings": [],
                                   "infos": []})  # fmt: skip

    def _row(self, rid: str, **values: Any) -> dict[str, Any]:
        now = now_utc()
        u = self.org.api_user_id
        return {"Id": rid, "IsDeleted": False, "CreatedDate": now, "CreatedById": u,
                "LastModifiedDate": now, "LastModifiedById": u, "SystemModstamp": now,
                "NamespacePrefix": None, "ManageableState": "unmanaged", **values}  # fmt: skip

    def _create_object(self, full: str, meta: dict[str, Any]) -> str:
        if not _NAME.match(full):
            raise SalesforceError(400, "INVALID_FIELD", f"Invalid custom object name: {full}")
        if any(k.lower() == full.lower() for k in self.org.objects):
            raise SalesforceError(400, "DUPLICATE_DEVELOPER_NAME",
                                  f"There is already a Custom Object named {full}.")  # fmt: skip
        label = str(meta.get("label") or full.removesuffix("__c"))
        plural = str(meta.get("pluralLabel") or label + "s")
        rid = self.org.ids.new("01I")
        self._prefix_counter += 1
        prefix = "a" + format(self._prefix_counter, "02d")
        obj = custom_object(full, label, plural, prefix, rid)
        name_meta = meta.get("nameField") or {}
        if isinstance(name_meta, dict) and name_meta.get("label"):
            obj.fields["Name"].label = str(name_meta["label"])
        self.org.objects[full] = obj
        self.org.tables[full] = Table(obj)
        self.tables["CustomObject"].insert(
            self._row(rid, DeveloperName=full.removesuffix("__c"), FullName=full)
        )
        self.metadata[rid] = meta
        self.full_names[rid] = full
        return rid

    def _create_field(self, full: str, meta: dict[str, Any]) -> str:
        obj_name, _, field_name = full.partition(".")
        try:
            obj = self.org.object(obj_name)
        except SalesforceError:
            raise SalesforceError(
                400, "INVALID_FIELD", f"Entity {obj_name} does not exist"
            ) from None
        if not _NAME.match(field_name):
            raise SalesforceError(400, "INVALID_FIELD", f"Invalid custom field name: {full}")
        if obj.field(field_name) is not None:
            raise SalesforceError(400, "DUPLICATE_DEVELOPER_NAME",
                                  f"There is already a field named {field_name} on "
                                  f"{obj.name}.")  # fmt: skip
        mtype = str(meta.get("type") or "")
        if mtype not in FIELD_TYPES:
            raise SalesforceError(400, "FIELD_INTEGRITY_EXCEPTION",
                                  f"Unsupported or missing field type: {mtype!r}")  # fmt: skip
        ftype = FIELD_TYPES[mtype]
        required = bool(meta.get("required"))
        rid = self.org.ids.new("00N")
        picklist: tuple[str, ...] = ()
        vs = meta.get("valueSet")
        if isinstance(vs, dict):
            values = ((vs.get("valueSetDefinition") or {}).get("value")) or []
            picklist = tuple(str(v.get("fullName") or v.get("label")) for v in values)
        ref_to = str(meta.get("referenceTo") or "")
        f = FieldDef(
            field_name, ftype, label=str(meta.get("label") or field_name.removesuffix("__c")),
            # A universally required field is visible and writable for every profile, so it
            # needs no field-level security grant; any other new field does.
            custom=True, needs_fls=not required, tooling_id=rid,
            external_id=bool(meta.get("externalId")), unique=bool(meta.get("unique")),
            length=int(meta.get("length") or 0), picklist=picklist,
            reference_to=(ref_to,) if ref_to else (),
            relationship_name=(str(meta.get("relationshipName")) + "__r"
                               if ftype == "reference" and meta.get("relationshipName")
                               else None),
            nillable=ftype != "boolean" and not required,
        )  # fmt: skip
        obj.add_field(f)
        table = self.org.tables[obj.name]
        table.add_column(f)
        if ftype == "boolean":
            # Checkboxes are never null: existing rows read false.
            default = str(meta.get("defaultValue") or "false").lower() == "true"
            table.base = table.base.with_columns(pl.lit(default).alias(f.name))
            for row in (*table.edited.values(), *table.created.values()):
                row[f.name] = default
            table.schema_changed()
        table_ref = obj.tooling_id or obj.name
        self.tables["CustomField"].insert(self._row(
            rid, DeveloperName=field_name.removesuffix("__c"), FullName=f"{obj.name}.{field_name}",
            TableEnumOrId=table_ref,
            Description=meta.get("description"), InlineHelpText=meta.get("inlineHelpText"),
        ))  # fmt: skip
        self.metadata[rid] = meta
        self.full_names[rid] = full
        return rid

    def get(self, request: Request, version: str, sobject: str, record_id: str) -> Response:
        o = self._tobj(sobject)
        row = self.tables[o.name].get(record_id)
        if row is None or row["IsDeleted"]:
            raise not_found()
        out: dict[str, Any] = {"attributes": {
            "type": o.name,
            "url": f"/services/data/v{version}/tooling/sobjects/{o.name}/{record_id}",
        }}  # fmt: skip
        for f in o.fields.values():
            out[f.name] = render_value(f, row.get(f.name))
        out["FullName"] = self.full_names.get(record_id)
        out["Metadata"] = self.metadata.get(record_id)
        return json_response(200, out)

    def update(self, request: Request, version: str, sobject: str, record_id: str) -> Response:
        o = self._tobj(sobject)
        if self.tables[o.name].get(record_id) is None:
            raise not_found()
        body = request.json() or {}
        meta = body.get("Metadata") if isinstance(body, dict) else None
        if isinstance(meta, dict):
            self.metadata[record_id] = {**self.metadata.get(record_id, {}), **meta}
            full = self.full_names.get(record_id, "")
            if o.name == "CustomField" and "label" in meta:
                obj_name, _, fname = full.partition(".")
                fdef = self.org.object(obj_name).field(fname)
                if fdef is not None:
                    fdef.label = str(meta["label"])
        return empty(204)

    def delete(self, request: Request, version: str, sobject: str, record_id: str) -> Response:
        o = self._tobj(sobject)
        table = self.tables[o.name]
        row = table.get(record_id)
        if row is None or row["IsDeleted"]:
            raise not_found()
        full = self.full_names.get(record_id, "")
        with self.org.lock:
            if o.name == "CustomField":
                obj_name, _, fname = full.partition(".")
                obj = self.org.object(obj_name)
                obj.remove_field(fname)
                self.org.tables[obj.name].drop_column(fname)
            else:
                self.org.objects.pop(full, None)
                self.org.tables.pop(full, None)
                for fid, fname in list(self.full_names.items()):
                    if fname.startswith(full + "."):
                        self._mark_deleted("CustomField", fid)
            self._mark_deleted(o.name, record_id)
        return empty(204)

    def _mark_deleted(self, tobj: str, rid: str) -> None:
        table = self.tables[tobj]
        row = table.get(rid)
        if row is not None:
            row["IsDeleted"] = True
            row["SystemModstamp"] = now_utc()
            table.put(row)

    def query(self, request: Request, version: str) -> Response:
        q = request.arg("q")
        if q is None:
            raise SalesforceError(400, "MALFORMED_QUERY", "A query string must be provided.")
        cat = Catalog(self.objects, self.tables, lambda o, f: True)
        result = execute(parse(q), cat, include_deleted=False)
        if result.count_only:
            return json_response(200, {"size": result.total_size, "totalSize": result.total_size,
                                       "done": True, "records": []})  # fmt: skip
        records = render_records(result, 0, result.total_size, version)
        for r in records:
            r["attributes"]["url"] = r["attributes"]["url"].replace(
                "/sobjects/", "/tooling/sobjects/"
            )
        return json_response(200, {
            "size": len(records), "totalSize": len(records), "done": True,
            "queryLocator": None, "entityTypeName": result.sobject.name, "records": records,
        })  # fmt: skip

    # -- analytics reports -----------------------------------------------------------------------

    def _report_object(self, meta: dict[str, Any]) -> ObjectDef:
        rtype = meta.get("reportType") or {}
        type_name = str(rtype.get("type") if isinstance(rtype, dict) else rtype or "")
        type_name = type_name.removeprefix("CustomEntity$")
        try:
            return self.org.object(type_name)
        except SalesforceError:
            raise SalesforceError(
                400, "BAD_REQUEST", f"The report type {type_name} is not valid."
            ) from None

    def _columns(self, obj: ObjectDef, cols: list[Any]) -> list[FieldDef]:
        out = []
        for c in cols:
            name = str(c).split(".", 1)[1] if "." in str(c) else str(c)
            f = obj.field(name)
            if f is None or not self.org.visible(obj, f):
                raise SalesforceError(
                    400, "BAD_REQUEST", f"The column {c} is not valid for this report type."
                )
            out.append(f)
        return out

    def create_report(self, request: Request, version: str) -> Response:
        body = request.json() or {}
        meta = body.get("reportMetadata") if isinstance(body, dict) else None
        if not isinstance(meta, dict) or not meta.get("name"):
            raise SalesforceError(400, "BAD_REQUEST", "reportMetadata with a name is required")
        obj = self._report_object(meta)
        cols = meta.get("detailColumns") or []
        self._columns(obj, list(cols))
        fmt = str(meta.get("reportFormat") or "TABULAR")
        if fmt not in ("TABULAR", "SUMMARY", "MATRIX", "MULTI_BLOCK"):
            raise SalesforceError(400, "BAD_REQUEST", f"Invalid report format {fmt}")
        with self.org.lock:
            rid = self.org.ids.new("00O")
            dev = str(meta.get("developerName") or re.sub(r"\W+", "_", str(meta["name"])))
            stored = {**meta, "id": rid, "developerName": dev, "reportFormat": fmt,
                      "reportType": {"type": obj.name, "label": obj.label},
                      "detailColumns": list(cols)}  # fmt: skip
            self.reports[rid] = stored
            now = now_utc()
            u = self.org.api_user_id
            self.org.tables["Report"].insert({
                "Id": rid, "IsDeleted": False, "CreatedDate": now, "CreatedById": u,
                "LastModifiedDate": now, "LastModifiedById": u, "SystemModstamp": now,
                "Name": str(meta["name"]), "DeveloperName": dev, "Format": fmt.title(),
                "FolderName": str(meta.get("folderId") or "Private Reports"),
                "Description": meta.get("description"),
            })  # fmt: skip
        return json_response(200, self._describe(rid))

    def _describe(self, rid: str) -> dict[str, Any]:
        """Report describe (sforce_analytics_rest_api_get_reportmetadata.htm): metadata, the
        label and data type of each detail column, and the report type's field categories."""
        meta = self.reports[rid]
        obj = self.org.object(meta["reportType"]["type"])
        info = {
            col: {"label": f.label, "dataType": _REPORT_TYPES.get(f.type, "string"),
                  "entityColumnName": f"{obj.name}.{f.name}", "isLookup": f.type == "reference"}
            for col, f in zip(meta["detailColumns"], self._columns(obj, meta["detailColumns"]),
                              strict=True)
        }  # fmt: skip
        columns = {
            f"{obj.name}.{f.name}": {"label": f.label, "filterable": True,
                                     "dataType": _REPORT_TYPES.get(f.type, "string")}
            for f in self.org.visible_fields(obj)
        }  # fmt: skip
        return {
            "reportMetadata": meta,
            "reportExtendedMetadata": {"detailColumnInfo": info, "aggregateColumnInfo": {},
                                       "groupingColumnInfo": {}},
            "reportTypeMetadata": {"categories": [{"label": obj.label, "columns": columns}]},
        }  # fmt: skip

    def update_report(self, request: Request, version: str, report_id: str) -> Response:
        """Save changed metadata (``PATCH analytics/reports/{id}`` with ``reportMetadata``)."""
        current = self._report(report_id)
        body = request.json() or {}
        meta = body.get("reportMetadata") if isinstance(body, dict) else None
        if not isinstance(meta, dict):
            raise SalesforceError(400, "BAD_REQUEST", "reportMetadata is required")
        merged = {**current, **meta, "id": report_id}
        obj = self._report_object(merged)
        self._columns(obj, list(merged.get("detailColumns") or []))
        merged["reportType"] = {"type": obj.name, "label": obj.label}
        with self.org.lock:
            self.reports[report_id] = merged
            table = self.org.tables["Report"]
            row = table.get(report_id)
            if row is not None:
                row.update(Name=str(merged["name"]), Description=merged.get("description"),
                           LastModifiedDate=now_utc(), SystemModstamp=now_utc())  # fmt: skip
                table.put(row)
        return json_response(200, self._describe(report_id))

    def _report(self, report_id: str) -> dict[str, Any]:
        meta = self.reports.get(report_id)
        if meta is None:
            raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
        return meta

    def list_reports(self, request: Request, version: str) -> Response:
        base = f"/services/data/v{version}/analytics/reports"
        return json_response(200, [
            {"id": rid, "name": m["name"], "url": f"{base}/{rid}",
             "describeUrl": f"{base}/{rid}/describe", "instancesUrl": f"{base}/{rid}/instances"}
            for rid, m in self.reports.items()
        ])  # fmt: skip

    def describe_report(self, request: Request, version: str, report_id: str) -> Response:
        self._report(report_id)
        return json_response(200, self._describe(report_id))

    def run_report(self, request: Request, version: str, report_id: str) -> Response:
        meta = self._report(report_id)
        obj = self.org.object(meta["reportType"]["type"])
        cols = self._columns(obj, meta["detailColumns"])
        frame = self.org.tables[obj.name].frame().filter(~pl.col("IsDeleted"))
        rows = []
        for rec in frame.select([f.name for f in cols]).head(2000).iter_rows():
            cells = []
            for f, v in zip(cols, rec, strict=True):
                value = render_value(f, v)
                cells.append({"label": "" if value is None else str(value), "value": value})
            rows.append({"dataCells": cells})
        return json_response(200, {
            "attributes": {"reportId": report_id, "reportName": meta["name"], "type": "Report"},
            "allData": frame.height <= 2000, "hasDetailRows": True,
            "factMap": {"T!T": {"rows": rows, "aggregates": [
                {"label": str(frame.height), "value": frame.height}]}},
            "reportMetadata": meta, "reportExtendedMetadata": {}, "groupingsAcross": {},
            "groupingsDown": {},
        })  # fmt: skip

    def delete_report(self, request: Request, version: str, report_id: str) -> Response:
        self._report(report_id)
        with self.org.lock:
            del self.reports[report_id]
            table = self.org.tables["Report"]
            row = table.get(report_id)
            if row is not None:
                row["IsDeleted"] = True
                table.put(row)
                table.deleted[report_id] = datetime.now(UTC).replace(microsecond=0)
        return empty(204)
