"""Columnar record store for one object type: seeded rows in polars, edits in a small overlay.

A million seeded deals live in one :class:`polars.DataFrame` (``id`` sorted, one string column per
property, ``_created_ms``/``_updated_ms`` as integers); nothing is kept per seeded record in
Python.  A record that is created, edited or archived through the API moves into ``rows`` (a dict
of :class:`Row`) and its base row is masked out, so reads always see the latest version while the
base stays immutable.  Typed copies of base columns (numbers, epoch ms) are computed on first use
by a filter or a sort and cached, since the base never changes.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from sandbox.hubspot.registry import PropertyRegistry
from sandbox.hubspot.schema import ObjectType
from sandbox.hubspot.values import date_from_ms, iso_from_ms, now_ms, parse_ms, parse_number

ID = "id"
ISO = "%Y-%m-%dT%H:%M:%S%.3fZ"
CREATED = "_created_ms"
UPDATED = "_updated_ms"


@dataclass
class Row:
    """A record that left the columnar base (created, edited or archived through the API)."""

    id: int
    props: dict[str, str | None]
    created_ms: int
    updated_ms: int
    archived_ms: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Record:
    """A record as read: id, stored properties (virtual ones are added on render), times."""

    id: int
    props: dict[str, str | None]
    created_ms: int
    updated_ms: int
    archived_ms: int | None = None
    #: ISO forms of the two times, computed in bulk for base rows (rendering speed).
    created_iso: str | None = None
    updated_iso: str | None = None


def empty_base(columns: Iterable[str] = ()) -> pl.DataFrame:
    schema: dict[str, Any] = {ID: pl.Int64, CREATED: pl.Int64, UPDATED: pl.Int64}
    schema.update({c: pl.Utf8 for c in columns})
    return pl.DataFrame(schema=schema)


class IdSequence:
    """The ids handed to new records of one or more object types."""

    def __init__(self, start: int) -> None:
        self.next = start

    def take(self) -> int:
        taken = self.next
        self.next += 1
        return taken


class ObjectTable:
    """All records of one object type."""

    def __init__(self, ot: ObjectType, registry: PropertyRegistry, base: pl.DataFrame) -> None:
        self.ot = ot
        self.registry = registry
        base = base.sort(ID)
        self.base = base
        self.base_ids: np.ndarray[Any, np.dtype[np.int64]] = base[ID].to_numpy().astype(np.int64)
        self.shadow = np.zeros(len(base), dtype=bool)
        self.rows: dict[int, Row] = {}
        self._row_ids: list[int] = []  # sorted ids of ``rows``
        #: property -> (value -> overlay ids, id -> value): unique-value lookups (upserts by
        #: ``idProperty``) without a scan of every overlay row per record.
        self._overlay_index: dict[str, tuple[dict[str, set[int]], dict[int, str]]] = {}
        #: property -> (value -> base positions): the same lookups over the columnar base,
        #: instead of a scan of the whole column per batch (a large writeback's upserts would
        #: each scan every record written before them). Rebuilt when the base is.
        self._base_index: dict[str, dict[str, list[int]]] = {}
        self._typed: dict[str, pl.Series] = {}
        #: Merged-away id → the id it was merged into (a GET of the old id answers the winner).
        self.merged_into: dict[int, int] = {}
        self.version = 0
        top = int(self.base_ids[-1]) if len(self.base_ids) else 0
        self.ids = IdSequence(max(top + 1, _first_id(ot)))

    def share_ids(self, sequence: IdSequence) -> None:
        """Draw new ids from ``sequence``, which other tables draw from too."""
        sequence.next = max(sequence.next, self.ids.next)
        self.ids = sequence

    # -- virtual properties --------------------------------------------------------------------
    @property
    def virtual(self) -> set[str]:
        """Properties derived from the record itself, never stored as columns."""
        return {"hs_object_id", self.ot.created_property, self.ot.modified_property}

    def virtual_value(self, name: str, rid: int, created: int, updated: int) -> str:
        if name == "hs_object_id":
            return str(rid)
        if name == self.ot.created_property:
            return iso_from_ms(created)
        return iso_from_ms(updated)

    # -- lookups -------------------------------------------------------------------------------
    def _base_pos(self, rid: int) -> int | None:
        pos = int(np.searchsorted(self.base_ids, rid))
        if pos < len(self.base_ids) and int(self.base_ids[pos]) == rid:
            return pos
        return None

    def get(self, rid: int, archived: bool = False) -> Record | None:
        """A live (or, with ``archived``, an archived) record by id."""
        while not archived and rid in self.merged_into:
            rid = self.merged_into[rid]
        row = self.rows.get(rid)
        if row is not None:
            if (row.archived_ms is not None) != archived:
                return None
            return Record(row.id, row.props, row.created_ms, row.updated_ms, row.archived_ms)
        if archived:
            return None
        pos = self._base_pos(rid)
        if pos is None or self.shadow[pos]:
            return None
        return self._base_records([pos])[0]

    def is_live(self, rid: int) -> bool:
        """Whether ``get(rid)`` finds a record, without reading it (association lists check
        every target, and reading a row costs ~50x this)."""
        while rid in self.merged_into:
            rid = self.merged_into[rid]
        row = self.rows.get(rid)
        if row is not None:
            return row.archived_ms is None
        pos = self._base_pos(rid)
        return pos is not None and not self.shadow[pos]

    def get_many(self, ids: list[int], columns: list[str] | None = None) -> dict[int, Record]:
        """Live records by id; ``columns`` limits the base properties read (all when None)."""
        out: dict[int, Record] = {}
        positions: list[int] = []
        for rid in ids:
            row = self.rows.get(rid)
            if row is not None:
                if row.archived_ms is None:
                    out[rid] = Record(row.id, row.props, row.created_ms, row.updated_ms)
                continue
            pos = self._base_pos(rid)
            if pos is not None and not self.shadow[pos]:
                positions.append(pos)
        for rec in self._base_records(positions, columns):
            out[rec.id] = rec
        return out

    def _base_records(self, positions: list[int], columns: list[str] | None = None) -> list[Record]:
        if not positions:
            return []
        if len(positions) == 1:
            return [self._base_record(positions[0], columns)]
        if positions[-1] - positions[0] == len(positions) - 1:
            sub = self.base.slice(positions[0], len(positions))  # a page: contiguous rows
        else:
            sub = self.base[positions]
        wanted = [c for c in (columns if columns is not None else sub.columns) if c in sub.columns]
        prop_cols = [c for c in wanted if c not in (ID, CREATED, UPDATED)]
        sub = sub.select(
            ID,
            CREATED,
            UPDATED,
            pl.from_epoch(CREATED, "ms").dt.strftime(ISO).alias("__c"),
            pl.from_epoch(UPDATED, "ms").dt.strftime(ISO).alias("__u"),
            *prop_cols,
        )
        out: list[Record] = []
        for row in sub.iter_rows():
            props = dict(zip(prop_cols, row[5:], strict=True))
            out.append(Record(row[0], props, row[1], row[2], None, row[3], row[4]))
        return out

    def _base_record(self, pos: int, columns: list[str] | None) -> Record:
        # One row (a get, an edit): plain Python is ~50x cheaper than a polars select here.
        row = dict(zip(self.base.columns, self.base.row(pos), strict=True))
        wanted = columns if columns is not None else self.base.columns
        props = {c: row[c] for c in wanted if c in row and c not in (ID, CREATED, UPDATED)}
        created, updated = row[CREATED], row[UPDATED]
        return Record(row[ID], props, created, updated, None,
                      iso_from_ms(created), iso_from_ms(updated))  # fmt: skip

    def find_by(self, prop: str, values: list[str]) -> dict[str, int]:
        """Live record ids by the value of a (unique) property (indexed lookups)."""
        wanted = [v for v in values if v]
        out: dict[str, int] = {}
        if not wanted:
            return out
        if prop == "hs_object_id":
            for v in wanted:
                if v.isdigit() and self.get(int(v)) is not None:
                    out[v] = int(v)
            return out
        if prop in self.base.columns and len(self.base):
            index = self._base_index.get(prop)
            if index is None:
                index = {}
                for at, value in enumerate(self.base[prop].to_list()):
                    if value is not None:
                        index.setdefault(value, []).append(at)
                self._base_index[prop] = index
            for v in wanted:
                # The first live (not shadowed by an overlay copy) base row, in id order.
                live = next((p for p in index.get(v, ()) if not self.shadow[p]), None)
                if live is not None:
                    out[v] = int(self.base_ids[live])
        by_value = self._overlay_ids(prop)
        for v in wanted:
            for rid in sorted(by_value.get(v, ())):
                row = self.rows.get(rid)
                if row is not None and row.archived_ms is None and row.props.get(prop) == v:
                    out.setdefault(v, rid)
                    break
        return out

    def _overlay_ids(self, prop: str) -> dict[str, set[int]]:
        index = self._overlay_index.get(prop)
        if index is None:
            by_value: dict[str, set[int]] = {}
            by_id: dict[int, str] = {}
            for row in self.rows.values():
                v = row.props.get(prop)
                if v is not None:
                    by_value.setdefault(v, set()).add(row.id)
                    by_id[row.id] = v
            index = self._overlay_index[prop] = (by_value, by_id)
        return index[0]

    def _reindex(self, row: Row) -> None:
        for prop, (by_value, by_id) in self._overlay_index.items():
            old = by_id.pop(row.id, None)
            if old is not None:
                by_value.get(old, set()).discard(row.id)
            v = row.props.get(prop)
            if v is not None:
                by_value.setdefault(v, set()).add(row.id)
                by_id[row.id] = v

    # -- listing -------------------------------------------------------------------------------
    def list_ids(self, after: int, limit: int, archived: bool = False) -> list[int]:
        """Up to ``limit`` ids ``>= after`` in id order: a cursor walk, linear over a full scan."""
        if archived:
            out: list[int] = []
            for rid in self._row_ids[bisect.bisect_left(self._row_ids, after) :]:
                if self.rows[rid].archived_ms is not None and rid not in self.merged_into:
                    out.append(rid)
                    if len(out) >= limit:
                        break
            return out
        base_part: list[int] = []
        pos = int(np.searchsorted(self.base_ids, after))
        step = max(limit * 2, 256)
        while len(base_part) < limit and pos < len(self.base_ids):
            chunk = self.base_ids[pos : pos + step]
            live = chunk[~self.shadow[pos : pos + step]]
            base_part.extend(int(x) for x in live[: limit - len(base_part)])
            pos += step
        row_part: list[int] = []
        for rid in self._row_ids[bisect.bisect_left(self._row_ids, after) :]:
            if self.rows[rid].archived_ms is None:
                row_part.append(rid)
                if len(row_part) >= limit:
                    break
        return sorted(base_part + row_part)[:limit]

    def live_rows(self) -> Iterator[Row]:
        for row in self.rows.values():
            if row.archived_ms is None:
                yield row

    def count(self) -> int:
        return int((~self.shadow).sum()) + sum(1 for _ in self.live_rows())

    # -- typed columns for search --------------------------------------------------------------
    def typed_base(self, prop: str) -> pl.Series:
        """A base column in the type filters and sorts compare on (cached; base is immutable)."""
        s = self._typed.get(prop)
        if s is not None:
            return s
        kind = self.kind(prop)
        n = len(self.base)
        if prop == "hs_object_id":
            s = self.base[ID].cast(pl.Float64)
        elif prop == self.ot.created_property:
            s = self.base[CREATED].cast(pl.Float64)
        elif prop == self.ot.modified_property:
            s = self.base[UPDATED].cast(pl.Float64)
        elif prop not in self.base.columns:
            s = pl.Series(prop, [None] * n, dtype=pl.Float64 if kind != "str" else pl.Utf8)
        elif kind == "num":
            s = self.base[prop].cast(pl.Float64, strict=False)
        elif kind == "ms":
            s = _ms_series(self.base[prop])
        else:
            s = self.base[prop].str.to_lowercase()
        self._typed[prop] = s
        return s

    def kind(self, prop: str) -> str:
        """``num`` (numbers), ``ms`` (date/datetime as epoch ms) or ``str`` (everything else)."""
        if prop == "hs_object_id" or prop in (self.ot.created_property, self.ot.modified_property):
            return "ms" if prop != "hs_object_id" else "num"
        p = self.registry.get(prop)
        if p is None:
            return "str"
        if p.type == "number":
            return "num"
        if p.type in ("date", "datetime"):
            return "ms"
        return "str"

    def typed_value(self, prop: str, rec: Record | Row) -> float | str | None:
        """The same typed value for one record outside the base."""
        if prop == "hs_object_id":
            return float(rec.id)
        if prop == self.ot.created_property:
            return float(rec.created_ms)
        if prop == self.ot.modified_property:
            return float(rec.updated_ms)
        raw = rec.props.get(prop)
        if raw is None or raw == "":
            return None
        kind = self.kind(prop)
        if kind == "num":
            return parse_number(raw)
        if kind == "ms":
            ms = parse_ms(raw)
            return None if ms is None else float(ms)
        return raw.lower()

    # -- mutations -----------------------------------------------------------------------------
    def _materialize(self, rid: int) -> Row | None:
        self._maybe_compact()
        row = self.rows.get(rid)
        if row is not None:
            return row
        pos = self._base_pos(rid)
        if pos is None or self.shadow[pos]:
            return None
        rec = self._base_records([pos])[0]
        row = Row(rec.id, dict(rec.props), rec.created_ms, rec.updated_ms)
        self.shadow[pos] = True
        self._put(row)
        return row

    def _put(self, row: Row) -> None:
        if row.id not in self.rows:
            bisect.insort(self._row_ids, row.id)
        self.rows[row.id] = row
        self._reindex(row)
        self.version += 1

    def _maybe_compact(self) -> None:
        # Called at the start of a mutation, never in the middle: a Row handed back to a caller
        # stays in the overlay until the next mutation.
        if len(self.rows) >= self.compact_at and len(self.rows) % 1000 == 0:
            self.compact()

    #: Overlay size at which live overlay rows are folded back into the columnar base, so that
    #: searches stay vectorised after a large writeback.
    compact_at = 20_000

    def compact(self) -> None:
        """Fold live overlay rows into the base; archived rows stay in the overlay."""
        live = [r for r in self.rows.values() if r.archived_ms is None]
        if not live:
            return
        keep = self.base.filter(pl.Series(~self.shadow))
        cols = set(keep.columns) - {ID, CREATED, UPDATED}
        for r in live:
            cols.update(r.props)
        data: dict[str, list[Any]] = {
            ID: [r.id for r in live],
            CREATED: [r.created_ms for r in live],
            UPDATED: [r.updated_ms for r in live],
        }
        for c in sorted(cols):
            data[c] = [r.props.get(c) for r in live]
        schema: dict[str, Any] = {ID: pl.Int64, CREATED: pl.Int64, UPDATED: pl.Int64}
        schema.update({c: pl.Utf8 for c in sorted(cols)})
        extra = pl.DataFrame(data, schema=schema)
        self.base = pl.concat([keep, extra], how="diagonal").sort(ID)
        self.base_ids = self.base[ID].to_numpy().astype(np.int64)
        self.shadow = np.zeros(len(self.base), dtype=bool)
        self.rows = {rid: r for rid, r in self.rows.items() if r.archived_ms is not None}
        self._row_ids = sorted(self.rows)
        self._overlay_index.clear()
        self._base_index.clear()
        self._typed.clear()
        self.version += 1

    def create(self, props: dict[str, str | None], at_ms: int | None = None) -> Row:
        self._maybe_compact()
        t = at_ms if at_ms is not None else now_ms()
        row = Row(self.ids.take(), {k: v for k, v in props.items() if k not in self.virtual}, t, t)
        self._put(row)
        return row

    def raw_put(
        self, rid: int | None, props: dict[str, str | None], *, created_ms: int | None = None
    ) -> Row:
        """Create or overwrite a record without any checks (``HubSpotApp.raw_put``): a new
        record takes ``rid`` when given; the modification time moves to now."""
        self._maybe_compact()
        now = now_ms()
        row = None if rid is None else self._materialize(rid)
        if row is None:
            row = Row(self.ids.take() if rid is None else rid, {}, now, now)
        for k, v in props.items():
            if k not in self.virtual:
                row.props[k] = v
        if created_ms is not None:
            row.created_ms = created_ms
        row.updated_ms = max(now, row.updated_ms)
        self._put(row)
        return row

    def update(
        self, rid: int, props: dict[str, str | None], at_ms: int | None = None
    ) -> Row | None:
        row = self._materialize(rid)
        if row is None or row.archived_ms is not None:
            return None
        for k, v in props.items():
            if k not in self.virtual:
                row.props[k] = v
        self._reindex(row)
        row.updated_ms = max(at_ms if at_ms is not None else now_ms(), row.updated_ms)
        self.version += 1
        return row

    def archive(self, rid: int, at_ms: int | None = None) -> bool:
        row = self._materialize(rid)
        if row is None or row.archived_ms is not None:
            return False
        t = at_ms if at_ms is not None else now_ms()
        row.archived_ms = t
        row.updated_ms = max(t, row.updated_ms)
        self.version += 1
        return True

    def restore(self, rid: int) -> bool:
        row = self.rows.get(rid)
        if row is None or row.archived_ms is None:
            return False
        row.archived_ms = None
        row.updated_ms = now_ms()
        self.version += 1
        return True

    # -- rendering -----------------------------------------------------------------------------
    def render(self, rec: Record | Row, props: list[str] | None) -> dict[str, Any]:
        """The v3 record JSON: id, string properties, createdAt/updatedAt, archived."""
        return self.render_many([rec], props)[0]

    def render_many(
        self, recs: Sequence[Record | Row], props: list[str] | None
    ) -> list[dict[str, Any]]:
        names = self.output_properties(props)
        id_prop, created_prop, modified_prop = (
            "hs_object_id",
            self.ot.created_property,
            self.ot.modified_property,
        )
        out: list[dict[str, Any]] = []
        for rec in recs:
            c_iso = getattr(rec, "created_iso", None) or iso_from_ms(rec.created_ms)
            u_iso = getattr(rec, "updated_iso", None) or iso_from_ms(rec.updated_ms)
            stored = rec.props
            values: dict[str, str | None] = {}
            for name in names:
                if name == id_prop:
                    values[name] = str(rec.id)
                elif name == created_prop:
                    values[name] = c_iso
                elif name == modified_prop:
                    values[name] = u_iso
                else:
                    values[name] = stored.get(name)
            item: dict[str, Any] = {
                "id": str(rec.id),
                "properties": values,
                "createdAt": c_iso,
                "updatedAt": u_iso,
                "archived": rec.archived_ms is not None,
            }
            if rec.archived_ms is not None:
                item["archivedAt"] = iso_from_ms(rec.archived_ms)
            out.append(item)
        return out

    def output_properties(self, props: list[str] | None) -> list[str]:
        """Requested properties that exist (unknown names are ignored, as HubSpot does) plus the
        id, create and modify dates HubSpot always returns; the defaults when none are asked."""
        if not props:
            return list(self.ot.default_properties)
        known = self.registry.names()
        always = ["hs_object_id", self.ot.created_property, self.ot.modified_property]
        seen: dict[str, None] = {}
        for p in [*props, *always]:
            if p in known or p in always:
                seen[p] = None
        return sorted(seen)


def _first_id(ot: ObjectType) -> int:
    # New records get ids above the seeded ones; a per-type floor keeps ids looking like
    # HubSpot's (large, numeric, different ranges per type).
    return 1_000_000 if not ot.custom else 10_000_000


def _ms_series(s: pl.Series) -> pl.Series:
    """ISO datetime / date text → epoch ms as Float64 (null where unparsable)."""
    if s.dtype != pl.Utf8:
        s = s.cast(pl.Utf8)
    dt = s.str.to_datetime(format="%Y-%m-%dT%H:%M:%S%.fZ", strict=False, time_zone="UTC")
    d = s.str.to_date(format="%Y-%m-%d", strict=False).cast(pl.Datetime("ms", "UTC"))
    both = dt.dt.cast_time_unit("ms").fill_null(d)
    return both.dt.epoch("ms").cast(pl.Float64)


def ms_text(kind: str, ms: int) -> str:
    """Render epoch ms as a datetime or date property value."""
    return date_from_ms(ms) if kind == "date" else iso_from_ms(ms)
