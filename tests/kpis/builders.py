"""A tiny fluent builder for typed canonical tables, and accessors for KPI runs.

Every test writes its org as Python rows with defaults::

    org = OrgBuilder()
    org.team("T1").team("T2", parent="T1").rep("R1", team="T2")
    org.fx("USD", "2025-01-01", 1.10)
    org.opp("O1", owner="R1", created="2025-01-05T10:00:00Z", close="2025-03-10", won=True,
            amount=1100, currency="USD")
    run = compute_kpis(org.tables(), settings())
    row = value(run, "revenue", "rep", "R1", "2025-03-01")

Timestamps are ISO strings in UTC (``...Z``; a bare ``YYYY-MM-DD`` means midnight UTC), dates are
``YYYY-MM-DD`` strings. Nothing here computes a KPI: expected values are written by hand in the
tests.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import polars as pl

from kpis.engine import KpiRun, compute_kpis
from kpis.settings import KpiSettings, PeriodType
from kpis.tables import TABLES, CanonicalTables

UTC = dt.UTC
Row = dict[str, Any]


def ts(text: str | None) -> dt.datetime | None:
    """``2025-01-05T10:00:00Z`` (or ``2025-01-05`` = midnight) as an aware UTC datetime."""
    if text is None:
        return None
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def day(text: str | dt.date | None) -> dt.date | None:
    """``YYYY-MM-DD`` as a date (dates pass through)."""
    if text is None or isinstance(text, dt.date):
        return text
    return dt.date.fromisoformat(text)


def settings(
    *,
    currency: str = "EUR",
    timezone: str = "UTC",
    period: PeriodType = PeriodType.MONTH,
    as_of: str = "2025-12-31",
    seasonality: tuple[float, ...] = (1.0,) * 12,
    monthly_growth_pct: float = 0.0,
    over_contact_per_day: int = 4,
) -> KpiSettings:
    """KpiSettings with test defaults (``as_of`` fixed so nothing depends on today)."""
    as_of_day = day(as_of)
    assert as_of_day is not None
    return KpiSettings(
        corporate_currency=currency,
        timezone=timezone,
        period=period,
        as_of=as_of_day,
        seasonality=seasonality,
        monthly_growth_pct=monthly_growth_pct,
        over_contact_per_day=over_contact_per_day,
    )


class OrgBuilder:
    """Collects rows per canonical table; :meth:`tables` types them with the canonical schema."""

    def __init__(self) -> None:
        self.rows: dict[str, list[Row]] = {name: [] for name in TABLES}
        self._with_csat = False
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        filled = {name: rows for name, rows in self.rows.items() if rows}
        return f"OrgBuilder({filled!r})"

    def _auto_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):05d}"

    def _add(self, table: str, row: Row) -> OrgBuilder:
        columns = TABLES[table].schema(with_optional=True)
        unknown = set(row) - set(columns)
        assert not unknown, f"{table}: unknown columns {sorted(unknown)}"
        self.rows[table].append(row)
        return self

    # -- subjects ------------------------------------------------------------------------------

    def team(self, id: str, parent: str | None = None, name: str | None = None) -> OrgBuilder:
        return self._add("teams", {"id": id, "name": name or id, "parent_id": parent})

    def rep(
        self, id: str, team: str | None = None, name: str | None = None, active: bool = True
    ) -> OrgBuilder:
        return self._add(
            "reps",
            {
                "id": id,
                "name": name or id,
                "email": f"{id.lower()}@example.com",
                "team_id": team,
                "manager_id": None,
                "is_active": active,
            },
        )

    def account(
        self,
        id: str,
        owner: str | None = None,
        created: str | None = "2024-01-01T00:00:00Z",
        status: str | None = None,
        csat: float | None = None,
    ) -> OrgBuilder:
        """An account; passing ``csat`` (or calling :meth:`with_csat`) adds the csat column."""
        if csat is not None:
            self._with_csat = True
        return self._add(
            "accounts",
            {
                "id": id,
                "name": id,
                "owner_id": owner,
                "created_at": ts(created),
                "customer_status": status,
                "csat": csat,
            },
        )

    def with_csat(self) -> OrgBuilder:
        self._with_csat = True
        return self

    # -- records -------------------------------------------------------------------------------

    def lead(
        self,
        id: str | None = None,
        *,
        owner: str | None = None,
        created: str,
        qualified: str | None = None,
        converted: str | None = None,
        disqualified: str | None = None,
        opp: str | None = None,
        account: str | None = None,
        score: float | None = None,
        source: str | None = None,
        status: str | None = None,
    ) -> OrgBuilder:
        return self._add(
            "leads",
            {
                "id": id or self._auto_id("L"),
                "owner_id": owner,
                "created_at": ts(created),
                "source": source,
                "status": status,
                "qualified_at": ts(qualified),
                "converted_at": ts(converted),
                "converted_account_id": account,
                "converted_opportunity_id": opp,
                "disqualified_at": ts(disqualified),
                "score": score,
            },
        )

    def opp(
        self,
        id: str | None = None,
        *,
        owner: str | None = None,
        created: str = "2025-01-01T00:00:00Z",
        close: str | None = None,
        won: bool = False,
        closed: bool | None = None,
        amount: float | None = 0.0,
        currency: str | None = None,
        account: str | None = None,
        lead: str | None = None,
        type: str | None = None,
        cost: float | None = None,
        mrr: float | None = None,
        contract_start: str | None = None,
        contract_end: str | None = None,
        competitor: str | None = None,
        competitor_price: float | None = None,
        stage: str | None = None,
    ) -> OrgBuilder:
        """An opportunity: ``won=True`` is closed-won, ``closed=True`` alone is closed-lost, and
        neither is open (``close`` is then the expected close date)."""
        is_closed = won if closed is None else closed
        return self._add(
            "opportunities",
            {
                "id": id or self._auto_id("O"),
                "owner_id": owner,
                "account_id": account,
                "lead_id": lead,
                "created_at": ts(created),
                "close_date": day(close),
                "stage": stage or ("won" if won else ("lost" if is_closed else "open")),
                "is_closed": is_closed,
                "is_won": won,
                "amount": amount,
                "currency": currency,
                "type": type,
                "cost": cost,
                "recurring_monthly_amount": mrr,
                "contract_start": day(contract_start),
                "contract_end": day(contract_end),
                "competitor": competitor,
                "competitor_price": competitor_price,
            },
        )

    def activity(
        self,
        id: str | None = None,
        *,
        owner: str | None,
        at: str,
        kind: str = "call",
        direction: str | None = None,
        outcome: str | None = None,
        duration: float | None = None,
        lead: str | None = None,
        account: str | None = None,
        opp: str | None = None,
    ) -> OrgBuilder:
        return self._add(
            "activities",
            {
                "id": id or self._auto_id("A"),
                "owner_id": owner,
                "kind": kind,
                "direction": direction,
                "outcome": outcome,
                "occurred_at": ts(at),
                "duration_minutes": duration,
                "lead_id": lead,
                "account_id": account,
                "opportunity_id": opp,
            },
        )

    def activities(self, n: int, **kwargs: Any) -> OrgBuilder:
        """``n`` identical activities (auto ids)."""
        for _ in range(n):
            self.activity(**kwargs)
        return self

    def quota(
        self, owner: str, start: str, end: str, amount: float | None, currency: str | None = None
    ) -> OrgBuilder:
        return self._add(
            "quotas",
            {
                "owner_id": owner,
                "period_start": day(start),
                "period_end": day(end),
                "amount": amount,
                "currency": currency,
            },
        )

    def fx(self, currency: str, start: str, rate: float) -> OrgBuilder:
        return self._add("fx_rates", {"currency": currency, "start_date": day(start), "rate": rate})

    def cost(self, start: str, end: str, amount: float, team: str | None = None) -> OrgBuilder:
        return self._add(
            "costs",
            {"period_start": day(start), "period_end": day(end), "team_id": team, "amount": amount},
        )

    # -- output --------------------------------------------------------------------------------

    def frame(self, table: str) -> pl.DataFrame:
        schema = TABLES[table].schema(with_optional=table == "accounts" and self._with_csat)
        rows = [{c: row.get(c) for c in schema} for row in self.rows[table]]
        return pl.DataFrame(rows, schema=schema)

    def tables(self) -> CanonicalTables:
        return CanonicalTables({name: self.frame(name) for name in TABLES})

    def run(
        self, kpi_settings: KpiSettings | None = None, metrics: list[str] | None = None
    ) -> KpiRun:
        return compute_kpis(self.tables(), kpi_settings or settings(), metrics)


# -- reading a run -----------------------------------------------------------------------------


def _select(
    run: KpiRun,
    metric: str,
    scope: str,
    subject: str,
    period_start: str | dt.date,
    dimension: str | None,
) -> pl.DataFrame:
    start = day(period_start)
    frame = run.values.filter(
        (pl.col("metric") == metric)
        & (pl.col("scope") == scope)
        & (pl.col("subject_id") == subject)
        & (pl.col("period_start") == start)
    )
    if dimension is None:
        return frame.filter(pl.col("dimension").is_null())
    return frame.filter(pl.col("dimension") == dimension)


def value(
    run: KpiRun,
    metric: str,
    scope: str,
    subject: str,
    period_start: str | dt.date,
    dimension: str | None = None,
) -> Row:
    """The one output row of ``metric`` for a subject and period (fails clearly otherwise)."""
    __tracebackhide__ = True
    rows = _select(run, metric, scope, subject, period_start, dimension)
    where = f"{metric} {scope}/{subject} @ {period_start}" + (
        f" [{dimension}]" if dimension is not None else ""
    )
    if rows.height == 0:
        present = run.values.filter(pl.col("metric") == metric).select(
            "scope", "subject_id", "period_start", "dimension"
        )
        raise AssertionError(
            f"no row for {where}; rows of {metric}: {present.rows()[:40]}"
            + (f"; unavailable: {run.unavailable[metric]}" if metric in run.unavailable else "")
        )
    if rows.height > 1:
        raise AssertionError(f"{rows.height} rows for {where}: {rows.rows(named=True)}")
    return rows.row(0, named=True)


def val(
    run: KpiRun,
    metric: str,
    scope: str,
    subject: str,
    period_start: str | dt.date,
    dimension: str | None = None,
) -> float | None:
    """Just the ``value`` of :func:`value`."""
    __tracebackhide__ = True
    result = value(run, metric, scope, subject, period_start, dimension)["value"]
    assert result is None or isinstance(result, float)
    return result


def has_row(
    run: KpiRun,
    metric: str,
    scope: str,
    subject: str,
    period_start: str | dt.date,
    dimension: str | None = None,
) -> bool:
    return _select(run, metric, scope, subject, period_start, dimension).height > 0


def periods(run: KpiRun, metric: str = "revenue") -> list[dt.date]:
    """The distinct period starts reported for ``metric``."""
    series = run.values.filter(pl.col("metric") == metric)["period_start"].unique().sort()
    return list(series.to_list())


def subjects(run: KpiRun, metric: str, scope: str) -> list[str]:
    frame = run.values.filter((pl.col("metric") == metric) & (pl.col("scope") == scope))
    return sorted(frame["subject_id"].unique().to_list())
