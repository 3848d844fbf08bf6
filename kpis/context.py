"""Prepared canonical tables and the roll-up machinery every KPI shares.

The engine builds one :class:`KpiContext` per run. It turns the raw canonical tables into narrow,
typed frames once (local dates, periods, converted money, the team tree) and offers two ways to
aggregate a record-level frame to every subject:

* :meth:`KpiContext.rollup_sum` for additive measures: pre-aggregated per owner and period, then
  summed through the rep -> team membership (cheap: the membership join sees one row per owner
  and period, not one per record);
* :meth:`KpiContext.rollup` for anything else (distinct counts, medians): the record-level frame is
  joined to the membership, so a team sees each record once however deep it sits.

Everything is columnar (polars); no Python loop touches a record. The only Python loop walks the
team tree, which has at most a few thousand nodes.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property

import polars as pl

from kpis.registry import ALL_SCOPES, Scope
from kpis.settings import KpiSettings, PeriodType
from kpis.tables import CanonicalTables

KEYS = ("scope", "subject_id", "period_start")
_TRUNCATE = {PeriodType.MONTH: "1mo", PeriodType.QUARTER: "1q", PeriodType.YEAR: "1y"}
_LENGTH = {PeriodType.MONTH: "1mo", PeriodType.QUARTER: "3mo", PeriodType.YEAR: "1y"}


def shared(build: Callable[[KpiContext], pl.DataFrame]) -> Callable[[KpiContext], pl.DataFrame]:
    """Mark an intermediate that several KPIs use: built once per run, then reused."""

    @functools.wraps(build)
    def cached(ctx: KpiContext) -> pl.DataFrame:
        return ctx.memo(f"{build.__module__}.{build.__qualname__}", lambda: build(ctx))

    return cached


class TeamTreeError(ValueError):
    """The team hierarchy is not a tree (a cycle through ``parent_id``)."""


def team_ancestors(teams: pl.DataFrame) -> dict[str, list[str]]:
    """Each team's chain of teams from itself up to the root (a cycle is an error)."""
    parent = {
        str(row_id): (str(p) if p is not None else None)
        for row_id, p in zip(teams["id"].to_list(), teams["parent_id"].to_list(), strict=True)
    }
    chains: dict[str, list[str]] = {}
    for team in parent:
        chain: list[str] = []
        seen: set[str] = set()
        node: str | None = team
        while node is not None and node in parent:
            if node in seen:
                raise TeamTreeError(f"teams.csv: parent_id forms a cycle through team {node!r}")
            seen.add(node)
            chain.append(node)
            node = parent[node]
        chains[team] = chain
    return chains


def key(column: str) -> pl.Expr:
    """A record id as a 64-bit hash, for joins and distinct counts (null stays null).

    Ids are only compared, never shown, so a hash is enough; hashing 5M ids costs ~20 ms against
    seconds for joining and grouping on the strings. Two ids share a hash with a probability of
    about n^2 / 2^65 (1e-8 for a million ids).
    """
    return pl.when(pl.col(column).is_not_null()).then(pl.col(column).hash()).alias(column)


def ratio(num: pl.Expr, den: pl.Expr, scale: float = 1.0) -> pl.Expr:
    """``num / den * scale``, undefined (null) when the denominator is zero or missing."""
    return pl.when(den.is_not_null() & (den != 0)).then(num / den * scale).otherwise(None)


