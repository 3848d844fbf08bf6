"""CRM search: filterGroups → a polars mask over the base plus a predicate for overlay rows.

Follows the HubSpot search guide (developers.hubspot.com/docs/api/crm/search):
groups are OR-ed, filters in a group AND-ed; at most 5 groups, 10 filters per group,
25 in all; ``limit`` ≤ 200 (default 10); ``after`` is an offset; results stop at 10,000 per query
and asking for a page at or beyond it is a 400; one sorting rule, given either as
``{"propertyName", "direction"}`` or as a string (``"createdate"`` / ``"-createdate"``).
String comparisons are case-insensitive; the docs ask for lower-case values with IN/NOT_IN on
*string* properties, and such values are compared as given (enumerations ignore case).  NEQ and
NOT_IN match records without a value, as a must-not clause in HubSpot's index would
([UNVERIFIED]: the guide does not say; connectors should add HAS_PROPERTY when they mean it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from sandbox.hubspot.errors import HubSpotError, validation
from sandbox.hubspot.store import ID, ObjectTable, Record, Row
from sandbox.hubspot.values import parse_ms, parse_number

MAX_LIMIT = 200
DEFAULT_LIMIT = 10
RESULT_CAP = 10_000
MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 10
MAX_FILTERS = 25
MAX_QUERY_LEN = 3000
OPERATORS = {
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
}

Typed = float | str | None
Pred = Callable[[Record | Row], bool]
#: ``(object type, record id) -> ids of the searched type associated with that record``.
AssocLookup = Callable[[str, str], set[int]]


@dataclass(frozen=True)
class SearchRequest:
    groups: list[list[dict[str, Any]]]
    sort_prop: str | None
    descending: bool
    query: str | None
    properties: list[str] | None
    limit: int
    after: int

    def cache_key(self) -> str:
        return json.dumps(
            [self.groups, self.sort_prop, self.descending, self.query], sort_keys=True, default=str
        )


def parse_request(body: Any) -> SearchRequest:
    """Validate a PublicObjectSearchRequest body (400 VALIDATION_ERROR on anything malformed)."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise validation("Invalid input JSON on line 1, column 1: search request must be an object")
    groups_in = body.get("filterGroups") or []
    if not isinstance(groups_in, list):
        raise validation("filterGroups must be a list")
    if len(groups_in) > MAX_GROUPS:
        raise validation(
            f"Too many filter groups ({len(groups_in)}). The maximum number of filter groups is "
            f"{MAX_GROUPS}.",
            context={"maxFilterGroups": [str(MAX_GROUPS)]},
        )
    groups: list[list[dict[str, Any]]] = []
    total = 0
    for g in groups_in:
        filters = (g or {}).get("filters") or []
        if len(filters) > MAX_FILTERS_PER_GROUP:
            raise validation(
                f"Too many filters in group ({len(filters)}). The maximum is "
                f"{MAX_FILTERS_PER_GROUP} per group.",
            )
        total += len(filters)
        for f in filters:
            op = str(f.get("operator", "EQ")).upper()
            if op not in OPERATORS:
                raise validation(f"Invalid operator {f.get('operator')!r}")
            if not f.get("propertyName"):
                raise validation("Filter is missing propertyName")
        groups.append(filters)
    if total > MAX_FILTERS:
        raise validation(f"Too many filters ({total}). The maximum is {MAX_FILTERS}.")
    sorts = body.get("sorts") or []
    if not isinstance(sorts, list):
        raise validation("sorts must be a list")
    if len(sorts) > 1:
        # The search guide allows one sorting rule per request.
        raise validation("Only one sort is allowed per search request.")
    sort_prop: str | None = None
    descending = False
    if sorts:
        sort_prop, descending = _parse_sort(sorts[0])
    query = body.get("query")
    if query is not None and len(str(query)) > MAX_QUERY_LEN:
        raise validation(f"query must be at most {MAX_QUERY_LEN} characters")
    limit = _int(body.get("limit"), DEFAULT_LIMIT, "limit")
    if limit < 0 or limit > MAX_LIMIT:
        raise validation(
            f"limit must be between 0 and {MAX_LIMIT}, got {limit}",
            context={"limit": [str(limit)]},
        )
    after = _int(body.get("after"), 0, "after")
    props = body.get("properties")
    if isinstance(props, str):
        props = [p for p in props.split(",") if p]
    return SearchRequest(groups, sort_prop, descending, query or None, props or None, limit, after)


