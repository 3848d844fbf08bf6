"""The sandbox org generator: contract, integrity, invariants and KPI ingredients."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import polars as pl
import pytest

from sandbox.generator import (
    SIZES,
    CanonicalOrg,
    OrgSpec,
    generate_org,
    salesforce_checksum,
    salesforce_id,
    spec_for,
    with_crm_ids,
    write_canonical_csv,
)

# The columns of CANONICAL.md, in order.
CANONICAL: dict[str, list[str]] = {
    "teams": ["id", "name", "parent_id"],
    "reps": ["id", "name", "email", "team_id", "manager_id", "is_active"],
    "accounts": ["id", "name", "owner_id", "created_at", "customer_status"],
    "leads": [
        "id", "owner_id", "created_at", "source", "status", "qualified_at", "converted_at",
        "converted_account_id", "converted_opportunity_id", "disqualified_at", "score",
    ],
    "opportunities": [
        "id", "owner_id", "account_id", "lead_id", "created_at", "close_date", "stage",
        "is_closed", "is_won", "amount", "currency", "type", "cost", "recurring_monthly_amount",
        "contract_start", "contract_end", "competitor", "competitor_price",
    ],
    "activities": [
        "id", "owner_id", "kind", "direction", "outcome", "occurred_at", "duration_minutes",
        "lead_id", "account_id", "opportunity_id",
    ],
    "quotas": ["owner_id", "period_start", "period_end", "amount", "currency"],
    "fx_rates": ["currency", "start_date", "rate"],
    "costs": ["period_start", "period_end", "team_id", "amount"],
}  # fmt: skip
TIMESTAMPS = {"created_at", "qualified_at", "converted_at", "disqualified_at", "occurred_at"}
DATES = {"close_date", "contract_start", "contract_end", "period_start", "period_end", "start_date"}
BOOLEANS = {"is_active", "is_closed", "is_won"}
NUMBERS = {
    "score", "amount", "cost", "recurring_monthly_amount", "competitor_price", "duration_minutes",
    "rate",
}  # fmt: skip
MONEY = {"amount", "cost", "recurring_monthly_amount", "competitor_price"}


@pytest.fixture(scope="module")
def small() -> CanonicalOrg:
    return generate_org(spec_for("small"))


@pytest.fixture(scope="module")
def medium() -> CanonicalOrg:
    return generate_org(spec_for("medium"))


@pytest.fixture(scope="module", params=["small", "medium"])
def org(request: pytest.FixtureRequest, small: CanonicalOrg, medium: CanonicalOrg) -> CanonicalOrg:
    return small if request.param == "small" else medium


def _ids(org: CanonicalOrg, table: str) -> pl.Series:
    return org.tables[table]["id"]


def _subset(values: pl.Series, universe: pl.Series) -> bool:
    return bool(values.drop_nulls().is_in(universe.implode()).all())


# --- spec ---------------------------------------------------------------------------------


def test_sizes_and_scaling() -> None:
    assert SIZES["small"].n_opportunities == 300 and SIZES["small"].n_reps == 12
    assert SIZES["large"].n_opportunities == 1_000_000 and SIZES["large"].n_reps == 2_000
    s = spec_for(50_000, seed=3)
    assert (s.n_leads, s.n_activities, s.n_reps, s.months, s.seed) == (50_000, 250_000, 100, 24, 3)
    assert spec_for(1_000).n_reps == 5 and spec_for(1_000).months == 12
    assert spec_for(10_000_000).n_reps == 2_000
    assert spec_for("medium", seed=7).seed == 7
    with pytest.raises(ValueError):
        spec_for("huge")
    with pytest.raises(ValueError):
        OrgSpec(5, 10, 10, 10, 12, start=datetime.date(2024, 1, 15))


# --- contract -----------------------------------------------------------------------------


def test_determinism() -> None:
    a = generate_org(spec_for("small"))
    b = generate_org(spec_for("small"))
    c = generate_org(spec_for("small", seed=1))
    assert a.tables.keys() == b.tables.keys()
    for name in a.tables:
        assert a.tables[name].equals(b.tables[name]), name
    assert not a.tables["opportunities"].equals(c.tables["opportunities"])


def test_columns_and_dtypes(org: CanonicalOrg) -> None:
    assert list(org.tables) == list(CANONICAL)
    for name, columns in CANONICAL.items():
        frame = org.tables[name]
        assert frame.columns == columns, name
        for col, dtype in frame.schema.items():
            if col in TIMESTAMPS:
                assert dtype == pl.Datetime("us", "UTC"), (name, col)
            elif col in DATES:
                assert dtype == pl.Date, (name, col)
            elif col in BOOLEANS:
                assert dtype == pl.Boolean, (name, col)
            elif col in NUMBERS:
                assert dtype == pl.Float64, (name, col)
            else:
                assert dtype == pl.String, (name, col)


def test_sizes_as_specified(small: CanonicalOrg) -> None:
    spec = small.spec
    t = small.tables
    assert t["reps"].height == spec.n_reps
    assert t["opportunities"].height == spec.n_opportunities
    assert t["leads"].height == spec.n_leads
    assert t["activities"].height == spec.n_activities
    depth = _depth(t["teams"])
    assert 2 <= depth <= spec.team_depth


def _depth(teams: pl.DataFrame) -> int:
    parent = dict(zip(teams["id"], teams["parent_id"], strict=True))
    best = 0
    for team in parent:
        d, cur = 1, parent[team]
        while cur is not None:
            d, cur = d + 1, parent[cur]
        best = max(best, d)
    return best


# --- integrity ----------------------------------------------------------------------------


def test_referential_integrity(org: CanonicalOrg) -> None:
    t = org.tables
    for name in ("teams", "reps", "accounts", "leads", "opportunities", "activities"):
        assert t[name]["id"].is_unique().all(), name
        assert t[name]["id"].null_count() == 0, name
    reps, teams, accounts = _ids(org, "reps"), _ids(org, "teams"), _ids(org, "accounts")
    leads, opps = _ids(org, "leads"), _ids(org, "opportunities")
    assert t["teams"]["parent_id"].null_count() == 1
    assert _subset(t["teams"]["parent_id"], teams)
    assert _subset(t["reps"]["team_id"], teams) and t["reps"]["team_id"].null_count() == 0
    assert _subset(t["reps"]["manager_id"], reps) and t["reps"]["manager_id"].null_count() == 1
    assert t["reps"]["email"].is_unique().all()
    for name in ("accounts", "leads", "opportunities", "activities", "quotas"):
        assert t[name]["owner_id"].null_count() == 0, name
        assert _subset(t[name]["owner_id"], reps), name
    assert _subset(t["opportunities"]["account_id"], accounts)
    assert t["opportunities"]["account_id"].null_count() == 0
    assert _subset(t["opportunities"]["lead_id"], leads)
    assert _subset(t["leads"]["converted_account_id"], accounts)
    assert _subset(t["leads"]["converted_opportunity_id"], opps)
    assert _subset(t["activities"]["lead_id"], leads)
    assert _subset(t["activities"]["account_id"], accounts)
    assert _subset(t["activities"]["opportunity_id"], opps)
    assert _subset(t["costs"]["team_id"], teams)
    # Every activity is linked to something.
    links = t["activities"].select(
        pl.any_horizontal(pl.col("lead_id", "account_id", "opportunity_id").is_not_null()).all()
    )
    assert links.item()
    # Lead conversion links both ways; the opportunity starts when the lead converts.
    conv = t["leads"].filter(pl.col("converted_at").is_not_null())
    assert conv["converted_opportunity_id"].null_count() == 0
    assert conv["converted_account_id"].null_count() == 0
    joined = conv.join(
        t["opportunities"], left_on="converted_opportunity_id", right_on="id", suffix="_opp"
    )
    assert joined.height == conv.height
    assert (joined["lead_id"] == joined["id"]).all()
    assert (joined["created_at_opp"] == joined["converted_at"]).all()
    assert (joined["account_id"] == joined["converted_account_id"]).all()
    from_leads = t["opportunities"].filter(pl.col("lead_id").is_not_null())
    assert from_leads.height == conv.height
    assert from_leads["lead_id"].is_unique().all()


def test_invariants(org: CanonicalOrg) -> None:
    t = org.tables
    spec = org.spec
    start = datetime.datetime.combine(spec.start, datetime.time(), datetime.UTC)
    end_date = _add_months(spec.start, spec.months)
    end = datetime.datetime.combine(end_date, datetime.time(), datetime.UTC)
    o = t["opportunities"]
    assert o.filter(pl.col("is_won") & ~pl.col("is_closed")).height == 0
    assert o.filter(pl.col("close_date") < pl.col("created_at").dt.date()).height == 0
    assert o.filter(pl.col("is_closed") & (pl.col("close_date") >= end_date)).height == 0
    assert set(o.filter("is_won")["stage"].unique()) == {"Closed Won"}
    assert set(o.filter(pl.col("is_closed") & ~pl.col("is_won"))["stage"].unique()) == {
        "Closed Lost"
    }
    assert not set(o.filter(~pl.col("is_closed"))["stage"].unique()) & {"Closed Won", "Closed Lost"}
    assert (o["amount"] > 0).all()
    assert o.filter(pl.col("contract_end") <= pl.col("contract_start")).height == 0
    assert (
        o.filter(pl.col("recurring_monthly_amount").is_not_null() & ~pl.col("is_won")).height == 0
    )
    assert (
        o.filter(pl.col("competitor_price").is_not_null() & pl.col("competitor").is_null()).height
        == 0
    )
    # accounts exist before their deals
    acc = o.join(t["accounts"], left_on="account_id", right_on="id", suffix="_acc")
    assert acc.filter(pl.col("created_at_acc") > pl.col("created_at")).height == 0
    # leads
    lead = t["leads"]
    assert (
        lead.filter(
            pl.col("converted_at").is_not_null() & pl.col("disqualified_at").is_not_null()
        ).height
        == 0
    )
    assert lead.filter(pl.col("converted_at") < pl.col("qualified_at")).height == 0
    assert (
        lead.filter(pl.col("converted_at").is_not_null() & pl.col("qualified_at").is_null()).height
        == 0
    )
    assert lead.filter(pl.col("qualified_at") < pl.col("created_at")).height == 0
    assert lead.filter(pl.col("disqualified_at") < pl.col("created_at")).height == 0
    status_ok = ((pl.col("status") == "Converted") == pl.col("converted_at").is_not_null()) & (
        (pl.col("status") == "Unqualified") == pl.col("disqualified_at").is_not_null()
    )
    assert lead.select(status_ok.all()).item()
    assert lead.filter((pl.col("score") < 0) | (pl.col("score") > 100)).height == 0
    # every timestamp inside the span
    for name, frame in t.items():
        for col, dtype in frame.schema.items():
            if isinstance(dtype, pl.Datetime):
                s = frame[col].drop_nulls()
                assert s.min() >= start and s.max() < end, (name, col)  # type: ignore[operator]
    # activities on a lead happen after it came in
    a = t["activities"].join(lead, left_on="lead_id", right_on="id", suffix="_lead")
    assert a.filter(pl.col("occurred_at") < pl.col("created_at")).height == 0
    # activity vocabulary
    act = t["activities"]
    assert set(act["kind"].unique()) == {"call", "email", "meeting", "task"}
    assert act.filter(pl.col("outcome").is_not_null() & (pl.col("kind") != "call")).height == 0
    assert act.filter((pl.col("kind") == "task") & pl.col("direction").is_not_null()).height == 0
    assert set(act.filter(pl.col("kind") == "meeting")["duration_minutes"].unique()) <= {30, 45, 60}
    calls = act.filter(pl.col("kind") == "call")
    assert calls["duration_minutes"].is_between(0, 30).all()
    # quotas: one per active rep per month, period_end = next month start
    q = t["quotas"]
    assert q.select(
        (pl.col("period_end") == pl.col("period_start").dt.offset_by("1mo")).all()
    ).item()
    assert q.select((pl.col("period_start").dt.day() == 1).all()).item()
    active = t["reps"].filter("is_active")["id"]
    assert set(q["owner_id"]) == set(active)
    assert q.height == len(active) * spec.months
    assert set(q["currency"]) == {spec.corporate_currency}
    costs = t["costs"]
    assert costs.select(
        (pl.col("period_end") == pl.col("period_start").dt.offset_by("1mo")).all()
    ).item()


def _add_months(d: datetime.date, months: int) -> datetime.date:
    m = d.month - 1 + months
    return datetime.date(d.year + m // 12, m % 12 + 1, 1)


# --- KPI ingredients ----------------------------------------------------------------------


def test_kpi_ingredients(org: CanonicalOrg) -> None:
    t = org.tables
    spec = org.spec
    end_date = _add_months(spec.start, spec.months)
    o = t["opportunities"]
    won = o.filter("is_won")
    closed = o.filter("is_closed")
    assert 0.45 < closed.height / o.height < 0.75
    assert 0.2 < won.height / closed.height < 0.5
    # revenue in several currencies, the corporate one most
    counts = o["currency"].value_counts(sort=True)
    assert counts["currency"][0] == spec.corporate_currency and counts.height == 3
    assert set(o["type"].unique()) == {"new_business", "upsell", "renewal", "other"}
    assert won.filter(pl.col("type") == "upsell").height > 0
    assert won.filter(pl.col("cost").is_not_null()).height > 0  # profit margin
    recurring = won.filter(pl.col("recurring_monthly_amount").is_not_null())
    assert recurring.height > 0 and recurring["contract_start"].null_count() == 0
    assert recurring.filter(pl.col("contract_end") <= end_date).height > 0  # ended contracts
    assert recurring.filter(pl.col("contract_end") > end_date).height > 0  # running ones
    # churned customers: every subscription ended
    status = t["accounts"]["customer_status"]
    assert set(status.unique()) == {"customer", "former_customer", "prospect"}
    former = t["accounts"].filter(pl.col("customer_status") == "former_customer")["id"]
    of_former = recurring.filter(pl.col("account_id").is_in(former.implode()))
    assert of_former.height > 0 and (of_former["contract_end"] <= end_date).all()
    # competitors
    comp = closed.filter(pl.col("competitor").is_not_null())
    assert comp["competitor"].n_unique() == 5
    assert comp.filter("is_won").height > 0
    assert comp["competitor_price"].null_count() < comp.height
    # open pipeline, some due in the last month of the span
    open_ = o.filter(~pl.col("is_closed"))
    last_month = _add_months(spec.start, spec.months - 1)
    assert open_.filter(pl.col("close_date").is_between(last_month, end_date, "left")).height > 0
    assert open_.filter(pl.col("close_date") >= end_date).height > 0
    # leads: sources, statuses, qualified -> converted -> won, scores
    lead = t["leads"]
    assert set(lead["source"].unique()) == {"web", "referral", "event", "outbound", "partner"}
    assert set(lead["status"].unique()) == {
        "Open", "Working", "Qualified", "Unqualified", "Converted"
    }  # fmt: skip
    assert 0.15 < lead["converted_at"].is_not_null().mean() < 0.35  # type: ignore[operator]
    assert 0.30 < lead["qualified_at"].is_not_null().mean() < 0.50  # type: ignore[operator]
    assert 0.12 < lead["disqualified_at"].is_not_null().mean() < 0.30  # type: ignore[operator]
    assert 0.6 < lead["score"].is_not_null().mean() < 0.8  # type: ignore[operator]
    won_from_lead = won.filter(pl.col("lead_id").is_not_null())
    assert won_from_lead.height > 0
    # activities: connected and unanswered outbound calls, inbound too, over-contacted leads
    act = t["activities"]
    calls = act.filter((pl.col("kind") == "call") & (pl.col("direction") == "outbound"))
    assert 0.2 < (calls["outcome"] == "connected").mean() < 0.4  # type: ignore[operator]
    assert act.filter(pl.col("direction") == "inbound").height > 0
    per_day = (
        act.filter(pl.col("lead_id").is_not_null())
        .group_by("lead_id", pl.col("occurred_at").dt.date())
        .len()
    )
    assert per_day.filter(pl.col("len") > 4).height >= 3
    assert act.filter(pl.col("opportunity_id").is_not_null()).height > 0
    assert (
        act.filter(pl.col("account_id").is_not_null() & pl.col("opportunity_id").is_null()).height
        > 0
    )
    # reps: some inactive, some on non-leaf teams
    reps = t["reps"]
    assert 0 < reps.filter(~pl.col("is_active")).height <= max(1, round(0.1 * reps.height))
    parents = set(t["teams"]["parent_id"].drop_nulls())
    assert reps.filter(pl.col("team_id").is_in(list(parents))).height > 0
    # fx: one row per month per other currency plus mid-month changes
    fx = t["fx_rates"]
    others = set(o["currency"].unique()) - {spec.corporate_currency}
    assert set(fx["currency"].unique()) == others
    for cur in others:
        rows = fx.filter(pl.col("currency") == cur).sort("start_date")
        assert rows["start_date"][0] == spec.start
        assert rows.filter(pl.col("start_date").dt.day() == 1).height == spec.months
        assert rows.filter(pl.col("start_date").dt.day() != 1).height >= 1
        assert rows["start_date"].is_unique().all()
        rates = rows["rate"]
        assert (rates > 0).all() and rates.max() / rates.min() < 1.5  # type: ignore[operator]
    # costs: per region and org-wide
    costs = t["costs"]
    assert costs["team_id"].null_count() == spec.months
    regions = t["teams"].filter(
        pl.col("parent_id").is_in(t["teams"].filter(pl.col("parent_id").is_null())["id"].implode())
    )
    assert set(costs["team_id"].drop_nulls()) == set(regions["id"])
    # quotas: seasonal (Q4 above summer)
    q = t["quotas"].group_by(pl.col("period_start").dt.month()).agg(pl.col("amount").sum())
    by_month = dict(zip(q["period_start"], q["amount"], strict=True))
    assert by_month[12] > by_month[8]


def test_money_rounded(org: CanonicalOrg) -> None:
    for name, frame in org.tables.items():
        for col in MONEY & set(frame.columns):
            values = frame[col].drop_nulls()
            assert ((values * 100).round(0) - values * 100).abs().max() < 1e-6, (name, col)  # type: ignore[operator]


# --- CRM ids ------------------------------------------------------------------------------


def test_salesforce_checksum_hand_worked() -> None:
    # "001A0" -> A at 3 -> 8 -> "I"; "00001" -> 0 -> "A"; "B2cDe" -> B at 0, D at 3 -> 9 -> "J".
    assert salesforce_checksum("001A000001B2cDe") == "IAJ"
    # all upper case -> 31 -> "5"; none -> "A"; upper at 4 -> 16 -> "Q"
    assert salesforce_checksum("ABCDE000000000Z") == "5AQ"
    ids = salesforce_id("006", [0, 1, 61, 62, 62**5 + 10]).to_list()
    assert ids[0] == "0065g0000000000AAA"
    assert ids[1] == "0065g0000000001AAA"
    assert ids[2] == "0065g000000000zAAA"  # 61 = "z"
    assert ids[3] == "0065g0000000010AAA"
    for sf in ids:
        assert len(sf) == 18 and sf[15:] == salesforce_checksum(sf[:15])
    # 10 * 62 + 11 -> "AB": chunk "000AB" has upper case at 3 and 4 -> 24 -> "Y"
    assert salesforce_id("001", [10 * 62 + 11]).item() == "0015g00000000ABAAY"
    # 36 * 62 + 10 -> "aA": only position 4 is upper case -> 16 -> "Q"
    assert salesforce_id("001", [36 * 62 + 10]).item() == "0015g00000000aAAAQ"


def test_with_crm_ids_salesforce(small: CanonicalOrg) -> None:
    sf = with_crm_ids(small, "salesforce")
    t = sf.tables
    prefixes = {"teams": "00E", "reps": "005", "accounts": "001", "leads": "00Q",
                "opportunities": "006"}  # fmt: skip
    for table, prefix in prefixes.items():
        ids = t[table]["id"]
        assert ids.str.len_chars().eq(18).all() and ids.str.starts_with(prefix).all(), table
        assert ids.is_unique().all()
        for value in ids.head(20):
            assert value[15:] == salesforce_checksum(value[:15])
    act = t["activities"]
    meetings = act.filter(pl.col("kind") == "meeting")["id"]
    tasks = act.filter(pl.col("kind") != "meeting")["id"]
    assert meetings.str.starts_with("00U").all() and tasks.str.starts_with("00T").all()
    assert act["id"].is_unique().all()
    _check_mapped(small, sf)


def test_with_crm_ids_hubspot(small: CanonicalOrg) -> None:
    hs = with_crm_ids(small, "hubspot")
    t = hs.tables
    assert t["reps"]["id"][0] == "1000001"
    for table in ("teams", "reps", "accounts", "leads", "opportunities", "activities"):
        assert t[table]["id"].str.contains(r"^[1-9][0-9]*$").all(), table
    all_ids = pl.concat([t[name]["id"] for name in ("teams", "reps", "accounts", "leads",
                                                    "opportunities", "activities")])  # fmt: skip
    assert all_ids.is_unique().all()  # disjoint ranges
    _check_mapped(small, hs)
    again = with_crm_ids(generate_org(spec_for("small")), "hubspot")
    for name in t:
        assert t[name].equals(again.tables[name])


def _check_mapped(neutral: CanonicalOrg, mapped: CanonicalOrg) -> None:
    """Same shape, same non-id values, and the id mapping is one-to-one and consistent."""
    id_cols = {"id", "owner_id", "team_id", "parent_id", "manager_id", "account_id", "lead_id",
               "converted_account_id", "converted_opportunity_id", "opportunity_id"}  # fmt: skip
    pairs: dict[str, str] = {}
    for name, frame in neutral.tables.items():
        other = mapped.tables[name]
        assert other.schema == frame.schema
        for col in frame.columns:
            if col not in id_cols:
                assert other[col].equals(frame[col]), (name, col)
                continue
            assert (other[col].is_null() == frame[col].is_null()).all(), (name, col)
            for a, b in zip(frame[col].drop_nulls(), other[col].drop_nulls(), strict=True):
                assert pairs.setdefault(a, b) == b, (name, col, a)
    assert len(set(pairs.values())) == len(pairs)


# --- CSV ----------------------------------------------------------------------------------


def test_csv_conventions_and_round_trip(small: CanonicalOrg, tmp_path: Path) -> None:
    paths = write_canonical_csv(small, tmp_path / "out")
    assert set(paths) == set(CANONICAL)
    for name, path in paths.items():
        assert path.name == f"{name}.csv"
        header = path.read_text(encoding="utf-8").splitlines()[0]
        assert header.split(",") == CANONICAL[name]
    opp_text = paths["opportunities"].read_text(encoding="utf-8")
    assert ",true," in opp_text and ",false," in opp_text and "True" not in opp_text
    lead_text = paths["leads"].read_text(encoding="utf-8")
    assert re.search(r",\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ,", lead_text)
    assert not re.search(r"\d\d:\d\d:\d\d\.\d", lead_text) and "+00:00" not in lead_text
    for name, frame in small.tables.items():
        raw = pl.read_csv(paths[name], infer_schema=False)
        assert raw.columns == frame.columns
        for col, dtype in frame.schema.items():
            text = raw[col]
            if col in MONEY:
                assert text.drop_nulls().str.contains(r"^-?\d+\.\d\d$").all(), (name, col)
            if dtype == pl.Datetime("us", "UTC"):
                assert text.drop_nulls().str.contains(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$").all()
                back = text.str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC", time_unit="us")
            elif dtype == pl.Date:
                assert text.drop_nulls().str.contains(r"^\d{4}-\d\d-\d\d$").all()
                back = text.str.to_date("%Y-%m-%d")
            elif dtype == pl.Boolean:
                assert set(text.drop_nulls().unique()) <= {"true", "false"}
                back = text == "true"
            elif dtype == pl.Float64:
                back = text.cast(pl.Float64)
            else:
                back = text
            assert back.equals(frame[col], check_names=False), (name, col)
