"""The sandbox org: object model, tables, DML rules and field-level security.

DML follows the REST API's record semantics: system fields (Id, CreatedDate, SystemModstamp...)
are set by the org, never by the caller (``INVALID_FIELD_FOR_INSERT_UPDATE``); required fields
give ``REQUIRED_FIELD_MISSING``; every write moves ``LastModifiedDate``/``SystemModstamp`` to the
current second (seconds precision, as Salesforce stores them); delete moves the row to the
recycle bin (``IsDeleted = true``).  Writes are *prepared* first and *committed* after, so
``allOrNone`` batches can roll back without touching the tables.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import polars as pl

from sandbox.salesforce.errors import RecordError, SalesforceError, invalid_type
from sandbox.salesforce.ids import IdFactory, is_valid_id
from sandbox.salesforce.query import Catalog
from sandbox.salesforce.schema import (
    NUMBER_TYPES,
    STRING_TYPES,
    SYSTEM_FIELDS,
    FieldDef,
    ObjectDef,
    standard_objects,
)
from sandbox.salesforce.store import Table

CLOSED_WON = {"closed won"}
FLS_OBJECTS = frozenset({"FieldPermissions", "PermissionSetAssignment", "PermissionSet"})
#: ObjectPermissions flags and the flags each one requires on the same row
#: (sforce_api_objects_objectpermissions.htm).
OBJECT_PERMISSION_NEEDS = {
    "PermissionsRead": (),
    "PermissionsCreate": ("PermissionsRead",),
    "PermissionsEdit": ("PermissionsRead",),
    "PermissionsDelete": ("PermissionsRead", "PermissionsEdit"),
    "PermissionsViewAllRecords": ("PermissionsRead",),
    "PermissionsModifyAllRecords": ("PermissionsRead", "PermissionsEdit", "PermissionsDelete",
                                    "PermissionsViewAllRecords"),
}  # fmt: skip


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def parse_datetime(value: str) -> datetime:
    """Salesforce datetimes: ``2024-01-01T10:00:00.000+0000``, ``...Z``, ``...+01:00``."""
    s = value.strip().replace("Z", "+00:00")
    if len(s) >= 5 and s[-5] in "+-" and s[-3] != ":":
        s = s[:-2] + ":" + s[-2:]
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def _json_error(value: Any, kind: str) -> SalesforceError:
    return SalesforceError(
        400,
        "JSON_PARSER_ERROR",
        f"Cannot deserialize instance of {kind} from {type(value).__name__} value {value!r} "
        "or request may be missing a required field",
    )


def coerce_value(f: FieldDef, value: Any) -> Any:
    """A JSON value as the column's Python value (raises JSON_PARSER_ERROR like the API)."""
    if value is None:
        return None
    t = f.type
    if t in STRING_TYPES:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float | str):
            return str(value)
        raise _json_error(value, "string")
    if t == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _json_error(value, "boolean")
    if t in NUMBER_TYPES:
        if isinstance(value, bool):
            raise _json_error(value, t)
        try:
            num = float(value)
        except (TypeError, ValueError):
            raise _json_error(value, t) from None
        return int(num) if t == "int" else num
    if t == "date":
        if isinstance(value, str):
            try:
                return date.fromisoformat(value[:10])
            except ValueError:
                pass
        raise _json_error(value, "date")
    if t == "datetime":
        if isinstance(value, str):
            try:
                return parse_datetime(value)
            except ValueError:
                pass
        raise _json_error(value, "datetime")
    raise _json_error(value, t)


@dataclass
class Prepared:
    """A validated write waiting to be committed."""

    obj: ObjectDef
    row: dict[str, Any]
    created: bool