def _parse_sort(s: Any) -> tuple[str, bool]:
    if isinstance(s, str):
        text = s.strip()
        if text.startswith("{"):
            try:
                s = json.loads(text)
            except ValueError as exc:
                raise validation(f"Invalid sort {text!r}") from exc
        else:
            return (text[1:], True) if text.startswith("-") else (text, False)
    if isinstance(s, dict) and s.get("propertyName"):
        direction = str(s.get("direction", "ASCENDING")).upper()
        if direction not in ("ASCENDING", "DESCENDING"):
            raise validation(f"Invalid sort direction {s.get('direction')!r}")
        return str(s["propertyName"]), direction == "DESCENDING"
    raise validation(f"Invalid sort {s!r}")


def _int(v: Any, default: int, name: str) -> int:
    if v is None or v == "":
        return default
    try:
        return int(v)
    except (TypeError, ValueError) as exc:
        raise validation(f"{name} must be an integer, got {v!r}") from exc


# -- filter compilation ------------------------------------------------------------------------
def _coerce(table: ObjectTable, prop: str, raw: Any) -> Typed:
    """A filter value in the property's comparison type."""
    if raw is None:
        return None
    text = str(raw).lower() if isinstance(raw, bool) else str(raw)
    kind = table.kind(prop)
    if kind == "num":
        n = parse_number(text)
        if n is None:
            raise validation(f"{text!r} is not a valid number for property {prop}")
        return n
    if kind == "ms":
        ms = parse_ms(text)
        if ms is None:
            raise validation(f"{text!r} is not a valid date value for property {prop}")
        return float(ms)
    return text.lower()


def _token_regex(value: str) -> re.Pattern[str]:
    # CONTAINS_TOKEN matches a whole token; '*' is a wildcard (the guide's "*@hubspot.com").
    parts = [re.escape(p) for p in value.lower().split("*")]
    return re.compile(r"(?:^|[^\w])" + ".*".join(parts) + r"(?:$|[^\w])")


