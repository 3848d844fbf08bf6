"""What writeback writes where: the target objects and fields, derived from the KPI registry.

One neutral description of a KPI snapshot (``SNAPSHOT_COLUMNS``: metric, scope, subject, period,
value ...) is rendered into Salesforce API names (``Metric__c`` on ``KPI_Snapshot__c``) and HubSpot
property names (``metric`` on ``kpi_snapshot``). Current-period fields on the Salesforce User come
from the ``user_fields`` setting, checked against the registry (rep-scope KPIs only); record-level
fields (Account / company / deal) come from KPIs whose scopes name such a record — the catalogue
has none today, which ``check`` reports. Every name carries the configured prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

from kpis.registry import KpiDef, Scope, catalogue
from writeback.settings import WritebackSettings


class Kind(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    DATE = "date"
    DATETIME = "datetime"
    USER = "user"  # a lookup to the rep (Salesforce User); text elsewhere


@dataclass(frozen=True)
class Column:
    """One column of the snapshot object (neutral name ``key``)."""

    key: str
    label: str
    kind: Kind
    length: int = 255

    def sf_name(self, prefix: str) -> str:
        return f"{prefix}{_title(self.key)}__c"

    def hs_name(self, prefix: str) -> str:
        return f"{prefix.lower()}{self.key}"


SNAPSHOT_COLUMNS: tuple[Column, ...] = (
    Column("metric", "Metric", Kind.TEXT, 100),
    Column("scope", "Scope", Kind.TEXT, 10),
    Column("subject_id", "Subject Id", Kind.TEXT, 100),
    Column("rep", "Rep", Kind.USER),
    Column("team", "Team", Kind.TEXT, 100),
    Column("period_start", "Period Start", Kind.DATE),
    Column("period_end", "Period End", Kind.DATE),
    Column("period_type", "Period Type", Kind.TEXT, 20),
    Column("dimension", "Dimension", Kind.TEXT, 200),
    Column("value", "Value", Kind.NUMBER),
    Column("unit", "Unit", Kind.TEXT, 40),
    Column("target", "Target", Kind.NUMBER),
    Column("numerator", "Numerator", Kind.NUMBER),
    Column("denominator", "Denominator", Kind.NUMBER),
    Column("computed_at", "Computed At", Kind.DATETIME),
)
#: Columns that are not part of a row's value hash (re-computing alone changes nothing).
UNHASHED = frozenset({"computed_at"})
#: Scopes that are CRM records of their own (Account, company, deal) rather than people/teams.
RECORD_SCOPES: dict[str, tuple[str, str]] = {"account": ("Account", "companies"),
                                             "deal": ("Opportunity", "deals")}  # fmt: skip

_SPLIT = re.compile(r"[^A-Za-z0-9]+")


def _title(key: str) -> str:
    """``subject_id`` -> ``Subject_Id`` (a Salesforce API name body)."""
    return "_".join(p[:1].upper() + p[1:] for p in _SPLIT.split(key) if p)


def sf_field_name(prefix: str, stem: str) -> str:
    """A valid custom field API name: letters, digits, single underscores, ≤ 40 before ``__c``
    (Salesforce custom field naming rules, "Field Name" in the Setup help)."""
    body = re.sub(r"_+", "_", f"{prefix}{stem}").strip("_")[:40].rstrip("_")
    return f"{body}__c"


@dataclass(frozen=True)
class KpiField:
    """A KPI written as a field of a CRM record (the current period's value)."""

    kpi: KpiDef
    object: str  # Salesforce object (User, Account) or HubSpot object type (companies, deals)
    name: str

    @property
    def full_name(self) -> str:
        return f"{self.object}.{self.name}"


@dataclass(frozen=True)
class TargetSpec:
    """Every name install creates and writeback writes, for one prefix."""

    prefix: str
    user_fields: tuple[KpiField, ...]
    sf_record_fields: tuple[KpiField, ...]
    hs_record_fields: tuple[KpiField, ...]
    targets: dict[str, str]

    # -- Salesforce -------------------------------------------------------------------------------
    @property
    def sf_object(self) -> str:
        return f"{self.prefix}KPI_Snapshot__c"

    @property
    def sf_key_field(self) -> str:
        return f"{self.prefix}Key__c"

    def sf_columns(self) -> dict[str, Column]:
        """Salesforce API name -> column."""
        return dict(_sf_columns(self.prefix))

    @property
    def permission_set(self) -> str:
        return f"{self.prefix}kpisync_writeback"

    @property
    def report_name(self) -> str:
        return f"{self.prefix}KPI snapshots (kpisync)"

    # -- HubSpot ----------------------------------------------------------------------------------
    @property
    def hs_object(self) -> str:
        return f"{self.prefix.lower()}kpi_snapshot"

    @property
    def hs_key_property(self) -> str:
        return f"{self.prefix.lower()}kpi_key"

    @property
    def hs_group(self) -> str:
        return f"{self.prefix.lower()}kpisync"

    def hs_columns(self) -> dict[str, Column]:
        return dict(_hs_columns(self.prefix))

    def written_kpis(self) -> list[KpiDef]:
        return list(catalogue().values())


# The column names are asked for once per written record: built once per prefix.
@cache
def _sf_columns(prefix: str) -> tuple[tuple[str, Column], ...]:
    return tuple((c.sf_name(prefix), c) for c in SNAPSHOT_COLUMNS)


@cache
def _hs_columns(prefix: str) -> tuple[tuple[str, Column], ...]:
    return tuple((c.hs_name(prefix), c) for c in SNAPSHOT_COLUMNS)


def build_spec(settings: WritebackSettings) -> TargetSpec:
    """The target spec for ``settings``; unknown or unsuitable KPI keys raise ``ValueError``
    naming the setting."""
    kpis = catalogue()
    user: list[KpiField] = []
    for key in settings.user_fields:
        d = kpis.get(key)
        if d is None:
            raise ValueError(f"user_fields: unknown KPI {key!r}")
        if Scope.REP not in d.scopes or d.by_dimension:
            raise ValueError(f"user_fields: {key!r} has no single per-rep value")
        user.append(KpiField(d, "User", sf_field_name(settings.prefix, f"KPI_{_title(key)}")))
    for metric, target in settings.targets.items():
        for k in (metric, target):
            if k not in kpis:
                raise ValueError(f"targets: unknown KPI {k!r}")
    sf_rec: list[KpiField] = []
    hs_rec: list[KpiField] = []
    for d in kpis.values():
        for scope in d.scopes:
            if scope.value in RECORD_SCOPES:  # pragma: no cover - no record-level KPI yet
                sf_obj, hs_obj = RECORD_SCOPES[scope.value]
                stem = f"KPI_{_title(d.key)}"
                sf_rec.append(KpiField(d, sf_obj, sf_field_name(settings.prefix, stem)))
                hs_rec.append(KpiField(d, hs_obj, f"{settings.prefix.lower()}kpi_{d.key}"))
    return TargetSpec(
        prefix=settings.prefix, user_fields=tuple(user), sf_record_fields=tuple(sf_rec),
        hs_record_fields=tuple(hs_rec), targets=dict(settings.targets),
    )  # fmt: skip
