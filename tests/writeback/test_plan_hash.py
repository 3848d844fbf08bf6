"""The snapshot rows' hashes are the ledger's hashes: written out directly, they must equal
``value_hash`` byte for byte, or every row of an existing ledger would be sent again."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from writeback.plan import _snapshot_hash, snapshot_rows, value_hash

TEXT = st.one_of(st.none(), st.text(max_size=30))
NUMBER = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-7, 1e16, 123456789.123, 1 / 3, math.inf, -math.inf]),
)
KEYS_TEXT = ("dimension", "metric", "period_end", "period_start", "period_type", "rep", "scope",
             "subject_id", "team", "unit")  # fmt: skip
KEYS_NUMBER = ("denominator", "numerator", "target", "value")


@settings(max_examples=400, deadline=None)
@given(st.fixed_dictionaries({**dict.fromkeys(KEYS_TEXT, TEXT),
                              **dict.fromkeys(KEYS_NUMBER, NUMBER)}))  # fmt: skip
def test_the_direct_hash_equals_value_hash(payload: dict[str, object]) -> None:
    assert _snapshot_hash(payload) == value_hash(payload)


def test_snapshot_rows_hash_their_payloads() -> None:
    kpis = pl.DataFrame(
        {"metric": ["win_rate", "revenue", "revenue", "quota"],
         "scope": ["rep", "team", "rep", "rep"],
         "subject_id": ["005A", "T1", "005A", "005A"],
         "period_start": [dt.date(2025, 1, 1), dt.date(2025, 1, 1), None, dt.date(2025, 1, 1)],
         "period_end": [dt.date(2025, 2, 1), dt.date(2025, 4, 1), None, dt.date(2025, 2, 1)],
         "value": [0.5, 1e16 / 3, None, 1000.0], "unit": ["ratio", "EUR", "EUR", "EUR"],
         "numerator": [1.0, None, None, None], "denominator": [2.0, None, None, None],
         "records": [2, 3, 0, 1], "dimension": [None, "Web \"ads\" — ü", None, None]},
    )  # fmt: skip
    rows = snapshot_rows(kpis, {"005A": "T1"}, {"revenue": "quota"})
    assert len(rows) == 4
    for row in rows.values():
        assert row.hash == value_hash(row.payload)
    team = next(r for r in rows.values() if r.payload["scope"] == "team")
    assert team.payload["period_type"] == "quarter" and team.payload["team"] == "T1"
    rep = next(r for r in rows.values()
               if r.payload["metric"] == "revenue" and r.payload["scope"] == "rep")  # fmt: skip
    assert rep.payload["period_start"] is None and rep.payload["team"] == "T1"
