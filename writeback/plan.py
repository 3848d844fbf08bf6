"""Plan a writeback: deterministic row keys, value hashes, and the diff against the ledger.

A KPI row's key is ``metric|scope|subject_id|period_start|period_type|dimension``: the same KPI
value always lands on the same CRM record (the external id / unique property), so a re-send is an
upsert of that record, never a second one. The hash covers every written column except
``computed_at``, so recomputing unchanged data plans nothing, and a closed period is re-sent only
when its numbers changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any

import numpy as np
import polars as pl

from writeback.ledger import LedgerEntry
from writeback.spec import UNHASHED, KpiField

#: Salesforce text fields hold 255 characters; longer keys keep a readable head plus a digest.
MAX_KEY = 255
Payload = dict[str, Any]


@dataclass(frozen=True)
class Row:
    """One record to write: its key, neutral payload and value hash."""

    key: str
    payload: Payload
    hash: str


@dataclass(frozen=True)
class Outcome:
    """The CRM's answer for one row."""

    key: str
    hash: str
    ok: bool
    crm_id: str | None = None
    error: str | None = None
    retriable: bool = False


@dataclass
class Plan:
    """What one target needs: rows to upsert, ledger rows to delete, and what is held back."""

    target: str
    upserts: list[Row] = field(default_factory=list)
    deletes: list[LedgerEntry] = field(default_factory=list)
    unchanged: int = 0
    waiting: int = 0
    parked: int = 0
    forget: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.upserts or self.deletes or self.forget)


def period_type(start: dt.date | None, end: dt.date | None) -> str:
    """``month`` / ``quarter`` / ``year`` from a period's bounds (end exclusive), else days."""
    if start is None or end is None:
        return ""
    months = (end.year - start.year) * 12 + end.month - start.month
    if start.day == 1 and end.day == 1:
        named = {1: "month", 3: "quarter", 12: "year"}.get(months)
        if named:
            return named
    return f"{(end - start).days}d"


def row_key(
    metric: str, scope: str, subject_id: str, start: dt.date | None, ptype: str,
    dimension: str | None,
) -> str:  # fmt: skip
    key = "|".join(
        (metric, scope, subject_id, start.isoformat() if start else "", ptype, dimension or "")
    )
    if len(key) <= MAX_KEY:
        return key
    digest = hashlib.sha1(key.encode()).hexdigest()
    return f"{key[: MAX_KEY - 41]}~{digest}"


def plain_number(value: float) -> str:
    """A number as CRM text: plain decimal notation, never an exponent (``1e-05``)."""
    return str(np.format_float_positional(value, trim="-"))


