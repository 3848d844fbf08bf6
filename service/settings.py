"""Settings: one TOML file loaded once into typed, frozen objects.

An error names the key and the file. Unknown keys are errors too, so a typo never silently falls
back to a default.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kpis.settings import KpiSettings, KpiSettingsError, PeriodType


class SettingsError(ValueError):
    """A setting is missing, unknown or invalid; the message names the key and the file."""

    def __init__(self, path: Path | None, key: str, problem: str) -> None:
        where = f"{path}: " if path else ""
        super().__init__(f"{where}{key}: {problem}")
        self.path = path
        self.key = key


@dataclass(frozen=True)
class Settings:
    kpi: KpiSettings = field(default_factory=KpiSettings)
    mappings: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: Path | None = None


_KPI_TYPES: dict[str, tuple[type, ...]] = {
    "corporate_currency": (str,),
    "timezone": (str,),
    "period": (str,),
    "seasonality": (list,),
    "monthly_growth_pct": (int, float),
    "quota_hit_insight_pct": (int, float),
    "over_contact_per_day": (int,),
}
_TOP_LEVEL = {"kpi", "mappings", "connections", "service", "writeback", "store"}


def _kpi_settings(path: Path | None, table: dict[str, Any]) -> KpiSettings:
    values: dict[str, Any] = {}
    for key, value in table.items():
        expected = _KPI_TYPES.get(key)
        if expected is None:
            raise SettingsError(path, f"kpi.{key}", "unknown setting")
        if isinstance(value, bool) or not isinstance(value, expected):
            names = " or ".join(t.__name__ for t in expected)
            raise SettingsError(path, f"kpi.{key}", f"expected {names}, got {value!r}")
        values[key] = value
    if "period" in values:
        try:
            values["period"] = PeriodType(values["period"])
        except ValueError:
            raise SettingsError(path, "kpi.period", "expected month, quarter or year") from None
    if "seasonality" in values:
        weights = values["seasonality"]
        if any(isinstance(w, bool) or not isinstance(w, int | float) for w in weights):
            raise SettingsError(path, "kpi.seasonality", "expected 12 numbers (Jan..Dec)")
        values["seasonality"] = tuple(float(w) for w in weights)
    if "corporate_currency" in values:
        values["corporate_currency"] = values["corporate_currency"].upper()
    try:
        return KpiSettings(**values)
    except KpiSettingsError as exc:
        key, _, problem = str(exc).partition(": ")
        raise SettingsError(path, key, problem) from None


def parse_settings(data: dict[str, Any], path: Path | None = None) -> Settings:
    for key in data:
        if key not in _TOP_LEVEL:
            raise SettingsError(path, key, "unknown section")
    kpi_table = data.get("kpi", {})
    if not isinstance(kpi_table, dict):
        raise SettingsError(path, "kpi", "expected a table")
    mappings = data.get("mappings", {})
    if not isinstance(mappings, dict):
        raise SettingsError(path, "mappings", "expected a table")
    return Settings(kpi=_kpi_settings(path, kpi_table), mappings=mappings, source=path)


def load_settings(path: Path) -> Settings:
    """Read and check a settings file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError(path, "(file)", "not found") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(path, "(syntax)", str(exc)) from None
    return parse_settings(data, path)
