"""SOQL through simple-salesforce: the parser subset, paging and query errors.

Expected values come from the generator's canonical tables (the ground truth), not from the
sandbox, so a wrong evaluation fails here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from sandbox.salesforce.testing import SalesforceSandbox


@pytest.fixture(scope="module", autouse=True)
def _seeded_org(sf_sandbox: SalesforceSandbox) -> None:
    """Expectations below come from the canonical tables: start from the seeded org."""
    sf_sandbox.app.reset()


def _ids(result: dict[str, Any]) -> list[str]:
    return [r["Id"] for r in result["records"]]


def test_fields_relationships_and_rest_value_formats(
    sf: Salesforce, salesforce: SalesforceSandbox
) -> None:
    opps = salesforce.canonical["opportunities"]
    reps = salesforce.canonical["reps"]
    won = opps.filter(pl.col("is_won")).sort("amount", descending=True).head(5)
    res = sf.query(
        "SELECT Id, Amount, CloseDate, CreatedDate, IsWon, Owner.Email, "
        "Account.Name FROM Opportunity WHERE IsWon = TRUE ORDER BY Amount DESC LIMIT 5"
    )
    assert res["totalSize"] == 5 and res["done"] is True
    assert _ids(res) == won["id"].to_list()
    first = res["records"][0]
    row = won.row(0, named=True)
    assert first["attributes"] == {
        "type": "Opportunity",
        "url": f"/services/data/v59.0/sobjects/Opportunity/{row['id']}",
    }
    assert first["Amount"] == pytest.approx(row["amount"])
    assert first["CloseDate"] == row["close_date"].isoformat()
    assert first["CreatedDate"] == row["created_at"].strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    email = reps.filter(pl.col("id") == row["owner_id"])["email"][0]
    assert first["Owner"]["Email"] == email
    assert first["Owner"]["attributes"]["type"] == "User"
    assert first["Account"]["attributes"]["url"].endswith(row["account_id"])


def test_null_relationship_renders_as_null(sf: Salesforce, salesforce: SalesforceSandbox) -> None:
    reps = salesforce.canonical["reps"]
    top = reps.filter(pl.col("manager_id").is_null())["id"][0]
    res = sf.query(f"SELECT Id, Manager.Email FROM User WHERE Id = '{top}'")
    assert res["records"][0]["Manager"] is None


def test_where_logic_in_like_null_and_ranges(sf: Salesforce, salesforce: SalesforceSandbox) -> None:
    opps = salesforce.canonical["opportunities"]
    expected = opps.filter(
        ((pl.col("currency") == "USD") | (pl.col("currency") == "GBP"))
        & ~pl.col("is_closed")
        & (pl.col("amount") >= 1000)
    )
    soql = (
        "SELECT Id FROM Opportunity WHERE (CurrencyIsoCode = 'USD' OR CurrencyIsoCode = 'gbp')"
        " AND NOT IsClosed = true AND Amount >= 1000"
    )
    assert sorted(_ids(sf.query_all(soql))) == sorted(expected["id"].to_list())

    leads = salesforce.canonical["leads"]
    in_src = leads.filter(pl.col("source").is_in(["web", "partner"]))
    got = sf.query_all("SELECT Id FROM Lead WHERE LeadSource IN ('Web', 'partner')")
    assert got["totalSize"] == in_src.height
    not_in = sf.query_all("SELECT Id FROM Lead WHERE LeadSource NOT IN ('web')")
    assert not_in["totalSize"] == leads.height - leads.filter(pl.col("source") == "web").height
    nulls = sf.query_all("SELECT Id FROM Lead WHERE ConvertedOpportunityId = null")
    assert nulls["totalSize"] == leads.filter(pl.col("converted_opportunity_id").is_null()).height
    not_null = sf.query_all("SELECT Id FROM Lead WHERE ConvertedOpportunityId != null")
    assert nulls["totalSize"] + not_null["totalSize"] == leads.height

    accounts = salesforce.canonical["accounts"]
    like = sf.query_all("SELECT Id, Name FROM Account WHERE Name LIKE '%inc_'")
    assert (
        like["totalSize"]
        == accounts.filter(pl.col("name").str.to_lowercase().str.contains(r"inc.$")).height
    )
    assert like["totalSize"] > 0


def test_date_and_datetime_literals(sf: Salesforce, salesforce: SalesforceSandbox) -> None:
    opps = salesforce.canonical["opportunities"]
    d = date(2024, 6, 1)
    got = sf.query_all(
        "SELECT Id FROM Opportunity WHERE CloseDate >= 2024-06-01 AND CloseDate < 2024-07-01"
    )
    assert (
        got["totalSize"]
        == opps.filter(
            (pl.col("close_date") >= d) & (pl.col("close_date") < date(2024, 7, 1))
        ).height
    )
    ts = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    got = sf.query_all("SELECT Id FROM Opportunity WHERE CreatedDate > 2024-03-01T13:00:00+01:00")
    assert got["totalSize"] == opps.filter(pl.col("created_at") > ts).height
    # Relative literals: nothing seeded is recent, a record created now is.
    new = sf.Account.create({"Name": "Literal Test Account"})
    recent = sf.query("SELECT Id FROM Account WHERE CreatedDate = LAST_N_DAYS:1")
    assert new["id"] in _ids(recent)
    assert (
        sf.query(
            "SELECT Id FROM Account WHERE CreatedDate = TODAY AND Name = 'literal test account'"
        )["totalSize"]
        == 1
    )
    future = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    assert (
        sf.query(f"SELECT COUNT() FROM Account WHERE CreatedDate > {future}T00:00:00Z")["totalSize"]
        == 0
    )
    sf.Account.delete(new["id"])


def test_order_by_nulls_offset_and_count(sf: Salesforce, salesforce: SalesforceSandbox) -> None:
    leads = salesforce.canonical["leads"]
    res = sf.query(
        "SELECT Id, Lead_Score__c FROM Lead ORDER BY Lead_Score__c DESC NULLS LAST, "
        "Id LIMIT 10 OFFSET 5"
    )
    expected = leads.sort(["score", "id"], descending=[True, False], nulls_last=True)
    assert _ids(res) == expected["id"].slice(5, 10).to_list()
    first_nulls = sf.query("SELECT Id, Lead_Score__c FROM Lead ORDER BY Lead_Score__c LIMIT 1")
    assert first_nulls["records"][0]["Lead_Score__c"] is None  # nulls first by default
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == leads.height
    agg = sf.query(
        "SELECT COUNT(Id) n, MAX(Amount), SUM(Amount) FROM Opportunity WHERE IsWon = true"
    )
    rec = agg["records"][0]
    won = salesforce.canonical["opportunities"].filter(pl.col("is_won"))
    assert rec["attributes"]["type"] == "AggregateResult"
    assert rec["n"] == won.height
    assert rec["expr0"] == pytest.approx(won["amount"].max())
    assert rec["expr1"] == pytest.approx(won["amount"].sum())


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT Id FROM", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE Name = 'unterminated", "MALFORMED_QUERY"),
        ("SELEKT Id FROM Account", "MALFORMED_QUERY"),
        ("SELECT Nope__c FROM Account", "INVALID_FIELD"),
        ("SELECT Owner.Nope FROM Account", "INVALID_FIELD"),
        ("SELECT Nope.Name FROM Account", "INVALID_FIELD"),
        ("SELECT Id FROM Opportunity WHERE CloseDate = 2024-01-01T00:00:00Z", "INVALID_FIELD"),
        ("SELECT Id FROM Opportunity WHERE CreatedDate > 2024-01-01", "INVALID_FIELD"),
        ("SELECT Id FROM Opportunity WHERE Amount = '5'", "INVALID_FIELD"),
        ("SELECT Id FROM NoSuchThing__c", "INVALID_TYPE"),
    ],
)
def test_query_errors_are_salesforce_shaped(sf: Salesforce, soql: str, code: str) -> None:
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query(soql)
    content = exc.value.content
    assert isinstance(content, list) and content[0]["errorCode"] == code
    assert set(content[0]) == {"message", "errorCode", "fields"}


def test_paging_with_batch_size_and_path_only_next_url(salesforce: SalesforceSandbox) -> None:
    s = salesforce.api()
    base = salesforce.instance_url + "/services/data/v59.0"
    total = salesforce.canonical["activities"].filter(pl.col("kind") != "meeting").height
    r = s.get(
        base + "/query/",
        params={"q": "SELECT Id FROM Task"},
        headers={"Sforce-Query-Options": "batchSize=250"},
    )
    body = r.json()
    assert body["totalSize"] == total and body["done"] is False and len(body["records"]) == 250
    assert body["nextRecordsUrl"].startswith("/services/data/v59.0/query/")
    seen = [x["Id"] for x in body["records"]]
    while not body["done"]:
        body = s.get(salesforce.instance_url + body["nextRecordsUrl"]).json()
        seen += [x["Id"] for x in body["records"]]
    assert len(seen) == len(set(seen)) == total
    # Out-of-range batch sizes are clamped to 200..2000; the default is 2000.
    r = s.get(
        base + "/query",
        params={"q": "SELECT Id FROM Task"},
        headers={"Sforce-Query-Options": "batchSize=5"},
    )
    assert len(r.json()["records"]) == 200
    r = s.get(base + "/query", params={"q": "SELECT Id FROM Task"})
    assert len(r.json()["records"]) == min(2000, total)
    bad = s.get(base + "/query/01gNOPE-2000")
    assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_query_all_includes_the_recycle_bin(sf: Salesforce) -> None:
    rec = sf.Account.create({"Name": "Recycled Co"})
    sf.Account.delete(rec["id"])
    soql = f"SELECT Id, IsDeleted FROM Account WHERE Id = '{rec['id']}'"
    assert sf.query(soql)["totalSize"] == 0
    res = sf.query_all(soql, include_deleted=True)
    assert res["records"][0]["IsDeleted"] is True


def test_group_by_with_aggregates(sf: Salesforce, salesforce: SalesforceSandbox) -> None:
    opps = salesforce.canonical["opportunities"]
    res = sf.query(
        "SELECT StageName, COUNT(Id) n, SUM(Amount) total FROM Opportunity "
        "GROUP BY StageName ORDER BY COUNT(Id) DESC, StageName"
    )
    expected = (
        opps.group_by("stage")
        .agg(pl.len().alias("n"), pl.col("amount").sum())
        .sort(["n", "stage"], descending=[True, False])
    )
    assert [(r["StageName"], r["n"]) for r in res["records"]] == list(
        expected.select("stage", "n").iter_rows()
    )
    assert res["records"][0]["total"] == pytest.approx(expected["amount"][0])
    assert res["records"][0]["attributes"] == {"type": "AggregateResult"}
    by_owner = sf.query("SELECT Owner.Email, MAX(CloseDate) FROM Opportunity GROUP BY Owner.Email")
    assert by_owner["totalSize"] == opps["owner_id"].n_unique()
    assert all("Email" in r and len(r["expr0"]) == 10 for r in by_owner["records"])
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELECT StageName, Amount FROM Opportunity GROUP BY StageName")
    assert "grouped or aggregated" in exc.value.content[0]["message"]


def test_the_oldest_cursor_is_released_after_ten(salesforce: SalesforceSandbox) -> None:
    s = salesforce.api()
    url = salesforce.instance_url + "/services/data/v59.0/query"
    opts = {"Sforce-Query-Options": "batchSize=200"}
    first = s.get(url, params={"q": "SELECT Id FROM Task"}, headers=opts).json()
    for _ in range(10):
        s.get(url, params={"q": "SELECT Id FROM Task"}, headers=opts)
    stale = s.get(salesforce.instance_url + first["nextRecordsUrl"])
    assert stale.status_code == 400 and stale.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_in_lists_ids_and_wide_relative_literals(
    sf: Salesforce, salesforce: SalesforceSandbox
) -> None:
    opps = salesforce.canonical["opportunities"]
    ids = opps["id"].head(3).to_list()
    # A 15-character id matches its 18-character form in IN as it does with '='.
    got = sf.query(f"SELECT Id FROM Opportunity WHERE Id IN ('{ids[0][:15]}', '{ids[1]}')")
    assert sorted(_ids(got)) == sorted(ids[:2])
    # Numbers in an IN list may mix integers and decimals.
    amounts = opps.filter(pl.col("amount").is_not_null())["amount"].head(2).to_list()
    literal = ", ".join(repr(float(a)) for a in amounts) + ", 1"
    got = sf.query_all(f"SELECT Id, Amount FROM Opportunity WHERE Amount IN ({literal})")
    assert got["totalSize"] == opps.filter(pl.col("amount").is_in([*amounts, 1.0])).height > 0
    # A relative literal whose span reaches far back is valid (other units would overflow).
    everything = sf.query("SELECT COUNT() FROM Opportunity WHERE CloseDate = LAST_N_DAYS:3000")
    past = opps.filter(pl.col("close_date") <= datetime.now(UTC).date()).height
    assert everything["totalSize"] == past
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELECT Id FROM Opportunity WHERE CloseDate = LAST_N_YEARS:5000")
    assert exc.value.content[0]["errorCode"] == "NUMBER_OUTSIDE_VALID_RANGE"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELECT Id FROM Opportunity WHERE CloseDate = LAST_N_FORTNIGHTS:2")
    assert exc.value.content[0]["errorCode"] == "MALFORMED_QUERY"


def test_query_all_pages_on_its_own_locator(salesforce: SalesforceSandbox) -> None:
    s = salesforce.api()
    base = salesforce.instance_url + "/services/data/v59.0"
    body = s.get(
        base + "/queryAll/",
        params={"q": "SELECT Id, IsDeleted FROM Task ORDER BY Id"},
        headers={"Sforce-Query-Options": "batchSize=500"},
    ).json()
    assert body["nextRecordsUrl"].startswith("/services/data/v59.0/queryAll/")
    seen = [r["Id"] for r in body["records"]]
    while not body["done"]:
        r = s.get(salesforce.instance_url + body["nextRecordsUrl"])
        assert r.status_code == 200 and r.headers["Sforce-Limit-Info"].startswith("api-usage=")
        body = r.json()
        seen += [r["Id"] for r in body["records"]]
    assert seen == sorted(seen) and len(seen) == body["totalSize"]


def test_date_functions_in_where_group_by_and_order_by(
    sf: Salesforce, salesforce: SalesforceSandbox
) -> None:
    opps = salesforce.canonical["opportunities"]
    year = opps["close_date"].max().year  # type: ignore[union-attr]
    q2 = opps.filter(
        (pl.col("close_date").dt.year() == year) & (pl.col("close_date").dt.quarter() == 2)
    )
    got = sf.query_all(
        "SELECT Id FROM Opportunity WHERE CALENDAR_YEAR(CloseDate) = "
        f"{year} AND CALENDAR_QUARTER(CloseDate) = 2 WITH SECURITY_ENFORCED"
    )
    assert sorted(_ids(got)) == sorted(q2["id"].to_list())
    sundays = opps.filter(pl.col("created_at").dt.weekday() == 7).height
    got = sf.query("SELECT COUNT() FROM Opportunity WHERE DAY_IN_WEEK(CreatedDate) = 1")
    assert got["totalSize"] == sundays  # 1 = Sunday
    day = opps["created_at"][0].date()
    got = sf.query(f"SELECT COUNT() FROM Opportunity WHERE DAY_ONLY(CreatedDate) = {day}")
    assert got["totalSize"] == opps.filter(pl.col("created_at").dt.date() == day).height

    res = sf.query(
        "SELECT CALENDAR_MONTH(CloseDate) month, COUNT(Id), SUM(Amount) FROM Opportunity "
        f"WHERE CALENDAR_YEAR(CloseDate) = {year} GROUP BY CALENDAR_MONTH(CloseDate) "
        "ORDER BY CALENDAR_MONTH(CloseDate) DESC"
    )
    expected = (
        opps.filter(pl.col("close_date").dt.year() == year)
        .group_by(pl.col("close_date").dt.month().alias("m"))
        .agg(pl.len().alias("n"), pl.col("amount").sum())
        .sort("m", descending=True)
    )
    assert [(r["month"], r["expr0"]) for r in res["records"]] == list(
        expected.select("m", "n").iter_rows()
    )
    assert res["records"][0]["expr1"] == pytest.approx(expected["amount"][0])
    for bad in (
        "SELECT Id FROM Opportunity WHERE CALENDAR_YEAR(Amount) = 2024",
        "SELECT Id FROM Opportunity WHERE HOUR_IN_DAY(CloseDate) = 3",
        "SELECT CALENDAR_YEAR(CloseDate) FROM Opportunity",
        "SELECT Id FROM Opportunity WITH NOTHING",
    ):
        with pytest.raises(SalesforceMalformedRequest) as exc:
            sf.query(bad)
        assert exc.value.content[0]["errorCode"] == "MALFORMED_QUERY", bad