def _num(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return None if f != f else float(f"{f:.12g}")  # NaN is no value; 12 digits are stable


# One encoder for every row: ``json.dumps`` with options builds a new encoder per call.
_HASH_JSON = json.JSONEncoder(sort_keys=True, default=str, separators=(",", ":"))


def value_hash(payload: Mapping[str, Any]) -> str:
    body = payload if UNHASHED.isdisjoint(payload) else {
        k: v for k, v in payload.items() if k not in UNHASHED}  # fmt: skip
    return hashlib.sha256(_HASH_JSON.encode(body).encode()).hexdigest()[:32]


def _json_text(v: str | None) -> str:
    return "null" if v is None else _json_string(v)


def _json_number(v: float | None) -> str:
    if v is None:
        return "null"
    if v != v:
        return "NaN"
    if v in (math.inf, -math.inf):
        return "Infinity" if v > 0 else "-Infinity"
    return float.__repr__(v)


def _snapshot_hash(p: Payload) -> str:
    """:func:`value_hash` of a snapshot payload, its JSON written out directly (the same text
    ``_HASH_JSON`` makes of it, keys in sorted order; a few times faster per row)."""
    t, n = _json_text, _json_number
    text = (
        f'{{"denominator":{n(p["denominator"])},"dimension":{t(p["dimension"])},'
        f'"metric":{t(p["metric"])},"numerator":{n(p["numerator"])},'
        f'"period_end":{t(p["period_end"])},"period_start":{t(p["period_start"])},'
        f'"period_type":{t(p["period_type"])},"rep":{t(p["rep"])},"scope":{t(p["scope"])},'
        f'"subject_id":{t(p["subject_id"])},"target":{n(p["target"])},"team":{t(p["team"])},'
        f'"unit":{t(p["unit"])},"value":{n(p["value"])}}}'
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def snapshot_rows(
    kpis: pl.DataFrame, rep_teams: Mapping[str, str | None], targets: Mapping[str, str]
) -> dict[str, Row]:
    """Every KPI value of the store as a snapshot row, by key."""
    target_of: dict[tuple[str, str, str, Any], float | None] = {}
    wanted = set(targets.values())
    if wanted:
        for r in kpis.filter(pl.col("metric").is_in(list(wanted))).iter_rows(named=True):
            target_of[(r["metric"], r["scope"], r["subject_id"], r["period_start"])] = _num(
                r["value"]
            )
    # A few dozen periods for hundreds of thousands of rows: their texts are made once each.
    periods: dict[tuple[Any, Any], tuple[str, str | None, str | None]] = {}
    out: dict[str, Row] = {}
    columns = ("metric", "scope", "subject_id", "period_start", "period_end", "dimension",
               "value", "unit", "numerator", "denominator")  # fmt: skip
    if "dimension" not in kpis.columns:
        kpis = kpis.with_columns(dimension=pl.lit(None, dtype=pl.String))
    for metric, scope, subject, start, end, dimension, value, unit, num, den in kpis.select(
        columns
    ).iter_rows():
        scope, subject = str(scope), str(subject)
        period = periods.get((start, end))
        if period is None:
            period = periods[(start, end)] = (
                period_type(start, end),
                start.isoformat() if start else None,
                end.isoformat() if end else None,
            )
        ptype = period[0]
        key = row_key(metric, scope, subject, start, ptype, dimension)
        tkpi = targets.get(metric)
        payload: Payload = {
            "metric": metric,
            "scope": scope,
            "subject_id": subject,
            "rep": subject if scope == "rep" else None,
            "team": subject if scope == "team" else rep_teams.get(subject) if scope == "rep"
            else None,
            "period_start": period[1],
            "period_end": period[2],
            "period_type": ptype,
            "dimension": dimension,
            "value": _num(value),
            "unit": unit,
            "target": None if tkpi is None else target_of.get((tkpi, scope, subject, start)),
            "numerator": _num(num),
            "denominator": _num(den),
        }  # fmt: skip
        out[key] = Row(key, payload, _snapshot_hash(payload))
    return out


def record_field_rows(
    kpis: pl.DataFrame, fields: Iterable[KpiField], scope: str, today: dt.date
) -> dict[str, Row]:
    """Current-period KPI values as fields of CRM records (key = the record id): one row per
    subject of ``scope`` with a value in the period that contains ``today``."""
    by_kpi = {f.kpi.key: f for f in fields}
    if not by_kpi:
        return {}
    current = kpis.filter(
        (pl.col("scope") == scope)
        & pl.col("metric").is_in(list(by_kpi))
        & pl.col("dimension").is_null()
        & (pl.col("period_start") <= today)
        & (pl.col("period_end") > today)
    )
    payloads: dict[str, Payload] = {}
    for r in current.iter_rows(named=True):
        p = payloads.setdefault(str(r["subject_id"]), {f.name: None for f in by_kpi.values()})
        p[by_kpi[r["metric"]].name] = _num(r["value"])
    return {k: Row(k, p, value_hash(p)) for k, p in payloads.items()}


def _period_of(key: str) -> str:
    parts = key.split("|")
    return parts[3] if len(parts) >= 6 else ""


def diff(
    target: str, desired: Mapping[str, Row], ledger: Mapping[str, LedgerEntry],
    now: dt.datetime, *, history: bool = False,
) -> Plan:  # fmt: skip
    """Rows whose value differs from what the CRM last confirmed (refused rows after their
    backoff, never parked ones), and records the store no longer has.

    ``history``: keys carry a period; a record of a period older than every period the store
    still computes is history and stays in the CRM as it was written.
    """
    plan = Plan(target)
    for key, row in desired.items():
        e = ledger.get(key)
        if e is not None and e.value_hash == row.hash:
            plan.unchanged += 1
            continue
        if e is not None and e.pending_hash == row.hash:
            if e.parked:
                plan.parked += 1
                continue
            if e.next_attempt_at is not None and e.next_attempt_at > now:
                plan.waiting += 1
                continue
        plan.upserts.append(row)
    oldest = min((_period_of(k) for k in desired), default="") if history else ""
    for key, e in ledger.items():
        if key in desired:
            continue
        if history and _period_of(key) < oldest:
            continue
        if e.crm_id and e.value_hash is not None:
            plan.deletes.append(e)
        else:
            plan.forget.append(key)
    return plan