class KpiContext:
    """Prepared tables and helpers for one computation (pure: frames in, frames out).

    Ids are expected unique within a table, as :mod:`kpis.validate` and the store guarantee.
    """

    def __init__(self, tables: CanonicalTables, settings: KpiSettings) -> None:
        self.tables = tables
        self.settings = settings
        self.period_type = settings.period
        self._results: dict[str, pl.DataFrame] = {}
        self._memo: dict[str, pl.DataFrame] = {}

    # -- periods -------------------------------------------------------------------------------

    def period_of(self, date: pl.Expr) -> pl.Expr:
        """The start of the period that holds ``date`` (a Date expression)."""
        return date.dt.truncate(_TRUNCATE[self.period_type])

    def period_end(self, start: pl.Expr) -> pl.Expr:
        return start.dt.offset_by(_LENGTH[self.period_type])

    def previous_period(self, start: pl.Expr) -> pl.Expr:
        return start.dt.offset_by("-" + _LENGTH[self.period_type])

    def local_date(self, column: str) -> pl.Expr:
        """A UTC timestamp column as a date in the org's time zone."""
        return pl.col(column).dt.convert_time_zone(self.settings.timezone).dt.date()

    @cached_property
    def periods(self) -> list[dt.date]:
        """Every period from the earliest to the latest that holds a placed record."""
        t = self.tables
        closed = t["opportunities"].filter(pl.col("is_closed").fill_null(False))

        # Local dates are monotonic in the timestamp, so the extremes of the raw columns suffice.
        def extremes(frame: pl.DataFrame, day: pl.Expr) -> pl.DataFrame:
            return frame.select(day.min().alias("lo"), day.max().alias("hi"))

        bounds = [
            extremes(t["opportunities"], self.local_date("created_at")),
            extremes(closed, pl.col("close_date")),
            extremes(t["leads"], self.local_date("created_at")),
            extremes(t["activities"], self.local_date("occurred_at")),
            extremes(t["quotas"], pl.col("period_start")),
            extremes(t["quotas"], pl.col("period_end").dt.offset_by("-1d")),
        ]
        dates = [d for frame in bounds for d in frame.row(0) if d is not None]
        if not dates:
            return []
        first = pl.select(self.period_of(pl.lit(min(dates)))).item()
        last = pl.select(self.period_of(pl.lit(max(dates)))).item()
        months = {PeriodType.MONTH: "1mo", PeriodType.QUARTER: "3mo", PeriodType.YEAR: "12mo"}
        return pl.date_range(first, last, months[self.period_type], eager=True).to_list()

    @cached_property
    def period_frame(self) -> pl.DataFrame:
        """``period_start, period_end, last_day, months`` of every reported period."""
        frame = pl.DataFrame({"period_start": self.periods}, schema={"period_start": pl.Date})
        return frame.with_columns(
            period_end=self.period_end(pl.col("period_start")),
        ).with_columns(
            last_day=pl.col("period_end").dt.offset_by("-1d"),
            months=pl.lit(self.period_type.months, dtype=pl.Int64),
        )

    # -- subjects ------------------------------------------------------------------------------
    #
    # Owners are replaced by small integer codes (``owner_id`` in every prepared frame is a UInt32
    # code; null for owners that are not known reps) and subjects by ``sc`` codes, so the joins and
    # group-bys of the roll-up run on integers instead of 18-character strings.

    @cached_property
    def rep_codes(self) -> pl.DataFrame:
        """``rep_id, owner_id``: each known rep and its integer code."""
        reps = self.tables["reps"].select(pl.col("id").alias("rep_id")).unique().sort("rep_id")
        return reps.with_row_index("owner_id")

    def code_owner(self, frame: pl.DataFrame, column: str = "owner_id") -> pl.DataFrame:
        """Replace the owner id ``column`` by the owner's code (null when not a known rep)."""
        codes = self.rep_codes.rename({"rep_id": column, "owner_id": "__code"})
        coded = frame.join(codes, on=column, how="left", maintain_order="left")
        return coded.drop(column).rename({"__code": column})

    @cached_property
    def ancestors(self) -> dict[str, list[str]]:
        return team_ancestors(self.tables["teams"])

    @cached_property
    def team_ancestor_frame(self) -> pl.DataFrame:
        """``team_id, ancestor_id``: each team paired with itself and every team above it."""
        pairs = [(team, anc) for team, chain in self.ancestors.items() for anc in chain]
        return pl.DataFrame(
            {"team_id": [p[0] for p in pairs], "ancestor_id": [p[1] for p in pairs]},
            schema={"team_id": pl.String, "ancestor_id": pl.String},
        )

    @cached_property
    def subjects(self) -> pl.DataFrame:
        """Every subject: ``sc`` (its code), ``scope, subject_id``; reps first, the org last."""
        teams = self.tables["teams"]["id"].unique().sort()
        frame = pl.concat(
            [
                pl.DataFrame({"scope": Scope.REP.value, "subject_id": self.rep_codes["rep_id"]}),
                pl.DataFrame({"scope": Scope.TEAM.value, "subject_id": teams}),
                pl.DataFrame({"scope": [Scope.ORG.value], "subject_id": ["org"]}),
            ]
        )
        return frame.with_row_index("sc")

    @cached_property
    def org_code(self) -> int:
        return self.subjects.height - 1

    @cached_property
    def membership(self) -> pl.DataFrame:
        """``owner_id, sc, scope``: a rep belongs to itself and to every enclosing team."""
        reps = self.tables["reps"].select(pl.col("id").alias("rep_id"), "team_id").unique("rep_id")
        reps = reps.join(self.rep_codes, on="rep_id")
        rep_rows = reps.join(
            self.subjects.filter(pl.col("scope") == Scope.REP.value),
            left_on="rep_id",
            right_on="subject_id",
        ).select("owner_id", "sc", "scope")
        team_rows = (
            reps.join(self.team_ancestor_frame, on="team_id")
            .join(
                self.subjects.filter(pl.col("scope") == Scope.TEAM.value),
                left_on="ancestor_id",
                right_on="subject_id",
            )
            .select("owner_id", "sc", "scope")
        )
        return pl.concat([rep_rows, team_rows])

    def grid(self, scopes: Sequence[Scope] = ALL_SCOPES) -> pl.DataFrame:
        """Every subject of ``scopes`` crossed with every period: the rows a KPI reports."""
        wanted = [s.value for s in scopes]
        subjects = self.subjects.filter(pl.col("scope").is_in(wanted)).drop("sc")
        return subjects.join(self.period_frame.select("period_start"), how="cross")

    def rollup(
        self,
        frame: pl.DataFrame,
        aggs: Iterable[pl.Expr],
        keys: Sequence[str] = ("period_start",),
        scopes: Sequence[Scope] = ALL_SCOPES,
    ) -> pl.DataFrame:
        """Aggregate a record-level ``frame`` (with ``owner_id``) to every subject of ``scopes``.

        Rep and team rows go through the membership (a team sees each record once); the org row
        aggregates every record, including those whose owner is not a known rep.
        """
        aggs = list(aggs)
        parts: list[pl.DataFrame] = []
        member_scopes = [s.value for s in scopes if s is not Scope.ORG]
        if member_scopes:
            members = self.membership.filter(pl.col("scope").is_in(member_scopes)).drop("scope")
            parts.append(
                frame.lazy()
                .join(members.lazy(), on="owner_id")
                .group_by(["sc", *keys])
                .agg(aggs)
                .collect()
            )
        if Scope.ORG in scopes:
            org = frame.lazy().group_by(list(keys)).agg(aggs).collect()
            parts.append(
                org.with_columns(sc=pl.lit(self.org_code, dtype=pl.UInt32)).select(
                    ["sc", *org.columns]
                )
            )
        rolled = pl.concat(parts, how="vertical_relaxed")
        return rolled.join(self.subjects, on="sc").select(
            "scope", "subject_id", *[c for c in rolled.columns if c != "sc"]
        )

    def rollup_sum(
        self,
        frame: pl.DataFrame,
        measures: dict[str, pl.Expr],
        keys: Sequence[str] = ("period_start",),
        scopes: Sequence[Scope] = ALL_SCOPES,
    ) -> pl.DataFrame:
        """Sum additive ``measures`` (name -> record-level expression) to every subject."""
        # The lazy engine runs conditional aggregations over millions of rows ~2x faster.
        per_owner = (
            frame.lazy()
            .group_by(["owner_id", *keys])
            .agg([expr.alias(name) for name, expr in measures.items()])
            .collect()
        )
        return self.rollup(per_owner, [pl.col(name).sum() for name in measures], keys, scopes)

    def memo(self, name: str, build: Callable[[], pl.DataFrame]) -> pl.DataFrame:
        """An intermediate several KPIs share, built once per run."""
        if name not in self._memo:
            self._memo[name] = build()
        return self._memo[name]

    # -- memoised results of other KPIs (for KPIs built on KPIs) -------------------------------

    def result(self, key: str) -> pl.DataFrame:
        """The computed rows of another KPI, filled to its grid (computed once per run)."""
        if key not in self._results:
            from kpis.engine import compute_one

            self._results[key] = compute_one(self, key)
        return self._results[key]

    # -- money ---------------------------------------------------------------------------------

    @cached_property
    def fx(self) -> pl.DataFrame:
        rates = self.tables["fx_rates"].select("currency", "start_date", "rate").drop_nulls()
        return rates.sort("currency", "start_date")

    def convert(
        self, frame: pl.DataFrame, amounts: dict[str, str], currency: str, on: str
    ) -> pl.DataFrame:
        """Add converted money columns (``new name -> source column``) at the rate on ``on``.

        The rate is the ``fx_rates`` row of the record's currency in force on that date (the
        earliest row for dates before the first); the corporate currency and an empty currency
        convert at 1; a currency without rates converts to null: never summed at face value.
        """
        corporate = self.settings.corporate_currency
        keyed = frame.with_columns(
            _cur=pl.col(currency).fill_null(corporate),
            _on=pl.col(on),
        )
        fx = self.fx.rename({"currency": "_cur", "start_date": "_on"})
        earliest = fx.group_by("_cur").agg(pl.col("rate").sort_by("_on").first().alias("_first"))
        dated = keyed.filter(pl.col("_on").is_not_null()).sort("_on")
        joined = dated.join_asof(
            fx, on="_on", by="_cur", strategy="backward", check_sortedness=False
        )
        undated = keyed.filter(pl.col("_on").is_null()).with_columns(
            rate=pl.lit(None, dtype=pl.Float64)
        )
        both = pl.concat([joined, undated], how="diagonal_relaxed").join(
            earliest, on="_cur", how="left"
        )
        rate = (
            pl.when(pl.col("_cur") == corporate)
            .then(pl.lit(1.0))
            .otherwise(pl.col("rate").fill_null(pl.col("_first")))
        )
        converted = both.with_columns(_rate=rate).with_columns(
            [(pl.col(src) / pl.col("_rate")).alias(dst) for dst, src in amounts.items()]
        )
        # Row order is not kept: every KPI aggregates, and re-sorting a million rows costs more.
        return converted.drop("_cur", "_on", "rate", "_first", "_rate")

    # -- prepared tables -----------------------------------------------------------------------

    @cached_property
    def opportunities(self) -> pl.DataFrame:
        """Opportunities with local dates, periods and money in the corporate currency."""
        opps = self.tables["opportunities"].with_columns(
            created_date=self.local_date("created_at"),
            amount=pl.col("amount").fill_null(0.0),
        )
        # An open opportunity has no rate date of its own yet; its expected close date serves.
        opps = opps.with_columns(_fx_date=pl.col("close_date").fill_null(pl.col("created_date")))
        opps = self.convert(
            opps,
            {
                "amount_c": "amount",
                "cost_c": "cost",
                "recurring_c": "recurring_monthly_amount",
                "competitor_price_c": "competitor_price",
            },
            currency="currency",
            on="_fx_date",
        )
        opps = opps.select(
            "id",
            key("id").alias("oid"),
            "owner_id",
            key("account_id"),
            key("lead_id"),
            "created_date",
            "close_date",
            pl.col("is_closed").fill_null(False),
            pl.col("is_won").fill_null(False) & pl.col("is_closed").fill_null(False),
            "amount_c",
            "cost_c",
            "recurring_c",
            "competitor_price_c",
            "type",
            "competitor",
            "contract_start",
            "contract_end",
            p_close=self.period_of(pl.col("close_date")),
            p_created=self.period_of(pl.col("created_date")),
        )
        return self.code_owner(opps)

    @cached_property
    def won(self) -> pl.DataFrame:
        return self.opportunities.filter(pl.col("is_won") & pl.col("amount_c").is_not_null())

    @cached_property
    def closed(self) -> pl.DataFrame:
        return self.opportunities.filter(pl.col("is_closed"))

    @cached_property
    def leads(self) -> pl.DataFrame:
        """Leads with local dates, their end (disqualified, else converted) and conversion win."""
        won_ids = self.opportunities.filter(pl.col("is_won")).select(
            pl.col("oid").alias("converted_opportunity_id"), pl.lit(True).alias("converted_won")
        )
        leads = self.tables["leads"].select(
            key("id").alias("lid"),
            "owner_id",
            "created_at",
            "qualified_at",
            "converted_at",
            "disqualified_at",
            "score",
            key("converted_opportunity_id"),
        )
        leads = leads.join(won_ids, on="converted_opportunity_id", how="left")
        end_ts = pl.coalesce(pl.col("disqualified_at"), pl.col("converted_at"))
        leads = leads.with_columns(
            converted_won=pl.col("converted_won").fill_null(False),
            created_date=self.local_date("created_at"),
            qualified_date=self.local_date("qualified_at"),
            end_at=end_ts,
        ).with_columns(end_date=self.local_date("end_at"))
        leads = leads.with_columns(
            p_created=self.period_of(pl.col("created_date")),
            p_qualified=self.period_of(pl.col("qualified_date")),
            p_end=self.period_of(pl.col("end_date")),
        )
        return self.code_owner(leads)

    @cached_property
    def activities(self) -> pl.DataFrame:
        acts = self.tables["activities"].select(
            "owner_id",
            "kind",
            "direction",
            "outcome",
            "occurred_at",
            "duration_minutes",
            key("lead_id"),
            key("account_id"),
            date=self.local_date("occurred_at"),
        )
        return self.code_owner(acts.with_columns(period_start=self.period_of(pl.col("date"))))

    @cached_property
    def quota_months(self) -> pl.DataFrame:
        """Quotas split into calendar months: ``owner_id, month, amount_c, quota_row``.

        A row spanning several months is split by the seasonality weights and the planned growth;
        a partly covered month gets a share in proportion to its covered days.
        """
        quotas = self.tables["quotas"].with_columns(
            quota_row=pl.int_range(pl.len(), dtype=pl.Int64)
        )
        quotas = self.convert(quotas, {"amount_c": "amount"}, "currency", on="period_start")
        quotas = quotas.filter(pl.col("period_end") > pl.col("period_start"))
        first = pl.col("period_start").dt.truncate("1mo")
        n_months = (
            (pl.col("period_end").dt.offset_by("-1d").dt.year() - first.dt.year()) * 12
            + pl.col("period_end").dt.offset_by("-1d").dt.month()
            - first.dt.month()
            + 1
        )
        months = quotas.with_columns(
            idx=pl.int_ranges(0, n_months, dtype=pl.Int64), first=first
        ).explode("idx")
        month = pl.col("first").dt.offset_by(pl.format("{}mo", pl.col("idx")))
        months = months.with_columns(month=month).with_columns(
            month_end=pl.col("month").dt.offset_by("1mo")
        )
        cover_start = pl.max_horizontal(pl.col("month"), pl.col("period_start"))
        cover_end = pl.min_horizontal(pl.col("month_end"), pl.col("period_end"))
        covered = (cover_end - cover_start).dt.total_days()
        days = (pl.col("month_end") - pl.col("month")).dt.total_days()
        weights = {month: w for month, w in enumerate(self.settings.seasonality, start=1)}
        growth = 1.0 + self.settings.monthly_growth_pct / 100.0
        weight = pl.col("month").dt.month().replace_strict(weights, return_dtype=pl.Float64)
        months = months.with_columns(
            _w=weight * pl.lit(growth).pow(pl.col("idx")) * covered / days
        ).with_columns(_wsum=pl.col("_w").sum().over("quota_row"))
        share = ratio(pl.col("_w"), pl.col("_wsum"))
        months = months.select(
            "owner_id", "month", (pl.col("amount_c") * share).alias("amount_c"), "quota_row"
        )
        return self.code_owner(months)

    @cached_property
    def quota_by_rep(self) -> pl.DataFrame:
        """``owner_id, period_start, quota, quota_rows`` per rep and period."""
        return (
            self.quota_months.with_columns(period_start=self.period_of(pl.col("month")))
            .group_by("owner_id", "period_start")
            .agg(
                pl.col("amount_c").sum().alias("quota"),
                pl.col("quota_row").n_unique().alias("quota_rows"),
            )
        )

    @cached_property
    def revenue_by_rep(self) -> pl.DataFrame:
        """``owner_id, period_start, revenue, won`` per owner and period."""
        return self.won.group_by("owner_id", pl.col("p_close").alias("period_start")).agg(
            pl.col("amount_c").sum().alias("revenue"), pl.len().alias("won")
        )

    @cached_property
    def rep_targets(self) -> pl.DataFrame:
        """Reps with a quota above 0, per period, with their revenue: the base of the targets."""
        reps = self.quota_by_rep.filter((pl.col("quota") > 0) & pl.col("owner_id").is_not_null())
        return reps.join(
            self.revenue_by_rep, on=["owner_id", "period_start"], how="left"
        ).with_columns(revenue=pl.col("revenue").fill_null(0.0), won=pl.col("won").fill_null(0))

    @cached_property
    def costs_by_period(self) -> pl.DataFrame:
        """Sales and marketing cost per ``team_id`` (null = org-wide) and reported period.

        A cost row is prorated by the days it shares with each period.
        """
        periods = self.period_frame.select("period_start", "period_end")
        costs = self.tables["costs"].with_columns(cost_row=pl.int_range(pl.len(), dtype=pl.Int64))
        costs = costs.filter(pl.col("period_end") > pl.col("period_start"))
        pairs = costs.rename({"period_start": "c_start", "period_end": "c_end"}).join(
            periods, how="cross"
        )
        overlap = (
            pl.min_horizontal("c_end", "period_end") - pl.max_horizontal("c_start", "period_start")
        ).dt.total_days()
        span = (pl.col("c_end") - pl.col("c_start")).dt.total_days()
        return (
            pairs.with_columns(_days=overlap)
            .filter(pl.col("_days") > 0)
            .select(
                "team_id",
                "period_start",
                "cost_row",
                (pl.col("amount") * pl.col("_days") / span).alias("cost"),
            )
        )

    @cached_property
    def cost_by_subject(self) -> pl.DataFrame:
        """``scope, subject_id, period_start, cost, cost_rows`` for teams and the org."""
        costs = self.costs_by_period
        aggs = [pl.col("cost").sum(), pl.col("cost_row").n_unique().alias("cost_rows")]
        teams = (
            costs.join(self.team_ancestor_frame, on="team_id")
            .group_by(pl.col("ancestor_id").alias("subject_id"), "period_start")
            .agg(aggs)
            .with_columns(scope=pl.lit(Scope.TEAM.value))
        )
        org = (
            costs.group_by("period_start")
            .agg(aggs)
            .with_columns(scope=pl.lit(Scope.ORG.value), subject_id=pl.lit("org"))
        )
        cols = ["scope", "subject_id", "period_start", "cost", "cost_rows"]
        return pl.concat([teams.select(cols), org.select(cols)])

    # -- customers -----------------------------------------------------------------------------

    @cached_property
    def customer_spans(self) -> pl.DataFrame:
        """``account_id, active_from, active_until`` (exclusive, null = open-ended).

        A won deal's contract makes its account a customer over the contract; an account with no
        contract whose status is ``customer`` is one from its first won deal on.
        """
        won = self.opportunities.filter(pl.col("is_won") & pl.col("account_id").is_not_null())
        contracts = won.filter(pl.col("contract_start").is_not_null()).select(
            "account_id",
            pl.max_horizontal("contract_start", "close_date").alias("active_from"),
            pl.col("contract_end").alias("active_until"),
        )
        with_contract = contracts.select("account_id").unique()
        status_customers = self.accounts.filter(pl.col("customer_status") == "customer").select(
            "account_id"
        )
        by_status = (
            won.join(status_customers, on="account_id")
            .join(with_contract, on="account_id", how="anti")
            .group_by("account_id")
            .agg(pl.col("close_date").min().alias("active_from"))
            .with_columns(active_until=pl.lit(None, dtype=pl.Date))
        )
        spans = pl.concat([contracts, by_status.select(contracts.columns)])
        return spans.filter(
            pl.col("active_until").is_null() | (pl.col("active_until") > pl.col("active_from"))
        )

    def covering_periods(
        self, frame: pl.DataFrame, start: str, until: str, day_column: str
    ) -> pl.DataFrame:
        """``frame`` repeated once per period whose ``day_column`` lies in ``[start, until)``.

        ``until`` null means open-ended. Uses a sorted search over the (few) period days, so the
        cost is linear in the rows plus the periods they cover.
        """
        days = self.period_frame[day_column]
        lo = days.search_sorted(frame[start], side="left")
        open_ended = frame.select(pl.col(until).fill_null(dt.date(9999, 12, 31)))[until]
        hi = days.search_sorted(open_ended, side="left")
        covered = frame.with_columns(_lo=lo, _hi=hi).filter(pl.col("_hi") > pl.col("_lo"))
        exploded = covered.with_columns(_i=pl.int_ranges("_lo", "_hi", dtype=pl.Int64)).explode(
            "_i"
        )
        starts = self.period_frame.select(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("_i"), "period_start"
        )
        return exploded.join(starts, on="_i").drop("_lo", "_hi", "_i")

    def covering_counts(
        self, frame: pl.DataFrame, start: str, until: str, day_column: str
    ) -> pl.DataFrame:
        """``owner_id, period_start, n``: how many rows of ``frame`` cover each period's day.

        Same rule as :meth:`covering_periods`, counted with a difference array (+1 where a row's
        span begins, -1 where it ends, a running sum over the periods) so long spans cost nothing.
        """
        days = self.period_frame[day_column]
        n_periods = days.len()
        lo = days.search_sorted(frame[start], side="left").cast(pl.Int64)
        open_ended = frame.select(pl.col(until).fill_null(dt.date(9999, 12, 31)))[until]
        hi = days.search_sorted(open_ended, side="left").cast(pl.Int64)
        spans = frame.select("owner_id").with_columns(_lo=lo, _hi=hi)
        spans = spans.filter(pl.col("_hi") > pl.col("_lo"))
        events = pl.concat(
            [
                spans.select("owner_id", pl.col("_lo").alias("_i"), pl.lit(1).alias("_d")),
                spans.filter(pl.col("_hi") < n_periods).select(
                    "owner_id", pl.col("_hi").alias("_i"), pl.lit(-1).alias("_d")
                ),
            ]
        )
        deltas = events.group_by("owner_id", "_i").agg(pl.col("_d").sum())
        owners = deltas.select("owner_id").unique()
        index = pl.DataFrame({"_i": pl.int_range(n_periods, dtype=pl.Int64, eager=True)})
        grid = owners.join(index, how="cross").join(deltas, on=["owner_id", "_i"], how="left")
        counts = grid.sort("owner_id", "_i", nulls_last=True).with_columns(
            n=pl.col("_d").fill_null(0).cum_sum().over("owner_id")
        )
        starts = self.period_frame.select(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("_i"), "period_start"
        )
        return (
            counts.filter(pl.col("n") > 0)
            .join(starts, on="_i")
            .select("owner_id", "period_start", "n")
        )

    def rollup_distinct(
        self, frame: pl.DataFrame, item: str, keys: Sequence[str] = ("period_start",)
    ) -> pl.DataFrame:
        """``scope, subject_id, *keys, distinct``: distinct ``item`` values per subject.

        An item handled by a single owner counts once for each subject holding that owner (an
        additive sum); only items shared by several owners are de-duplicated through the
        membership, which keeps the join small.
        """
        pairs = (
            frame.lazy()
            .filter(pl.col(item).is_not_null())
            .select("owner_id", item, *keys)
            .unique()
            .collect()
        )
        owners = pairs.group_by(item, *keys).agg(pl.len().alias("_owners"))
        single = self.rollup_sum(
            owners.filter(pl.col("_owners") == 1).join(pairs, on=[item, *keys]),
            {"distinct": pl.len()},
            keys,
            [Scope.REP, Scope.TEAM],
        )
        members = self.membership.drop("scope")
        shared_items = (
            pairs.join(owners.filter(pl.col("_owners") > 1), on=[item, *keys], how="semi")
            .join(members, on="owner_id")
            .select("sc", item, *keys)
            .unique()
            .group_by("sc", *keys)
            .agg(pl.len().alias("distinct"))
            .join(self.subjects, on="sc")
            .select("scope", "subject_id", *keys, "distinct")
        )
        org = (
            owners.group_by(list(keys))
            .agg(pl.len().alias("distinct"))
            .with_columns(scope=pl.lit(Scope.ORG.value), subject_id=pl.lit("org"))
        )
        both = pl.concat([single, shared_items], how="vertical_relaxed")
        both = both.group_by("scope", "subject_id", *keys).agg(pl.col("distinct").sum())
        return pl.concat([both, org.select(both.columns)], how="vertical_relaxed")

    @cached_property
    def customer_periods(self) -> pl.DataFrame:
        """``account_id, period_start, at_start, at_end, owner_id``: is each account a customer
        on the period's first day, on its last day (one row per account and period it is either)."""
        spans = self.customer_spans
        starts = self.period_frame["period_start"]
        ends = self.period_frame["last_day"]
        until = spans.select(pl.col("active_until").fill_null(dt.date(9999, 12, 31)))[
            "active_until"
        ]
        # Index ranges [lo, hi) of the periods whose first / last day the span covers.
        bounds = spans.select("account_id").with_columns(
            s_lo=starts.search_sorted(spans["active_from"], side="left").cast(pl.Int64),
            s_hi=starts.search_sorted(until, side="left").cast(pl.Int64),
            e_lo=ends.search_sorted(spans["active_from"], side="left").cast(pl.Int64),
            e_hi=ends.search_sorted(until, side="left").cast(pl.Int64),
        )
        lo = pl.min_horizontal("s_lo", "e_lo")
        hi = pl.max_horizontal("s_hi", "e_hi")
        index = self.period_frame.select(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("_i"), "period_start"
        )
        flags = (
            bounds.lazy()
            .filter(hi > lo)
            .with_columns(_i=pl.int_ranges(lo, hi, dtype=pl.Int64))
            .explode("_i")
            .group_by("account_id", "_i")
            .agg(
                at_start=((pl.col("_i") >= pl.col("s_lo")) & (pl.col("_i") < pl.col("s_hi"))).any(),
                at_end=((pl.col("_i") >= pl.col("e_lo")) & (pl.col("_i") < pl.col("e_hi"))).any(),
            )
            .join(index.lazy(), on="_i")
            .drop("_i")
            .collect()
        )
        return flags.join(self.account_owner, on="account_id", how="left")

    @cached_property
    def active_at_start(self) -> pl.DataFrame:
        return self.customer_periods.filter(pl.col("at_start")).select("account_id", "period_start")

    @cached_property
    def active_at_end(self) -> pl.DataFrame:
        return self.customer_periods.filter(pl.col("at_end")).select("account_id", "period_start")

    @cached_property
    def accounts(self) -> pl.DataFrame:
        """Accounts keyed like the other tables: ``account_id`` (hashed), coded ``owner_id``."""
        accounts = self.tables["accounts"]
        extra = ["csat"] if "csat" in accounts.columns else []
        coded = accounts.select(
            key("id").alias("account_id"), "owner_id", "customer_status", *extra
        )
        return self.code_owner(coded)

    @cached_property
    def account_owner(self) -> pl.DataFrame:
        return self.accounts.select("account_id", "owner_id")
