"""The HubSpot connector: pull a portal's sales objects incrementally into the store.

Public API::

    from connectors.hubspot import HubSpotSettings, HubSpotCredentials, sync_hubspot
    settings = HubSpotSettings(connection="hs-prod",
                               credentials=HubSpotCredentials(access_token="pat-..."))
    result = sync_hubspot(store, settings, full=False)     # -> connectors.base.SyncResult

:class:`HubSpotSource` is the ``connectors.base.Source`` the shared extract loop
(``sync_connection``) drives: it turns every object into :class:`~connectors.base.Page` values
(records, deletions and the cursor that follows them, stored in one transaction).  The CRM objects
are data (``connectors.hubspot_mapping.OBJECTS``) fed to one generic loop, :meth:`_object_pages`:

* **full pull** (first sync, ``--full``, or resuming one): list paging at limit 100 with the
  properties and associations the rows need in the same call, so it costs ceil(records / 100)
  calls per object; the cursor carries the paging ``after`` so a crash resumes mid-object.
  It ends at "wall clock at the start minus the index lag", so records changed during the
  pull are picked up by the next incremental run.
* **incremental**: one search per object sorted by the last-modified property *descending*
  (200 records) is the probe: its ``total`` is the live record count and, when every change fits
  in it, it is the whole pull — a quiet portal costs one call per object.  Otherwise
  ``connectors.hubspot_window.SearchPlan`` pages ascending through windows on (timestamp, id),
  so the 10,000-result cap never loses a record.  Associations of changed records come from the
  v4 batch read (≤ 1,000 ids a call).  Records re-read at the boundary are de-duplicated by
  (id, timestamp) and cost no writes.
* **deletions**: archived records vanish from search, so each cycle compares the probe's total
  with the store's count; when the store holds more, the archived listing is read and those
  records are deleted (HubSpot keeps archived records 90 days, so this runs every cycle, not
  occasionally: airbytehq/airbyte#10155).  A record merged into another is deleted through the
  winner's ``hs_merged_object_ids`` (fivetran/dbt_hubspot#134).
* **metadata** (teams, owners, deal pipelines, currencies) is small: re-read in full when older
  than ``metadata_max_age_s`` (or on ``--full``); otherwise the stored copy is used, so a quiet
  cycle spends nothing on it.
* **side by side**: ``Limits.concurrency`` objects are pulled at once (``connectors.base``), so a
  full pull pays the API's latency per call in parallel, not one call after another. The CRM
  objects wait for the metadata (their rows need owners, stages, the company currency), owners
  for teams; the four engagement objects share ``activities`` and are stored in their declared
  order. The source's caches are locked, and it reads the store only through
  ``connectors.base.read_store``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors.base import ObjectSpec, Page, Progress, SyncResult, read_store, sync_connection
from connectors.errors import ApiError, AuthError
from connectors.hubspot_http import HubSpotCredentials, HubSpotHttp, Limits
from connectors.hubspot_mapping import (
    OBJECTS,
    HubSpotMapping,
    HubSpotObject,
    MappingContext,
    fx_rows,
    ms_of,
    owner_of_user,
    owner_rows,
    stage_map,
    team_rows,
)
from connectors.hubspot_window import SEARCH_LIMIT, Position, SearchPlan, settled
from connectors.store import Cursor, Store

log = logging.getLogger(__name__)

__all__ = [
    "HubSpotCredentials",
    "HubSpotSettings",
    "HubSpotSource",
    "Limits",
    "sync_hubspot",
]

PAGE_LIMIT = 100  # list endpoints: at most 100 per page (objects guide; fetch_all uses 100)
ASSOC_BATCH = 1_000  # v4 associations batch read: up to 1,000 inputs (changelog Feb 2025)
SEEN_MAX = 5_000  # boundary de-duplication entries kept in a cursor (more only costs re-reads)
METADATA = ("teams", "owners", "pipelines", "exchange_rates")


@dataclass(frozen=True)
class HubSpotSettings:
    """One HubSpot connection (a frozen value; build it from the settings file)."""

    credentials: HubSpotCredentials
    connection: str = "hubspot"
    base_url: str | None = None  # None: https://api.hubapi.com
    ca_bundle: str | None = None
    limits: Limits = field(default_factory=Limits)
    mapping: HubSpotMapping = field(default_factory=HubSpotMapping)
    #: How far behind writes the search index may be; changes newer than this are re-read once.
    lag_ms: int = 30_000
    #: Teams, owners, pipelines and currencies are re-read when their copy is older than this.
    #: Longer than the service's default 900 s interval, or every quiet cycle would pay ~6 calls.
    metadata_max_age_s: float = 3600.0
    #: Sync only these CRM objects (API names); None = all of ``OBJECTS``.
    objects: tuple[str, ...] | None = None


def _now_ms() -> int:
    return int(time.time() * 1000)


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class HubSpotSource:
    """The HubSpot side of the extract loop (``connectors.base.Source``)."""

    crm = "hubspot"

    def __init__(
        self,
        settings: HubSpotSettings,
        store: Store,
        *,
        http: HubSpotHttp | None = None,
        clock_ms: Callable[[], int] = _now_ms,
    ) -> None:
        self.settings = settings
        self.store = store
        self.http = http or HubSpotHttp(
            settings.credentials,
            base_url=settings.base_url,
            ca_bundle=settings.ca_bundle,
            limits=settings.limits,
        )
        self.clock_ms = clock_ms
        # Objects are pulled in threads of their own (``concurrent_objects``): what one pull
        # fills and another reads (or the storing thread's normalisers) is guarded by the lock,
        # never held across a store read or a call.
        self._lock = threading.Lock()
        self._meta: dict[str, list[dict[str, Any]]] = {}
        self._company_currency: str | None = None
        self._ctx: MappingContext | None = None
        self._rep_rows: dict[str, dict[str, str | None]] = {}
        self.skipped: list[str] = []  # optional objects the portal does not have

    # -- Source protocol -------------------------------------------------------------------------
    @property
    def api_calls(self) -> int:
        return self.http.calls

    @property
    def thread_api_calls(self) -> int:
        return self.http.guard.thread_calls

    @property
    def concurrent_objects(self) -> int:
        return max(1, self.settings.limits.concurrency)

    def objects(self) -> Sequence[ObjectSpec]:
        specs = [
            ObjectSpec("teams", "teams", id_field="id", normalise=self._team_row),
            # Reps carry their team's name: the teams of this run come first.
            ObjectSpec("owners", "reps", id_field="id", normalise=self._rep_row, after=("teams",)),
            ObjectSpec("pipelines", None, id_field="id"),
            ObjectSpec("exchange_rates", "fx_rates", id_field="id", normalise=self._fx_row),
        ]
        wanted = self.settings.objects
        for obj in OBJECTS:
            if wanted is not None and obj.name not in wanted:
                continue
            specs.append(
                ObjectSpec(
                    obj.name,
                    obj.table,
                    id_field="id",
                    cursor_field=obj.modified_property,
                    fields=tuple(obj.all_properties(self.settings.mapping)),
                    normalise=self._normaliser(obj),
                    optional=obj.optional,
                    # Rows need this run's owners, deal stages and company currency.
                    after=METADATA,
                )
            )
        return specs

    def pages(self, spec: ObjectSpec, cursor: Cursor | None, *, full: bool) -> Iterator[Page]:
        if spec.name in METADATA:
            yield from self._metadata_pages(spec.name, cursor, full)
            return
        obj = next(o for o in OBJECTS if o.name == spec.name)
        try:
            yield from self._object_pages(obj, cursor, full)
        except (ApiError, AuthError) as exc:
            # A 403 is how a portal refuses an app lacking an object's scope (MISSING_SCOPES,
            # error-handling guide); it arrives as an AuthError, a 401 (bad token) never skips.
            if not obj.optional or exc.status not in (400, 403, 404):
                raise
            # Goal targets need a Sales Hub tier and a scope: a portal without them has no
            # quotas, which is not an error (the KPIs needing quotas stay undefined).
            log.warning("hubspot %s unavailable (%s); skipped", obj.name, exc.message)
            self.skipped.append(obj.name)

    def finish(self, store: Store, connection: str) -> None:
        b = self.http.budget
        if b.used is not None and b.limit is not None:
            store.record_api_usage(connection, used=b.used, limit=b.limit)

    # -- normalisation context -------------------------------------------------------------------
    def _context(self) -> MappingContext:
        with self._lock:
            ctx = self._ctx
        if ctx is None:
            owners = self._metadata("owners")
            ctx = MappingContext(
                mapping=self.settings.mapping,
                company_currency=self._currency(),
                stages=stage_map(self._metadata("pipelines")),
                owner_of_user=owner_of_user(owners),
            )
            with self._lock:
                self._ctx = ctx
        return ctx

    def _normaliser(self, obj: HubSpotObject) -> Callable[[dict[str, Any]], Mapping[str, Any]]:
        def normalise(record: dict[str, Any]) -> Mapping[str, Any]:
            return obj.normalise(record, self._context())

        return normalise

    def _team_row(self, record: dict[str, Any]) -> Mapping[str, Any]:
        return team_rows([record])[0][1]

    def _rep_row(self, record: dict[str, Any]) -> Mapping[str, Any]:
        with self._lock:
            return self._rep_rows[str(record["id"])]

    def _fx_row(self, record: dict[str, Any]) -> Mapping[str, Any]:
        rows = fx_rows([record], self._currency())
        if not rows:
            raise ValueError("not a rate into the company currency")
        return rows[0][1]

    def _metadata(self, name: str) -> list[dict[str, Any]]:
        """Metadata as pulled this run, else as stored by an earlier run."""
        with self._lock:
            got = self._meta.get(name)
        if got is None:
            conn = self.settings.connection
            stored = read_store(lambda: [rec for _, rec in self.store.raw_records(conn, name)])
            with self._lock:
                got = self._meta.setdefault(name, stored)
        return got

    def _currency(self) -> str:
        with self._lock:
            code = self._company_currency
        if code is None:
            conn = self.settings.connection
            cur = read_store(lambda: self.store.cursor(conn, "exchange_rates"))
            code = (cur.state.get("company_currency") if cur else None) or None
            if code is None:
                body = self.http.raw(
                    "/settings/v3/currencies/company-currency", obj="company_currency"
                )
                code = (body or {}).get("currencyCode")
            with self._lock:
                # HubSpot's default company currency is USD.
                code = self._company_currency = self._company_currency or str(code or "USD")
        return code

    # -- metadata --------------------------------------------------------------------------------
    def _fresh(self, cursor: Cursor | None, full: bool) -> bool:
        if full or cursor is None or cursor.updated_at is None:
            return False
        age = dt.datetime.now(dt.UTC) - cursor.updated_at
        return age.total_seconds() < self.settings.metadata_max_age_s

    def _metadata_pages(self, name: str, cursor: Cursor | None, full: bool) -> Iterator[Page]:
        if self._fresh(cursor, full):
            if name == "owners":
                reps = dict(
                    owner_rows(
                        self._metadata("owners"), self._metadata("teams"), self.settings.mapping
                    )
                )
                with self._lock:
                    self._rep_rows = reps
            return
        state: dict[str, Any] = {}
        if name == "teams":
            records = (self.http.call("settings.users.teams_api.get_all", obj=name) or {}).get(
                "results"
            ) or []
        elif name == "owners":
            records = []
            for archived in (False, True):  # archived owners are the inactive reps
                records += self._list_all(
                    "crm.owners.owners_api.get_page", name, archived=archived, limit=PAGE_LIMIT
                )
            reps = dict(owner_rows(records, self._metadata("teams"), self.settings.mapping))
            with self._lock:
                self._rep_rows = reps
        elif name == "pipelines":
            records = (
                self.http.call("crm.pipelines.pipelines_api.get_all", "deals", obj=name) or {}
            ).get("results") or []
        else:  # exchange rates (currencies API: no generated client in hubspot-api-client 12)
            body = self.http.raw("/settings/v3/currencies/company-currency", obj=name)
            currency = str((body or {}).get("currencyCode") or "USD")
            with self._lock:
                self._company_currency = currency
            state["company_currency"] = currency
            records, after = [], None
            while True:
                q: list[tuple[str, Any]] = [("limit", PAGE_LIMIT)]
                if after:
                    q.append(("after", after))
                body = self.http.raw("/settings/v3/currencies/exchange-rates", obj=name, query=q)
                records += (body or {}).get("results") or []
                after = ((body or {}).get("paging") or {}).get("next", {}).get("after")
                if not after:
                    break
        with self._lock:
            self._meta[name] = records
            self._ctx = None
        current = {str(r["id"]) for r in records}
        stale = read_store(lambda: self._stored_ids_but(name, current))
        state["count"] = len(records)
        yield Page(
            records=records, deleted=stale, cursor=Cursor(value=_iso(self.clock_ms()), state=state)
        )

    def _list_all(self, method: str, name: str, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            extra: dict[str, Any] = {"after": after} if after else {}
            body = self.http.call(method, *args, obj=name, **kwargs, **extra) or {}
            out += body.get("results") or []
            after = ((body.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return out

    # -- CRM objects: the one generic loop -------------------------------------------------------
    def _object_pages(
        self, obj: HubSpotObject, cursor: Cursor | None, full: bool
    ) -> Iterator[Page]:
        state = dict(cursor.state) if cursor is not None else {}
        if full or not state or state.get("mode") == "full":
            yield from self._full_pages(obj, state, sweep=full)
        else:
            yield from self._incremental_pages(obj, state)

    def _props(self, obj: HubSpotObject) -> list[str]:
        return [*obj.all_properties(self.settings.mapping), "hs_merged_object_ids"]

    def _full_pages(
        self, obj: HubSpotObject, state: dict[str, Any], *, sweep: bool
    ) -> Iterator[Page]:
        if state.get("mode") != "full":
            state = {"mode": "full", "after": None, "listed": False, "started_ms": self.clock_ms()}
        from_start = state.get("after") is None and not state.get("listed")
        seen: set[str] = set()
        records: list[dict[str, Any]] = []
        if not state.get("listed"):
            after = state.get("after")
            while True:
                kwargs: dict[str, Any] = {
                    "limit": PAGE_LIMIT,
                    "properties": self._props(obj),
                    "archived": False,
                }
                if obj.associations:
                    # Associations ride along with the list page: no extra calls on full pulls.
                    kwargs["associations"] = list(obj.associations)
                if after:
                    kwargs["after"] = after
                body = (
                    self.http.call(
                        "crm.objects.basic_api.get_page", obj.name, obj=obj.name, **kwargs
                    )
                    or {}
                )
                records = list(body.get("results") or [])
                seen.update(str(r["id"]) for r in records)
                after = ((body.get("paging") or {}).get("next") or {}).get("after")
                if not after:
                    break  # the last page goes out with the closing cursor below
                state = {**state, "after": after}
                yield Page(
                    records=records,
                    deleted=self._merged(records),
                    cursor=Cursor(value=None, state=state),
                )
        # The last page closes the full pull: the incremental position starts where the
        # listing started, less the index lag (records changed meanwhile are read again).
        ts = max(0, int(state["started_ms"]) - self.settings.lag_ms)
        final = {"mode": "incremental", "ts": ts, "tie_id": None, "seen": {}}
        deleted = self._merged(records)
        if sweep and from_start:
            # A --full re-sync of a filled store: whatever the listing did not return is gone.
            deleted += read_store(lambda: self._stored_ids_but(obj.name, seen))
        yield Page(records=records, deleted=deleted, cursor=Cursor(value=_iso(ts), state=final))

    def _stored_ids_but(self, name: str, keep: set[str]) -> list[dict[str, Any]]:
        """``{"id": ...}`` of every stored record of ``name`` whose id is not in ``keep``."""
        stored = self.store.raw_records(self.settings.connection, name)
        return [{"id": rid} for rid, _ in stored if rid not in keep]

    @staticmethod
    def _merged(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Records merged into these ones (``hs_merged_object_ids``): delete the losers."""
        out = []
        for r in records:
            ids = ((r.get("properties") or {}).get("hs_merged_object_ids") or "").split(";")
            out += [{"id": i.strip()} for i in ids if i.strip() and i.strip() != str(r["id"])]
        return out

    def _search(self, obj: HubSpotObject, body: dict[str, Any]) -> dict[str, Any]:
        got = self.http.call(
            "crm.objects.search_api.do_search", obj.name, body, obj=obj.name, search=True
        )
        return got or {}

    def _incremental_pages(self, obj: HubSpotObject, state: dict[str, Any]) -> Iterator[Page]:
        lag = self.settings.lag_ms
        # Both become search filter values: integers only, whatever the stored state holds.
        tie = state.get("tie_id")
        start = Position(int(state.get("ts") or 0), None if tie is None else int(tie))
        seen: dict[str, int] = {str(k): int(v) for k, v in (state.get("seen") or {}).items()}
        props = self._props(obj)
        mod = obj.modified_property

        def stamp(r: Mapping[str, Any]) -> int:
            return ms_of((r.get("properties") or {}).get(mod) or r.get("updatedAt")) or 0

        def cursor(pos: Position) -> Cursor:
            # Keep only the boundary: records at or after the position may be read again.
            for k in [k for k, v in seen.items() if v < pos.ts]:
                del seen[k]
            keep = dict(sorted(seen.items(), key=lambda kv: -kv[1])[:SEEN_MAX])
            return Cursor(
                value=_iso(pos.ts),
                state={"mode": "incremental", "ts": pos.ts, "tie_id": pos.tie_id, "seen": keep},
            )

        def fresh(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
            out = []
            for r in records:
                rid, ts = str(r["id"]), stamp(r)
                if seen.get(rid) == ts:
                    continue  # read again at the boundary, unchanged: nothing to write
                seen[rid] = ts
                out.append(r)
            return out

        # The probe: newest first.  Its total is the live count (deletion check).
        queried = self.clock_ms()
        probe = self._search(
            obj,
            {
                "sorts": [{"propertyName": mod, "direction": "DESCENDING"}],
                "properties": props,
                "limit": SEARCH_LIMIT,
            },
        )
        total = int(probe.get("total") or 0)
        results = list(probe.get("results") or [])
        complete = not (probe.get("paging") or {}).get("next") or (
            bool(results) and stamp(results[-1]) < start.ts
        )
        if start.tie_id is None and complete:
            changes = sorted(
                (r for r in results if stamp(r) >= start.ts), key=lambda r: (stamp(r), int(r["id"]))
            )
            top = max((stamp(r) for r in changes), default=start.ts)
            pos = settled(Position(max(start.ts, top)), queried, lag)
            new = fresh(changes)
            if new or pos != start:
                self._attach_associations(obj, new)
                yield Page(records=new, deleted=self._merged(new), cursor=cursor(pos))
        else:
            plan = SearchPlan(mod, start, properties=props, lag_ms=lag, clock_ms=self.clock_ms)
            while not plan.done:
                body = self._search(obj, plan.request())
                page = list(body.get("results") or [])
                nxt = ((body.get("paging") or {}).get("next") or {}).get("after")
                plan.feed([(int(r["id"]), stamp(r)) for r in page], nxt)
                new = fresh(page)
                self._attach_associations(obj, new)
                yield Page(records=new, deleted=self._merged(new), cursor=cursor(plan.position))
        yield from self._deletions(obj, total)

    def _deletions(self, obj: HubSpotObject, live_total: int) -> Iterator[Page]:
        """Archived records → deletions, when the store holds more records than HubSpot has."""
        conn = self.settings.connection
        stored = read_store(lambda: self.store.raw_count(conn).get(obj.name, 0))
        if stored <= live_total:
            return
        already = read_store(lambda: self.store.deleted_ids(conn, obj.name))
        archived = [
            str(r["id"])
            for r in self._list_all(
                "crm.objects.basic_api.get_page",
                obj.name,
                obj.name,
                archived=True,
                limit=PAGE_LIMIT,
                properties=["hs_object_id"],
            )
        ]
        gone = [rid for rid in archived if rid not in already]
        if gone:
            yield Page(deleted=[{"id": rid} for rid in gone])

    def _attach_associations(self, obj: HubSpotObject, records: list[dict[str, Any]]) -> None:
        """Fill ``associations`` of search results (search returns none) through the v4 batch
        read, in the v3 shape list pages carry (``{"companies": {"results": [{"id": ..}]}}``)."""
        if not records or not obj.associations:
            return
        by_id = {str(r["id"]): r for r in records}
        for r in records:
            r["associations"] = {}
        for to_type in obj.associations:
            ids = list(by_id)
            for i in range(0, len(ids), ASSOC_BATCH):
                body = (
                    self.http.call(
                        "crm.associations.v4.batch_api.get_page",
                        obj.name,
                        to_type,
                        {"inputs": [{"id": x} for x in ids[i : i + ASSOC_BATCH]]},
                        obj=obj.name,
                    )
                    or {}
                )
                # 207 lists records without associations under "errors": nothing to attach.
                for res in body.get("results") or []:
                    rec = by_id.get(str((res.get("from") or {}).get("id")))
                    if rec is None:
                        continue
                    targets = [{"id": str(t["toObjectId"])} for t in res.get("to") or []]
                    if targets:
                        rec["associations"][to_type] = {"results": targets}


def sync_hubspot(
    store: Store,
    settings: HubSpotSettings,
    *,
    full: bool = False,
    progress: Progress | None = None,
    after_batch: Callable[[str, int], None] | None = None,
    http: HubSpotHttp | None = None,
) -> SyncResult:
    """Sync one HubSpot connection into ``store`` (see the module docstring)."""
    source = HubSpotSource(settings, store, http=http)
    return sync_connection(
        store, settings.connection, source, full=full, progress=progress, after_batch=after_batch
    )
