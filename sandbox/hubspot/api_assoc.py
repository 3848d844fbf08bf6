"""Associations v4: per-record read/create/delete, default associations, batch read/create/
archive and labels (paths and success codes as hubspot-api-client 12 calls them in
``crm/associations/v4/api``).

Batch read takes up to 1,000 inputs (changelog "Batch Read Limit for HubSpot Associations API",
Feb 2025).  An input with no associations of the requested type comes back as an error entry of
a 207, as HubSpot reports it (``crm.associations.NO_ASSOCIATIONS_FOUND``)."""

from __future__ import annotations

from typing import Any

from sandbox.http import Request, Response, empty
from sandbox.hubspot.errors import not_found, validation
from sandbox.hubspot.params import integer, ok
from sandbox.hubspot.portal import Portal
from sandbox.hubspot.schema import ObjectType
from sandbox.hubspot.values import iso_from_ms, now_ms

MAX_BATCH_READ = 1000
MAX_BATCH_WRITE = 2000


def _int_id(v: Any) -> int:
    s = str(v)
    if not s.isdigit():
        raise validation(f"Invalid object id {v!r}")
    return int(s)


class AssocApi:
    def __init__(self, portal: Portal) -> None:
        self.portal = portal

    def _types(self, ft: str, tt: str) -> tuple[ObjectType, ObjectType]:
        return self.portal.resolve(ft), self.portal.resolve(tt)

    def _targets(
        self, f: ObjectType, t: ObjectType, fid: int
    ) -> list[tuple[int, list[dict[str, Any]]]]:
        """Associations to live records only: archiving a record hides its associations (they
        come back if it is restored), as in HubSpot."""
        table = self.portal.tables[t.name]
        return [
            (d, ty)
            for d, ty in self.portal.assoc.targets(f.name, t.name, fid)
            if table.get(d) is not None
        ]

    def _exists(self, ot: ObjectType, rid: int) -> None:
        if self.portal.tables[ot.name].get(rid) is None:
            raise not_found(f"No {ot.singular} with id {rid} exists", context={"id": [str(rid)]})

    def _body(self, request: Request) -> Any:
        try:
            return request.json()
        except ValueError as exc:
            raise validation(f"Invalid input JSON: {exc}") from exc

    def _type_ids(self, f: ObjectType, t: ObjectType, types: Any) -> list[int]:
        if not isinstance(types, list) or not types:
            raise validation("At least one association type is required")
        out = []
        known = {d["typeId"] for d in self.portal.assoc.labels(f.name, t.name)}
        for spec in types:
            tid = int((spec or {}).get("associationTypeId", -1))
            if tid not in known:
                raise validation(
                    f"{tid} is not a valid association type id between {f.name} and {t.name}",
                    context={"associationTypeId": [str(tid)]},
                )
            out.append(tid)
        return out

    def _pair_json(self, f: ObjectType, fid: int, t: ObjectType, tid: int) -> dict[str, Any]:
        types = dict(self.portal.assoc.targets(f.name, t.name, fid)).get(tid, [])
        return {
            "fromObjectTypeId": f.type_id,
            "fromObjectId": fid,
            "toObjectTypeId": t.type_id,
            "toObjectId": tid,
            "labels": [x["label"] for x in types if x["label"]],
        }

    # -- per record --------------------------------------------------------------------------------
    def list_targets(
        self, request: Request, object_type: str, object_id: str, to_object_type: str
    ) -> Response:
        f, t = self._types(object_type, to_object_type)
        fid = _int_id(object_id)
        limit = integer(request, "limit", 500, 1, 500)
        after = request.arg("after")
        start = int(after) if after and after.isdigit() else 0
        targets = self._targets(f, t, fid)
        page = targets[start : start + limit]
        body: dict[str, Any] = {
            "results": [{"toObjectId": did, "associationTypes": types} for did, types in page]
        }
        if start + limit < len(targets):
            body["paging"] = {"next": {"after": str(start + limit)}}
        return ok(body)

    def create(
        self,
        request: Request,
        object_type: str,
        object_id: str,
        to_object_type: str,
        to_object_id: str,
    ) -> Response:
        f, t = self._types(object_type, to_object_type)
        fid, tid = _int_id(object_id), _int_id(to_object_id)
        self._exists(f, fid)
        self._exists(t, tid)
        type_ids = self._type_ids(f, t, self._body(request))
        self.portal.assoc.add(f.name, t.name, fid, tid, type_ids)
        return ok(self._pair_json(f, fid, t, tid), 201)

    def delete(
        self,
        request: Request,
        object_type: str,
        object_id: str,
        to_object_type: str,
        to_object_id: str,
    ) -> Response:
        f, t = self._types(object_type, to_object_type)
        self.portal.assoc.remove(f.name, t.name, _int_id(object_id), _int_id(to_object_id))
        return empty(204)

    def create_default(
        self,
        request: Request,
        from_object_type: str,
        from_object_id: str,
        to_object_type: str,
        to_object_id: str,
    ) -> Response:
        f, t = self._types(from_object_type, to_object_type)
        fid, tid = _int_id(from_object_id), _int_id(to_object_id)
        self._exists(f, fid)
        self._exists(t, tid)
        started = now_ms()
        return ok(self._default(f, t, [(fid, tid)], started))

    def _default(
        self, f: ObjectType, t: ObjectType, pairs: list[tuple[int, int]], started: int
    ) -> dict[str, Any]:
        unl, _ = self.portal.assoc.type_ids(f.name, t.name)
        runl, _ = self.portal.assoc.type_ids(t.name, f.name)
        results = []
        for fid, tid in pairs:
            self.portal.assoc.add(f.name, t.name, fid, tid, [unl])
            for a, b, typ in ((fid, tid, unl), (tid, fid, runl)):
                results.append(
                    {
                        "from": {"id": str(a)},
                        "to": {"id": str(b)},
                        "associationSpec": {
                            "associationCategory": "HUBSPOT_DEFINED",
                            "associationTypeId": typ,
                        },
                    }
                )
        return {
            "status": "COMPLETE",
            "results": results,
            "startedAt": iso_from_ms(started),
            "completedAt": iso_from_ms(now_ms()),
        }

    # -- batch -------------------------------------------------------------------------------------
    def _inputs(self, request: Request, limit: int) -> list[Any]:
        body = self._body(request)
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
            raise validation("Invalid input JSON: expected an object with 'inputs'")
        if len(body["inputs"]) > limit:
            raise validation(f"Too many inputs ({len(body['inputs'])}); at most {limit}.")
        return list(body["inputs"])

    def batch_read(self, request: Request, from_object_type: str, to_object_type: str) -> Response:
        f, t = self._types(from_object_type, to_object_type)
        started = now_ms()
        results, errors = [], []
        for inp in self._inputs(request, MAX_BATCH_READ):
            fid = _int_id((inp or {}).get("id"))
            targets = self._targets(f, t, fid)
            if not targets:
                errors.append(
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                        "message": f"No {t.singular} is associated with {f.singular} {fid}.",
                        "context": {"fromObjectId": [str(fid)], "toObjectType": [t.singular]},
                        "errors": [],
                        "links": {},
                    }
                )
                continue
            results.append(
                {
                    "from": {"id": str(fid)},
                    "to": [
                        {"toObjectId": did, "associationTypes": types} for did, types in targets
                    ],
                }
            )
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": iso_from_ms(started),
            "completedAt": iso_from_ms(now_ms()),
        }
        if errors:
            body.update(numErrors=len(errors), errors=errors)
            return ok(body, 207)
        return ok(body)

    def batch_create(
        self, request: Request, from_object_type: str, to_object_type: str
    ) -> Response:
        f, t = self._types(from_object_type, to_object_type)
        started = now_ms()
        results = []
        for inp in self._inputs(request, MAX_BATCH_WRITE):
            fid = _int_id(((inp or {}).get("from") or {}).get("id"))
            tid = _int_id(((inp or {}).get("to") or {}).get("id"))
            type_ids = self._type_ids(f, t, (inp or {}).get("types"))
            self.portal.assoc.add(f.name, t.name, fid, tid, type_ids)
            results.append(self._pair_json(f, fid, t, tid))
        return ok(
            {
                "status": "COMPLETE",
                "results": results,
                "startedAt": iso_from_ms(started),
                "completedAt": iso_from_ms(now_ms()),
            },
            201,
        )

    def batch_default(
        self, request: Request, from_object_type: str, to_object_type: str
    ) -> Response:
        f, t = self._types(from_object_type, to_object_type)
        started = now_ms()
        pairs = [
            (
                _int_id(((i or {}).get("from") or {}).get("id")),
                _int_id(((i or {}).get("to") or {}).get("id")),
            )
            for i in self._inputs(request, MAX_BATCH_WRITE)
        ]
        return ok(self._default(f, t, pairs, started))

    def batch_archive(
        self, request: Request, from_object_type: str, to_object_type: str
    ) -> Response:
        f, t = self._types(from_object_type, to_object_type)
        for inp in self._inputs(request, MAX_BATCH_WRITE):
            fid = _int_id(((inp or {}).get("from") or {}).get("id"))
            for to in (inp or {}).get("to") or []:
                self.portal.assoc.remove(f.name, t.name, fid, _int_id((to or {}).get("id")))
        return empty(204)

    def batch_archive_labels(
        self, request: Request, from_object_type: str, to_object_type: str
    ) -> Response:
        # Removing only a label keeps the unlabeled association; the sandbox keeps it simple and
        # removes the listed pairs' non-default labels by re-adding the default.
        f, t = self._types(from_object_type, to_object_type)
        unl, _ = self.portal.assoc.type_ids(f.name, t.name)
        for inp in self._inputs(request, MAX_BATCH_WRITE):
            fid = _int_id(((inp or {}).get("from") or {}).get("id"))
            tid = _int_id(((inp or {}).get("to") or {}).get("id"))
            self.portal.assoc.remove(f.name, t.name, fid, tid)
            self.portal.assoc.add(f.name, t.name, fid, tid, [unl])
        return empty(204)

    def labels(self, request: Request, from_object_type: str, to_object_type: str) -> Response:
        f, t = self._types(from_object_type, to_object_type)
        return ok({"results": self.portal.assoc.labels(f.name, t.name)})