class Org:
    """All mutable state of one sandbox org (thread-safe via one write lock)."""

    def __init__(
        self, frames: dict[str, pl.DataFrame], *, api_user_id: str, org_id: str,
        corporate_currency: str = "EUR",
    ) -> None:  # fmt: skip
        self.api_user_id = api_user_id
        self.org_id = org_id
        self.corporate_currency = corporate_currency
        self.ids = IdFactory()
        self.lock = threading.RLock()
        self.objects = standard_objects()
        self._extend_picklists(frames)
        self.tables: dict[str, Table] = {
            name: Table(obj, frames.get(name)) for name, obj in self.objects.items()
        }
        self._grants: tuple[frozenset[str], frozenset[str]] | None = None
        #: ``Object.Field`` names whose field-level security an admin removed from the API user
        #: (control plane ``revoke_fls``): such a field is as absent as a deleted one.
        self.revoked_fls: set[str] = set()
        self.profile_permission_set_id = self._seed_profile_permission_set()

    def _extend_picklists(self, frames: dict[str, pl.DataFrame]) -> None:
        # Seeded values (lead statuses, sources, stages...) join the picklists so describe
        # lists every value the data uses, as a real org's picklist would.
        for obj_name, frame in frames.items():
            obj = self.objects.get(obj_name)
            if obj is None:
                continue
            for f in obj.fields.values():
                if f.type == "picklist" and f.name in frame.columns:
                    seen = frame.get_column(f.name).drop_nulls().unique().sort().to_list()
                    extra = [v for v in seen if v not in f.picklist]
                    f.picklist = (*f.picklist, *extra)

    def _seed_profile_permission_set(self) -> str:
        # The API user's profile owns a permission set, as in a real org; granting FLS on it
        # (FieldPermissions with this ParentId) is the usual way to expose a new field.
        ps_id = self.ids.new("0PS")
        now = now_utc()
        self.tables["PermissionSet"].insert(self._system_row(
            ps_id, now, Name="X00e_SandboxIntegrationProfile", Label="Sandbox Integration",
            IsOwnedByProfile=True,
        ))  # fmt: skip
        self.tables["PermissionSetAssignment"].insert(self._system_row(
            self.ids.new("0Pa"), now, PermissionSetId=ps_id, AssigneeId=self.api_user_id,
        ))  # fmt: skip
        return ps_id

    def _system_row(self, rid: str, now: datetime, **values: Any) -> dict[str, Any]:
        return {
            "Id": rid, "IsDeleted": False, "CreatedDate": now, "CreatedById": self.api_user_id,
            "LastModifiedDate": now, "LastModifiedById": self.api_user_id,
            "SystemModstamp": now, **values,
        }  # fmt: skip

    # -- lookups ---------------------------------------------------------------------------------

    def object(self, name: str) -> ObjectDef:
        for k, obj in self.objects.items():
            if k.lower() == name.lower():
                return obj
        raise invalid_type(name)

    def rest_object(self, name: str) -> ObjectDef:
        """Like :meth:`object`, but a REST URL naming an unknown type is a 404 NOT_FOUND."""
        try:
            return self.object(name)
        except SalesforceError:
            raise SalesforceError(
                404, "NOT_FOUND", "The requested resource does not exist"
            ) from None

    def _grant_sets(self) -> tuple[frozenset[str], frozenset[str]]:
        """(readable, editable) ``Object.Field`` names granted to the API user by the
        FieldPermissions of its assigned permission sets (sforce_api_objects_fieldpermissions.htm:
        ``PermissionsRead`` to see a field, ``PermissionsEdit`` to write it)."""
        grants = self._grants  # asked per field per written row: no lock once known
        if grants is not None:
            return grants
        with self.lock:
            if self._grants is not None:
                return self._grants
            psa = self.tables["PermissionSetAssignment"].frame()
            sets = psa.filter(
                (pl.col("AssigneeId") == self.api_user_id) & ~pl.col("IsDeleted")
            ).get_column("PermissionSetId")
            fp = self.tables["FieldPermissions"].frame().filter(
                pl.col("ParentId").is_in(sets.implode()) & ~pl.col("IsDeleted")
            )  # fmt: skip
            read = fp.filter(pl.col("PermissionsRead")).get_column("Field")
            edit = fp.filter(pl.col("PermissionsRead") & pl.col("PermissionsEdit"))
            self._grants = (frozenset(read.to_list()),
                            frozenset(edit.get_column("Field").to_list()))  # fmt: skip
            return self._grants

    def granted_fields(self) -> frozenset[str]:
        """``Object.Field`` names readable by the API user through its permission sets."""
        return self._grant_sets()[0]

    def visible(self, obj: ObjectDef, f: FieldDef) -> bool:
        name = f"{obj.name}.{f.name}"
        if name in self.revoked_fls:
            return False
        return not f.needs_fls or name in self.granted_fields()

    def editable(self, obj: ObjectDef, f: FieldDef) -> bool:
        """Field-level security lets the API user write ``f`` (read-only FLS does not)."""
        name = f"{obj.name}.{f.name}"
        if name in self.revoked_fls:
            return False
        return not f.needs_fls or name in self._grant_sets()[1]

    def catalog(self) -> Catalog:
        return Catalog(self.objects, self.tables, self.visible)

    def visible_fields(self, obj: ObjectDef) -> list[FieldDef]:
        return [f for f in obj.fields.values() if self.visible(obj, f)]

    def field_or_error(self, obj: ObjectDef, name: str) -> FieldDef:
        f = obj.field(name)
        if f is None or not self.visible(obj, f):
            raise SalesforceError(
                400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj.name}"
            )
        return f

    # -- DML -------------------------------------------------------------------------------------

    def coerce(self, obj: ObjectDef, body: dict[str, Any]) -> dict[str, Any]:
        """Body fields → canonical field names and Python values (request-level errors)."""
        out: dict[str, Any] = {}
        for key, value in body.items():
            if key == "attributes":
                continue
            f = self.field_or_error(obj, key)
            out[f.name] = coerce_value(f, value)
        return out

    def _check_writable(self, obj: ObjectDef, values: dict[str, Any], creating: bool) -> None:
        bad = [
            k for k in values
            if k in SYSTEM_FIELDS or not (obj.fields[k].createable if creating
                                          else obj.fields[k].updateable)
            or not self.editable(obj, obj.fields[k])
        ]  # fmt: skip
        if bad:
            raise RecordError(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(bad)}. Please check the security "
                "settings of this field and verify that it is read/write for your Profile or "
                "Permission Set.",
                bad,
            )

    def _check_references(self, obj: ObjectDef, values: dict[str, Any]) -> None:
        for k, v in values.items():
            f = obj.fields[k]
            if f.type != "reference" or v is None:
                continue
            if not is_valid_id(v):
                raise RecordError("MALFORMED_ID", f"{f.label}: id value of incorrect type: {v}",
                                  [k])  # fmt: skip
            if len(f.reference_to) == 1 and f.reference_to[0] in self.tables:
                target = self.tables[f.reference_to[0]]
                if target.get(v) is None and v != self.api_user_id:
                    raise RecordError(
                        "INVALID_CROSS_REFERENCE_KEY",
                        "invalid cross reference id", [k],
                    )  # fmt: skip

    def _derive(self, obj: ObjectDef, row: dict[str, Any]) -> None:
        """Fields Salesforce computes from others."""
        if obj.name == "Opportunity":
            stage = (row.get("StageName") or "").lower()
            row["IsClosed"] = stage.startswith("closed")
            row["IsWon"] = stage in CLOSED_WON
            close = row.get("CloseDate")
            if isinstance(close, date):
                row["FiscalYear"] = close.year
                row["FiscalQuarter"] = (close.month - 1) // 3 + 1
            row["ForecastCategory"] = (
                "Closed" if row["IsWon"] else "Omitted" if row["IsClosed"] else "Pipeline"
            )
        if obj.name in ("Lead", "User") and "Name" in obj.fields:
            row["Name"] = " ".join(p for p in (row.get("FirstName"), row.get("LastName")) if p)
        if obj.name == "Task":
            row["IsClosed"] = row.get("Status") == "Completed"
            what = row.get("WhatId")
            if isinstance(what, str) and what.startswith("001"):
                row["AccountId"] = what

    def _required(self, obj: ObjectDef, row: dict[str, Any]) -> None:
        missing = [
            f.name for f in obj.fields.values()
            if not f.nillable and f.createable and f.name not in SYSTEM_FIELDS
            and row.get(f.name) in (None, "")
        ]  # fmt: skip
        if missing:
            raise RecordError(
                "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                missing,
            )  # fmt: skip

    # -- setup objects (permission sets and their permissions) ----------------------------------

    def _validate_setup(self, obj: ObjectDef, row: dict[str, Any]) -> None:
        for f in obj.fields.values():
            if f.unique and row.get(f.name) is not None:
                # A unique field (customfield.htm ``unique``; case-insensitive unless
                # ``caseSensitive``) refuses a second record with the same value.
                self._unique(obj, row, (f.name,), "DUPLICATE_VALUE")
        if obj.name == "FieldPermissions":
            self._validate_field_permissions(row)
        elif obj.name == "ObjectPermissions":
            self._validate_object_permissions(row)
        elif obj.name == "PermissionSetAssignment":
            self._unique(obj, row, ("PermissionSetId", "AssigneeId"), "DUPLICATE_VALUE")
        elif obj.name == "PermissionSet":
            self._unique(obj, row, ("Name",), "DUPLICATE_DEVELOPER_NAME",
                         "The API Name you entered is already in use.")  # fmt: skip

    def _unique(
        self, obj: ObjectDef, row: dict[str, Any], keys: tuple[str, ...], code: str,
        message: str | None = None,
    ) -> None:  # fmt: skip
        table = self.tables[obj.name]
        if len(keys) == 1:
            v = row.get(keys[0])
            others = [i for i in table.lookup(keys[0], v, fold_case=True) if i != row["Id"]]
        else:
            frame = table.frame().filter(~pl.col("IsDeleted") & (pl.col("Id") != row["Id"]))
            for k in keys:
                v = row.get(k)
                frame = frame.filter(
                    pl.col(k).str.to_lowercase() == v.lower()
                    if isinstance(v, str)
                    else pl.col(k) == v
                )
            others = frame.get_column("Id").to_list()
        if others:
            other = others[0]
            # Wording of the API's unique-index error (errorcodes.htm DUPLICATE_VALUE).
            raise RecordError(
                code, message or f"duplicate value found: {keys[-1]} duplicates value on record "
                f"with id: {other}", list(keys),
            )  # fmt: skip

    def _validate_field_permissions(self, row: dict[str, Any]) -> None:
        """FieldPermissions rules (sforce_api_objects_fieldpermissions.htm): ``Field`` is a
        restricted picklist of ``SobjectType.FieldName`` (API 50+: a lookup may be named by its
        relationship, ``Opportunity.Account``, and is stored as ``Opportunity.AccountId``);
        ``PermissionsEdit`` requires ``PermissionsRead``; one row per permission set and field."""
        sobject = str(row.get("SobjectType") or "")
        target = str(row.get("Field") or "")
        prefix, _, fname = target.partition(".")
        bad = RecordError(
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            f"Field Name: bad value for restricted picklist field: {target}", ["Field"],
        )  # fmt: skip
        try:
            obj = self.object(sobject)
        except SalesforceError:
            raise RecordError(
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"Object Name: bad value for restricted picklist field: {sobject}",
                ["SobjectType"],
            ) from None
        if prefix.lower() != obj.name.lower() or not fname:
            raise bad
        f = obj.field(fname) or obj.relationship(fname)
        if f is None or f.name in SYSTEM_FIELDS:
            raise bad
        row["SobjectType"] = obj.name
        row["Field"] = f"{obj.name}.{f.name}"
        if row.get("PermissionsEdit") and not row.get("PermissionsRead"):
            # The rule is documented ("Requires PermissionsRead"); the message text is ours.
            raise RecordError(
                "FIELD_INTEGRITY_EXCEPTION",
                "Permission Edit requires Permission Read",
                ["PermissionsRead"],
            )
        self._unique(self.objects["FieldPermissions"], row, ("ParentId", "Field"),
                     "DUPLICATE_VALUE")  # fmt: skip

    def _validate_object_permissions(self, row: dict[str, Any]) -> None:
        """ObjectPermissions rules (sforce_api_objects_objectpermissions.htm): at least one
        permission ("You must enable at least one permission."), each permission's
        prerequisites, an existing ``SobjectType``, one row per permission set and object."""
        sobject = str(row.get("SobjectType") or "")
        try:
            row["SobjectType"] = self.object(sobject).name
        except SalesforceError:
            raise RecordError(
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"Object Name: bad value for restricted picklist field: {sobject}",
                ["SobjectType"],
            ) from None
        if not any(row.get(k) for k in OBJECT_PERMISSION_NEEDS):
            raise RecordError(
                "FIELD_INTEGRITY_EXCEPTION",
                "You must enable at least one permission.",
                ["Permissions"],
            )
        for flag, needs in OBJECT_PERMISSION_NEEDS.items():
            missing = [n for n in needs if row.get(flag) and not row.get(n)]
            if missing:
                raise RecordError("FIELD_INTEGRITY_EXCEPTION",
                                  f"{flag} requires {', '.join(missing)}", missing)  # fmt: skip
        self._unique(self.objects["ObjectPermissions"], row, ("ParentId", "SobjectType"),
                     "DUPLICATE_VALUE")  # fmt: skip

    def prepare_create(self, obj: ObjectDef, values: dict[str, Any]) -> Prepared:
        self._check_writable(obj, values, creating=True)
        self._check_references(obj, values)
        now = now_utc()
        row: dict[str, Any] = {name: None for name in obj.fields}
        for f in obj.fields.values():
            if f.type == "boolean":
                row[f.name] = False
        row.update(values)
        if "OwnerId" in obj.fields and row.get("OwnerId") is None:
            row["OwnerId"] = self.api_user_id
        if "CurrencyIsoCode" in obj.fields and row.get("CurrencyIsoCode") is None:
            row["CurrencyIsoCode"] = self.corporate_currency
        row.update(self._system_row(self.ids.new(obj.key_prefix), now))
        self._derive(obj, row)
        self._required(obj, row)
        self._validate_setup(obj, row)
        return Prepared(obj, row, created=True)

    def prepare_update(
        self, obj: ObjectDef, record_id: str, values: dict[str, Any], *, check: bool = True
    ) -> Prepared:
        current = self.tables[obj.name].get(record_id)
        if current is None and len(record_id) == 15:
            current = next(
                iter(
                    self.tables[obj.name]
                    .frame()
                    .filter(pl.col("Id").str.slice(0, 15) == record_id)
                    .iter_rows(named=True)
                ),
                None,
            )
        if current is None:
            raise RecordError("NOT_FOUND", "The requested resource does not exist")
        if current["IsDeleted"]:
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted")
        if check:
            self._check_writable(obj, values, creating=False)
            self._check_references(obj, values)
        row = dict(current)
        row.update(values)
        now = now_utc()
        row["LastModifiedDate"] = row["SystemModstamp"] = now
        row["LastModifiedById"] = self.api_user_id
        self._derive(obj, row)
        self._required(obj, row)
        if check:
            self._validate_setup(obj, row)
        return Prepared(obj, row, created=False)

    def prepare_delete(self, obj: ObjectDef, record_id: str) -> Prepared:
        current = self.tables[obj.name].get(record_id)
        if current is None:
            raise RecordError("NOT_FOUND", "The requested resource does not exist")
        if current["IsDeleted"]:
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted")
        row = dict(current)
        now = now_utc()
        row["IsDeleted"] = True
        row["LastModifiedDate"] = row["SystemModstamp"] = now
        return Prepared(obj, row, created=False)

    def commit(self, p: Prepared) -> None:
        table = self.tables[p.obj.name]
        with self.lock:
            if p.created:
                table.insert(p.row)
            else:
                table.put(p.row)
                if p.row["IsDeleted"]:
                    table.deleted[p.row["Id"]] = p.row["SystemModstamp"]
            if p.obj.name in FLS_OBJECTS:
                self._grants = None

    def find_by_external_id(self, obj: ObjectDef, f: FieldDef, value: str) -> list[str]:
        typed = coerce_value(f, value)
        fold_case = f.type in STRING_TYPES - {"id", "reference"}
        return self.tables[obj.name].lookup(f.name, str(typed) if fold_case else typed,
                                            fold_case=fold_case)  # fmt: skip

    # -- rendering -------------------------------------------------------------------------------

    def record_json(
        self, obj: ObjectDef, row: dict[str, Any], version: str, fields: list[str] | None = None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attributes": {
                "type": obj.name,
                "url": f"/services/data/v{version}/sobjects/{obj.name}/{row['Id']}",
            }
        }
        names = fields or [f.name for f in self.visible_fields(obj)]
        for name in names:
            f = self.field_or_error(obj, name)
            out[f.name] = render_value(f, row.get(f.name))
        return out


def render_value(f: FieldDef, value: Any) -> Any:
    if value is None:
        return None
    if f.type == "datetime" and isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    if f.type == "date" and isinstance(value, date):
        return value.isoformat()
    return value


def format_sf_datetime(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