def _compile_filter(
    table: ObjectTable, f: dict[str, Any], assoc: AssocLookup | None = None
) -> tuple[pl.Expr, Pred]:
    prop = str(f["propertyName"])
    op = str(f.get("operator", "EQ")).upper()
    if prop.startswith("associations.") and assoc is not None:
        # The search guide's "search by associations": associations.<type> EQ <record id>.
        if op != "EQ":
            raise validation(f"Only EQ is supported for {prop}")
        ids = assoc(prop.split(".", 1)[1], str(f.get("value", "")))
        return pl.col(ID).is_in(sorted(ids)), lambda r: r.id in ids
    known = table.registry.names() | table.virtual
    if prop not in known:
        raise validation(
            f'Property "{prop}" does not exist on object type {table.ot.type_id}',
            context={"propertyName": [prop]},
            sub_category="crm.search.PROPERTY_DOESNT_EXIST",
        )
    col = pl.col(prop)

    def val(rec: Record | Row) -> Typed:
        return table.typed_value(prop, rec)

    if op == "HAS_PROPERTY":
        return col.is_not_null(), lambda r: val(r) is not None
    if op == "NOT_HAS_PROPERTY":
        return col.is_null(), lambda r: val(r) is None
    if op in ("IN", "NOT_IN"):
        raw_values = f.get("values")
        if not isinstance(raw_values, list):
            raise validation(f"Operator {op} requires 'values'")
        pdef = table.registry.get(prop)
        if table.kind(prop) == "str" and pdef is not None and pdef.type == "string":
            # The guide: with IN/NOT_IN, values of *string* properties must be lower case.
            vs: list[Typed] = [str(v) for v in raw_values]
        elif table.kind(prop) == "str":
            vs = [str(v).lower() for v in raw_values]  # enumerations match case-insensitively
        else:
            vs = [_coerce(table, prop, v) for v in raw_values]
        vset = set(vs)
        inside = col.is_in(list(vs))
        if op == "IN":
            return inside.fill_null(False), lambda r: val(r) in vset
        return (~inside).fill_null(True), lambda r: val(r) not in vset
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        rx = _token_regex(str(f.get("value", "")))
        expr = col.cast(pl.Utf8).str.contains(rx.pattern).fill_null(False)

        def contains(r: Record | Row) -> bool:
            v = val(r)
            return v is not None and rx.search(str(v)) is not None

        if op == "CONTAINS_TOKEN":
            return expr, contains
        return ~expr, lambda r: not contains(r)
    if "value" not in f:
        raise validation(f"Operator {op} requires 'value'")
    x = _coerce(table, prop, f.get("value"))
    if op == "BETWEEN":
        hi = _coerce(table, prop, f.get("highValue"))
        if hi is None:
            raise validation("Operator BETWEEN requires 'highValue'")
        return col.is_between(x, hi).fill_null(
            False
        ), lambda r: _cmp(val(r), x, ">=") and _cmp(val(r), hi, "<=")
    sym = {"EQ": "==", "NEQ": "!=", "LT": "<", "LTE": "<=", "GT": ">", "GTE": ">="}[op]
    exprs = {
        "==": col == x,
        "!=": col != x,
        "<": col < x,
        "<=": col <= x,
        ">": col > x,
        ">=": col >= x,
    }
    fill = sym == "!="
    return exprs[sym].fill_null(fill), lambda r: _cmp(val(r), x, sym)


def _cmp(a: Typed, b: Typed, sym: str) -> bool:
    if a is None or b is None:
        return sym == "!=" and b is not None
    if isinstance(a, str) != isinstance(b, str):
        a, b = str(a), str(b)
    if sym == "==":
        return a == b
    if sym == "!=":
        return a != b
    if sym == "<":
        return a < b  # type: ignore[operator]
    if sym == "<=":
        return a <= b  # type: ignore[operator]
    if sym == ">":
        return a > b  # type: ignore[operator]
    return a >= b  # type: ignore[operator]


def _props_in(groups: list[list[dict[str, Any]]]) -> set[str]:
    return {str(f["propertyName"]) for g in groups for f in g}


