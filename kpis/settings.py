"""The engine's parameters: the few business choices the catalogue leaves to the org."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class PeriodType(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"

    @property
    def months(self) -> int:
        return {"month": 1, "quarter": 3, "year": 12}[self.value]


class KpiSettingsError(ValueError):
    """A KPI setting is invalid; the message names the setting."""


@dataclass(frozen=True)
class KpiSettings:
    """Business choices for the catalogue (see ``settings.example.toml`` ``[kpi]``).

    ``as_of`` is "today" for the KPIs that compare with a point in time
    (``monthly_sales_progress``); the caller supplies it so the engine stays pure. Without it the
    last day of the data's last period serves.
    """

    corporate_currency: str = "EUR"
    timezone: str = "UTC"
    period: PeriodType = PeriodType.MONTH
    as_of: dt.date | None = None
    # Relative weight of each calendar month (Jan..Dec) when a multi-month quota is split.
    seasonality: tuple[float, ...] = field(default=(1.0,) * 12)
    # Planned growth per month (percent) applied when a multi-month quota is split.
    monthly_growth_pct: float = 0.0
    # Below this share of reps at or over quota a team/period raises an insight (seed 000).
    quota_hit_insight_pct: float = 60.0
    # More activities than this on one lead in one day counts as over-contacting (seed 004).
    over_contact_per_day: int = 4

    def __post_init__(self) -> None:
        if len(self.corporate_currency) != 3 or not self.corporate_currency.isalpha():
            raise KpiSettingsError(
                "kpi.corporate_currency: expected a 3-letter ISO code, "
                f"got {self.corporate_currency!r}"
            )
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise KpiSettingsError(f"kpi.timezone: unknown time zone {self.timezone!r}") from exc
        if len(self.seasonality) != 12 or any(w < 0 for w in self.seasonality):
            raise KpiSettingsError("kpi.seasonality: expected 12 non-negative weights (Jan..Dec)")
        if sum(self.seasonality) <= 0:
            raise KpiSettingsError("kpi.seasonality: at least one weight must be positive")
        if not 0 <= self.quota_hit_insight_pct <= 100:
            raise KpiSettingsError("kpi.quota_hit_insight_pct: expected 0..100")
        if self.over_contact_per_day < 1:
            raise KpiSettingsError("kpi.over_contact_per_day: expected a positive integer")
