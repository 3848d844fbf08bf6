"""HubSpot: install the ``kpi_snapshot`` custom object; write KPI rows back by batch upsert.

Every call goes through :class:`connectors.hubspot_http.HubSpotHttp` (limits, retries honouring
``Retry-After``, budget, OAuth refresh) around the generated hubspot-api-client methods.

* **Install**: ``POST /crm-object-schemas/v3/schemas`` (``crm.schemas.core_api.create``; required
  ``name, labels, properties, requiredProperties, associatedObjects``, HubSpot OpenAPI
  ``schemas.json``) with a unique ``kpi_key`` property (``hasUniqueValue``) as the primary display
  property. Custom objects need an Enterprise portal: a 403 there is reported as "cannot be
  written", naming every KPI it affects. Properties missing from an existing schema are added with
  ``POST /crm/v3/properties/{objectType}``. Companies and deals get a property group and KPI
  properties only for KPIs with account- or deal-level values (none in the catalogue today).
* **Writeback**: ``POST /crm/v3/objects/{objectType}/batch/upsert`` with ``idProperty=kpi_key``
  (``crm.objects.batch_api.upsert``), at most 100 inputs per call (objects guide,
  developers.hubspot.com/docs/guides/crm/using-object-apis); a 207 answer lists the refused inputs
  in ``errors[].context.ids``. Up to ``[sync] hubspot_concurrency`` upserts are in flight at
  once (``HubSpotWriter.concurrent_sends``). Deletions use ``batch/archive``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from connectors.config import ConnectionConfig
from connectors.errors import ApiError, AuthError
from connectors.hubspot_http import HubSpotHttp
from connectors.store import Store
from writeback import ledger
from writeback.install import Action, Status
from writeback.ledger import Installed, LedgerEntry
from writeback.plan import Outcome, Row, plain_number, snapshot_rows
from writeback.settings import WritebackSettings
from writeback.spec import Column, Kind, TargetSpec

CRM = "hubspot"
#: Batch endpoints take at most 100 inputs (objects guide,
#: developers.hubspot.com/docs/guides/crm/using-object-apis).
BATCH = 100
_TYPES = {Kind.TEXT: ("string", "text"), Kind.USER: ("string", "text"),
          Kind.NUMBER: ("number", "number"), Kind.DATE: ("date", "date"),
          Kind.DATETIME: ("datetime", "date")}  # fmt: skip


def hubspot_http(cfg: ConnectionConfig) -> HubSpotHttp:
    """The connector's HubSpot choke point for a configured connection (the sync's limits)."""
    from connectors.sources import hubspot_access

    credentials, limits = hubspot_access(cfg)
    return HubSpotHttp(credentials, base_url=cfg.base_url, ca_bundle=cfg.ca_bundle,
                       limits=limits)  # fmt: skip


def _text(value: Any) -> str:
    """A property value as HubSpot stores it: numbers without exponent, empty for none."""
    if value is None:
        return ""
    if isinstance(value, float):
        return plain_number(value)
    return str(value)


def _property(name: str, col: Column | None, *, key: bool = False) -> dict[str, Any]:
    if key or col is None:
        return {
            "name": name,
            "label": "KPI key",
            "type": "string",
            "fieldType": "text",
            "hasUniqueValue": True,
            "description": "kpisync row key (upsert idProperty)",
        }
    kind, field_type = _TYPES[col.kind]
    return {"name": name, "label": col.label, "type": kind, "fieldType": field_type,
            "description": "Written by kpisync"}  # fmt: skip


def _object_type(store: Store, connection: str, spec: TargetSpec) -> str | None:
    for i in ledger.installed(store, connection):
        if i.crm == CRM and i.kind == "schema" and i.name == spec.hs_object:
            return i.crm_id
    return None


class HubSpotWriter:
    """The HubSpot side of ``writeback.run`` (the ``kpi_snapshot`` custom object)."""

    crm = CRM

    def __init__(self, http: HubSpotHttp, spec: TargetSpec, settings: WritebackSettings):
        self.http = http
        self.spec = spec
        self.settings = settings
        self._types: dict[str, str] = {}

    @property
    def calls(self) -> int:
        return self.http.calls

    @property
    def concurrent_sends(self) -> int:
        """Batch upserts in flight at once (``[sync] hubspot_concurrency``, the connection's
        calls in flight). HubSpot limits calls per 10 seconds and per day, not calls in flight
        (usage-guidelines page, developers.hubspot.com/docs/api/usage-details): the client's
        window paces them all the same; overlapping only keeps one call's latency from holding
        up the next. :meth:`send` touches no store and the client is thread-safe."""
        return max(1, self.http.limits.concurrency)

    def desired(self, store: Store, connection: str, today: dt.date) -> dict[str, dict[str, Row]]:
        ot = _object_type(store, connection, self.spec)
        if ot:
            self._types[self.spec.hs_object] = ot
        kpis = store.read_kpis(connection)
        reps = store.table_text(connection, "reps")
        teams = dict(zip(reps["id"].to_list(), reps["team_id"].to_list(), strict=True))
        return {self.spec.hs_object: snapshot_rows(kpis, teams, self.spec.targets)}

    def fields(self) -> list[str]:
        obj = self.spec.hs_object
        return [f"{obj}.{p}" for p in (*self.spec.hs_columns(), self.spec.hs_key_property)]

    def owned(self, store: Store, connection: str) -> list[str]:
        mine = {i.name for i in ledger.installed(store, connection)
                if i.crm == CRM and i.kind in ("schema", "property")}  # fmt: skip
        allowed = mine | set(self.settings.mapped_fields)
        missing = [] if self.spec.hs_object in mine else [self.spec.hs_object]
        return missing + [f for f in self.fields() if f not in allowed]

    def batch_size(self, target: str, pending: int = 0) -> int:
        return BATCH

    def history(self, target: str) -> bool:
        return True

    def properties(self, row: Row, computed_at: dt.datetime) -> dict[str, str]:
        props = {self.spec.hs_key_property: row.key}
        for name, col in self.spec.hs_columns().items():
            if col.key == "computed_at":
                props[name] = computed_at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
            else:
                props[name] = _text(row.payload.get(col.key))
        return props

    def send(self, target: str, rows: Sequence[Row], computed_at: dt.datetime) -> list[Outcome]:
        ot = self._types[target]
        key_prop = self.spec.hs_key_property
        body = {
            "inputs": [
                {"id": r.key, "idProperty": key_prop, "properties": self.properties(r, computed_at)}
                for r in rows
            ]
        }
        res = self.http.call("crm.objects.batch_api.upsert", ot, body, obj=ot) or {}
        done = {str((x.get("properties") or {}).get(key_prop)): str(x.get("id"))
                for x in res.get("results") or []}  # fmt: skip
        refused: dict[str, str] = {}
        locked: set[str] = set()
        for err in res.get("errors") or []:
            for key in (err.get("context") or {}).get("ids") or []:
                refused[str(key)] = f"{err.get('category', '')}: {err.get('message', '')}"
                if str(err.get("subCategory", "")).endswith("RECORD_LOCKED"):
                    locked.add(str(key))  # another update holds the record: send it again
        out = []
        for r in rows:
            if r.key in done and r.key not in refused:
                out.append(Outcome(r.key, r.hash, True, crm_id=done[r.key]))
            else:
                error = refused.get(r.key, "no result for this input in the batch answer")
                out.append(Outcome(r.key, r.hash, False, error=error, retriable=r.key in locked))
        return out

    def delete(self, target: str, entries: Sequence[LedgerEntry]) -> list[Outcome]:
        ot = self._types[target]
        body = {"inputs": [{"id": e.crm_id} for e in entries if e.crm_id]}
        self.http.call("crm.objects.batch_api.archive", ot, body, obj=ot)
        return [Outcome(e.key, "", True) for e in entries]


class HubSpotInstaller:
    """Install, check and uninstall for one HubSpot connection."""

    def __init__(
        self, http: HubSpotHttp, spec: TargetSpec, settings: WritebackSettings, store: Store,
        connection: str,
    ) -> None:  # fmt: skip
        self.http = http
        self.spec = spec
        self.settings = settings
        self.store = store
        self.connection = connection

    def _expected(self) -> dict[str, dict[str, Any]]:
        s = self.spec
        out = {name: _property(name, col) for name, col in s.hs_columns().items()}
        out[s.hs_key_property] = _property(s.hs_key_property, None, key=True)
        return out

    def _schema(self) -> dict[str, Any] | None:
        res = self.http.call("crm.schemas.core_api.get_all", obj="schemas") or {}
        for sch in res.get("results") or []:
            if sch.get("name") == self.spec.hs_object:
                return dict(sch)
        return None

    def _mine(self) -> dict[tuple[str, str], Installed]:
        return {(i.kind, i.name): i for i in ledger.installed(self.store, self.connection)
                if i.crm == CRM}  # fmt: skip

    def _unavailable(self, why: str) -> Action:
        kpis = ", ".join(d.key for d in self.spec.written_kpis())
        return Action(CRM, "schema", self.spec.hs_object, Status.UNAVAILABLE,
                      f"{why}; these KPIs cannot be written: {kpis}")  # fmt: skip

    def _record_level(self) -> Action:
        if not self.spec.hs_record_fields:
            return Action(CRM, "property_group", self.spec.hs_group, Status.SKIP,
                          "no account- or deal-level KPIs in the catalogue: no company or deal "
                          "properties to create")  # fmt: skip
        return Action(CRM, "property_group", self.spec.hs_group, Status.UNAVAILABLE,
                      "record-level KPI properties are not implemented")  # fmt: skip

    def install(self, *, dry_run: bool = False) -> list[Action]:
        s = self.spec
        mine = self._mine()
        acts: list[Action] = []
        try:
            schema = self._schema()
        except AuthError as exc:
            if exc.status == 401:
                raise  # the token is refused: a login failure, not a portal without the feature
            return [self._unavailable(f"the portal refuses custom object schemas ({exc.message})"),
                    self._record_level()]  # fmt: skip
        expected = self._expected()
        if schema is None:
            acts.append(Action(CRM, "schema", s.hs_object, Status.CREATE))
            acts.extend(Action(CRM, "property", f"{s.hs_object}.{p}", Status.CREATE)
                        for p in expected)  # fmt: skip
            if not dry_run:
                egg = {"name": s.hs_object,
                       "labels": {"singular": "KPI snapshot", "plural": "KPI snapshots"},
                       "primaryDisplayProperty": s.hs_key_property,
                       "requiredProperties": [s.hs_key_property],
                       "searchableProperties": [s.hs_key_property],
                       "properties": list(expected.values()), "associatedObjects": [],
                       "description": "KPI values written by kpisync"}  # fmt: skip
                try:
                    made = self.http.call("crm.schemas.core_api.create", egg, obj="schemas")
                except AuthError as exc:
                    return [
                        self._unavailable(
                            f"custom objects are not available in this portal ({exc.message})"
                        ),
                        self._record_level(),
                    ]
                ot = str(made["objectTypeId"])
                self._remember("schema", s.hs_object, ot, fqn=made.get("fullyQualifiedName"))
                for p in expected:
                    self._remember("property", f"{s.hs_object}.{p}", ot)
        elif ("schema", s.hs_object) not in mine:
            acts.append(
                Action(
                    CRM,
                    "schema",
                    s.hs_object,
                    Status.CONFLICT,
                    "exists but was not created by kpisync; left alone",
                )
            )
        else:
            acts.append(Action(CRM, "schema", s.hs_object, Status.OK))
            ot = str(schema["objectTypeId"])
            have = {p["name"] for p in schema.get("properties") or []}
            for name, prop in expected.items():
                full = f"{s.hs_object}.{name}"
                if name in have:
                    acts.append(Action(CRM, "property", full, Status.OK if ("property", full) in
                                       mine else Status.CONFLICT))  # fmt: skip
                    continue
                acts.append(Action(CRM, "property", full, Status.CREATE))
                if not dry_run:
                    body = {**prop, "groupName": f"{s.hs_object}_information"}
                    self.http.call("crm.properties.core_api.create", ot, body, obj=ot)
                    self._remember("property", full, ot)
        acts.append(self._record_level())
        return acts

    def check(self) -> list[Action]:
        s = self.spec
        mine = self._mine()
        try:
            schema = self._schema()
        except AuthError as exc:
            if exc.status == 401:
                raise
            return [self._unavailable(f"the portal refuses custom object schemas ({exc.message})")]
        if schema is None:
            return [Action(CRM, "schema", s.hs_object, Status.MISSING)]
        acts = [
            Action(
                CRM,
                "schema",
                s.hs_object,
                Status.OK if ("schema", s.hs_object) in mine else Status.CONFLICT,
            )
        ]
        have = {p["name"]: p for p in schema.get("properties") or []}
        for name, prop in self._expected().items():
            full = f"{s.hs_object}.{name}"
            got = have.get(name)
            if got is None:
                acts.append(Action(CRM, "property", full, Status.MISSING))
            elif got.get("type") != prop["type"]:
                acts.append(
                    Action(
                        CRM,
                        "property",
                        full,
                        Status.DRIFT,
                        f"type {got.get('type')}, not {prop['type']}",
                    )
                )
            elif name == s.hs_key_property and not got.get("hasUniqueValue"):
                acts.append(Action(CRM, "property", full, Status.DRIFT, "not unique"))
            else:
                acts.append(Action(CRM, "property", full, Status.OK))
        acts.append(self._record_level())
        return acts

    def uninstall(self, *, dry_run: bool = False) -> list[Action]:
        """Archive the snapshot records, delete the schema install created; nothing else."""
        s = self.spec
        item = self._mine().get(("schema", s.hs_object))
        acts: list[Action] = []
        if item is None:
            return acts
        props = [i for i in self._mine().values() if i.kind == "property"]
        acts.append(Action(CRM, "schema", s.hs_object, Status.REMOVE))
        acts.extend(Action(CRM, "property", i.name, Status.REMOVE, "with its schema")
                    for i in props)  # fmt: skip
        if dry_run:
            return acts
        ot = str(item.crm_id)
        try:
            self._archive_all(ot)
            self.http.call("crm.schemas.core_api.archive", ot, obj="schemas")
        except ApiError as exc:
            if exc.status != 404:
                raise
            acts[0] = Action(CRM, "schema", s.hs_object, Status.GONE)
        for i in props:
            ledger.unremember(self.store, self.connection, i.kind, i.name)
        ledger.unremember(self.store, self.connection, "schema", s.hs_object)
        ledger.forget(self.store, self.connection, None, None)
        return acts

    def _archive_all(self, ot: str) -> None:
        """A schema can only be deleted once its records are archived (schemas guide)."""
        while True:
            page = self.http.call("crm.objects.basic_api.get_page", ot, limit=100, obj=ot) or {}
            ids = [str(r["id"]) for r in page.get("results") or []]
            if not ids:
                return
            body = {"inputs": [{"id": i} for i in ids]}
            self.http.call("crm.objects.batch_api.archive", ot, body, obj=ot)

    def _remember(self, kind: str, name: str, crm_id: str | None, **detail: Any) -> None:
        ledger.remember(self.store, self.connection, Installed(kind, name, CRM, crm_id, detail))
