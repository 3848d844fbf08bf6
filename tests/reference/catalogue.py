"""Reference KPI catalogue in plain Python (stdlib only): loops, dicts and sets.

Written from the per-metric specification and the shared rules (periods, subjects, money,
customers, quota split) alone, independently of the polars engine in ``kpis/``, so the two can
be compared row by row. Clarity over speed: every metric is computed per subject over that
subject's own records, bucketed by period.

Choices where the written rules leave room are marked ``CHOICE:`` below and listed in
``AMBIGUITIES`` (the engine has to agree with them for the agreement test to pass).
"""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

AMBIGUITIES: tuple[str, ...] = (
    # 1
    "span: quota rows place a record in every period they overlap (at their period_start and at "
    "their last day, period_end - 1); closed opportunities place by close_date, open ones never "
    "do (past or future); qualified/converted/disqualified timestamps, contracts and cost rows "
    "do not stretch the span",
    # 2
    "quota split: weight(month) = seasonality[month] * (1 + g/100)**k * covered_days / "
    "days_in_month, k = months since the row's first covered month; the row's amount is spread "
    "over its months in proportion to those weights (the whole amount is always distributed)",
    # 3
    "quota records: the quota rows that overlap P by at least one day",
    # 4
    "quota (the metric) at org sums every quota row, unknown owners included; quota_attainment, "
    "monthly_sales_progress, pct_reps_hitting_quota and pipeline_coverage use known reps only",
    # 5
    "empty ratios: a ratio computed from no records (records == 0) whose denominator is 0 or "
    "null has value, numerator AND denominator empty ('all others null'); with records > 0 a "
    "zero denominator is still reported (0 / 0, value null). Exempt: clv and pipeline_velocity, "
    "whose numerator/denominator are other KPIs' values, reported whenever defined. So "
    "quota_attainment / monthly_sales_progress / pipeline_coverage of a rep (or team) without "
    "any quota: all empty, records 0",
    # 6
    "monthly_sales_progress / monthly_sales_expected for periods with period_start > as_of: "
    "value, numerator and denominator empty, records 0; progress counts won opportunities with "
    "period_start <= close_date < to_date_end of the reps with quota > 0",
    # 7
    "pipeline_coverage with den <= 0 (quota met): value empty, numerator and denominator still "
    "reported (den may be negative)",
    # 8
    "pipeline_velocity: numerator empty when win_rate or avg_deal_size is undefined, "
    "denominator empty when avg_sales_cycle_days is undefined",
    # 9
    "speed_to_lead_minutes: the median of an even count is the mean of the two middle values",
    # 10
    "new_customers: credited at every scope (rep and team) to the owner of the account's first "
    "won opportunity, not to the account owner; org counts every account id",
    # 11
    "customers: an account 'has a contract' when one of its WON opportunities has a "
    "contract_start; accounts referenced by opportunities but absent from accounts.csv have no "
    "owner and count at org scope only (churn, retention, engagement, customer_satisfaction)",
    # 12
    "money: competitor_price and cost convert with the opportunity's currency at its close_date "
    "rate, open opportunities at their (possibly future) close_date rate; costs.csv amounts are "
    "in the corporate currency; fx rows of the corporate currency itself are ignored (rate 1)",
)

_MONEY = "__CUR__"  # placeholder unit replaced by the currency code


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _read(csv_dir: Path, table: str) -> tuple[list[dict[str, str | None]], list[str]]:
    path = csv_dir / f"{table}.csv"
    if not path.exists():
        return [], []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = [{k: (v if v != "" else None) for k, v in row.items()} for row in reader]
        return rows, list(reader.fieldnames or [])


