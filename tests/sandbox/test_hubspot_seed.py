"""The generated org served in HubSpot's shape: counts and field mapping against the canonical
tables (the ground truth a connector must reproduce), over the real client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import polars as pl
import pytest
from hubspot.crm.deals import PublicObjectSearchRequest

from sandbox.generator import generate_org, spec_for, with_crm_ids
from sandbox.hubspot import create_app
from sandbox.hubspot.seed import STAGES

if TYPE_CHECKING:
    from sandbox.hubspot.testing import HubSpotSandbox

pytest_plugins = ("sandbox.hubspot.testing",)


@pytest.fixture(scope="module")
def org_sandbox() -> Iterator[tuple[HubSpotSandbox, dict[str, pl.DataFrame]]]:
    from sandbox.hubspot.testing import HubSpotSandbox, start_server

    org = generate_org(spec_for("small", 3))
    truth = with_crm_ids(org, "hubspot").tables
    app = create_app(org=org, tier="unlimited")  # as `kpisync sandbox serve` builds it
    server = start_server(app)
    try:
        yield (
            HubSpotSandbox(
                app,
                server,
                server.url("hubspot"),
                app.auth.config.private_app_token,
                server.ca_bundle,
            ),
            truth,
        )
    finally:
        server.stop()


def _total(sb: HubSpotSandbox, object_type: str) -> int:
    res = sb.client().crm.objects.search_api.do_search(object_type, {"limit": 1})
    return int(res.total)


def test_record_counts_match_the_canonical_org(
    org_sandbox: tuple[HubSpotSandbox, dict[str, pl.DataFrame]],
) -> None:
    sb, truth = org_sandbox
    assert _total(sb, "deals") == truth["opportunities"].height
    assert _total(sb, "contacts") == truth["leads"].height
    assert _total(sb, "companies") == truth["accounts"].height
    assert _total(sb, "goal_targets") == truth["quotas"].height
    kinds = truth["activities"]["kind"].value_counts()
    for kind, n in kinds.iter_rows():
        assert (
            _total(
                sb,
                {"call": "calls", "email": "emails", "meeting": "meetings", "task": "tasks"}[kind],
            )
            == n
        )
    owners = sb.client().crm.owners.owners_api.get_page(limit=500).results
    assert len(owners) == truth["reps"].filter(pl.col("is_active")).height


def test_deals_map_back_to_opportunities(
    org_sandbox: tuple[HubSpotSandbox, dict[str, pl.DataFrame]],
) -> None:
    sb, truth = org_sandbox
    client = sb.client()
    label = {v[0]: k for k, v in STAGES.items()}
    opps = {r["id"]: r for r in truth["opportunities"].head(40).iter_rows(named=True)}
    res = client.crm.deals.search_api.do_search(
        PublicObjectSearchRequest(
            filter_groups=[
                {
                    "filters": [
                        {"propertyName": "hs_object_id", "operator": "IN", "values": list(opps)}
                    ]
                }
            ],
            properties=[
                "dealstage",
                "amount",
                "deal_currency_code",
                "closedate",
                "hs_is_closed_won",
                "hubspot_owner_id",
                "dealtype",
                "is_renewal",
            ],
            limit=100,
        )
    )
    assert res.total == len(opps)
    for d in res.results:
        o: dict[str, Any] = opps[d.id]
        p = d.properties
        assert label[p["dealstage"]] == o["stage"]
        assert float(p["amount"]) == pytest.approx(o["amount"], abs=0.005)
        assert p["deal_currency_code"] == o["currency"]
        assert p["closedate"][:10] == o["close_date"].isoformat()
        assert p["hs_is_closed_won"] == ("true" if o["is_won"] else "false")
        assert p["hubspot_owner_id"] == o["owner_id"]
        kind = {"newbusiness": "new_business", None: "other"}.get(
            p["dealtype"], "renewal" if p["is_renewal"] == "true" else "upsell"
        )
        assert kind == o["type"]
    one = next(iter(opps.values()))
    assoc = client.crm.associations.v4.basic_api.get_page("deals", one["id"], "companies")
    assert [a.to_object_id for a in assoc.results] == [one["account_id"]]


def test_exchange_rates_invert_the_canonical_rates(
    org_sandbox: tuple[HubSpotSandbox, dict[str, pl.DataFrame]],
) -> None:
    sb, truth = org_sandbox
    rates = (
        sb.session()
        .get(f"{sb.base_url}/settings/v3/currencies/exchange-rates", params={"limit": 100})
        .json()["results"]
    )
    corporate = sb.app.portal.seed.company_currency
    fx = truth["fx_rates"].filter(pl.col("currency") != corporate)
    assert len(rates) == fx.height
    got = {(r["fromCurrencyCode"], r["effectiveAt"][:10]): r["conversionRate"] for r in rates}
    for row in fx.iter_rows(named=True):
        key = (row["currency"], row["start_date"].isoformat())
        assert got[key] == pytest.approx(1 / row["rate"], rel=1e-5)
