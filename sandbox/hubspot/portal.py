"""One emulated HubSpot portal: object types, properties, records, associations, owners, teams,
pipelines and currencies, built from a :class:`~sandbox.hubspot.seed.HubSpotSeed`."""

from __future__ import annotations

import threading
from typing import Any

import polars as pl

from sandbox.hubspot.associations import AssocStore
from sandbox.hubspot.errors import HubSpotError
from sandbox.hubspot.registry import PropertyRegistry
from sandbox.hubspot.schema import STANDARD_TYPES, ObjectType, standard_properties
from sandbox.hubspot.search import SearchEngine
from sandbox.hubspot.seed import STAGES, HubSpotSeed
from sandbox.hubspot.store import IdSequence, ObjectTable, empty_base
from sandbox.hubspot.values import now_ms

PORTAL_ID = 24_681_357
ENGAGEMENT_TYPES = frozenset({"calls", "emails", "meetings", "notes", "tasks", "communications"})
SEEDED_AT_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z: when the portal's schema "was created"


def default_deal_pipeline() -> dict[str, Any]:
    """Deals pipeline ``default``; metadata values are strings (pipelines guide)."""
    stages = []
    for i, (label, (sid, prob, closed, _won)) in enumerate(STAGES.items()):
        stages.append(
            {
                "id": sid,
                "label": label,
                "displayOrder": i,
                "metadata": {"isClosed": "true" if closed else "false", "probability": prob},
                "createdAt": SEEDED_AT_MS,
                "updatedAt": SEEDED_AT_MS,
                "archived": False,
                "writePermissions": "CRUD_ALL",
            }
        )
    return {
        "id": "default",
        "label": "Sales Pipeline",
        "displayOrder": 0,
        "archived": False,
        "createdAt": SEEDED_AT_MS,
        "updatedAt": SEEDED_AT_MS,
        "stages": stages,
    }


class Portal:
    """Mutable state of the sandbox portal; :meth:`reset` rebuilds it from the immutable seed."""

    def __init__(self, seed: HubSpotSeed) -> None:
        self.seed = seed
        # One lock serialises API calls: the server is threaded, the store is not thread-safe,
        # and real clients page sequentially anyway.
        self.lock = threading.RLock()
        self.search = SearchEngine()
        self._build()

    def _build(self) -> None:
        self.types: dict[str, ObjectType] = {}
        self.registries: dict[str, PropertyRegistry] = {}
        self.tables: dict[str, ObjectTable] = {}
        self.schemas: dict[str, dict[str, Any]] = {}
        self._aliases: dict[str, str] = {}
        self._next_custom = 1
        for ot in STANDARD_TYPES:
            reg = PropertyRegistry(ot, standard_properties(ot, SEEDED_AT_MS))
            base = self.seed.objects.get(ot.name)
            self._register(ot, reg, base if base is not None else empty_base())
        # Engagements (calls, emails, meetings, notes, tasks) are one object family in HubSpot
        # with one id space: a new call never takes a meeting's id (engagements API overview).
        shared = IdSequence(0)
        for name in ENGAGEMENT_TYPES & self.tables.keys():
            self.tables[name].share_ids(shared)
        self.assoc = AssocStore(self.seed.associations)
        self.pipelines: dict[str, list[dict[str, Any]]] = {"deals": [default_deal_pipeline()]}
        self.search.clear()
        self._set_pipeline_options()

    def reset(self) -> None:
        with self.lock:
            self._build()

    def _register(self, ot: ObjectType, reg: PropertyRegistry, base: pl.DataFrame) -> None:
        self.types[ot.name] = ot
        self.registries[ot.name] = reg
        self.tables[ot.name] = ObjectTable(ot, reg, base)
        for alias in ot.names():
            self._aliases[alias.lower()] = ot.name

    def _set_pipeline_options(self) -> None:
        """dealstage / pipeline options mirror the pipelines (as HubSpot keeps them in sync)."""
        reg = self.registries["deals"]
        stage = reg.get("dealstage")
        pipe = reg.get("pipeline")
        if stage is None or pipe is None:
            return
        stage.options, pipe.options = [], []
        for p in self.pipelines.get("deals", []):
            pipe.options.append(
                {
                    "label": p["label"],
                    "value": p["id"],
                    "displayOrder": p["displayOrder"],
                    "hidden": False,
                }
            )
            for s in p["stages"]:
                stage.options.append(
                    {
                        "label": s["label"],
                        "value": s["id"],
                        "displayOrder": s["displayOrder"],
                        "hidden": False,
                    }
                )

    # -- type resolution ------------------------------------------------------------------------
    def resolve(self, name: str) -> ObjectType:
        """An object type from its path name, singular, ``0-3``/``2-…`` id or qualified name."""
        key = self._aliases.get(name.lower())
        if key is None:
            raise HubSpotError(
                400,
                f"Unable to infer object type from: {name}",
                "VALIDATION_ERROR",
                context={"objectType": [name]},
            )
        return self.types[key]

    def table(self, name: str) -> ObjectTable:
        return self.tables[self.resolve(name).name]

    def new_custom_type(self, name: str) -> tuple[str, str]:
        """The next ``2-…`` object type id and the fully qualified name for a custom object."""
        tid = f"2-{PORTAL_ID % 1000 * 1000 + self._next_custom}"
        self._next_custom += 1
        return tid, f"p{PORTAL_ID}_{name}"

    def add_custom(self, ot: ObjectType, reg: PropertyRegistry, schema: dict[str, Any]) -> None:
        self._register(ot, reg, empty_base())
        self.schemas[ot.name] = schema

    def drop_custom(self, ot: ObjectType) -> None:
        del self.types[ot.name], self.registries[ot.name], self.tables[ot.name]
        self.schemas.pop(ot.name, None)
        for alias in ot.names():
            self._aliases.pop(alias.lower(), None)

    # -- pipelines ------------------------------------------------------------------------------
    def stage(self, stage_id: str) -> dict[str, Any] | None:
        for p in self.pipelines.get("deals", []):
            for s in p["stages"]:
                if s["id"] == stage_id:
                    return dict(s)
        return None

    def stage_pipelines_changed(self) -> None:
        self._set_pipeline_options()

    def fx_rate_to_home(self, currency: str | None) -> float | None:
        """Company-currency units per unit of ``currency`` in force now (latest effective rate)."""
        if not currency or currency == self.seed.company_currency:
            return 1.0
        best = None
        for r in self.seed.fx_rates:
            if r["fromCurrencyCode"] == currency:
                best = r["conversionRate"]
        return best

    def now(self) -> int:
        return now_ms()
