"""A deterministic, vectorised generator of a realistic sales org as canonical tables.

The same org is served by both sandbox CRMs: ``generate_org`` builds it once with CRM-neutral ids
(``<table letter><n>``, e.g. ``O17``), and ``with_crm_ids`` maps every id and foreign key to the
ids one CRM would have issued (18-character Salesforce ids with the real case-safe checksum, or
HubSpot's numeric ids). ``with_crm_ids`` is the single source of truth for sandbox ids.

The data is shaped so that every KPI of the catalogue has something to compute: a team tree with
leads and managers, inactive reps, lead funnels with qualification, conversion (linked both ways to
an account and an opportunity) and disqualification, won and lost deals in three currencies with
dated exchange rates (including mid-month changes), recurring contracts that run, renew or end
(churned customers), competitors and their prices, deal costs, calls/emails/meetings/tasks (some
leads over-contacted on one day), seasonal growing quotas and sales and marketing costs.

Generation is numpy throughout (no Python loop over records), seeded by ``OrgSpec.seed`` so the same
spec always gives identical tables: ``generate_org(spec_for("large"))`` (1M opportunities, 1M leads,
5M activities) runs in seconds.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import polars as pl

__all__ = [
    "CANONICAL_COLUMNS",
    "HUBSPOT_BASE",
    "NEUTRAL_PREFIX",
    "SALESFORCE_PREFIX",
    "SIZES",
    "CanonicalOrg",
    "OrgSpec",
    "generate_org",
    "salesforce_checksum",
    "salesforce_id",
    "spec_for",
    "with_crm_ids",
    "write_canonical_csv",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_DAY = 86_400
_US = 1_000_000

# Units of each currency per euro, the anchor of the generated rates.
_RATE_PER_EUR: dict[str, float] = {
    "EUR": 1.0,
    "USD": 1.08,
    "GBP": 0.85,
    "CHF": 0.95,
    "SEK": 11.4,
    "DKK": 7.46,
    "NOK": 11.6,
    "JPY": 160.0,
    "CAD": 1.47,
    "AUD": 1.64,
}


def _words(text: str, sep: str | None = None) -> tuple[str, ...]:
    return tuple(w.strip() for w in text.split(sep))


# --------------------------------------------------------------------------------------------
# Specification
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrgSpec:
    """How big an org to generate, over which span, from which seed."""

    n_reps: int
    n_opportunities: int
    n_leads: int
    n_activities: int
    months: int
    seed: int = 0
    corporate_currency: str = "EUR"
    start: datetime.date = datetime.date(2024, 1, 1)
    team_depth: int = 4  # levels of the team tree including the root

    def __post_init__(self) -> None:
        if self.n_reps < 1:
            raise ValueError("n_reps must be at least 1")
        if min(self.n_opportunities, self.n_leads, self.n_activities) < 0:
            raise ValueError("record counts must not be negative")
        if self.months < 1:
            raise ValueError("months must be at least 1")
        if self.team_depth < 1:
            raise ValueError("team_depth must be at least 1")
        if self.start.day != 1:
            raise ValueError("start must be the first day of a month")
        if self.corporate_currency not in _RATE_PER_EUR:
            raise ValueError(
                f"unsupported corporate_currency {self.corporate_currency!r}; "
                f"one of {sorted(_RATE_PER_EUR)}"
            )


SIZES: dict[str, OrgSpec] = {
    "small": OrgSpec(n_reps=12, n_opportunities=300, n_leads=300, n_activities=1_500, months=12),
    "medium": OrgSpec(
        n_reps=100, n_opportunities=20_000, n_leads=20_000, n_activities=100_000, months=24
    ),
    "large": OrgSpec(
        n_reps=2_000,
        n_opportunities=1_000_000,
        n_leads=1_000_000,
        n_activities=5_000_000,
        months=24,
    ),
}


def spec_for(size: str | int, seed: int = 0) -> OrgSpec:
    """The spec of a named size (``SIZES``), or one scaled from a number of opportunities.

    For an int ``n``: leads ~ n, activities ~ 5n, reps ~ n/500 clamped to [5, 2000], and 24
    months of history from 10,000 opportunities up, else 12.
    """
    if isinstance(size, str):
        try:
            return replace(SIZES[size], seed=seed)
        except KeyError:
            raise ValueError(f"unknown size {size!r}; one of {sorted(SIZES)} or an int") from None
    n = int(size)
    if n < 0:
        raise ValueError("the number of opportunities must not be negative")
    return OrgSpec(
        n_reps=min(2_000, max(5, round(n / 500))),
        n_opportunities=n,
        n_leads=n,
        n_activities=5 * n,
        months=24 if n >= 10_000 else 12,
        seed=seed,
    )


# --------------------------------------------------------------------------------------------
# The contract: canonical columns (CANONICAL.md) and their dtypes
# --------------------------------------------------------------------------------------------

_ID, _TEXT, _FLOAT, _BOOL, _DATE = pl.String(), pl.String(), pl.Float64(), pl.Boolean(), pl.Date()
_TS = pl.Datetime("us", "UTC")

CANONICAL_COLUMNS: dict[str, dict[str, pl.DataType]] = {
    "teams": {"id": _ID, "name": _TEXT, "parent_id": _ID},
    "reps": {
        "id": _ID,
        "name": _TEXT,
        "email": _TEXT,
        "team_id": _ID,
        "manager_id": _ID,
        "is_active": _BOOL,
    },
    "accounts": {
        "id": _ID,
        "name": _TEXT,
        "owner_id": _ID,
        "created_at": _TS,
        "customer_status": _TEXT,
    },
    "leads": {
        "id": _ID,
        "owner_id": _ID,
        "created_at": _TS,
        "source": _TEXT,
        "status": _TEXT,
        "qualified_at": _TS,
        "converted_at": _TS,
        "converted_account_id": _ID,
        "converted_opportunity_id": _ID,
        "disqualified_at": _TS,
        "score": _FLOAT,
    },
    "opportunities": {
        "id": _ID,
        "owner_id": _ID,
        "account_id": _ID,
        "lead_id": _ID,
        "created_at": _TS,
        "close_date": _DATE,
        "stage": _TEXT,
        "is_closed": _BOOL,
        "is_won": _BOOL,
        "amount": _FLOAT,
        "currency": _TEXT,
        "type": _TEXT,
        "cost": _FLOAT,
        "recurring_monthly_amount": _FLOAT,
        "contract_start": _DATE,
        "contract_end": _DATE,
        "competitor": _TEXT,
        "competitor_price": _FLOAT,
    },
    "activities": {
        "id": _ID,
        "owner_id": _ID,
        "kind": _TEXT,
        "direction": _TEXT,
        "outcome": _TEXT,
        "occurred_at": _TS,
        "duration_minutes": _FLOAT,
        "lead_id": _ID,
        "account_id": _ID,
        "opportunity_id": _ID,
    },
    "quotas": {
        "owner_id": _ID,
        "period_start": _DATE,
        "period_end": _DATE,
        "amount": _FLOAT,
        "currency": _TEXT,
    },
    "fx_rates": {"currency": _TEXT, "start_date": _DATE, "rate": _FLOAT},
    "costs": {"period_start": _DATE, "period_end": _DATE, "team_id": _ID, "amount": _FLOAT},
}

Entity = Literal["team", "rep", "account", "lead", "opportunity", "activity"]

# Neutral ids: one letter per table, then a 1-based counter ("T1", "R12", "O1000000").
NEUTRAL_PREFIX: dict[Entity, str] = {
    "team": "T",
    "rep": "R",
    "account": "A",
    "lead": "L",
    "opportunity": "O",
    "activity": "V",
}

# Which columns hold which entity's ids (primary keys and foreign keys).
_ID_COLUMNS: dict[str, dict[str, Entity]] = {
    "teams": {"id": "team", "parent_id": "team"},
    "reps": {"id": "rep", "team_id": "team", "manager_id": "rep"},
    "accounts": {"id": "account", "owner_id": "rep"},
    "leads": {
        "id": "lead",
        "owner_id": "rep",
        "converted_account_id": "account",
        "converted_opportunity_id": "opportunity",
    },
    "opportunities": {
        "id": "opportunity",
        "owner_id": "rep",
        "account_id": "account",
        "lead_id": "lead",
    },
    "activities": {
        "id": "activity",
        "owner_id": "rep",
        "lead_id": "lead",
        "account_id": "account",
        "opportunity_id": "opportunity",
    },
    "quotas": {"owner_id": "rep"},
    "costs": {"team_id": "team"},
}

_TABLE_OF: dict[Entity, str] = {
    "team": "teams",
    "rep": "reps",
    "account": "accounts",
    "lead": "leads",
    "opportunity": "opportunities",
    "activity": "activities",
}

# --------------------------------------------------------------------------------------------
# Vocabulary and shape parameters
# --------------------------------------------------------------------------------------------

_CURRENCY_SHARE = (0.70, 0.20, 0.10)  # corporate, then the two others

# Calendar-month weights (Jan..Dec): summer lower, Q4 higher.
_SEASONALITY = (0.90, 0.95, 1.05, 1.00, 1.00, 1.00, 0.80, 0.70, 1.00, 1.10, 1.20, 1.30)
_ANNUAL_GROWTH = 0.20

_LEAD_SOURCES = ("web", "referral", "event", "outbound", "partner")
_LEAD_SOURCE_SHARE = (0.35, 0.15, 0.15, 0.25, 0.10)
_CONVERSION_BY_SOURCE = (0.22, 0.40, 0.25, 0.18, 0.30)  # ~25 % overall
_LEAD_STATUSES = ("Open", "Working", "Qualified", "Unqualified", "Converted")

_OPEN_STAGES = ("Prospecting", "Qualification", "Proposal", "Negotiation")
_OPEN_STAGE_SHARE = (0.35, 0.30, 0.20, 0.15)
_STAGES = (*_OPEN_STAGES, "Closed Won", "Closed Lost")
_OPP_TYPES = ("new_business", "upsell", "renewal", "other")
_COMPETITORS = ("Acme CRM", "Globex Sales", "Initech Suite", "Umbrella Cloud", "Hooli Revenue")
_COMPETITOR_SHARE = (0.30, 0.25, 0.20, 0.15, 0.10)

_KINDS = ("call", "email", "meeting", "task")
_KIND_SHARE = (0.50, 0.30, 0.15, 0.05)
_DIRECTIONS = ("outbound", "inbound")
_OUTCOMES = ("connected", "no_answer", "voicemail", "busy")
_OUTCOME_SHARE = (0.30, 0.35, 0.25, 0.10)

_FIRST_NAMES = _words(
    "Anna Bram Chloe Daan Emma Finn Greta Hugo Iris Jonas Kim Lars Mila Noah Olivia Pieter "
    "Quinn Ruben Sara Thomas Uma Victor Wendy Xavier Yara Zoe Amir Bella Carlos Dana Elif "
    "Felix Hanna Ivan Julia Koen Lotte Marco Nina Oscar Paula Rosa Sven Tess Vera Willem "
    "Aisha Bas Clara David Eva Gijs Helena Jasper Lisa Maarten Noor Priya Sophie Tim"
)
_LAST_NAMES = _words(
    (
        "de Jong | Jansen | de Vries | van den Berg | Bakker | Visser | Smit | Meijer | Mulder | "
        "de Boer | Bos | Vos | Peters | Hendriks | Dekker | Brouwer | Dijkstra | Smith | Johnson "
        "| Brown | Garcia | Miller | Davis | Martin | Muller | Schmidt | Schneider | Fischer | "
        "Weber | Rossi | Russo | Dubois | Moreau | Laurent | Silva | Santos | Nielsen | Hansen | "
        "Larsen | Andersson | Johansson | Novak | Kowalski | Nowak | Horvat | Popescu | Ivanova | "
        "Yilmaz | Kaya | Cohen | Levi | Khan | Patel | Sato | Tanaka | Kim | Lee | Chen | Wang | "
        "O'Brien"
    ),
    "|",
)
_COMPANY_WORDS = _words(
    "Blue North Bright Silver Green Rapid Prime Nova Delta Summit Vertex Atlas Orbit Pioneer "
    "Harbor Crystal Iron Golden Urban Alpine"
)
_COMPANY_NOUNS = _words(
    "Logistics Foods Systems Energy Health Retail Labs Media Finance Builders Analytics "
    "Motors Textiles Pharma Robotics Travel Solar Software Farms Consulting"
)
_COMPANY_FORMS = ("B.V.", "GmbH", "Ltd", "Inc.", "NV", "SA", "AB", "Group")
_REGION_NAMES = _words(
    ("EMEA | North America | APAC | LATAM | DACH | Nordics | Benelux | UK & Ireland"),
    "|",
)
_SUB_NAMES = ("North", "South", "East", "West", "Central", "Enterprise", "Mid-Market", "SMB")

# --------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CanonicalOrg:
    """A generated org: its spec and its canonical tables (columns and dtypes of the contract)."""

    spec: OrgSpec
    tables: dict[str, pl.DataFrame]


# --------------------------------------------------------------------------------------------
# Time helpers (seconds since the Unix epoch, days since the epoch)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Calendar:
    month_start_day: IntArray  # months + 1 entries, the last is the exclusive end
    month_of_year: IntArray  # 0..11 per month of the span
    month_weight: FloatArray  # seasonality x growth, per month of the span

    @property
    def start_day(self) -> int:
        return int(self.month_start_day[0])

    @property
    def end_day(self) -> int:
        return int(self.month_start_day[-1])

    @property
    def start_sec(self) -> int:
        return self.start_day * _DAY

    @property
    def end_sec(self) -> int:
        return self.end_day * _DAY

    @property
    def days_in_month(self) -> IntArray:
        return np.diff(self.month_start_day)

    def month_of_day(self, day: IntArray) -> IntArray:
        """The span month index (0-based, clipped to the span) of each day."""
        idx = np.searchsorted(self.month_start_day, day, side="right") - 1
        return np.clip(idx, 0, len(self.month_of_year) - 1).astype(np.int64)


def _calendar(spec: OrgSpec) -> _Calendar:
    first = np.datetime64(spec.start, "M")
    months = first + np.arange(spec.months + 1)
    start_day = months.astype("datetime64[D]").astype(np.int64)
    moy = (months[:-1].astype(np.int64) % 12).astype(np.int64)
    weight = np.array(
        [
            _SEASONALITY[int(m)] * math.pow(1.0 + _ANNUAL_GROWTH, i / 12.0)
            for i, m in enumerate(moy)
        ],
        dtype=np.float64,
    )
    return _Calendar(start_day, moy, weight)


def _sample_seconds(
    rng: np.random.Generator, n: int, cal: _Calendar, month_weight: FloatArray | None = None
) -> IntArray:
    """``n`` business-hour timestamps over the span, month density following ``month_weight``."""
    w = (cal.month_weight if month_weight is None else month_weight) * cal.days_in_month
    month = rng.choice(len(w), size=n, p=w / w.sum())
    dim = cal.days_in_month[month]
    day = cal.month_start_day[month] + (rng.random(n) * dim).astype(np.int64)
    # Most weekend days move to the nearest working day inside the span.
    dow = (day + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    weekend = (dow >= 5) & (rng.random(n) < 0.85)
    back = day - (dow - 4)  # the Friday before
    fwd = day + (7 - dow)  # the Monday after
    moved = np.where(fwd < cal.end_day, fwd, back)
    moved = np.where(moved >= cal.start_day, moved, day)
    day = np.where(weekend, moved, day)
    tod = 7 * 3600 + (rng.random(n) * 11 * 3600).astype(np.int64)
    return np.asarray(day * _DAY + tod, dtype=np.int64)


def _lognormal_seconds(
    rng: np.random.Generator, n: int, median_sec: float, sigma: float, minimum: int = 60
) -> IntArray:
    draws = rng.lognormal(math.log(median_sec), sigma, n)
    return np.maximum(draws.astype(np.int64), minimum)


def _delay_within(
    rng: np.random.Generator, base: IntArray, delay: IntArray, upper: IntArray | int
) -> IntArray:
    """``base + delay``, redrawn uniformly in ``[base, upper)`` where it would reach ``upper``."""
    t = base + delay
    span = np.maximum(np.asarray(upper, dtype=np.int64) - base, 1)
    redraw = base + (rng.random(len(base)) * span).astype(np.int64)
    return np.asarray(np.where(t < upper, t, redraw), dtype=np.int64)


def _add_months(day: IntArray, months: IntArray) -> IntArray:
    """Calendar month arithmetic on day numbers (the day of month clipped to the month's end)."""
    d = day.astype("datetime64[D]")
    m = d.astype("datetime64[M]")
    dom = (d - m.astype("datetime64[D]")).astype(np.int64)
    target = m + months.astype("timedelta64[M]")
    dim = ((target + 1).astype("datetime64[D]") - target.astype("datetime64[D]")).astype(np.int64)
    out = target.astype("datetime64[D]").astype(np.int64) + np.minimum(dom, dim - 1)
    return np.asarray(out, dtype=np.int64)


# --------------------------------------------------------------------------------------------
# Column builders (numpy -> polars)
# --------------------------------------------------------------------------------------------


def _neutral_ids(entity: Entity, n: int) -> pl.Series:
    return pl.select(
        pl.lit(NEUTRAL_PREFIX[entity]) + pl.int_range(1, n + 1, dtype=pl.Int64).cast(pl.String)
    ).to_series()


def _neutral_fk(entity: Entity, idx: IntArray) -> pl.Series:
    """Neutral ids for 0-based row indexes; a negative index is null."""
    return (
        pl.DataFrame({"i": idx})
        .select(
            pl.when(pl.col("i") >= 0).then(
                pl.lit(NEUTRAL_PREFIX[entity]) + (pl.col("i") + 1).cast(pl.String)
            )
        )
        .to_series()
    )


def _labels(values: tuple[str, ...], idx: IntArray) -> pl.Series:
    """``values[idx]`` as strings; a negative index is null."""
    table = pl.Series([*values, None], dtype=pl.String)
    return table.gather(np.where(idx < 0, len(values), idx))


def _timestamps(sec: IntArray, valid: BoolArray | None = None) -> pl.Series:
    s = pl.Series(sec * _US, dtype=pl.Int64)
    if valid is not None:
        s = pl.select(pl.when(pl.Series(valid)).then(s)).to_series()
    return s.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def _dates(day: IntArray, valid: BoolArray | None = None) -> pl.Series:
    s = pl.Series(day, dtype=pl.Int32)
    if valid is not None:
        s = pl.select(pl.when(pl.Series(valid)).then(s)).to_series()
    return s.cast(pl.Date)


def _money(x: npt.ArrayLike, valid: BoolArray | None = None) -> pl.Series:
    v = np.round(np.asarray(x, dtype=np.float64), 2)
    if valid is not None:
        v = np.where(valid, v, np.nan)
    return pl.Series(v, dtype=pl.Float64, nan_to_null=True)


def _frame(table: str, columns: dict[str, pl.Series]) -> pl.DataFrame:
    schema = CANONICAL_COLUMNS[table]
    return pl.DataFrame([columns[name].alias(name).cast(schema[name]) for name in schema])


# --------------------------------------------------------------------------------------------
# Generation steps
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Reps:
    team: IntArray
    manager: IntArray  # -1 = none
    active: BoolArray
    left_sec: IntArray  # inactive reps leave at this time; active ones never
    replacement: IntArray  # who takes an inactive rep's new records
    weight: FloatArray  # share of new records
    perf: FloatArray  # win-rate multiplier
    names: list[str]
    emails: list[str]


@dataclass(frozen=True)
class _Teams:
    parent: IntArray  # -1 = root
    level: IntArray
    names: list[str]
    lead: IntArray  # rep index of each team's lead


def _team_tree(spec: OrgSpec) -> tuple[IntArray, IntArray, list[str]]:
    depth = spec.team_depth
    while True:
        leaves_wanted = max(1, spec.n_reps // 8)
        b = max(1, round(leaves_wanted ** (1.0 / (depth - 1)))) if depth > 1 else 1
        widths = [1] + [max(2, b) if lvl == 1 else b for lvl in range(1, depth)]
        n_teams = sum(math.prod(widths[: i + 1]) for i in range(depth))
        if depth == 1 or n_teams <= max(1, math.ceil(spec.n_reps * 0.6)):
            break
        depth -= 1
    parent: list[int] = [-1]
    level: list[int] = [0]
    names: list[str] = ["Global Sales"]
    prev = [0]
    for lvl in range(1, depth):
        cur: list[int] = []
        for p in prev:
            for k in range(widths[lvl]):
                idx = len(parent)
                parent.append(p)
                level.append(lvl)
                if lvl == 1:
                    nm = _REGION_NAMES[k % len(_REGION_NAMES)]
                    if k >= len(_REGION_NAMES):
                        nm = f"{nm} {k // len(_REGION_NAMES) + 1}"
                elif lvl == 2:
                    sub = _SUB_NAMES[k % len(_SUB_NAMES)]
                    nm = f"{names[p]} {sub}" + (
                        f" {k // len(_SUB_NAMES) + 1}" if k >= len(_SUB_NAMES) else ""
                    )
                else:
                    nm = f"{names[p]} Squad {k + 1}"
                names.append(nm)
                cur.append(idx)
        prev = cur
    return np.array(parent, dtype=np.int64), np.array(level, dtype=np.int64), names


def _make_teams_and_reps(
    spec: OrgSpec, rng: np.random.Generator, cal: _Calendar
) -> tuple[_Teams, _Reps]:
    parent, level, team_names = _team_tree(spec)
    n_teams = len(parent)
    n = spec.n_reps
    is_leaf = np.ones(n_teams, dtype=bool)
    is_leaf[parent[parent >= 0]] = False
    leaves = np.flatnonzero(is_leaf)
    # Reps 0..n_teams-1 lead the teams (in tree order); the rest are members of leaf teams, and
    # a few sit on the regions (level 1) directly.
    n_leads = min(n_teams, n)
    team = np.empty(n, dtype=np.int64)
    team[:n_leads] = np.arange(n_leads)
    n_members = n - n_leads
    if n_members > 0:
        member_team = leaves[rng.integers(0, len(leaves), n_members)]
        # every leaf gets at least one member when there are enough reps
        k = min(len(leaves), n_members)
        member_team[:k] = leaves[:k]
        regions = np.flatnonzero(level == 1)
        if len(regions) > 0:
            on_region = rng.random(n_members) < 0.03
            on_region[:k] = False
            member_team[on_region] = regions[rng.integers(0, len(regions), int(on_region.sum()))]
        team[n_leads:] = member_team
    team_lead = np.full(n_teams, -1, dtype=np.int64)
    team_lead[:n_leads] = np.arange(n_leads)
    # Teams without a lead of their own (only when reps < teams) borrow their parent's.
    for t in range(n_teams):
        if team_lead[t] < 0:
            team_lead[t] = team_lead[parent[t]]
    manager = np.where(
        np.arange(n) < n_leads,
        np.where(parent[team] >= 0, team_lead[np.maximum(parent[team], 0)], -1),
        team_lead[team],
    ).astype(np.int64)
    # ~5 % of the non-lead reps have left during the span.
    active = np.ones(n, dtype=bool)
    left_sec = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    n_inactive = min(n_members, max(1 if n_members > 0 else 0, round(0.05 * n)))
    if n_inactive:
        gone = n_leads + rng.choice(n_members, n_inactive, replace=False)
        active[gone] = False
        span = cal.end_sec - cal.start_sec
        left_sec[gone] = cal.start_sec + (span * rng.uniform(0.3, 0.9, n_inactive)).astype(np.int64)
    replacement = np.arange(n, dtype=np.int64)
    replacement[~active] = team_lead[team[~active]]
    # Share of new records: members ~1, squad leads 0.5, higher leads little.
    weight = rng.lognormal(0.0, 0.25, n)
    lead_level = level[team[:n_leads]]
    deepest = int(level.max())
    weight[:n_leads] = np.where(lead_level == deepest, 0.5, 0.15)
    if n == n_leads:
        weight[:] = 1.0
    perf = rng.lognormal(0.0, 0.30, n)
    # Names: distinct first/last combinations; emails unique.
    n_combos = len(_FIRST_NAMES) * len(_LAST_NAMES)
    combo = rng.permutation(n_combos)[np.arange(n) % n_combos]
    names: list[str] = []
    emails: list[str] = []
    for i in range(n):
        first = _FIRST_NAMES[int(combo[i]) // len(_LAST_NAMES)]
        last = _LAST_NAMES[int(combo[i]) % len(_LAST_NAMES)]
        names.append(f"{first} {last}")
        local = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
        suffix = "" if i < n_combos else str(i // n_combos + 1)
        emails.append(f"{local}{suffix}@example.com")
    teams = _Teams(parent, level, team_names, team_lead)
    reps = _Reps(team, manager, active, left_sec, replacement, weight, perf, names, emails)
    return teams, reps


def _draw_owners(rng: np.random.Generator, reps: _Reps, at_sec: IntArray) -> IntArray:
    p = reps.weight / reps.weight.sum()
    owner = rng.choice(len(p), size=len(at_sec), p=p).astype(np.int64)
    return _reassign(reps, owner, at_sec)


def _reassign(reps: _Reps, owner: IntArray, at_sec: IntArray) -> IntArray:
    """Records made after their owner left belong to the owner's replacement."""
    gone = at_sec >= reps.left_sec[owner]
    return np.asarray(np.where(gone, reps.replacement[owner], owner), dtype=np.int64)


@dataclass(frozen=True)
class _Leads:
    created: IntArray
    owner: IntArray
    source: IntArray
    status: IntArray
    qualified: IntArray  # -1 = null (all time columns)
    converted: IntArray
    disqualified: IntArray
    score: FloatArray  # nan = null


def _make_leads(spec: OrgSpec, rng: np.random.Generator, cal: _Calendar, reps: _Reps) -> _Leads:
    n = spec.n_leads
    created = np.sort(_sample_seconds(rng, n, cal))
    owner = _draw_owners(rng, reps, created)
    source = rng.choice(len(_LEAD_SOURCES), size=n, p=_LEAD_SOURCE_SHARE).astype(np.int64)
    conv_p = np.asarray(_CONVERSION_BY_SOURCE)[source]
    u = rng.random(n)
    is_conv = u < conv_p
    # Too many conversions for the opportunities asked for: the latest stay merely qualified.
    conv_idx = np.flatnonzero(is_conv)
    demoted = conv_idx[spec.n_opportunities :]
    is_conv[demoted] = False
    rest = np.clip((u - conv_p) / (1.0 - conv_p), 0.0, 1.0 - 1e-12)
    rest[demoted] = 0.0  # -> Qualified
    # Among the others: 16 % qualified, 27 % disqualified, 27 % open, 30 % working.
    status = np.select(
        [is_conv, rest < 0.16, rest < 0.43, rest < 0.70],
        [4, 2, 3, 0],
        default=1,
    ).astype(np.int64)
    is_disq = status == 3
    qualified_too = is_disq & (rng.random(n) < 0.15)
    is_qual = is_conv | (status == 2) | qualified_too
    end = cal.end_sec
    q_at = _delay_within(rng, created, _lognormal_seconds(rng, n, 3 * _DAY, 1.0), end)
    c_at = _delay_within(rng, q_at, _lognormal_seconds(rng, n, 5 * _DAY, 1.0), end)
    d_base = np.where(qualified_too, q_at, created)
    d_at = _delay_within(rng, d_base, _lognormal_seconds(rng, n, 7 * _DAY, 1.0), end)
    has_score = rng.random(n) < 0.70
    raw = rng.normal(45.0, 18.0, n) + 25.0 * is_conv + 10.0 * is_qual - 10.0 * is_disq
    score = np.where(has_score, np.clip(np.round(raw), 0.0, 100.0), np.nan)
    return _Leads(
        created=created,
        owner=owner,
        source=source,
        status=status,
        qualified=np.where(is_qual, q_at, -1),
        converted=np.where(is_conv, c_at, -1),
        disqualified=np.where(is_disq, d_at, -1),
        score=score,
    )


@dataclass(frozen=True)
class _Accounts:
    created: IntArray
    owner: IntArray
    lead_conv_account: IntArray  # per lead: the account its conversion made or linked, else -1


def _make_accounts(
    spec: OrgSpec, rng: np.random.Generator, cal: _Calendar, reps: _Reps, leads: _Leads
) -> _Accounts:
    conv = np.flatnonzero(leads.converted >= 0)
    creates = rng.random(len(conv)) < 0.70  # the rest link to an existing account
    n_direct = max(3, round(0.15 * spec.n_opportunities))
    # An existing book of business: the first month weighs six times as much.
    w = cal.month_weight.copy()
    w[0] *= 6.0
    direct_created = _sample_seconds(rng, n_direct, cal, w)
    direct_created[0] = cal.start_sec  # someone is always there to link to
    direct_owner = _draw_owners(rng, reps, direct_created)
    new_from = conv[creates]
    created = np.concatenate([direct_created, leads.converted[new_from]])
    owner = np.concatenate([direct_owner, leads.owner[new_from]])
    order = np.argsort(created, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    created = created[order]
    owner = owner[order]
    lead_acc = np.full(spec.n_leads, -1, dtype=np.int64)
    lead_acc[new_from] = rank[n_direct + np.arange(len(new_from))]
    linking = conv[~creates]
    lead_acc[linking] = _pick_existing(rng, created, leads.converted[linking])
    return _Accounts(created, owner, lead_acc)


def _pick_existing(rng: np.random.Generator, created_sorted: IntArray, at: IntArray) -> IntArray:
    """A uniformly chosen row among those created at or before ``at`` (row 0 always qualifies)."""
    count = np.maximum(np.searchsorted(created_sorted, at, side="right"), 1)
    return (rng.random(len(at)) * count).astype(np.int64)


@dataclass(frozen=True)
class _Opps:
    created: IntArray
    owner: IntArray
    account: IntArray
    lead: IntArray  # -1 = none
    close_day: IntArray
    stage: IntArray
    is_closed: BoolArray
    is_won: BoolArray
    amount: FloatArray
    amount_corp: FloatArray
    currency: IntArray
    type: IntArray
    cost: FloatArray
    recurring: FloatArray
    contract_start: IntArray  # -1 = null
    contract_end: IntArray
    competitor: IntArray  # -1 = none
    competitor_price: FloatArray
    lead_conv_opp: IntArray  # per lead: its converted opportunity, else -1


def _currencies(spec: OrgSpec) -> tuple[str, ...]:
    others = [c for c in ("EUR", "USD", "GBP") if c != spec.corporate_currency][:2]
    return (spec.corporate_currency, *others)


def _fx_paths(
    spec: OrgSpec, rng: np.random.Generator, cal: _Calendar
) -> tuple[FloatArray, list[tuple[str, int, float]]]:
    """Monthly rates per currency (row 0, the corporate, is 1) and the dated rate rows."""
    currencies = _currencies(spec)
    corp = _RATE_PER_EUR[spec.corporate_currency]
    months = spec.months
    monthly = np.ones((len(currencies), months), dtype=np.float64)
    rows: list[tuple[str, int, float]] = []
    for c, code in enumerate(currencies[1:], start=1):
        base = _RATE_PER_EUR[code] / corp
        steps = rng.normal(0.0, 0.012, months)
        steps[0] = 0.0
        mids = rng.normal(0.0, 0.008, months)
        level = 0.0
        for m in range(months):
            level += float(steps[m])
            rate = round(base * math.exp(level), 6)
            monthly[c, m] = rate
            rows.append((code, int(cal.month_start_day[m]), rate))
            if m == 0 or m % 4 == 2:  # a mid-month change
                mid = round(rate * math.exp(float(mids[m]) + 0.004), 6)
                rows.append((code, int(cal.month_start_day[m]) + 14, mid))
    return monthly, rows


def _make_opportunities(
    spec: OrgSpec,
    rng: np.random.Generator,
    cal: _Calendar,
    reps: _Reps,
    leads: _Leads,
    accounts: _Accounts,
    monthly_rate: FloatArray,
) -> _Opps:
    conv_leads = np.flatnonzero(leads.converted >= 0)
    n_conv = len(conv_leads)
    n_direct = spec.n_opportunities - n_conv
    d_created = _sample_seconds(rng, n_direct, cal)
    d_account = _pick_existing(rng, accounts.created, d_created)
    by_account_owner = rng.random(n_direct) < 0.80
    d_owner = np.where(
        by_account_owner,
        _reassign(reps, accounts.owner[d_account], d_created),
        _draw_owners(rng, reps, d_created),
    )
    created = np.concatenate([leads.converted[conv_leads], d_created])
    owner = np.concatenate([leads.owner[conv_leads], d_owner])
    account = np.concatenate([accounts.lead_conv_account[conv_leads], d_account])
    lead = np.concatenate([conv_leads, np.full(n_direct, -1, dtype=np.int64)])
    order = np.argsort(created, kind="stable")
    created, owner, account, lead = created[order], owner[order], account[order], lead[order]
    n = len(created)
    lead_conv_opp = np.full(spec.n_leads, -1, dtype=np.int64)
    has_lead = lead >= 0
    lead_conv_opp[lead[has_lead]] = np.flatnonzero(has_lead)

    # Type: an account's first deal is new business, later ones mostly upsell or renewal.
    by_acc = np.lexsort((created, account))
    first = np.ones(n, dtype=bool)
    first[by_acc[1:]] = account[by_acc[1:]] != account[by_acc[:-1]]
    later_type = rng.choice(4, size=n, p=(0.10, 0.45, 0.30, 0.15))
    first_type = np.where(rng.random(n) < 0.92, 0, 3)
    opp_type = np.where(first, first_type, later_type).astype(np.int64)

    # Money: corporate-currency value, shown in the deal's currency.
    type_factor = np.array([1.0, 0.6, 0.9, 0.5])[opp_type]
    amount_corp = np.round(rng.lognormal(math.log(14_000.0), 0.65, n) * type_factor, -1)
    amount_corp = np.maximum(amount_corp, 500.0)
    currency = rng.choice(3, size=n, p=_CURRENCY_SHARE).astype(np.int64)
    created_day = created // _DAY
    month = cal.month_of_day(created_day)
    amount = np.round(amount_corp * monthly_rate[currency, month], 2)
    amount_corp = amount / monthly_rate[currency, month]

    competitor = np.where(
        rng.random(n) < 0.20, rng.choice(5, size=n, p=_COMPETITOR_SHARE), -1
    ).astype(np.int64)
    has_price = (competitor >= 0) & (rng.random(n) < 0.5)
    competitor_price = np.where(has_price, np.round(amount * rng.uniform(0.75, 1.2, n), -1), np.nan)

    # Closing: older deals are more likely closed (~60 % overall), ~35 % of the closed are won.
    end_day = cal.end_day
    age = (cal.end_sec - created) / _DAY
    ripeness = 1.0 - 1.0 / (1.0 + age / 45.0)
    mean_ripeness = float(ripeness.mean()) if n else 1.0
    p_close = np.clip(0.60 * ripeness / max(mean_ripeness, 1e-9), 0.0, 0.97)
    is_closed = rng.random(n) < p_close
    cycle = np.maximum(rng.lognormal(math.log(30.0), 0.8, n).astype(np.int64), 0)
    closed_day = _delay_within(rng, created_day, cycle, end_day)
    due_now = rng.random(n) < 0.20  # open and due in the last month of the span
    last_month = int(cal.month_start_day[-2])
    lo = np.maximum(created_day, last_month)
    due_soon = lo + (rng.random(n) * np.maximum(end_day - lo, 1)).astype(np.int64)
    due_later = end_day + rng.integers(0, 180, n)
    close_day = np.where(is_closed, closed_day, np.where(due_now, due_soon, due_later))

    from_lead = lead >= 0
    lead_source = np.where(from_lead, leads.source[np.maximum(lead, 0)], -1)
    source_factor = np.where(lead_source == 1, 1.3, np.where(lead_source == 3, 0.8, 1.0))
    raw = reps.perf[owner] * np.where(competitor >= 0, 0.7, 1.0) * source_factor
    mean_raw = float(raw[is_closed].mean()) if is_closed.any() else 1.0
    p_win = np.clip(0.35 * raw / max(mean_raw, 1e-9), 0.0, 0.95)
    is_won = is_closed & (rng.random(n) < p_win)
    open_stage = rng.choice(4, size=n, p=_OPEN_STAGE_SHARE)
    stage = np.where(is_closed, np.where(is_won, 4, 5), open_stage).astype(np.int64)

    cost = np.where(rng.random(n) < 0.30, np.round(amount * rng.uniform(0.35, 0.75, n), 2), np.nan)

    # Recurring contracts on ~35 % of won deals: 12/24/36 months, a quarter ended early (churn).
    recurring_mask = is_won & (rng.random(n) < 0.35)
    recurring = np.where(recurring_mask, np.round(amount / 12.0, 2), np.nan)
    start = np.minimum(close_day + rng.integers(0, 32, n), end_day - 1)
    term = rng.choice(np.array([12, 24, 36]), size=n, p=(0.6, 0.3, 0.1)).astype(np.int64)
    months_left = np.maximum(cal.month_of_day(np.full(n, end_day - 1)) - cal.month_of_day(start), 1)
    cancelled = rng.random(n) < 0.25
    early = 1 + (rng.random(n) * np.minimum(term - 1, months_left)).astype(np.int64)
    end_months = np.where(cancelled, early, term)
    contract_end = _add_months(start, end_months)
    contract_start = np.where(recurring_mask, start, -1)
    contract_end = np.where(recurring_mask, contract_end, -1)

    return _Opps(
        created=created,
        owner=owner,
        account=account,
        lead=lead,
        close_day=close_day,
        stage=stage,
        is_closed=is_closed,
        is_won=is_won,
        amount=amount,
        amount_corp=amount_corp,
        currency=currency,
        type=opp_type,
        cost=cost,
        recurring=recurring,
        contract_start=contract_start,
        contract_end=contract_end,
        competitor=competitor,
        competitor_price=competitor_price,
        lead_conv_opp=lead_conv_opp,
    )


def _customer_status(n_accounts: int, opps: _Opps, end_day: int) -> IntArray:
    """0 customer, 1 former customer (every subscription ended), 2 prospect (nothing won)."""
    has_won = np.zeros(n_accounts, dtype=bool)
    has_won[opps.account[opps.is_won]] = True
    rec = opps.contract_start >= 0
    has_rec = np.zeros(n_accounts, dtype=bool)
    has_rec[opps.account[rec]] = True
    running = rec & (opps.contract_end > end_day)
    has_running = np.zeros(n_accounts, dtype=bool)
    has_running[opps.account[running]] = True
    former = has_rec & ~has_running
    return np.where(former, 1, np.where(has_won, 0, 2)).astype(np.int64)


@dataclass(frozen=True)
class _Activities:
    occurred: IntArray
    owner: IntArray
    kind: IntArray
    direction: IntArray  # -1 = null
    outcome: IntArray
    duration: FloatArray
    lead: IntArray
    account: IntArray
    opportunity: IntArray


def _make_activities(
    spec: OrgSpec,
    rng: np.random.Generator,
    cal: _Calendar,
    reps: _Reps,
    leads: _Leads,
    accounts: _Accounts,
    opps: _Opps,
) -> _Activities:
    n = spec.n_activities
    end = cal.end_sec
    n_leads, n_opps, n_acc = len(leads.created), len(opps.created), len(accounts.created)
    n_lead_act = round(0.5 * n) if n_leads else 0
    n_other = n - n_lead_act

    # Over-contacted leads: six touches on one day, the day after they came in.
    eligible = np.flatnonzero((leads.status <= 1) & (leads.created < end - 2 * _DAY))
    n_burst = min(len(eligible), max(3, n_leads // 200), n_lead_act // 6)
    burst_leads = np.sort(rng.choice(eligible, n_burst, replace=False)) if n_burst else eligible[:0]
    burst_lead = np.repeat(burst_leads, 6)
    burst_day = leads.created[burst_lead] // _DAY + 1
    burst_time = burst_day * _DAY + 9 * 3600 + np.tile(np.arange(6) * 40 * 60, n_burst)

    # Other lead activities: after the lead came in, before it converted or was disqualified.
    n_plain = n_lead_act - len(burst_lead)
    status_weight = np.array([0.3, 1.5, 1.5, 1.0, 2.0])[leads.status]
    if n_plain and n_leads:
        plain_lead = rng.choice(n_leads, n_plain, p=status_weight / status_weight.sum())
    else:
        plain_lead = np.zeros(0, dtype=np.int64)
    closed_at = np.where(leads.converted >= 0, leads.converted, leads.disqualified)
    upper = np.where(closed_at >= 0, closed_at, end)
    base = leads.created[plain_lead]
    plain_time = _delay_within(
        rng,
        base,
        _lognormal_seconds(rng, n_plain, 10 * 3600, 1.8, minimum=120),
        np.maximum(upper[plain_lead], base + 1),
    )
    lead_idx = np.concatenate([burst_lead, plain_lead]).astype(np.int64)
    lead_time = np.concatenate([burst_time, plain_time]).astype(np.int64)
    lead_owner = leads.owner[lead_idx]

    # Account and opportunity activities.
    # (there is always an account: the generator makes a few without leads or deals)
    on_opp = (rng.random(n_other) < 0.60) if n_opps else np.zeros(n_other, dtype=bool)
    n_on_opp = int(on_opp.sum())
    opp_idx = rng.integers(0, max(n_opps, 1), n_on_opp)
    o_from = opps.created[opp_idx]
    o_to = np.where(
        opps.is_closed[opp_idx], np.minimum((opps.close_day[opp_idx] + 1) * _DAY, end), end
    )
    o_time = o_from + (rng.random(n_on_opp) * np.maximum(o_to - o_from, 1)).astype(np.int64)
    acc_idx = rng.integers(0, max(n_acc, 1), n_other - n_on_opp)
    a_from = accounts.created[acc_idx]
    a_time = a_from + (rng.random(len(acc_idx)) * np.maximum(end - a_from, 1)).astype(np.int64)

    m = n_other - n_on_opp
    occurred = np.concatenate([lead_time, o_time, a_time])
    owner = np.concatenate([lead_owner, opps.owner[opp_idx], accounts.owner[acc_idx]])
    owner = _reassign(reps, owner, occurred)
    lead_col = np.concatenate([lead_idx, np.full(n_on_opp + m, -1, dtype=np.int64)])
    account_col = np.concatenate(
        [np.full(len(lead_idx), -1, dtype=np.int64), opps.account[opp_idx], acc_idx]
    )
    opp_col = np.concatenate(
        [np.full(len(lead_idx), -1, dtype=np.int64), opp_idx, np.full(m, -1, dtype=np.int64)]
    )

    order = np.argsort(occurred, kind="stable")
    occurred, owner = occurred[order], owner[order]
    lead_col, account_col, opp_col = lead_col[order], account_col[order], opp_col[order]

    kind = rng.choice(4, size=n, p=_KIND_SHARE).astype(np.int64)
    inbound = rng.random(n) < np.where(kind == 0, 0.15, 0.25)
    direction = np.where(kind <= 1, inbound.astype(np.int64), -1)
    outcome = np.where(kind == 0, rng.choice(4, size=n, p=_OUTCOME_SHARE), -1).astype(np.int64)
    call_minutes = np.where(outcome == 0, rng.integers(1, 31, n), 0).astype(np.float64)
    meeting_minutes = rng.choice(np.array([30.0, 45.0, 60.0]), size=n, p=(0.4, 0.2, 0.4))
    duration = np.where(kind == 0, call_minutes, np.where(kind == 2, meeting_minutes, np.nan))
    return _Activities(
        occurred, owner, kind, direction, outcome, duration, lead_col, account_col, opp_col
    )


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def generate_org(spec: OrgSpec) -> CanonicalOrg:
    """Generate the org described by ``spec`` as canonical tables with CRM-neutral ids.

    Deterministic: the same spec gives identical tables on every machine. Every timestamp lies in
    ``[spec.start, spec.start + months)`` except open deals' close dates and contract ends.
    """
    rng = np.random.default_rng(spec.seed)
    cal = _calendar(spec)
    teams, reps = _make_teams_and_reps(spec, rng, cal)
    monthly_rate, fx_rows = _fx_paths(spec, rng, cal)
    leads = _make_leads(spec, rng, cal, reps)
    accounts = _make_accounts(spec, rng, cal, reps, leads)
    opps = _make_opportunities(spec, rng, cal, reps, leads, accounts, monthly_rate)
    acts = _make_activities(spec, rng, cal, reps, leads, accounts, opps)
    currencies = _currencies(spec)
    n_acc = len(accounts.created)

    tables: dict[str, pl.DataFrame] = {}
    tables["teams"] = _frame(
        "teams",
        {
            "id": _neutral_ids("team", len(teams.parent)),
            "name": pl.Series(teams.names, dtype=pl.String),
            "parent_id": _neutral_fk("team", teams.parent),
        },
    )
    tables["reps"] = _frame(
        "reps",
        {
            "id": _neutral_ids("rep", spec.n_reps),
            "name": pl.Series(reps.names, dtype=pl.String),
            "email": pl.Series(reps.emails, dtype=pl.String),
            "team_id": _neutral_fk("team", reps.team),
            "manager_id": _neutral_fk("rep", reps.manager),
            "is_active": pl.Series(reps.active),
        },
    )
    words = rng.integers(0, len(_COMPANY_WORDS), n_acc)
    nouns = rng.integers(0, len(_COMPANY_NOUNS), n_acc)
    forms = rng.integers(0, len(_COMPANY_FORMS), n_acc)
    account_names = pl.select(
        pl.concat_str(
            [
                _labels(_COMPANY_WORDS, words),
                _labels(_COMPANY_NOUNS, nouns),
                _labels(_COMPANY_FORMS, forms),
            ],
            separator=" ",
        )
    ).to_series()
    tables["accounts"] = _frame(
        "accounts",
        {
            "id": _neutral_ids("account", n_acc),
            "name": account_names,
            "owner_id": _neutral_fk("rep", accounts.owner),
            "created_at": _timestamps(accounts.created),
            "customer_status": _labels(
                ("customer", "former_customer", "prospect"),
                _customer_status(n_acc, opps, cal.end_day),
            ),
        },
    )
    tables["leads"] = _frame(
        "leads",
        {
            "id": _neutral_ids("lead", spec.n_leads),
            "owner_id": _neutral_fk("rep", leads.owner),
            "created_at": _timestamps(leads.created),
            "source": _labels(_LEAD_SOURCES, leads.source),
            "status": _labels(_LEAD_STATUSES, leads.status),
            "qualified_at": _timestamps(leads.qualified, leads.qualified >= 0),
            "converted_at": _timestamps(leads.converted, leads.converted >= 0),
            "converted_account_id": _neutral_fk("account", accounts.lead_conv_account),
            "converted_opportunity_id": _neutral_fk("opportunity", opps.lead_conv_opp),
            "disqualified_at": _timestamps(leads.disqualified, leads.disqualified >= 0),
            "score": pl.Series(leads.score, dtype=pl.Float64, nan_to_null=True),
        },
    )
    tables["opportunities"] = _frame(
        "opportunities",
        {
            "id": _neutral_ids("opportunity", spec.n_opportunities),
            "owner_id": _neutral_fk("rep", opps.owner),
            "account_id": _neutral_fk("account", opps.account),
            "lead_id": _neutral_fk("lead", opps.lead),
            "created_at": _timestamps(opps.created),
            "close_date": _dates(opps.close_day),
            "stage": _labels(_STAGES, opps.stage),
            "is_closed": pl.Series(opps.is_closed),
            "is_won": pl.Series(opps.is_won),
            "amount": _money(opps.amount),
            "currency": _labels(currencies, opps.currency),
            "type": _labels(_OPP_TYPES, opps.type),
            "cost": _money(opps.cost),
            "recurring_monthly_amount": _money(opps.recurring),
            "contract_start": _dates(opps.contract_start, opps.contract_start >= 0),
            "contract_end": _dates(opps.contract_end, opps.contract_end >= 0),
            "competitor": _labels(_COMPETITORS, opps.competitor),
            "competitor_price": _money(opps.competitor_price),
        },
    )
    tables["activities"] = _frame(
        "activities",
        {
            "id": _neutral_ids("activity", spec.n_activities),
            "owner_id": _neutral_fk("rep", acts.owner),
            "kind": _labels(_KINDS, acts.kind),
            "direction": _labels(_DIRECTIONS, acts.direction),
            "outcome": _labels(_OUTCOMES, acts.outcome),
            "occurred_at": _timestamps(acts.occurred),
            "duration_minutes": pl.Series(acts.duration, dtype=pl.Float64, nan_to_null=True),
            "lead_id": _neutral_fk("lead", acts.lead),
            "account_id": _neutral_fk("account", acts.account),
            "opportunity_id": _neutral_fk("opportunity", acts.opportunity),
        },
    )
    tables["quotas"] = _quotas(spec, cal, reps, opps)
    tables["fx_rates"] = _frame(
        "fx_rates",
        {
            "currency": pl.Series([r[0] for r in fx_rows], dtype=pl.String),
            "start_date": _dates(np.array([r[1] for r in fx_rows], dtype=np.int64)),
            "rate": pl.Series([r[2] for r in fx_rows], dtype=pl.Float64),
        },
    )
    tables["costs"] = _costs(spec, cal, teams, reps, opps)
    return CanonicalOrg(spec=spec, tables=tables)


def _month_share(cal: _Calendar) -> FloatArray:
    w = cal.month_weight * cal.days_in_month
    return np.asarray(w / w.sum(), dtype=np.float64)


def _quotas(spec: OrgSpec, cal: _Calendar, reps: _Reps, opps: _Opps) -> pl.DataFrame:
    """One row per active rep per month: the expected revenue of their share, seasonal, growing."""
    revenue = float(opps.amount_corp[opps.is_won].sum()) or 100_000.0 * spec.months
    active = np.flatnonzero(reps.active)
    share = reps.weight[active] / reps.weight.sum()
    per_month = _month_share(cal)
    amount = np.round(np.outer(per_month, share) * revenue * 1.05, -2).ravel()
    amount = np.maximum(amount, 100.0)
    month = np.repeat(np.arange(spec.months), len(active))
    return _frame(
        "quotas",
        {
            "owner_id": _neutral_fk("rep", np.tile(active, spec.months)),
            "period_start": _dates(cal.month_start_day[month]),
            "period_end": _dates(cal.month_start_day[month + 1]),
            "amount": _money(amount),
            "currency": pl.Series([spec.corporate_currency] * len(amount), dtype=pl.String),
        },
    )


def _costs(spec: OrgSpec, cal: _Calendar, teams: _Teams, reps: _Reps, opps: _Opps) -> pl.DataFrame:
    """Sales and marketing spend: per region per month (80 %) and org-wide per month (20 %)."""
    revenue = float(opps.amount_corp[opps.is_won].sum()) or 100_000.0 * spec.months
    per_month = _month_share(cal) * revenue * 0.35
    regions = np.flatnonzero(teams.level == 1)
    # Each rep's region: walk up the tree to level 1.
    top = reps.team.copy()
    for _ in range(int(teams.level.max())):
        top = np.where(teams.level[top] > 1, teams.parent[top], top)
    month_rows: list[IntArray] = []
    team_rows: list[IntArray] = []
    amounts: list[FloatArray] = []
    if len(regions):
        region_weight = (
            np.array([reps.weight[top == r].sum() for r in regions], dtype=np.float64) + 1e-9
        )
        region_share = region_weight / region_weight.sum()
        month_rows.append(np.repeat(np.arange(spec.months), len(regions)))
        team_rows.append(np.tile(regions, spec.months))
        amounts.append(np.outer(per_month * 0.8, region_share).ravel())
        org_share = 0.2
    else:
        org_share = 1.0
    month_rows.append(np.arange(spec.months))
    team_rows.append(np.full(spec.months, -1, dtype=np.int64))
    amounts.append(per_month * org_share)
    month = np.concatenate(month_rows)
    return _frame(
        "costs",
        {
            "period_start": _dates(cal.month_start_day[month]),
            "period_end": _dates(cal.month_start_day[month + 1]),
            "team_id": _neutral_fk("team", np.concatenate(team_rows)),
            "amount": _money(np.round(np.concatenate(amounts), -1)),
        },
    )


# --------------------------------------------------------------------------------------------
# CRM ids
# --------------------------------------------------------------------------------------------

_BASE62 = np.frombuffer(
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8
)
_CHECKSUM_ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", dtype=np.uint8)
_SF_POD = b"5g0"

# Salesforce key prefixes: teams are UserRoles, reps Users; meetings are Events, the rest Tasks.
SALESFORCE_PREFIX: dict[str, str] = {
    "team": "00E",
    "rep": "005",
    "account": "001",
    "lead": "00Q",
    "opportunity": "006",
    "task": "00T",
    "event": "00U",
}
# HubSpot: each object type in its own numeric range.
HUBSPOT_BASE: dict[Entity, int] = {
    "rep": 1_000_000,  # owners: 1000001, 1000002, ...
    "team": 5_000_000,
    "lead": 100_000_000,  # contacts
    "account": 200_000_000,  # companies
    "opportunity": 300_000_000,  # deals
    "activity": 400_000_000,  # engagements
}


def salesforce_checksum(id15: str) -> str:
    """The 3-character case-safe suffix that turns a 15-character Salesforce id into 18."""
    if len(id15) != 15:
        raise ValueError("a 15-character id is required")
    out = []
    for chunk in range(3):
        part = id15[chunk * 5 : chunk * 5 + 5]
        bits = sum(1 << i for i, ch in enumerate(part) if "A" <= ch <= "Z")
        out.append("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[bits])
    return "".join(out)


def salesforce_id(prefix: str, n: npt.ArrayLike) -> pl.Series:
    """18-character Salesforce ids: key prefix, pod ``5g0``, base-62 counter ``n``, checksum.

    Vectorised over ``n`` (non-negative integers below 62**9).
    """
    if len(prefix) != 3 or not prefix.isascii():
        raise ValueError("a Salesforce key prefix has 3 characters")
    counter = np.asarray(n, dtype=np.int64).ravel()
    if counter.size and (counter.min() < 0 or counter.max() >= 62**9):
        raise ValueError("counter out of range")
    return _salesforce_ids(np.frombuffer(prefix.encode(), dtype=np.uint8), counter)


def _salesforce_ids(prefix: npt.NDArray[np.uint8], counter: IntArray) -> pl.Series:
    """``prefix`` is 3 bytes, or one 3-byte row per counter."""
    size = len(counter)
    buf = np.empty((size, 18), dtype=np.uint8)
    buf[:, 0:3] = prefix
    buf[:, 3:6] = np.frombuffer(_SF_POD, dtype=np.uint8)
    rest = counter.copy()
    for pos in range(14, 5, -1):
        buf[:, pos] = _BASE62[rest % 62]
        rest //= 62
    upper = (buf[:, :15] >= ord("A")) & (buf[:, :15] <= ord("Z"))
    bits = (upper.reshape(size, 3, 5) * np.array([1, 2, 4, 8, 16], dtype=np.int64)).sum(axis=2)
    buf[:, 15:18] = _CHECKSUM_ALPHABET[bits]
    raw = np.ascontiguousarray(buf).view("S18").ravel()
    return pl.Series(raw).cast(pl.String)


def _id_numbers(col: pl.Series) -> pl.Series:
    """The counter of neutral ids (``"O17"`` -> 17); null stays null."""
    return col.str.slice(1).cast(pl.Int64)


def with_crm_ids(org: CanonicalOrg, crm: Literal["salesforce", "hubspot"]) -> CanonicalOrg:
    """The same org with every id and foreign key replaced by the ids ``crm`` would have issued.

    Salesforce: 18-character ids with the object's key prefix (UserRole 00E, User 005, Account
    001, Lead 00Q, Opportunity 006, Task 00T, Event 00U for meetings) and the case-safe checksum.
    HubSpot: numeric strings, each object type in its own range (``HUBSPOT_BASE``).
    """
    if crm not in ("salesforce", "hubspot"):
        raise ValueError(f"unknown CRM {crm!r}")
    lookups: dict[Entity, pl.Series] = {}
    if crm == "salesforce":
        for entity in ("team", "rep", "account", "lead", "opportunity"):
            size = org.tables[_TABLE_OF[entity]].height
            lookups[entity] = salesforce_id(
                SALESFORCE_PREFIX[entity], np.arange(1, size + 1, dtype=np.int64)
            )

    def mapped(column: str, entity: Entity, frame: pl.DataFrame) -> pl.Series:
        numbers = _id_numbers(frame[column])
        if crm == "hubspot":
            return (numbers + HUBSPOT_BASE[entity]).cast(pl.String)
        if entity == "activity":
            is_event = (frame["kind"] == "meeting").to_numpy()
            prefixes = np.where(
                is_event[:, None],
                np.frombuffer(SALESFORCE_PREFIX["event"].encode(), dtype=np.uint8),
                np.frombuffer(SALESFORCE_PREFIX["task"].encode(), dtype=np.uint8),
            ).astype(np.uint8)
            return _salesforce_ids(prefixes, numbers.to_numpy().astype(np.int64))
        return lookups[entity].gather(numbers - 1)

    tables: dict[str, pl.DataFrame] = {}
    for table, frame in org.tables.items():
        columns = _ID_COLUMNS.get(table, {})
        tables[table] = frame.with_columns(
            [mapped(col, ent, frame).alias(col) for col, ent in columns.items()]
        )
    return CanonicalOrg(spec=org.spec, tables=tables)


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------


def write_canonical_csv(org: CanonicalOrg, out_dir: Path) -> dict[str, Path]:
    """Write one ``<table>.csv`` per table in the canonical CSV conventions; returns the paths.

    Timestamps ``2025-03-01T09:30:00Z``, dates ``YYYY-MM-DD``, booleans ``true``/``false``,
    money with 2 decimals (exchange rates with 6), an empty cell for null.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for table, frame in org.tables.items():
        path = out_dir / f"{table}.csv"
        frame.write_csv(
            path,
            datetime_format="%Y-%m-%dT%H:%M:%SZ",
            date_format="%Y-%m-%d",
            float_precision=6 if table == "fx_rates" else 2,
        )
        paths[table] = path
    return paths