# -- execution -----------------------------------------------------------------------------------
class SearchEngine:
    """Runs searches over an :class:`ObjectTable`, caching the ordered id list per query so that
    paging through one window costs one evaluation, not one per page."""

    def __init__(self, cache_size: int = 16) -> None:
        self._cache: dict[tuple[str, int, str], np.ndarray[Any, np.dtype[np.int64]]] = {}
        self._cache_size = cache_size

    def clear(self) -> None:
        self._cache.clear()

    def ordered_ids(
        self,
        table: ObjectTable,
        req: SearchRequest,
        assoc: AssocLookup | None = None,
        assoc_version: int = 0,
    ) -> np.ndarray[Any, np.dtype[np.int64]]:
        key = (table.ot.type_id, table.version * 1_000_003 + assoc_version, req.cache_key())
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        ids = self._evaluate(table, req, assoc)
        if len(self._cache) >= self._cache_size:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = ids
        return ids

    def _evaluate(
        self, table: ObjectTable, req: SearchRequest, assoc: AssocLookup | None
    ) -> np.ndarray[Any, np.dtype[np.int64]]:
        compiled = [[_compile_filter(table, f, assoc) for f in g] for g in req.groups]
        query_pred, query_expr = self._query(table, req.query)
        needed = {p for p in _props_in(req.groups) if not p.startswith("associations.")}
        needed |= set(table.ot.searchable if req.query else ())
        if req.sort_prop:
            if req.sort_prop not in table.registry.names() | table.virtual:
                raise validation(f'Property "{req.sort_prop}" does not exist; cannot sort by it')
            needed.add(req.sort_prop)
        # Base part: one vectorised pass over typed columns.
        frame = pl.DataFrame(
            [table.base[ID], *(table.typed_base(p).alias(p) for p in sorted(needed))]
        )
        mask_expr = pl.lit(True)
        if compiled:
            mask_expr = pl.any_horizontal(
                [pl.all_horizontal([e for e, _ in g]) if g else pl.lit(True) for g in compiled]
            )
        if query_expr is not None:
            mask_expr = mask_expr & query_expr
        frame = frame.with_columns(__live=pl.Series(~table.shadow)).filter(
            pl.col("__live") & mask_expr
        )
        sort_col = req.sort_prop
        keys: dict[str, list[Any]] = {ID: frame[ID].to_list()}
        if sort_col:
            keys["__sort"] = frame[sort_col].to_list()
        # Overlay part: records created/edited through the API, evaluated one by one.
        for row in table.live_rows():
            if compiled and not any(all(p(row) for _, p in g) for g in compiled):
                continue
            if query_pred is not None and not query_pred(row):
                continue
            keys[ID].append(row.id)
            if sort_col:
                keys["__sort"].append(table.typed_value(sort_col, row))
        if not sort_col:
            return np.asarray(sorted(keys[ID]), dtype=np.int64)
        kind = table.kind(sort_col)
        dtype = pl.Utf8 if kind == "str" else pl.Float64
        out = pl.DataFrame(
            {
                ID: pl.Series(keys[ID], dtype=pl.Int64),
                "__sort": pl.Series(keys["__sort"], dtype=dtype),
            }
        )
        # Ties are broken by id so windows on (timestamp, id) are stable; missing values last.
        out = out.sort(["__sort", ID], descending=[req.descending, False], nulls_last=True)
        return out[ID].to_numpy().astype(np.int64)

    def _query(self, table: ObjectTable, query: str | None) -> tuple[Pred | None, pl.Expr | None]:
        if not query:
            return None, None
        words = [w for w in query.lower().split() if w]
        fields = [p for p in table.ot.searchable if p in table.registry.names()]
        if not fields or not words:
            return None, None
        # Free text: every word must prefix-match a token of one of the searchable properties.
        exprs = []
        for w in words:
            rx = r"(?:^|[^\w])" + re.escape(w)
            exprs.append(
                pl.any_horizontal(
                    [pl.col(f).cast(pl.Utf8).str.contains(rx).fill_null(False) for f in fields]
                )
            )
        regexes = [re.compile(r"(?:^|[^\w])" + re.escape(w)) for w in words]

        def pred(r: Record | Row) -> bool:
            texts = [str(r.props.get(f) or "").lower() for f in fields]
            return all(any(rx.search(t) for t in texts) for rx in regexes)

        return pred, pl.all_horizontal(exprs)


def page_window(total: int, after: int, limit: int) -> tuple[int, int, int | None]:
    """Slice bounds for one page and the next ``after`` (None on the last page).

    Asking for an ``after`` at or past 10,000 is a 400 (HubSpot's per-query cap; airbyte#10700),
    and the next cursor is still handed out up to the cap, which is how connectors that page
    blindly run into it.
    """
    if after >= RESULT_CAP:
        raise HubSpotError(
            400,
            "There was a problem with the request: the search API returns at most 10000 results "
            "per query. Narrow the query with filters to page further.",
            "VALIDATION_ERROR",
            context={"after": [str(after)], "maxResults": [str(RESULT_CAP)]},
        )
    end = min(after + limit, total, RESULT_CAP)
    nxt = after + limit if after + limit < total else None
    return after, max(end, after), nxt
