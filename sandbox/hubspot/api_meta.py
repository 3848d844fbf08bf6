"""Properties and groups, custom object schemas, owners, teams/users, pipelines and currencies."""

from __future__ import annotations

from typing import Any

from sandbox.http import Request, Response, empty
from sandbox.hubspot.errors import HubSpotError, conflict, not_found, validation
from sandbox.hubspot.params import flag, integer, multi, next_link, ok
from sandbox.hubspot.portal import PORTAL_ID, SEEDED_AT_MS, Portal
from sandbox.hubspot.registry import PropertyRegistry
from sandbox.hubspot.schema import (
    FIELD_TYPES,
    PROPERTY_TYPES,
    GroupDef,
    ObjectType,
    PropertyDef,
)
from sandbox.hubspot.values import iso_from_ms, now_ms


def _body(request: Request) -> Any:
    try:
        return request.json()
    except ValueError as exc:
        raise validation(f"Invalid input JSON: {exc}") from exc


def _property_from(body: Any, registry: PropertyRegistry) -> PropertyDef:
    """A PropertyCreate body (required: name, label, type, fieldType, groupName)."""
    if not isinstance(body, dict):
        raise validation("Invalid input JSON: expected an object")
    missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
    if missing:
        raise validation(
            f"Missing required fields: {', '.join(missing)}", context={"missingFields": missing}
        )
    if body["type"] not in PROPERTY_TYPES:
        raise validation(f"Invalid type {body['type']!r}; one of {sorted(PROPERTY_TYPES)}")
    if body["fieldType"] not in FIELD_TYPES:
        raise validation(f"Invalid fieldType {body['fieldType']!r}")
    name = str(body["name"])
    if not name.replace("_", "").isalnum() or name != name.lower() or name.startswith("hs_"):
        raise validation(
            f"Property name {name!r} must be lower-case letters, digits and _ "
            "and must not start with hs_"
        )
    t = now_ms()
    opts = [
        {
            "label": str(o.get("label", o.get("value"))),
            "value": str(o.get("value")),
            "displayOrder": int(o.get("displayOrder", i)),
            "hidden": bool(o.get("hidden", False)),
        }
        for i, o in enumerate(body.get("options") or [])
    ]
    if body["type"] == "enumeration" and not opts and body["fieldType"] != "booleancheckbox":
        raise validation("Enumeration properties need at least one option")
    return PropertyDef(
        name=name,
        label=str(body["label"]),
        type=body["type"],
        field_type=body["fieldType"],
        group_name=str(body["groupName"]),
        options=opts,
        description=str(body.get("description") or ""),
        has_unique_value=bool(body.get("hasUniqueValue", False)),
        hubspot_defined=False,
        hidden=bool(body.get("hidden", False)),
        display_order=int(body.get("displayOrder", -1)),
        form_field=bool(body.get("formField", False)),
        created_ms=t,
        updated_ms=t,
    )


