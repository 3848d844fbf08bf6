"""The fast paths of a HubSpot pull read and write what the general ones would: HubSpot's own
timestamp form, and raw records stored as JSON (texts an older encoder wrote compare equal)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.hubspot_mapping import NormaliseError, parse_instant, ts_text
from connectors.store import Store, record_json

instants = st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31))


@given(instants)
def test_hubspot_timestamps_read_as_the_general_parser_reads_them(at: dt.datetime) -> None:
    text = f"{at.year:04d}" + at.strftime("-%m-%dT%H:%M:%S") + f".{at.microsecond // 1000:03d}Z"
    general = parse_instant(text, "t")
    assert general is not None
    assert ts_text(text, "t") == f"{general.year:04d}" + general.strftime("-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("text", ["2025-02-30T09:30:00.123Z", "2025-03-01T09:30:00.1a3Z",
                                  "2025-03-01T25:30:00.000Z"])  # fmt: skip
def test_malformed_hubspot_timestamps_are_refused_by_name(text: str) -> None:
    with pytest.raises(NormaliseError, match="closedate: not a datetime"):
        ts_text(text, "closedate")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=12,
)


@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_a_record_text_is_the_record(record: dict[str, Any]) -> None:
    assert json.loads(record_json(record)) == record


def test_a_record_read_again_unchanged_is_no_update_whatever_encoder_stored_it(
    tmp_path: Any,
) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.migrate()
    first = {"id": "1", "properties": {"b": "2", "a": None}, "n": 2**70}
    with store.batch("c") as b:
        assert b.upsert_raw("deals", [("1", first)]) == (1, 0)
    # A text the json module wrote (spaced): equal JSON, so no update; a change is one.
    with store.engine.begin() as conn:
        spaced = json.dumps(first, sort_keys=True)
        conn.exec_driver_sql("UPDATE raw_records SET data = ?", (spaced,))
    with store.batch("c") as b:
        assert b.upsert_raw("deals", [("1", first)]) == (0, 0)
        assert b.upsert_raw("deals", [("1", {**first, "n": 1})]) == (0, 1)
    assert dict(store.raw_records("c", "deals")) == {"1": {**first, "n": 1}}
    store.close()
