"""``/crm/v3/objects/{objectType}``: list, get, create, update, archive, search and batch.

Success codes are exactly those hubspot-api-client 12 deserialises (``crm/objects/api/*.py``):
create 201, batch/create 201, partial batch failures 207, archive and batch/archive 204,
everything else 200.
"""

from __future__ import annotations

from typing import Any

from sandbox.http import Request, Response, empty
from sandbox.hubspot.errors import HubSpotError, non_unique_id_property, not_found, validation
from sandbox.hubspot.params import flag, integer, multi, next_link, ok
from sandbox.hubspot.portal import Portal
from sandbox.hubspot.search import page_window, parse_request
from sandbox.hubspot.store import ObjectTable, Record, Row
from sandbox.hubspot.values import iso_from_ms, now_ms
from sandbox.hubspot.writes import (
    apply_create,
    apply_update,
    invalid,
    normalize,
    required_error,
    validate_stage,
)

MAX_PAGE = 100
MAX_BATCH = 100
MAX_BATCH_WITH_HISTORY = 50


def _id(text: str) -> int | None:
    return int(text) if text.isdigit() else None


class ObjectsApi:
    def __init__(self, portal: Portal) -> None:
        self.portal = portal

    # -- rendering -----------------------------------------------------------------------------
    def _render(
        self,
        table: ObjectTable,
        rec: Record | Row,
        props: list[str] | None,
        history: list[str] | None = None,
        assoc: list[str] | None = None,
    ) -> dict[str, Any]:
        out = table.render(rec, props)
        if history:
            hist: dict[str, list[dict[str, Any]]] = {}
            for name in history:
                if name not in table.registry.names():
                    continue
                value = out["properties"].get(name)
                if value is None and name not in out["properties"]:
                    value = rec.props.get(name)
                if value is not None:
                    hist[name] = [
                        {
                            "value": value,
                            "timestamp": iso_from_ms(rec.updated_ms),
                            "sourceType": "API",
                            "sourceId": "sandbox",
                        }
                    ]
                else:
                    hist[name] = []
            out["propertiesWithHistory"] = hist
        if assoc:
            out["associations"] = self._v3_associations(table, rec.id, assoc)
        return out

    def _v3_associations(self, table: ObjectTable, rid: int, names: list[str]) -> dict[str, Any]:
        """The v3 ``associations`` block of a record (``?associations=companies``)."""
        out: dict[str, Any] = {}
        for name in names:
            try:
                tt = self.portal.resolve(name)
            except HubSpotError:
                continue
            results = []
            target = self.portal.tables[tt.name]
            for did, types in self.portal.assoc.targets(table.ot.name, tt.name, rid):
                if not target.is_live(did):
                    continue  # archived records drop out of associations
                for t in types:
                    # v3 names the primary (or only) type "deal_to_company" and the plain one
                    # "deal_to_company_unlabeled" when both exist.
                    plain = t["label"] == "Primary" or len(types) == 1
                    suffix = "" if plain else "_unlabeled"
                    results.append(
                        {"id": str(did), "type": f"{table.ot.singular}_to_{tt.singular}{suffix}"}
                    )
            if results:
                out[tt.name] = {"results": results}
        return out

    # -- list / get ----------------------------------------------------------------------------
    def list_records(self, request: Request, object_type: str) -> Response:
        table = self.portal.table(object_type)
        history = multi(request, "propertiesWithHistory")
        limit = integer(request, "limit", 10, 1, MAX_PAGE)
        if history:
            limit = min(limit, MAX_BATCH_WITH_HISTORY)
        after_raw = request.arg("after")
        after = 0
        if after_raw:
            if not after_raw.isdigit():
                raise validation(f"Invalid after cursor: {after_raw}")
            after = int(after_raw)
        archived = flag(request, "archived")
        props = multi(request, "properties")
        assoc = multi(request, "associations")
        ids = table.list_ids(after, limit + 1, archived=archived)
        page, more = ids[:limit], len(ids) > limit
        columns = table.output_properties(props) + (history or [])
        recs = self._records(table, page, archived, columns)
        if history:
            results = [self._render(table, r, props, history, assoc) for r in recs]
        else:
            results = table.render_many(recs, props)
            for rec, item in zip(recs, results, strict=True):
                if assoc:
                    item["associations"] = self._v3_associations(table, rec.id, assoc)
        body: dict[str, Any] = {"results": results}
        if more:
            nxt = str(ids[limit])
            body["paging"] = {"next": {"after": nxt, "link": next_link(request, nxt)}}
        return ok(body)

    def _records(
        self, table: ObjectTable, ids: list[int], archived: bool, columns: list[str]
    ) -> list[Record | Row]:
        if archived:
            return [table.rows[i] for i in ids]
        got = table.get_many(ids, columns)
        return [got[i] for i in ids if i in got]

    def _lookup(
        self, table: ObjectTable, key: str, id_property: str | None, archived: bool = False
    ) -> Record | None:
        if id_property and id_property != "hs_object_id":
            self._check_id_property(table, id_property)
            hit = table.find_by(id_property, [key])
            return table.get(hit[key]) if key in hit else None
        rid = _id(key)
        return None if rid is None else table.get(rid, archived=archived)

    def _check_id_property(self, table: ObjectTable, id_property: str, write: bool = False) -> None:
        p = table.registry.get(id_property)
        unique = p is not None and (
            p.has_unique_value or (table.ot.name == "contacts" and id_property == "email")
        )
        if write and (not unique or id_property == "hs_object_id"):
            raise non_unique_id_property(table, id_property)
        if not unique:
            raise validation(
                f"{id_property} is not a unique property and cannot be used as idProperty",
                context={"idProperty": [id_property]},
            )

    def _check_write_keys(self, table: ObjectTable, inputs: list[Any]) -> list[str]:
        """The ids of a batch update/upsert, after the whole-batch checks HubSpot makes: every
        ``idProperty`` given must be unique (``hs_object_id`` is not: record ids go in ``id``
        with no ``idProperty``), and no id may appear twice (a 400 for the whole batch)."""
        keys: list[str] = []
        for inp in inputs:
            inp = inp or {}
            if "idProperty" in inp and inp["idProperty"] is not None:
                self._check_id_property(table, str(inp["idProperty"]), write=True)
            keys.append(str(inp.get("id", "")))
        seen: set[tuple[str, str]] = set()
        dupes: list[str] = []
        for inp, key in zip(inputs, keys, strict=True):
            ident = (str((inp or {}).get("idProperty") or "hs_object_id"), key)
            if ident in seen and key not in dupes:
                dupes.append(key)
            seen.add(ident)
        if dupes:
            # Wording and context of HubSpot's answer, as recorded in rudderlabs'
            # rudder-transformer HubSpot tests and amp-labs connectors' mock responses.
            raise validation(
                f"Duplicate IDs found in batch input: [{', '.join(dupes)}]. IDs must be unique",
                context={"ids": dupes},
            )
        return keys

    def _missing(self, table: ObjectTable, key: str) -> HubSpotError:
        return not_found(
            "Object not found.  objectId are usually numeric.",
            context={"id": [key]},
        )

    def get(self, request: Request, object_type: str, object_id: str) -> Response:
        table = self.portal.table(object_type)
        archived = flag(request, "archived")
        rec = self._lookup(table, object_id, request.arg("idProperty"), archived)
        if rec is None:
            raise self._missing(table, object_id)
        return ok(
            self._render(
                table,
                rec,
                multi(request, "properties"),
                multi(request, "propertiesWithHistory"),
                multi(request, "associations"),
            )
        )

    # -- create / update / archive -------------------------------------------------------------
    def _body(self, request: Request) -> Any:
        try:
            return request.json()
        except ValueError as exc:
            raise validation(f"Invalid input JSON: {exc}") from exc

    def _prepare(
        self, table: ObjectTable, props: Any, creating: bool = False
    ) -> dict[str, str | None]:
        values, errors = normalize(table, props, self.portal)
        errors += validate_stage(self.portal, table, values)
        if creating:
            errors += self._missing_required(table, values)
        if errors:
            raise invalid(errors)
        return values

    def _missing_required(
        self, table: ObjectTable, values: dict[str, str | None]
    ) -> list[dict[str, Any]]:
        # Engagements need hs_timestamp (calls/emails/meetings/tasks guides); custom objects
        # need their schema's requiredProperties.
        required: list[str] = []
        if table.ot.name in ("calls", "emails", "meetings", "tasks"):
            required = ["hs_timestamp"]
        elif table.ot.custom:
            required = list(self.portal.schemas[table.ot.name].get("requiredProperties") or [])
        return [required_error(name) for name in required if not values.get(name)]

    def _check_unique(
        self, table: ObjectTable, values: dict[str, str | None], exclude: int | None = None
    ) -> None:
        for name, v in values.items():
            p = table.registry.get(name)
            unique = p is not None and (
                p.has_unique_value or (table.ot.name == "contacts" and name == "email")
            )
            if not unique or not v:
                continue
            hit = table.find_by(name, [v])
            if v in hit and hit[v] != exclude:
                what = table.ot.singular.capitalize()
                raise HubSpotError(
                    409,
                    f"{what} already exists. Existing ID: {hit[v]}",
                    "CONFLICT",
                    context={"id": [str(hit[v])]},
                )

    def _associate_inputs(self, table: ObjectTable, rid: int, assoc: Any) -> None:
        for a in assoc or []:
            to_id = _id(str((a.get("to") or {}).get("id", "")))
            types = a.get("types") or []
            if to_id is None or not types:
                raise validation("Each association needs to.id and types")
            tt = self._type_for_assoc(table, types)
            type_ids = [int(t.get("associationTypeId")) for t in types]
            self.portal.assoc.add(table.ot.name, tt, rid, to_id, type_ids)

    def _type_for_assoc(self, table: ObjectTable, types: list[dict[str, Any]]) -> str:
        # v3 create takes a type id without the target type; find the direction it belongs to.
        tid = int(types[0].get("associationTypeId", -1))
        for other in self.portal.types:
            unl, prim = self.portal.assoc.type_ids(table.ot.name, other)
            if tid in (unl, prim):
                return other
        raise validation(f"Unknown associationTypeId {tid} for {table.ot.name}")

    def create(self, request: Request, object_type: str) -> Response:
        table = self.portal.table(object_type)
        body = self._body(request) or {}
        values = self._prepare(table, body.get("properties"), creating=True)
        self._check_unique(table, values)
        row = apply_create(self.portal, table, values)
        self._associate_inputs(table, row.id, body.get("associations"))
        return ok(self._render(table, row, [k for k, v in row.props.items() if v is not None]), 201)

    def update(self, request: Request, object_type: str, object_id: str) -> Response:
        table = self.portal.table(object_type)
        rec = self._lookup(table, object_id, request.arg("idProperty"))
        if rec is None:
            raise self._missing(table, object_id)
        values = self._prepare(table, (self._body(request) or {}).get("properties"))
        self._check_unique(table, values, exclude=rec.id)
        row = apply_update(self.portal, table, rec.id, values)
        assert row is not None
        return ok(self._render(table, row, [k for k, v in row.props.items() if v is not None]))

    def archive(self, request: Request, object_type: str, object_id: str) -> Response:
        table = self.portal.table(object_type)
        rid = _id(object_id)
        if rid is not None:
            table.archive(rid)
        return empty(204)  # HubSpot answers 204 even for an unknown or already archived id

    def merge(self, request: Request, object_type: str) -> Response:
        """Merge two records (``/crm/v3/objects/{type}/merge``): the primary keeps its id and
        values (empty ones filled from the other), lists the merged id in
        ``hs_merged_object_ids``, and takes over the other's associations; the merged id then
        resolves to the primary, as HubSpot redirects it (fivetran/dbt_hubspot#134)."""
        table = self.portal.table(object_type)
        body = self._body(request) or {}
        keep_key = str(body.get("primaryObjectId", ""))
        gone_key = str(body.get("objectIdToMerge", ""))
        keep = table.get(int(keep_key)) if keep_key.isdigit() else None
        gone = table.get(int(gone_key)) if gone_key.isdigit() else None
        if keep is None or gone is None or keep.id == gone.id:
            raise validation(
                "primaryObjectId and objectIdToMerge must be two different existing records",
                context={"ids": [keep_key, gone_key]},
            )
        fill: dict[str, str | None] = {
            k: v for k, v in gone.props.items() if v and not keep.props.get(k)
        }
        merged = [m for m in (keep.props.get("hs_merged_object_ids") or "").split(";") if m]
        merged += [
            str(gone.id),
            *[m for m in (gone.props.get("hs_merged_object_ids") or "").split(";") if m],
        ]
        fill["hs_merged_object_ids"] = ";".join(merged)
        for other in list(self.portal.types):
            for did, types in self.portal.assoc.targets(table.ot.name, other, gone.id):
                type_ids = [t["typeId"] for t in types]
                self.portal.assoc.add(table.ot.name, other, keep.id, did, type_ids)
        table.archive(gone.id)
        table.merged_into[gone.id] = keep.id
        row = table.update(keep.id, fill)
        assert row is not None
        return ok(table.render(row, sorted(k for k, v in row.props.items() if v is not None)))

    # -- search --------------------------------------------------------------------------------
    def search(self, request: Request, object_type: str) -> Response:
        table = self.portal.table(object_type)
        req = parse_request(self._body(request))
        ids = self.portal.search.ordered_ids(
            table, req, self._assoc_lookup(table), self.portal.assoc.version
        )
        total = len(ids)
        start, end, nxt = page_window(total, req.after, req.limit)
        page = [int(x) for x in ids[start:end]]
        got = table.get_many(page, table.output_properties(req.properties))
        body: dict[str, Any] = {
            "total": total,
            "results": table.render_many([got[i] for i in page if i in got], req.properties),
        }
        if nxt is not None:
            body["paging"] = {"next": {"after": str(nxt)}}
        return ok(body)

    def _assoc_lookup(self, table: ObjectTable) -> Any:
        def lookup(other: str, record_id: str) -> set[int]:
            ot = self.portal.resolve(other)
            if not record_id.isdigit():
                raise validation(f"Invalid record id {record_id!r} for associations.{other}")
            pairs = self.portal.assoc.targets(ot.name, table.ot.name, int(record_id))
            return {did for did, _ in pairs}

        return lookup

    # -- batch ---------------------------------------------------------------------------------
    def _inputs(self, request: Request, limit: int = MAX_BATCH) -> tuple[dict[str, Any], list[Any]]:
        body = self._body(request)
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
            raise validation("Invalid input JSON: expected an object with 'inputs'")
        inputs = body["inputs"]
        if len(inputs) > limit:
            raise validation(
                f"Too many inputs ({len(inputs)}). Batch requests accept at most {limit} inputs.",
                context={"inputs": [str(len(inputs))], "maxInputs": [str(limit)]},
            )
        return body, inputs

    def _batch(
        self,
        results: list[dict[str, Any]],
        errors: list[dict[str, Any]],
        started: int,
        ok_status: int = 200,
    ) -> Response:
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": iso_from_ms(started),
            "completedAt": iso_from_ms(now_ms()),
        }
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
            return ok(body, 207)
        return ok(body, ok_status)

    def _fault_errors(
        self, request: Request, keys: list[str]
    ) -> tuple[set[int], list[dict[str, Any]]]:
        """Per-record faults of the control plane: indices that fail and their error entries."""
        failed: set[int] = set()
        errors: list[dict[str, Any]] = []
        for i, key in enumerate(keys):
            if request.record_fault("lock_error"):
                failed.add(i)
                errors.append(
                    {
                        "status": "error",
                        "category": "CONFLICT",
                        "subCategory": "crm.objects.RECORD_LOCKED",
                        "message": f"Record {key} is locked by another update; retry.",
                        "context": {"ids": [key]},
                        "errors": [],
                        "links": {},
                    }
                )
            elif request.record_fault("partial_batch_failure"):
                failed.add(i)
                errors.append(
                    {
                        "status": "error",
                        "category": "VALIDATION_ERROR",
                        "message": f"Record {key} failed validation.",
                        "context": {"ids": [key]},
                        "errors": [],
                        "links": {},
                    }
                )
        return failed, errors

    def batch_read(self, request: Request, object_type: str) -> Response:
        table = self.portal.table(object_type)
        started = now_ms()
        body, inputs = self._inputs(request)
        history = body.get("propertiesWithHistory") or None
        if history and len(inputs) > MAX_BATCH_WITH_HISTORY:
            raise validation(
                f"Batch read with propertiesWithHistory accepts at most "
                f"{MAX_BATCH_WITH_HISTORY} inputs."
            )
        id_prop = body.get("idProperty")
        keys = [str((i or {}).get("id", "")) for i in inputs]
        archived = flag(request, "archived")
        if id_prop and id_prop != "hs_object_id":
            self._check_id_property(table, id_prop)
            hit = table.find_by(id_prop, keys)
            found = {k: table.get(hit[k]) for k in keys if k in hit}
        else:
            found = {k: table.get(int(k), archived=archived) for k in keys if k.isdigit()}
        results, missing = [], []
        seen: set[int] = set()
        for k in keys:
            rec = found.get(k)
            if rec is None:
                missing.append(k)
            elif rec.id not in seen:
                seen.add(rec.id)
                results.append(self._render(table, rec, body.get("properties"), history))
        errors = []
        if missing:
            errors.append(
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": f"Could not get some {table.ot.name} objects, they may be "
                    "deleted or not exist. Check that ids are valid.",
                    "context": {"ids": missing},
                    "errors": [],
                    "links": {},
                }
            )
        return self._batch(results, errors, started)

    def batch_create(self, request: Request, object_type: str) -> Response:
        table = self.portal.table(object_type)
        started = now_ms()
        _, inputs = self._inputs(request)
        prepared = [self._prepare(table, (i or {}).get("properties"), True) for i in inputs]
        failed, errors = self._fault_errors(request, [f"input {n}" for n in range(len(inputs))])
        results = []
        for n, (inp, values) in enumerate(zip(inputs, prepared, strict=True)):
            if n in failed:
                continue
            self._check_unique(table, values)
            row = apply_create(self.portal, table, values)
            self._associate_inputs(table, row.id, (inp or {}).get("associations"))
            results.append(
                self._render(table, row, [k for k, v in row.props.items() if v is not None])
            )
        return self._batch(results, errors, started, 201)

    def batch_update(self, request: Request, object_type: str) -> Response:
        table = self.portal.table(object_type)
        started = now_ms()
        _, inputs = self._inputs(request)
        keys = self._check_write_keys(table, inputs)
        prepared = [self._prepare(table, (i or {}).get("properties")) for i in inputs]
        failed, errors = self._fault_errors(request, keys)
        results, missing = [], []
        for n, (inp, values) in enumerate(zip(inputs, prepared, strict=True)):
            if n in failed:
                continue
            rec = self._lookup(table, keys[n], (inp or {}).get("idProperty"))
            if rec is None:
                missing.append(keys[n])
                continue
            self._check_unique(table, values, exclude=rec.id)
            row = apply_update(self.portal, table, rec.id, values)
            assert row is not None
            results.append(self._render(table, row, list(values)))
        if missing:
            errors.append(
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": f"Could not update some {table.ot.name} objects, they may "
                    f"be deleted or not exist.",
                    "context": {"ids": missing},
                    "errors": [],
                    "links": {},
                }
            )
        return self._batch(results, errors, started)

    def batch_upsert(self, request: Request, object_type: str) -> Response:
        table = self.portal.table(object_type)
        started = now_ms()
        _, inputs = self._inputs(request)
        keys = self._check_write_keys(table, inputs)
        prepared = [self._prepare(table, (i or {}).get("properties")) for i in inputs]
        failed, errors = self._fault_errors(request, keys)
        results = []
        for n, (inp, values) in enumerate(zip(inputs, prepared, strict=True)):
            if n in failed:
                continue
            id_prop = str((inp or {}).get("idProperty") or "hs_object_id")
            rec = self._lookup(table, keys[n], id_prop)
            if rec is not None:
                row = apply_update(self.portal, table, rec.id, values)
                assert row is not None
                out = self._render(table, row, list(values))
                out["new"] = False
            else:
                if id_prop == "hs_object_id":
                    errors.append(
                        {
                            "status": "error",
                            "category": "OBJECT_NOT_FOUND",
                            "message": f"No {table.ot.singular} with id {keys[n]}",
                            "context": {"ids": [keys[n]]},
                            "errors": [],
                            "links": {},
                        }
                    )
                    continue
                values = {**values, id_prop: keys[n]}
                self._check_unique(table, values)
                row = apply_create(self.portal, table, values)
                out = self._render(table, row, list(values))
                out["new"] = True
            results.append(out)
        return self._batch(results, errors, started)

    def batch_archive(self, request: Request, object_type: str) -> Response:
        table = self.portal.table(object_type)
        _, inputs = self._inputs(request)
        for i in inputs:
            rid = _id(str((i or {}).get("id", "")))
            if rid is not None:
                table.archive(rid)
        return empty(204)