def _ts(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _d(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


def _f(text: str | None) -> float | None:
    return None if text is None else float(text)


def _b(text: str | None) -> bool:
    return text is not None and text.strip().lower() == "true"


# --------------------------------------------------------------------------------------------
# Periods
# --------------------------------------------------------------------------------------------


def _period_start(d: date, period: str) -> date:
    if period == "month":
        return date(d.year, d.month, 1)
    if period == "quarter":
        return date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)
    if period == "year":
        return date(d.year, 1, 1)
    raise ValueError(f"unknown period {period!r}")


def _months_in(period: str) -> int:
    return {"month": 1, "quarter": 3, "year": 12}[period]


def _add_months(d: date, n: int) -> date:
    k = d.year * 12 + (d.month - 1) + n
    return date(k // 12, k % 12 + 1, 1)


def _period_end(ps: date, period: str) -> date:
    return _add_months(ps, _months_in(period))


def _prev_period(ps: date, period: str) -> date:
    return _add_months(ps, -_months_in(period))


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@dataclass
class _Opp:
    id: str
    owner: str | None
    account: str | None
    lead: str | None
    created: date  # local date of created_at
    close: date | None
    is_closed: bool
    is_won: bool
    amt: float  # converted, null amount = 0
    type: str | None
    cost: float | None  # converted
    rma: float | None  # converted recurring monthly amount
    contract_start: date | None
    contract_end: date | None
    competitor: str | None
    competitor_price: float | None  # converted


@dataclass
class _Lead:
    id: str
    owner: str | None
    created_ts: datetime
    created: date
    qualified: date | None
    converted_ts: datetime | None
    disqualified_ts: datetime | None
    converted_opp: str | None
    score: float | None
    end_ts: datetime | None = None
    end: date | None = None
    first_activity_minutes: float | None = None
    attempts: int = 0


@dataclass
class _Act:
    id: str
    owner: str | None
    kind: str | None
    direction: str | None
    outcome: str | None
    ts: datetime
    day: date
    duration: float | None
    lead: str | None
    account: str | None


@dataclass
class _Quota:
    owner: str | None
    start: date
    end: date
    month_amounts: dict[date, float]  # month start -> converted share


@dataclass
class _Cost:
    start: date
    end: date
    team: str | None
    amount: float


@dataclass
class _Subject:
    scope: str
    id: str
    owners: set[str] | None  # None = every record (org)
    reps: list[str]  # known reps of the subject
    teams: set[str] | None = None  # team subtree (team scope) for costs; None = all rows
    opps: list[_Opp] = field(default_factory=list)
    leads: list[_Lead] = field(default_factory=list)
    acts: list[_Act] = field(default_factory=list)
    accounts: set[str] = field(default_factory=set)


class _Fx:
    """Rates per currency: units of the currency per one corporate unit, dated."""

    def __init__(self, rows: list[dict[str, str | None]], corporate: str) -> None:
        self.corporate = corporate
        self.rates: dict[str, list[tuple[date, float]]] = defaultdict(list)
        for r in rows:
            cur, start, rate = r["currency"], _d(r["start_date"]), _f(r["rate"])
            if cur is None or start is None or rate is None:
                continue
            self.rates[cur].append((start, rate))
        for lst in self.rates.values():
            lst.sort()

    def known(self, currency: str | None) -> bool:
        return currency is None or currency == self.corporate or currency in self.rates

    def rate(self, currency: str | None, on: date | None) -> float:
        if currency is None or currency == self.corporate:
            return 1.0
        lst = self.rates[currency]
        if on is None:
            return lst[0][1]
        chosen = lst[0][1]
        for start, rate in lst:
            if start <= on:
                chosen = rate
            else:
                break
        return chosen

    def conv(self, amount: float | None, currency: str | None, on: date | None) -> float | None:
        if amount is None:
            return None
        return amount / self.rate(currency, on)


def _split_quota(
    start: date, end: date, amount: float, seasonality: tuple[float, ...], growth_pct: float
) -> dict[date, float]:
    """Spread a quota row over the months it covers (see AMBIGUITIES for the exact rule)."""
    weights: dict[date, float] = {}
    m = date(start.year, start.month, 1)
    k = 0
    while m < end:
        nxt = _add_months(m, 1)
        covered = (min(nxt, end) - max(m, start)).days
        if covered > 0:
            frac = covered / (nxt - m).days
            weights[m] = seasonality[m.month - 1] * (1 + growth_pct / 100) ** k * frac
        m = nxt
        k += 1
    total = sum(weights.values())
    if total == 0:
        return dict.fromkeys(weights, 0.0)
    return {mm: amount * w / total for mm, w in weights.items()}


# --------------------------------------------------------------------------------------------
# Output rows
# --------------------------------------------------------------------------------------------


def _ratio(num: float | None, den: float | None, scale: float = 1.0) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return num / den * scale


class _Out:
    def __init__(self, currency: str) -> None:
        self.currency = currency
        self.rows: list[dict[str, Any]] = []

    def add(
        self,
        metric: str,
        subj: _Subject,
        ps: date,
        pe: date,
        unit: str,
        value: float | None,
        records: int,
        num: float | None = None,
        den: float | None = None,
        dimension: str | None = None,
        derived: bool = False,
    ) -> None:
        unit = unit.replace(_MONEY, self.currency)
        if not derived and records == 0 and (den is None or den == 0):
            # CHOICE: "sum/count metrics are 0 when empty, all others null": a ratio computed
            # from no records at all (and so without a denominator) has no numerator either.
            num = den = None
        self.rows.append(
            {
                "metric": metric,
                "scope": subj.scope,
                "subject_id": subj.id,
                "period_start": ps,
                "period_end": pe,
                "value": None if value is None else float(value),
                "unit": unit,
                "numerator": None if num is None else float(num),
                "denominator": None if den is None else float(den),
                "records": int(records),
                "dimension": dimension,
            }
        )


def _bucket(
    items: Iterable[Any], key: Callable[[Any], date | None], period: str
) -> dict[date, list[Any]]:
    out: dict[date, list[Any]] = defaultdict(list)
    for it in items:
        d = key(it)
        if d is not None:
            out[_period_start(d, period)].append(it)
    return out


# --------------------------------------------------------------------------------------------
# The catalogue
# --------------------------------------------------------------------------------------------


def compute_reference(
    csv_dir: Path,
    *,
    currency: str,
    timezone: str,
    period: str,
    as_of: date,
    over_contact_per_day: int = 4,
    seasonality: tuple[float, ...] = (1.0,) * 12,
    monthly_growth_pct: float = 0.0,
) -> list[dict[str, Any]]:
    """Every KPI row for every subject and period of the span, computed from canonical CSVs."""
    tz = ZoneInfo(timezone)
    cur = _MONEY

    def local(ts: datetime | None) -> date | None:
        return None if ts is None else ts.astimezone(tz).date()

    # ---- read -----------------------------------------------------------------------------
    team_rows, _ = _read(csv_dir, "teams")
    rep_rows, _ = _read(csv_dir, "reps")
    account_rows, account_cols = _read(csv_dir, "accounts")
    lead_rows, _ = _read(csv_dir, "leads")
    opp_rows, _ = _read(csv_dir, "opportunities")
    act_rows, _ = _read(csv_dir, "activities")
    quota_rows, _ = _read(csv_dir, "quotas")
    fx_rows, _ = _read(csv_dir, "fx_rates")
    cost_rows, _ = _read(csv_dir, "costs")
    fx = _Fx(fx_rows, currency)
    has_csat = "csat" in account_cols

    rep_team: dict[str, str | None] = {}
    for row in rep_rows:
        assert row["id"] is not None
        rep_team[row["id"]] = row["team_id"]
    team_parent: dict[str, str | None] = {}
    for row in team_rows:
        assert row["id"] is not None
        team_parent[row["id"]] = row["parent_id"]

    acc_owner: dict[str, str | None] = {}
    acc_status: dict[str, str | None] = {}
    acc_csat: dict[str, float | None] = {}
    for row in account_rows:
        assert row["id"] is not None
        acc_owner[row["id"]] = row["owner_id"]
        acc_status[row["id"]] = row.get("customer_status")
        acc_csat[row["id"]] = _f(row.get("csat"))

    opps: list[_Opp] = []
    for row in opp_rows:
        if not fx.known(row["currency"]):
            continue  # quarantined
        close = _d(row["close_date"])
        opp_created = local(_ts(row["created_at"]))
        assert row["id"] is not None and opp_created is not None
        opps.append(
            _Opp(
                id=row["id"],
                owner=row["owner_id"],
                account=row["account_id"],
                lead=row["lead_id"],
                created=opp_created,
                close=close,
                is_closed=_b(row["is_closed"]),
                is_won=_b(row["is_won"]) and _b(row["is_closed"]),
                amt=fx.conv(_f(row["amount"]), row["currency"], close) or 0.0,
                type=row["type"],
                cost=fx.conv(_f(row["cost"]), row["currency"], close),
                rma=fx.conv(_f(row["recurring_monthly_amount"]), row["currency"], close),
                contract_start=_d(row["contract_start"]),
                contract_end=_d(row["contract_end"]),
                competitor=row["competitor"],
                competitor_price=fx.conv(_f(row["competitor_price"]), row["currency"], close),
            )
        )
    opp_by_id = {o.id: o for o in opps}

    leads: list[_Lead] = []
    for row in lead_rows:
        created_ts = _ts(row["created_at"])
        assert row["id"] is not None and created_ts is not None
        created_d = local(created_ts)
        assert created_d is not None
        lead = _Lead(
            id=row["id"],
            owner=row["owner_id"],
            created_ts=created_ts,
            created=created_d,
            qualified=local(_ts(row["qualified_at"])),
            converted_ts=_ts(row["converted_at"]),
            disqualified_ts=_ts(row["disqualified_at"]),
            converted_opp=row["converted_opportunity_id"],
            score=_f(row["score"]),
        )
        lead.end_ts = lead.disqualified_ts or lead.converted_ts
        lead.end = local(lead.end_ts)
        leads.append(lead)
    lead_by_id = {ld.id: ld for ld in leads}

    acts: list[_Act] = []
    for row in act_rows:
        ts = _ts(row["occurred_at"])
        assert row["id"] is not None and ts is not None
        day = local(ts)
        assert day is not None
        acts.append(
            _Act(
                id=row["id"],
                owner=row["owner_id"],
                kind=row["kind"],
                direction=row["direction"],
                outcome=row["outcome"],
                ts=ts,
                day=day,
                duration=_f(row["duration_minutes"]),
                lead=row["lead_id"],
                account=row["account_id"],
            )
        )

    quotas: list[_Quota] = []
    for row in quota_rows:
        if not fx.known(row["currency"]):
            continue
        qs, qe, amount = _d(row["period_start"]), _d(row["period_end"]), _f(row["amount"])
        assert qs is not None and qe is not None
        converted = fx.conv(amount, row["currency"], qs) or 0.0
        quotas.append(
            _Quota(
                owner=row["owner_id"],
                start=qs,
                end=qe,
                month_amounts=_split_quota(qs, qe, converted, seasonality, monthly_growth_pct),
            )
        )

    costs: list[_Cost] = []
    for row in cost_rows:
        cs, ce = _d(row["period_start"]), _d(row["period_end"])
        assert cs is not None and ce is not None
        costs.append(_Cost(start=cs, end=ce, team=row["team_id"], amount=_f(row["amount"]) or 0.0))

    # ---- per-lead facts (independent of subject) -------------------------------------------
    acts_by_lead: dict[str, list[_Act]] = defaultdict(list)
    for a in acts:
        if a.lead is not None:
            acts_by_lead[a.lead].append(a)
    for lead in leads:
        lacts = acts_by_lead.get(lead.id, [])
        after = [a.ts for a in lacts if a.ts >= lead.created_ts]
        if after:
            lead.first_activity_minutes = (min(after) - lead.created_ts).total_seconds() / 60
        if lead.end_ts is not None:
            end_ts = lead.end_ts
            lead.attempts = sum(1 for a in lacts if a.ts < end_ts)

    # over-contacted lead-days: (lead, local day) -> number of activities
    lead_day_count: dict[tuple[str, date], int] = defaultdict(int)
    for a in acts:
        if a.lead is not None:
            lead_day_count[(a.lead, a.day)] += 1
    hot_lead_days = [
        (lid, day, n) for (lid, day), n in lead_day_count.items() if n > over_contact_per_day
    ]

    # ---- span ------------------------------------------------------------------------------
    placed: list[date] = []
    for o in opps:
        placed.append(o.created)
        if o.is_closed and o.close is not None:
            placed.append(o.close)
    placed.extend(ld.created for ld in leads)
    placed.extend(a.day for a in acts)
    for q in quotas:
        if q.end > q.start:
            placed.append(q.start)
            placed.append(q.end - timedelta(days=1))
    if not placed:
        return []
    first, last = _period_start(min(placed), period), _period_start(max(placed), period)
    periods: list[tuple[date, date]] = []
    ps = first
    while ps <= last:
        pe = _period_end(ps, period)
        periods.append((ps, pe))
        ps = pe

    # ---- subjects --------------------------------------------------------------------------
    children: dict[str, list[str]] = defaultdict(list)
    for t, parent in team_parent.items():
        if parent is not None:
            children[parent].append(t)

    def subtree(t: str) -> set[str]:
        out, stack = set(), [t]
        while stack:
            x = stack.pop()
            if x not in out:
                out.add(x)
                stack.extend(children.get(x, []))
        return out

    subjects: list[_Subject] = []
    for rid in rep_team:
        subjects.append(_Subject("rep", rid, {rid}, [rid]))
    for tid in team_parent:
        tt = subtree(tid)
        reps = [r for r, t in rep_team.items() if t is not None and t in tt]
        subjects.append(_Subject("team", tid, set(reps), reps, teams=tt))
    subjects.append(_Subject("org", "org", None, list(rep_team)))

    def owned(owner: str | None, subj: _Subject) -> bool:
        return subj.owners is None or (owner is not None and owner in subj.owners)

    all_accounts: set[str] = set(acc_owner) | {o.account for o in opps if o.account is not None}
    opps_by_owner: dict[str | None, list[_Opp]] = defaultdict(list)
    leads_by_owner: dict[str | None, list[_Lead]] = defaultdict(list)
    acts_by_owner: dict[str | None, list[_Act]] = defaultdict(list)
    accounts_by_owner: dict[str | None, set[str]] = defaultdict(set)
    for o in opps:
        opps_by_owner[o.owner].append(o)
    for ld in leads:
        leads_by_owner[ld.owner].append(ld)
    for a in acts:
        acts_by_owner[a.owner].append(a)
    for acc in all_accounts:
        accounts_by_owner[acc_owner.get(acc)].add(acc)
    for subj in subjects:
        if subj.owners is None:
            subj.opps, subj.leads, subj.acts = opps, leads, acts
            subj.accounts = set(all_accounts)
            continue
        for owner in subj.owners:
            subj.opps.extend(opps_by_owner.get(owner, []))
            subj.leads.extend(leads_by_owner.get(owner, []))
            subj.acts.extend(acts_by_owner.get(owner, []))
            subj.accounts |= accounts_by_owner.get(owner, set())

    # ---- per-rep revenue and quota (for the quota family) ----------------------------------
    rep_revenue: dict[tuple[str, date], float] = defaultdict(float)
    rep_won: dict[tuple[str, date], list[_Opp]] = defaultdict(list)
    for o in opps:
        if o.is_won and o.close is not None and o.owner is not None:
            key = (o.owner, _period_start(o.close, period))
            rep_revenue[key] += o.amt
            rep_won[key].append(o)

    def quota_in(q: _Quota, ps: date, pe: date) -> tuple[float, bool]:
        amount = sum(v for m, v in q.month_amounts.items() if ps <= m < pe)
        overlaps = max(q.start, ps) < min(q.end, pe)
        return amount, overlaps

    quota_by_owner: dict[str | None, list[_Quota]] = defaultdict(list)
    for q in quotas:
        quota_by_owner[q.owner].append(q)

    rep_quota: dict[tuple[str, date], float] = {}
    rep_quota_rows: dict[tuple[str, date], int] = {}
    for rid in rep_team:
        for ps, pe in periods:
            total, n = 0.0, 0
            for q in quota_by_owner.get(rid, []):
                amount, overlaps = quota_in(q, ps, pe)
                total += amount
                n += overlaps
            rep_quota[(rid, ps)] = total
            rep_quota_rows[(rid, ps)] = n

    # ---- customers: active sets per period, first won deals --------------------------------
    won_by_account: dict[str, list[_Opp]] = defaultdict(list)
    for o in opps:
        if o.is_won and o.account is not None and o.close is not None:
            won_by_account[o.account].append(o)

    def active(acc: str, day: date) -> bool:
        won = won_by_account.get(acc, [])
        contracts = [o for o in won if o.contract_start is not None]
        if contracts:
            for o in contracts:
                assert o.contract_start is not None and o.close is not None
                if (
                    o.close <= day
                    and o.contract_start <= day
                    and (o.contract_end is None or day < o.contract_end)
                ):
                    return True
            return False
        if acc_status.get(acc) == "customer" and won:
            return min(o.close for o in won if o.close is not None) <= day
        return False

    active_start: dict[date, set[str]] = {}
    active_end: dict[date, set[str]] = {}
    for ps, pe in periods:
        last_day = pe - timedelta(days=1)
        active_start[ps] = {a for a in all_accounts if active(a, ps)}
        active_end[ps] = {a for a in all_accounts if active(a, last_day)}

    first_won: dict[str, _Opp] = {}
    for acc, won in won_by_account.items():
        first_won[acc] = min(won, key=lambda o: (o.close, o.id))

    acts_by_account_period: dict[tuple[str, date], int] = defaultdict(int)
    for a in acts:
        if a.account is not None:
            acts_by_account_period[(a.account, _period_start(a.day, period))] += 1

    def cost_of(subj: _Subject, ps: date, pe: date) -> tuple[float, int]:
        total, n = 0.0, 0
        for c in costs:
            if subj.teams is not None and (c.team is None or c.team not in subj.teams):
                continue
            overlap = (min(c.end, pe) - max(c.start, ps)).days
            if overlap <= 0:
                continue
            row_days = (c.end - c.start).days
            total += c.amount * overlap / row_days
            n += 1
        return total, n

    out = _Out(currency)

    # ---- per subject -----------------------------------------------------------------------
    for subj in subjects:
        group = subj.scope != "rep"
        won_p = _bucket((o for o in subj.opps if o.is_won), lambda o: o.close, period)
        closed_p = _bucket((o for o in subj.opps if o.is_closed), lambda o: o.close, period)
        created_p = _bucket(subj.opps, lambda o: o.created, period)
        open_close_p = _bucket((o for o in subj.opps if not o.is_closed), lambda o: o.close, period)
        leads_created_p = _bucket(subj.leads, lambda ld: ld.created, period)
        leads_qualified_p = _bucket(subj.leads, lambda ld: ld.qualified, period)
        leads_end_p = _bucket(subj.leads, lambda ld: ld.end, period)
        acts_p = _bucket(subj.acts, lambda a: a.day, period)

        # over-contacted lead-days of the subject (by lead owner; unknown lead -> org only)
        hot_p: dict[date, list[tuple[str, int]]] = defaultdict(list)
        for lid, day, n in hot_lead_days:
            lead_obj = lead_by_id.get(lid)
            lead_owner = lead_obj.owner if lead_obj is not None else None
            if subj.owners is None or (lead_obj is not None and owned(lead_owner, subj)):
                hot_p[_period_start(day, period)].append((lid, n))

        new_cust_p: dict[date, int] = defaultdict(int)
        for _acc, fo in first_won.items():
            if owned(fo.owner, subj) and fo.close is not None:
                new_cust_p[_period_start(fo.close, period)] += 1

        for ps, pe in periods:
            last_day = pe - timedelta(days=1)
            won = won_p.get(ps, [])
            closed = closed_p.get(ps, [])
            created = created_p.get(ps, [])

            def add(metric: str, unit: str, value: float | None, records: int, **kw: Any) -> None:
                out.add(metric, subj, ps, pe, unit, value, records, **kw)  # noqa: B023

            # ---- results
            revenue = sum(o.amt for o in won)
            n_won = len(won)
            add("revenue", cur, revenue, n_won)
            add("deals_won", "count", n_won, n_won)
            add("avg_deal_size", cur, _ratio(revenue, n_won), n_won, num=revenue, den=n_won)
            avg_deal = _ratio(revenue, n_won)
            add("bookings", cur, revenue, n_won)

            prev = _prev_period(ps, period)
            won_prev = won_p.get(prev, [])
            rev_prev = sum(o.amt for o in won_prev)
            add(
                "revenue_growth_mom",
                "%",
                _ratio(revenue - rev_prev, rev_prev, 100),
                n_won + len(won_prev),
                num=revenue - rev_prev,
                den=rev_prev,
            )

            with_acc = [o for o in won if o.account is not None]
            arpc_num = sum(o.amt for o in with_acc)
            arpc_den = len({o.account for o in with_acc})
            arpc = _ratio(arpc_num, arpc_den)
            add(
                "avg_revenue_per_customer",
                cur,
                arpc,
                len(with_acc),
                num=arpc_num,
                den=arpc_den,
            )

            mrr_opps = [
                o
                for o in subj.opps
                if o.is_won
                and o.rma is not None
                and o.contract_start is not None
                and o.close is not None
                and o.close <= last_day
                and o.contract_start <= last_day
                and (o.contract_end is None or last_day < o.contract_end)
            ]
            add("mrr", cur, sum(o.rma or 0.0 for o in mrr_opps), len(mrr_opps))

            upsell = [o for o in won if o.type == "upsell"]
            add("upsell_cross_sell_revenue", cur, sum(o.amt for o in upsell), len(upsell))

            with_cost = [o for o in won if o.cost is not None]
            pm_num = sum(o.amt - (o.cost or 0.0) for o in with_cost)
            pm_den = sum(o.amt for o in with_cost)
            add(
                "profit_margin",
                "%",
                _ratio(pm_num, pm_den, 100),
                len(with_cost),
                num=pm_num,
                den=pm_den,
            )

            cost, cost_rows_n = cost_of(subj, ps, pe)
            if group:
                add(
                    "roi",
                    "%",
                    _ratio(revenue - cost, cost, 100),
                    n_won + cost_rows_n,
                    num=revenue - cost,
                    den=cost,
                )

            # ---- targets
            if subj.owners is None:
                q_total, q_rows = 0.0, 0
                for q in quotas:
                    amount, overlaps = quota_in(q, ps, pe)
                    q_total += amount
                    q_rows += overlaps
            else:
                q_total = sum(rep_quota[(r, ps)] for r in subj.reps)
                q_rows = sum(rep_quota_rows[(r, ps)] for r in subj.reps)
            add("quota", cur, q_total, q_rows)

            with_quota = [r for r in subj.reps if rep_quota[(r, ps)] > 0]
            qa_num = sum(rep_revenue.get((r, ps), 0.0) for r in with_quota)
            qa_den = sum(rep_quota[(r, ps)] for r in with_quota)
            qa_records = sum(
                len(rep_won.get((r, ps), [])) + rep_quota_rows[(r, ps)] for r in with_quota
            )
            if group or with_quota:
                add(
                    "quota_attainment",
                    "%",
                    _ratio(qa_num, qa_den, 100),
                    qa_records,
                    num=qa_num,
                    den=qa_den,
                )
            else:
                # CHOICE: rep without quota: undefined, no numerator/denominator, records 0.
                add("quota_attainment", "%", None, 0)

            if ps <= as_of:
                to_date_end = min(as_of + timedelta(days=1), pe)
                prog_opps = [
                    o
                    for r in with_quota
                    for o in rep_won.get((r, ps), [])
                    if o.close is not None and o.close < to_date_end
                ]
                prog_num = sum(o.amt for o in prog_opps)
                add(
                    "monthly_sales_progress",
                    "%",
                    _ratio(prog_num, qa_den, 100),
                    len(prog_opps),
                    num=prog_num,
                    den=qa_den,
                )
                exp_num = (to_date_end - ps).days
                exp_den = (pe - ps).days
                add(
                    "monthly_sales_expected",
                    "%",
                    _ratio(exp_num, exp_den, 100),
                    0,
                    num=exp_num,
                    den=exp_den,
                )
            else:
                add("monthly_sales_progress", "%", None, 0)
                add("monthly_sales_expected", "%", None, 0)

            if group:
                hit = sum(
                    1 for r in with_quota if rep_revenue.get((r, ps), 0.0) >= rep_quota[(r, ps)]
                )
                add(
                    "pct_reps_hitting_quota",
                    "%",
                    _ratio(hit, len(with_quota), 100),
                    len(with_quota),
                    num=hit,
                    den=len(with_quota),
                )

            quota_reps = set(with_quota)
            open_cov = [o for o in open_close_p.get(ps, []) if o.owner in quota_reps]
            cov_num = sum(o.amt for o in open_cov)
            cov_den = qa_den - qa_num
            add(
                "pipeline_coverage",
                "x",
                cov_num / cov_den if cov_den > 0 else None,
                len(open_cov),
                num=cov_num,
                den=cov_den,
            )

            # ---- conversion and funnel
            lc = leads_created_p.get(ps, [])
            lq = leads_qualified_p.get(ps, [])
            add("leads_created", "count", len(lc), len(lc))
            add("qualified_leads", "count", len(lq), len(lq))
            conv = sum(1 for ld in lc if ld.converted_ts is not None)
            add(
                "lead_conversion_rate",
                "%",
                _ratio(conv, len(lc), 100),
                len(lc),
                num=conv,
                den=len(lc),
            )

            def converted_won(ld: _Lead) -> bool:
                o = opp_by_id.get(ld.converted_opp) if ld.converted_opp is not None else None
                return o is not None and o.is_won

            l2c = sum(1 for ld in lc if converted_won(ld))
            add(
                "lead_to_customer_rate",
                "%",
                _ratio(l2c, len(lc), 100),
                len(lc),
                num=l2c,
                den=len(lc),
            )
            qlc = sum(1 for ld in lq if converted_won(ld))
            add(
                "qualified_lead_conversion_rate",
                "%",
                _ratio(qlc, len(lq), 100),
                len(lq),
                num=qlc,
                den=len(lq),
            )
            add("opportunities_created", "count", len(created), len(created))
            win_rate = _ratio(n_won, len(closed), 100)
            add("win_rate", "%", win_rate, len(closed), num=n_won, den=len(closed))
            wc = sum(1 for o in created if o.is_won)
            add(
                "win_rate_created",
                "%",
                _ratio(wc, len(created), 100),
                len(created),
                num=wc,
                den=len(created),
            )

            cycle_days = 0
            for o in won:
                src = lead_by_id.get(o.lead) if o.lead is not None else None
                start = src.created if src is not None else o.created
                assert o.close is not None
                cycle_days += (o.close - start).days
            avg_cycle = _ratio(cycle_days, n_won)
            add(
                "avg_sales_cycle_days",
                "days",
                avg_cycle,
                n_won,
                num=cycle_days,
                den=n_won,
            )

            open_at_end = sum(
                1
                for o in subj.opps
                if o.created < pe and (not o.is_closed or (o.close is not None and o.close >= pe))
            )
            pv_num = (
                open_at_end * (win_rate / 100) * avg_deal
                if win_rate is not None and avg_deal is not None
                else None
            )
            add(
                "pipeline_velocity",
                f"{cur}/day",
                _ratio(pv_num, avg_cycle),
                open_at_end,
                num=pv_num,
                den=avg_cycle,
                derived=True,
            )
            add(
                "closed_value_velocity",
                f"{cur}/day",
                _ratio(revenue, avg_cycle),
                n_won,
                num=revenue,
                den=avg_cycle,
            )
            lost = len(closed) - n_won
            add(
                "drop_off_rate",
                "%",
                _ratio(lost, len(closed), 100),
                len(closed),
                num=lost,
                den=len(closed),
            )
            le = leads_end_p.get(ps, [])
            disq = sum(1 for ld in le if ld.disqualified_ts is not None)
            add(
                "lead_drop_off_rate",
                "%",
                _ratio(disq, len(le), 100),
                len(le),
                num=disq,
                den=len(le),
            )

            by_comp: dict[str, list[_Opp]] = defaultdict(list)
            for o in closed:
                if o.competitor is not None:
                    by_comp[o.competitor].append(o)
            for comp, lst in sorted(by_comp.items()):
                cw = sum(1 for o in lst if o.is_won)
                add(
                    "competitor_win_rate",
                    "%",
                    _ratio(cw, len(lst), 100),
                    len(lst),
                    num=cw,
                    den=len(lst),
                    dimension=comp,
                )
                priced = [o for o in lst if o.competitor_price is not None]
                if priced:
                    gap = sum(o.amt - (o.competitor_price or 0.0) for o in priced)
                    add(
                        "competitor_price_gap",
                        cur,
                        gap / len(priced),
                        len(priced),
                        num=gap,
                        den=len(priced),
                        dimension=comp,
                    )

            # ---- activity
            pa = acts_p.get(ps, [])
            calls = [a for a in pa if a.kind == "call" and a.direction != "inbound"]
            emails = [a for a in pa if a.kind == "email" and a.direction != "inbound"]
            meetings = [a for a in pa if a.kind == "meeting"]
            add("calls", "count", len(calls), len(calls))
            add("emails", "count", len(emails), len(emails))
            add("meetings", "count", len(meetings), len(meetings))
            connected = sum(1 for a in calls if a.outcome == "connected")
            add(
                "reach_rate",
                "%",
                _ratio(connected, len(calls), 100),
                len(calls),
                num=connected,
                den=len(calls),
            )

            speeds = [
                ld.first_activity_minutes for ld in lc if ld.first_activity_minutes is not None
            ]
            add(
                "speed_to_lead_minutes",
                "minutes",
                statistics.median(speeds) if speeds else None,
                len(speeds),
            )
            fu_num = sum(ld.attempts for ld in le)
            add(
                "follow_up_attempts",
                "count",
                _ratio(fu_num, len(le)),
                len(le),
                num=fu_num,
                den=len(le),
            )
            hot = hot_p.get(ps, [])
            add(
                "over_contacted_leads",
                "count",
                len({lid for lid, _n in hot}),
                sum(n for _lid, n in hot),
            )
            tpl_num = sum(a.duration or 0.0 for a in pa if a.kind in ("call", "meeting"))
            tpl_den = len({a.lead for a in pa if a.lead is not None})
            tpl_records = sum(1 for a in pa if a.kind in ("call", "meeting") or a.lead is not None)
            add(
                "time_per_lead_minutes",
                "minutes",
                _ratio(tpl_num, tpl_den),
                tpl_records,
                num=tpl_num,
                den=tpl_den,
            )
            active_accs = active_end[ps] & subj.accounts
            eng_num = sum(acts_by_account_period.get((acc, ps), 0) for acc in active_accs)
            eng_den = len(active_accs) * _months_in(period)
            add(
                "engagement",
                "count",
                _ratio(eng_num, eng_den),
                eng_num,
                num=eng_num,
                den=eng_den,
            )

            # ---- customers
            new_c = new_cust_p.get(ps, 0)
            add("new_customers", "count", new_c, new_c)
            s_set = active_start[ps] & subj.accounts
            e_set = active_end[ps] & subj.accounts
            churned = len(s_set - e_set)
            kept = len(s_set & e_set)
            churn = _ratio(churned, len(s_set), 100)
            add("churn_rate", "%", churn, len(s_set), num=churned, den=len(s_set))
            add(
                "retention_rate",
                "%",
                _ratio(kept, len(s_set), 100),
                len(s_set),
                num=kept,
                den=len(s_set),
            )
            churn_frac = None if churn is None else churn / 100
            add(
                "clv",
                cur,
                _ratio(arpc, churn_frac),
                len(with_acc),
                num=arpc,
                den=churn_frac,
                derived=True,
            )
            if group:
                add(
                    "cac",
                    cur,
                    _ratio(cost, new_c),
                    cost_rows_n + new_c,
                    num=cost,
                    den=new_c,
                )
            if has_csat:
                scores = [s for acc in active_accs if (s := acc_csat.get(acc)) is not None]
                add(
                    "customer_satisfaction",
                    "score",
                    _ratio(sum(scores), len(scores)),
                    len(scores),
                    num=sum(scores),
                    den=len(scores),
                )
            lq_any = sum(1 for ld in lc if ld.qualified is not None)
            add(
                "lead_quality",
                "%",
                _ratio(lq_any, len(lc), 100),
                len(lc),
                num=lq_any,
                den=len(lc),
            )
            scored = [ld.score for ld in lc if ld.score is not None]
            add(
                "lead_score_avg",
                "score",
                _ratio(sum(scored), len(scored)),
                len(scored),
                num=sum(scored),
                den=len(scored),
            )

    return out.rows
