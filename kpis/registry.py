"""The KPI registry: every KPI declared once, with what the CLI, docs and writeback need.

A KPI is a small declared thing — key, label, unit, scopes, what places a record in a period,
formula, description, the seed articles that ask for it — plus a pure function that computes it
from the prepared canonical tables (:class:`kpis.context.KpiContext`). Adding a KPI means adding one
decorated function in ``kpis/catalogue/``; the CLI listing, ``docs/kpis.md`` and the writeback read
it from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

    from kpis.context import KpiContext


class Unit(StrEnum):
    """The unit of a KPI value. ``CURRENCY`` is rendered as the corporate currency code."""

    CURRENCY = "currency"
    CURRENCY_PER_DAY = "currency/day"
    PERCENT = "%"
    COUNT = "count"
    DAYS = "days"
    MINUTES = "minutes"
    MULTIPLE = "x"
    SCORE = "score"

    def render(self, corporate_currency: str) -> str:
        if self is Unit.CURRENCY:
            return corporate_currency
        if self is Unit.CURRENCY_PER_DAY:
            return f"{corporate_currency}/day"
        return self.value


class Scope(StrEnum):
    REP = "rep"
    TEAM = "team"
    ORG = "org"


class Family(StrEnum):
    RESULTS = "Results"
    TARGETS = "Targets"
    FUNNEL = "Conversion and funnel"
    ACTIVITY = "Activity and prospecting"
    CUSTOMERS = "Customers"


ALL_SCOPES: tuple[Scope, ...] = (Scope.REP, Scope.TEAM, Scope.ORG)
GROUP_SCOPES: tuple[Scope, ...] = (Scope.TEAM, Scope.ORG)


@dataclass(frozen=True)
class KpiDef:
    """One KPI of the catalogue.

    ``compute`` returns a frame keyed by ``scope, subject_id, period_start`` (plus ``dimension``
    when ``by_dimension``) with ``value, numerator, denominator, records``; the engine fills the
    grid of subjects x periods around it (``empty_is_zero`` says whether a missing row is 0 or
    undefined) and adds the unit and period end.
    """

    key: str
    label: str
    family: Family
    unit: Unit
    placed_by: str
    formula: str
    description: str
    seeds: tuple[str, ...]
    compute: Callable[[KpiContext], pl.DataFrame]
    scopes: tuple[Scope, ...] = ALL_SCOPES
    is_ratio: bool = False
    empty_is_zero: bool = False
    by_dimension: str | None = None
    records: str = ""
    # A ratio over no records and with a zero denominator reports no numerator or denominator
    # either (there is nothing to show); KPIs built from other KPIs' values or from the calendar
    # keep theirs.
    blank_when_no_records: bool = True


REGISTRY: dict[str, KpiDef] = {}


def kpi(
    key: str,
    *,
    label: str,
    family: Family,
    unit: Unit,
    placed_by: str,
    formula: str,
    seeds: str,
    records: str,
    scopes: tuple[Scope, ...] = ALL_SCOPES,
    is_ratio: bool = False,
    empty_is_zero: bool = False,
    by_dimension: str | None = None,
    blank_when_no_records: bool = True,
) -> Callable[[Callable[[KpiContext], pl.DataFrame]], Callable[[KpiContext], pl.DataFrame]]:
    """Declare a KPI; the decorated function's docstring is its description."""

    def register(
        fn: Callable[[KpiContext], pl.DataFrame],
    ) -> Callable[[KpiContext], pl.DataFrame]:
        if key in REGISTRY:
            raise ValueError(f"KPI {key!r} is declared twice")
        REGISTRY[key] = KpiDef(
            key=key,
            label=label,
            family=family,
            unit=unit,
            placed_by=placed_by,
            formula=formula,
            description=" ".join((fn.__doc__ or "").split()),
            seeds=tuple(seeds.split()),
            compute=fn,
            scopes=scopes,
            is_ratio=is_ratio,
            empty_is_zero=empty_is_zero,
            by_dimension=by_dimension,
            records=records,
            blank_when_no_records=blank_when_no_records,
        )
        return fn

    return register


def catalogue() -> dict[str, KpiDef]:
    """The full registry in catalogue order (by family), every catalogue module imported."""
    import kpis.catalogue  # noqa: F401  (registers the KPIs on import)

    families = list(Family)
    ordered = sorted(REGISTRY.values(), key=lambda d: families.index(d.family))
    return {d.key: d for d in ordered}
