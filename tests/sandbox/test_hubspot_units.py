"""Pure units of the HubSpot sandbox: value conventions, the rate limiter's windows, and search
giving the same answer for seeded rows (vectorised) and edited rows (one by one)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from sandbox.hubspot.errors import HubSpotError
from sandbox.hubspot.ratelimit import TIERS, RateLimited, RateLimiter
from sandbox.hubspot.registry import PropertyRegistry
from sandbox.hubspot.schema import STANDARD_TYPES, standard_properties
from sandbox.hubspot.search import SearchEngine, page_window, parse_request
from sandbox.hubspot.store import CREATED, ID, UPDATED, ObjectTable
from sandbox.hubspot.values import iso_from_ms, parse_ms, to_text


def test_values() -> None:
    assert iso_from_ms(1_704_067_200_123) == "2024-01-01T00:00:00.123Z"
    assert parse_ms("2024-01-01") == 1_704_067_200_000
    assert parse_ms("2024-01-01T00:00:00.123Z") == 1_704_067_200_123
    assert parse_ms("1704067200123") == 1_704_067_200_123
    assert parse_ms("yesterday") is None
    assert (to_text(True), to_text(2.0), to_text(2.5), to_text(None)) == ("true", "2", "2.5", None)


def test_rate_limiter_windows_with_a_fake_clock() -> None:
    now = [0.0]
    rl = RateLimiter(TIERS["starter"], clock=lambda: now[0])
    for _ in range(100):
        rl.admit(search=False, oauth=False)
    with pytest.raises(RateLimited) as exc:
        rl.admit(search=False, oauth=False)
    assert exc.value.policy == "TEN_SECONDLY_ROLLING" and exc.value.headers["Retry-After"] == "10"
    now[0] = 10.0  # the oldest calls leave the rolling window
    assert rl.admit(search=False, oauth=False)["X-HubSpot-RateLimit-Remaining"] == "99"
    for _ in range(5):
        assert rl.admit(search=True, oauth=False) == {}  # no headers on search
    with pytest.raises(RateLimited) as exc2:
        rl.admit(search=True, oauth=False)
    assert exc2.value.policy == "SECONDLY"
    assert "X-HubSpot-RateLimit-Daily" not in rl.admit(search=False, oauth=True)


def test_page_window_cap() -> None:
    assert page_window(25_000, 9_800, 200) == (9_800, 10_000, 10_000)
    assert page_window(150, 100, 100) == (100, 150, None)
    with pytest.raises(HubSpotError) as exc:
        page_window(25_000, 10_000, 200)
    assert exc.value.status == 400


def _deals(n: int) -> ObjectTable:
    ot = next(t for t in STANDARD_TYPES if t.name == "deals")
    rng = np.random.default_rng(1)
    amount = rng.integers(0, 1000, n)
    base = pl.DataFrame(
        {
            ID: np.arange(1, n + 1, dtype=np.int64),
            CREATED: 1_700_000_000_000 + rng.integers(0, 10**9, n),
            UPDATED: 1_700_000_000_000 + rng.integers(0, 10**9, n),
            "amount": [None if a % 7 == 0 else str(a) for a in amount],
            "dealname": [f"Deal {'alpha' if a % 2 else 'beta'} {a}" for a in amount],
            "deal_currency_code": np.where(amount % 3 == 0, "EUR", "USD"),
            "closedate": [iso_from_ms(1_700_000_000_000 + int(a) * 86_400_000) for a in amount],
        }
    )
    return ObjectTable(ot, PropertyRegistry(ot, standard_properties(ot, 0)), base)


QUERIES = [
    [{"propertyName": "amount", "operator": "GT", "value": "500"}],
    [{"propertyName": "amount", "operator": "NEQ", "value": "10"}],
    [{"propertyName": "amount", "operator": "NOT_HAS_PROPERTY"}],
    [{"propertyName": "amount", "operator": "BETWEEN", "value": "10", "highValue": "20"}],
    [{"propertyName": "deal_currency_code", "operator": "IN", "values": ["eur"]}],
    [{"propertyName": "deal_currency_code", "operator": "NOT_IN", "values": ["eur"]}],
    [{"propertyName": "dealname", "operator": "CONTAINS_TOKEN", "value": "alp*"}],
    [{"propertyName": "dealname", "operator": "NOT_CONTAINS_TOKEN", "value": "beta"}],
    [{"propertyName": "closedate", "operator": "LTE", "value": "2023-11-20"}],
    [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "1700500000000"}],
]


@pytest.mark.parametrize("filters", QUERIES)
def test_overlay_rows_match_the_vectorised_base(filters: list[dict[str, str]]) -> None:
    table = _deals(400)
    engine = SearchEngine()
    req = parse_request({"filterGroups": [{"filters": filters}], "sorts": ["-amount"]})
    before = engine.ordered_ids(table, req).tolist()
    assert before  # every query matches something
    for rid in range(1, 401, 2):  # move half the rows into the overlay, values unchanged
        row = table._materialize(rid)
        assert row is not None
    after = engine.ordered_ids(table, req).tolist()
    assert after == before


def test_compaction_folds_overlay_rows_into_the_base() -> None:
    table = _deals(300)
    table.compact_at = 1000
    engine = SearchEngine()
    for i in range(1200):
        table.create({"amount": str(5000 + i), "dealname": f"New {i}"})
    table.update(5, {"amount": "99999"})
    table.archive(6)
    assert len(table.rows) < 250  # the first 1000 overlay rows went into the base
    assert table.count() == 300 + 1200 - 1
    req = parse_request(
        {
            "filterGroups": [
                {"filters": [{"propertyName": "amount", "operator": "GTE", "value": "5000"}]}
            ],
            "sorts": ["-amount"],
        }
    )
    ids = engine.ordered_ids(table, req).tolist()
    assert len(ids) == 1201 and ids[0] == 5
    assert table.get(6) is None and table.get(6, archived=True) is not None
    assert table.list_ids(0, 3) == [1, 2, 3]
    assert len(table.list_ids(0, 2000)) == 1499