class MetaApi:
    def __init__(self, portal: Portal) -> None:
        self.portal = portal

    def _reg(self, object_type: str) -> PropertyRegistry:
        return self.portal.registries[self.portal.resolve(object_type).name]

    # -- properties ----------------------------------------------------------------------------
    def list_properties(self, request: Request, object_type: str) -> Response:
        reg = self._reg(object_type)
        props = reg.all(archived=flag(request, "archived"))
        wanted = multi(request, "properties")
        if wanted:
            props = [p for p in props if p.name in wanted]
        return ok({"results": [p.to_json() for p in props]})

    def get_property(self, request: Request, object_type: str, name: str) -> Response:
        return ok(self._reg(object_type).require(name).to_json())

    def create_property(self, request: Request, object_type: str) -> Response:
        reg = self._reg(object_type)
        p = reg.add(_property_from(_body(request), reg))
        return ok(p.to_json(), 201)

    def update_property(self, request: Request, object_type: str, name: str) -> Response:
        reg = self._reg(object_type)
        p = reg.require(name)
        body = _body(request) or {}
        if p.hubspot_defined and set(body) - {"options", "label", "description", "displayOrder"}:
            raise validation(f"HubSpot-defined property {name} can't be changed that way")
        for key, attr in (
            ("label", "label"),
            ("description", "description"),
            ("groupName", "group_name"),
            ("hidden", "hidden"),
            ("displayOrder", "display_order"),
            ("fieldType", "field_type"),
        ):
            if key in body:
                setattr(p, attr, body[key])
        if "options" in body:
            p.options = [
                {
                    "label": str(o.get("label")),
                    "value": str(o.get("value")),
                    "displayOrder": int(o.get("displayOrder", i)),
                    "hidden": bool(o.get("hidden", False)),
                }
                for i, o in enumerate(body["options"] or [])
            ]
        p.updated_ms = now_ms()
        return ok(p.to_json())

    def delete_property(self, request: Request, object_type: str, name: str) -> Response:
        self._reg(object_type).archive(name)
        return empty(204)

    def batch_create_properties(self, request: Request, object_type: str) -> Response:
        reg = self._reg(object_type)
        body = _body(request) or {}
        started = now_ms()
        results, errors = [], []
        for inp in body.get("inputs") or []:
            try:
                results.append(reg.add(_property_from(inp, reg)).to_json())
            except HubSpotError as e:
                errors.append(
                    {
                        "status": "error",
                        "category": e.category,
                        "message": e.message,
                        "context": {"name": [str((inp or {}).get("name"))]},
                    }
                )
        out: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": iso_from_ms(started),
            "completedAt": iso_from_ms(now_ms()),
        }
        if errors:
            out.update(numErrors=len(errors), errors=errors)
        return ok(out, 207 if errors else 201)

    def batch_read_properties(self, request: Request, object_type: str) -> Response:
        reg = self._reg(object_type)
        body = _body(request) or {}
        started = now_ms()
        names = [str((i or {}).get("name")) for i in body.get("inputs") or []]
        results = [p.to_json() for n in names if (p := reg.get(n)) is not None]
        missing = [n for n in names if reg.get(n) is None]
        out: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": iso_from_ms(started),
            "completedAt": iso_from_ms(now_ms()),
        }
        if missing:
            out.update(
                numErrors=1,
                errors=[
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "message": "Some properties were not found",
                        "context": {"names": missing},
                    }
                ],
            )
            return ok(out, 207)
        return ok(out)

    def batch_archive_properties(self, request: Request, object_type: str) -> Response:
        reg = self._reg(object_type)
        for inp in (_body(request) or {}).get("inputs") or []:
            name = str((inp or {}).get("name"))
            if reg.get(name) is not None:
                reg.archive(name)
        return empty(204)

    # -- groups --------------------------------------------------------------------------------
    def list_groups(self, request: Request, object_type: str) -> Response:
        return ok({"results": [g.to_json() for g in self._reg(object_type).groups()]})

    def get_group(self, request: Request, object_type: str, name: str) -> Response:
        return ok(self._reg(object_type).group(name).to_json())

    def create_group(self, request: Request, object_type: str) -> Response:
        body = _body(request) or {}
        if not body.get("name") or not body.get("label"):
            raise validation("Missing required fields: name, label")
        g = GroupDef(str(body["name"]), str(body["label"]), int(body.get("displayOrder", -1)))
        return ok(self._reg(object_type).add_group(g).to_json(), 201)

    def update_group(self, request: Request, object_type: str, name: str) -> Response:
        g = self._reg(object_type).group(name)
        body = _body(request) or {}
        g.label = str(body.get("label", g.label))
        g.display_order = int(body.get("displayOrder", g.display_order))
        return ok(g.to_json())

    def delete_group(self, request: Request, object_type: str, name: str) -> Response:
        self._reg(object_type).archive_group(name)
        return empty(204)

    # -- schemas (custom objects) --------------------------------------------------------------
    def _schema_json(self, ot: ObjectType) -> dict[str, Any]:
        s = dict(self.portal.schemas[ot.name])
        reg = self.portal.registries[ot.name]
        s["properties"] = [p.to_json() for p in reg.all()]
        return s

    def list_schemas(self, request: Request) -> Response:
        return ok(
            {"results": [self._schema_json(self.portal.types[n]) for n in self.portal.schemas]}
        )

    def _custom(self, object_type: str) -> ObjectType:
        try:
            ot = self.portal.resolve(object_type)
        except HubSpotError as exc:
            raise not_found(f"Unable to find object type {object_type}") from exc
        if not ot.custom:
            raise not_found(f"Object type {object_type} is not a custom object")
        return ot

    def get_schema(self, request: Request, object_type: str) -> Response:
        return ok(self._schema_json(self._custom(object_type)))

    def create_schema(self, request: Request) -> Response:
        body = _body(request) or {}
        missing = [k for k in ("name", "labels", "properties") if not body.get(k)]
        if missing:
            raise validation(f"Missing required fields: {', '.join(missing)}")
        name = str(body["name"])
        for existing in self.portal.types.values():
            if name.lower() in {n.lower() for n in existing.names()}:
                raise conflict(f"Object type with name {name} already exists")
        tid, fqn = self.portal.new_custom_type(name)
        labels = body["labels"] or {}
        plural = str(labels.get("plural") or name)
        primary = body.get("primaryDisplayProperty")
        ot = ObjectType(
            name=name,
            type_id=tid,
            singular=name,
            fully_qualified_name=fqn,
            default_properties=(
                "hs_createdate",
                "hs_lastmodifieddate",
                "hs_object_id",
                *([primary] if primary else []),
            ),
            searchable=tuple(body.get("searchableProperties") or ()),
            custom=True,
        )
        t = now_ms()
        base_defs = [
            PropertyDef(
                "hs_object_id",
                "Record ID",
                "number",
                "number",
                name + "_information",
                read_only_value=True,
                created_ms=t,
                updated_ms=t,
            ),
            PropertyDef(
                "hs_createdate",
                "Create Date",
                "datetime",
                "date",
                name + "_information",
                read_only_value=True,
                created_ms=t,
                updated_ms=t,
            ),
            PropertyDef(
                "hs_lastmodifieddate",
                "Last Modified Date",
                "datetime",
                "date",
                name + "_information",
                read_only_value=True,
                created_ms=t,
                updated_ms=t,
            ),
            PropertyDef(
                "hubspot_owner_id",
                "Owner",
                "enumeration",
                "select",
                name + "_information",
                created_ms=t,
                updated_ms=t,
            ),
        ]
        reg = PropertyRegistry(ot, base_defs)
        for p in body["properties"]:
            reg.add(_property_from({"groupName": name + "_information", **p}, reg))
        required = list(body.get("requiredProperties") or [])
        unknown = [r for r in required if reg.get(r) is None]
        if unknown:
            raise validation(f"Required properties {unknown} are not defined")
        schema: dict[str, Any] = {
            "id": tid.split("-", 1)[1],
            "objectTypeId": tid,
            "fullyQualifiedName": fqn,
            "name": name,
            "labels": {"singular": labels.get("singular") or name, "plural": plural},
            "requiredProperties": required,
            "searchableProperties": list(body.get("searchableProperties") or []),
            "primaryDisplayProperty": primary,
            "secondaryDisplayProperties": list(body.get("secondaryDisplayProperties") or []),
            "description": body.get("description"),
            "associations": [],
            "archived": False,
            "metaType": "PORTAL_SPECIFIC",
            "portalId": PORTAL_ID,
            "createdAt": iso_from_ms(t),
            "updatedAt": iso_from_ms(t),
        }
        self.portal.add_custom(ot, reg, schema)
        for target in body.get("associatedObjects") or []:
            self._add_schema_association(ot, str(target))
        return ok(self._schema_json(ot), 201)

    def _add_schema_association(self, ot: ObjectType, target: str) -> dict[str, Any]:
        tt = self.portal.resolve(target)
        unl, _ = self.portal.assoc.type_ids(ot.name, tt.name)
        assoc = {
            "id": str(unl),
            "fromObjectTypeId": ot.type_id,
            "toObjectTypeId": tt.type_id,
            "name": f"{ot.name}_to_{tt.singular}".upper(),
            "createdAt": iso_from_ms(now_ms()),
            "updatedAt": iso_from_ms(now_ms()),
        }
        self.portal.schemas[ot.name]["associations"].append(assoc)
        return assoc

    def create_schema_association(self, request: Request, object_type: str) -> Response:
        ot = self._custom(object_type)
        body = _body(request) or {}
        target = body.get("toObjectTypeId")
        if not target:
            raise validation("toObjectTypeId is required")
        return ok(self._add_schema_association(ot, str(target)), 201)

    def update_schema(self, request: Request, object_type: str) -> Response:
        ot = self._custom(object_type)
        body = _body(request) or {}
        s = self.portal.schemas[ot.name]
        for key in (
            "labels",
            "requiredProperties",
            "searchableProperties",
            "primaryDisplayProperty",
            "secondaryDisplayProperties",
            "description",
        ):
            if key in body:
                s[key] = body[key]
        s["updatedAt"] = iso_from_ms(now_ms())
        return ok({k: v for k, v in s.items() if k != "associations"})

    def delete_schema(self, request: Request, object_type: str) -> Response:
        ot = self._custom(object_type)
        if self.portal.tables[ot.name].count() and not flag(request, "archived"):
            raise validation(
                f"Object type {ot.type_id} still has records; archive them before deleting it.",
            )
        self.portal.drop_custom(ot)
        return empty(204)

    # -- owners ----------------------------------------------------------------------------------
    def _owner_json(self, o: dict[str, Any]) -> dict[str, Any]:
        teams = []
        if o.get("teamId"):
            teams.append({"id": o["teamId"], "name": o.get("teamName") or "", "primary": True})
        return {
            "id": o["id"],
            "email": o["email"],
            "type": "PERSON",
            "firstName": o["firstName"],
            "lastName": o["lastName"],
            "userId": o["userId"] if o["active"] else None,
            "userIdIncludingInactive": o["userId"],
            "createdAt": iso_from_ms(SEEDED_AT_MS),
            "updatedAt": iso_from_ms(SEEDED_AT_MS),
            "archived": not o["active"],
            "teams": teams,
        }

    def list_owners(self, request: Request) -> Response:
        limit = integer(request, "limit", 100, 1, 500)
        archived = flag(request, "archived")
        email = request.arg("email")
        owners = [o for o in self.portal.seed.owners if o["active"] != archived]
        if email:
            owners = [o for o in owners if (o["email"] or "").lower() == email.lower()]
        owners.sort(key=lambda o: int(o["id"]))
        after = request.arg("after")
        if after:
            owners = [o for o in owners if int(o["id"]) >= int(after)] if after.isdigit() else []
        body: dict[str, Any] = {"results": [self._owner_json(o) for o in owners[:limit]]}
        if len(owners) > limit:
            nxt = owners[limit]["id"]
            body["paging"] = {"next": {"after": nxt, "link": next_link(request, nxt)}}
        return ok(body)

    def get_owner(self, request: Request, owner_id: str) -> Response:
        id_prop = request.arg("idProperty") or "id"
        archived = flag(request, "archived")
        for o in self.portal.seed.owners:
            key = str(o["userId"]) if id_prop == "userId" else o["id"]
            if key == owner_id and o["active"] != archived:
                return ok(self._owner_json(o))
        raise not_found(f"No owner found with {id_prop} {owner_id}")

    # -- teams and users (settings API) ----------------------------------------------------------
    def list_teams(self, request: Request) -> Response:
        # parentTeamId carries the team hierarchy (sandbox: HubSpot's teams API documents
        # id/name/userIds/secondaryUserIds; the parent link is how child teams appear here).
        return ok(
            {
                "results": [
                    {
                        "id": t["id"],
                        "name": t["name"],
                        "userIds": [str(u) for u in t["userIds"]],
                        "secondaryUserIds": [],
                        "parentTeamId": t["parentTeamId"],
                    }
                    for t in self.portal.seed.teams
                ]
            }
        )

    @staticmethod
    def _user_json(u: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": str(u["userId"]),
            "email": u["email"],
            "roleIds": [],
            "primaryTeamId": u["teamId"],
            "secondaryTeamIds": [],
            "superAdmin": False,
        }

    def list_users(self, request: Request) -> Response:
        limit = integer(request, "limit", 100, 1, 100)
        users = sorted(self.portal.seed.owners, key=lambda o: o["userId"])
        after = request.arg("after")
        if after and after.isdigit():
            users = [u for u in users if u["userId"] >= int(after)]
        body: dict[str, Any] = {"results": [self._user_json(u) for u in users[:limit]]}
        if len(users) > limit:
            nxt = str(users[limit]["userId"])
            body["paging"] = {"next": {"after": nxt, "link": next_link(request, nxt)}}
        return ok(body)

    def get_user(self, request: Request, user_id: str) -> Response:
        """``GET /settings/v3/users/{userId}`` (``idProperty=EMAIL`` looks a user up by email, as
        the users API reference describes)."""
        by_email = (request.arg("idProperty") or "USER_ID").upper() == "EMAIL"
        for u in self.portal.seed.owners:
            key = (u["email"] or "").lower() if by_email else str(u["userId"])
            if key == (user_id.lower() if by_email else user_id):
                return ok(self._user_json(u))
        raise not_found(f"No user found with id {user_id}", context={"id": [user_id]})

    def list_roles(self, request: Request) -> Response:
        """``GET /settings/v3/users/roles``: the sandbox portal defines no roles (roles need an
        Enterprise seat setup); an empty list keeps role-aware readers working."""
        return ok({"results": []})

    # -- pipelines -------------------------------------------------------------------------------
    def _pipelines(self, object_type: str) -> list[dict[str, Any]]:
        ot = self.portal.resolve(object_type)
        return self.portal.pipelines.setdefault(ot.name, [])

    @staticmethod
    def _pipeline_json(p: dict[str, Any]) -> dict[str, Any]:
        def stage(s: dict[str, Any]) -> dict[str, Any]:
            return {
                **s,
                "createdAt": iso_from_ms(s["createdAt"]),
                "updatedAt": iso_from_ms(s["updatedAt"]),
            }

        return {
            **p,
            "createdAt": iso_from_ms(p["createdAt"]),
            "updatedAt": iso_from_ms(p["updatedAt"]),
            "stages": [stage(s) for s in p["stages"] if not s["archived"]],
        }

    def _pipeline(self, object_type: str, pipeline_id: str) -> dict[str, Any]:
        for p in self._pipelines(object_type):
            if p["id"] == pipeline_id and not p["archived"]:
                return p
        raise not_found(f"Unable to find pipeline {pipeline_id}", context={"id": [pipeline_id]})

    def list_pipelines(self, request: Request, object_type: str) -> Response:
        return ok(
            {
                "results": [
                    self._pipeline_json(p)
                    for p in self._pipelines(object_type)
                    if not p["archived"]
                ]
            }
        )

    def get_pipeline(self, request: Request, object_type: str, pipeline_id: str) -> Response:
        return ok(self._pipeline_json(self._pipeline(object_type, pipeline_id)))

    def _stage_from(self, s: dict[str, Any], i: int, t: int) -> dict[str, Any]:
        meta = {
            k: str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in (s.get("metadata") or {}).items()
        }
        return {
            "id": str(s.get("id") or f"{t % 10**9 + i}"),
            "label": str(s["label"]),
            "displayOrder": int(s.get("displayOrder", i)),
            "metadata": meta,
            "createdAt": t,
            "updatedAt": t,
            "archived": False,
            "writePermissions": "CRUD_ALL",
        }

    def create_pipeline(self, request: Request, object_type: str) -> Response:
        body = _body(request) or {}
        if not body.get("label") or not isinstance(body.get("stages"), list):
            raise validation("label and stages are required")
        t = now_ms()
        p = {
            "id": str(body.get("id") or t % 10**9),
            "label": str(body["label"]),
            "displayOrder": int(body.get("displayOrder", 0)),
            "archived": False,
            "createdAt": t,
            "updatedAt": t,
            "stages": [self._stage_from(s, i, t) for i, s in enumerate(body["stages"])],
        }
        self._pipelines(object_type).append(p)
        self.portal.stage_pipelines_changed()
        return ok(self._pipeline_json(p), 201)

    def delete_pipeline(self, request: Request, object_type: str, pipeline_id: str) -> Response:
        self._pipeline(object_type, pipeline_id)["archived"] = True
        self.portal.stage_pipelines_changed()
        return empty(204)

    def update_pipeline(self, request: Request, object_type: str, pipeline_id: str) -> Response:
        """PATCH a pipeline's ``label``/``displayOrder`` (pipelines API reference, "update")."""
        p = self._pipeline(object_type, pipeline_id)
        body = _body(request) or {}
        if "label" in body:
            p["label"] = str(body["label"])
        if "displayOrder" in body:
            p["displayOrder"] = int(body["displayOrder"])
        p["updatedAt"] = now_ms()
        self.portal.stage_pipelines_changed()
        return ok(self._pipeline_json(p))

    def create_stage(self, request: Request, object_type: str, pipeline_id: str) -> Response:
        p = self._pipeline(object_type, pipeline_id)
        body = _body(request) or {}
        if not body.get("label"):
            raise validation("label is required")
        stage = self._stage_from(body, len(p["stages"]), now_ms())
        p["stages"].append(stage)
        self.portal.stage_pipelines_changed()
        return ok(self._pipeline_json({**p, "stages": [stage]})["stages"][0], 201)

    def _stage(self, object_type: str, pipeline_id: str, stage_id: str) -> dict[str, Any]:
        stages: list[dict[str, Any]] = self._pipeline(object_type, pipeline_id)["stages"]
        for s in stages:
            if s["id"] == stage_id and not s["archived"]:
                return s
        raise not_found(f"Unable to find stage {stage_id}", context={"id": [stage_id]})

    def update_stage(
        self, request: Request, object_type: str, pipeline_id: str, stage_id: str
    ) -> Response:
        s = self._stage(object_type, pipeline_id, stage_id)
        body = _body(request) or {}
        fresh = self._stage_from({**s, **body, "id": stage_id}, s["displayOrder"], now_ms())
        s.update(
            label=fresh["label"],
            displayOrder=fresh["displayOrder"],
            metadata=fresh["metadata"] if "metadata" in body else s["metadata"],
            updatedAt=fresh["updatedAt"],
        )
        self.portal.stage_pipelines_changed()
        p = self._pipeline(object_type, pipeline_id)
        return ok(self._pipeline_json({**p, "stages": [s]})["stages"][0])

    def delete_stage(
        self, request: Request, object_type: str, pipeline_id: str, stage_id: str
    ) -> Response:
        self._stage(object_type, pipeline_id, stage_id)["archived"] = True
        self.portal.stage_pipelines_changed()
        return empty(204)

    def list_stages(self, request: Request, object_type: str, pipeline_id: str) -> Response:
        p = self._pipeline_json(self._pipeline(object_type, pipeline_id))
        return ok({"results": p["stages"]})

    def get_stage(
        self, request: Request, object_type: str, pipeline_id: str, stage_id: str
    ) -> Response:
        for s in self._pipeline_json(self._pipeline(object_type, pipeline_id))["stages"]:
            if s["id"] == stage_id:
                return ok(s)
        raise not_found(f"Unable to find stage {stage_id}", context={"id": [stage_id]})

    def call_dispositions(self, request: Request) -> Response:
        """``GET /calling/v1/dispositions``: the call outcomes (a bare JSON list, as HubSpot
        answers this legacy endpoint), read from the ``hs_call_disposition`` options."""
        prop = self.portal.registries["calls"].require("hs_call_disposition")
        return ok([{"id": o["value"], "label": o["label"], "deleted": False} for o in prop.options])

    # -- currencies ------------------------------------------------------------------------------
    def company_currency(self, request: Request) -> Response:
        code = self.portal.seed.company_currency
        return ok({"currencyCode": code, "currencyName": code})

    def exchange_rates(self, request: Request) -> Response:
        """``/settings/v3/currencies/exchange-rates`` (HubSpot currencies API, legacy v3 path)."""
        limit = integer(request, "limit", 100, 1, 100)
        after = request.arg("after")
        start = int(after) if after and after.isdigit() else 0
        rates = self.portal.seed.fx_rates
        page = rates[start : start + limit]
        results = [
            {
                "id": r["id"],
                "fromCurrencyCode": r["fromCurrencyCode"],
                "toCurrencyCode": r["toCurrencyCode"],
                "conversionRate": r["conversionRate"],
                "effectiveAt": f"{r['effectiveAt']}T00:00:00Z",
                "visibleInUI": True,
                "createdAt": iso_from_ms(SEEDED_AT_MS),
                "updatedAt": iso_from_ms(SEEDED_AT_MS),
            }
            for r in page
        ]
        body: dict[str, Any] = {"results": results}
        if start + limit < len(rates):
            nxt = str(start + limit)
            body["paging"] = {"next": {"after": nxt, "link": next_link(request, nxt)}}
        return ok(body)
