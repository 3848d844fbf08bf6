"""Bulk API 2.0 result pages read column by column equal the value-by-value reading.

The vectorised reading (polars) is a speed-up only: every record must come out exactly as the
value-by-value reading (``_csv_value``, the REST shape) gives it, including the values only the
latter can read (another UTC offset, ``1_0``, an integer past 64 bits) and the errors it raises.
"""

from __future__ import annotations

import csv
import io

import pytest

from connectors.salesforce import _csv_records, _csv_value, _latest_stamp

TYPES = {
    "IsDeleted": "boolean",
    "SystemModstamp": "datetime",
    "Amount": "currency",
    "Probability": "percent",
    "Seconds": "int",
    "Score": "double",
    "CloseDate": "date",
}


def _page(rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    # Salesforce quotes every value (query_get_job_results.htm examples); an empty value is null.
    writer = csv.DictWriter(out, fieldnames=["Id", *TYPES, "Name"], quoting=csv.QUOTE_ALL,
                            lineterminator="\n")  # fmt: skip
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _one_by_one(text: str) -> list[dict[str, object]]:
    return [
        {k: _csv_value(raw, TYPES.get(k, "string")) for k, raw in row.items()}
        for row in csv.DictReader(io.StringIO(text))
    ]


ROW = {
    "Id": "00T000000000001AAA", "IsDeleted": "false", "SystemModstamp": "2025-03-01T09:30:00.123Z",
    "Amount": "1250.5", "Probability": "40", "Seconds": "90", "Score": "0.25",
    "CloseDate": "2025-03-31", "Name": 'Call "quoted", with a comma\nand a line break',
}  # fmt: skip


def test_a_page_reads_as_the_rest_api_returns_it() -> None:
    records = _csv_records(_page([ROW, {**ROW, "Id": "00T000000000002AAA", "IsDeleted": "TRUE",
                                        "Amount": "", "Name": ""}]), TYPES)  # fmt: skip
    assert records[0] == {
        "Id": "00T000000000001AAA", "IsDeleted": False,
        "SystemModstamp": "2025-03-01T09:30:00.123+0000", "Amount": 1250.5,
        "Probability": 40.0, "Seconds": 90, "Score": 0.25, "CloseDate": "2025-03-31",
        "Name": 'Call "quoted", with a comma\nand a line break',
    }  # fmt: skip
    assert (records[1]["IsDeleted"], records[1]["Amount"], records[1]["Name"]) == (True, None, None)
    assert isinstance(records[0]["Seconds"], int)


@pytest.mark.parametrize(
    "field, raw",
    [
        ("SystemModstamp", "2025-03-01T10:30:00+01:00"),  # an offset: read value by value
        ("SystemModstamp", "2025-03-01T09:30:00Z"),  # no milliseconds
        ("Score", "1_000.5"),  # Python's float() reads it, polars does not
        ("Seconds", "123456789012345678901234"),  # past Int64
        ("Seconds", "12.9"),  # an int column with a fraction: truncated, as int(float())
        ("IsDeleted", "True"),
    ],
)
def test_values_only_python_reads_come_out_the_same(field: str, raw: str) -> None:
    text = _page([ROW, {**ROW, "Id": "00T000000000002AAA", field: raw}])
    assert _csv_records(text, TYPES) == _one_by_one(text)


def test_an_unreadable_value_still_fails_as_before() -> None:
    text = _page([{**ROW, "SystemModstamp": "2025-13-45T99:00:00.000Z"}])
    with pytest.raises(ValueError):
        _one_by_one(text)
    with pytest.raises(ValueError):
        _csv_records(text, TYPES)


def test_an_empty_page_has_no_records() -> None:
    assert _csv_records("", TYPES) == []
    assert _csv_records(_page([]), TYPES) == []


def test_the_latest_modstamp_of_a_page() -> None:
    stamps = ["2025-03-01T09:30:00.000+0000", None, "2025-03-02T00:00:00.000+0000"]
    assert _latest_stamp(stamps) == "2025-03-02T00:00:00Z"
    # Not all in the fixed REST shape: compared as instants, not text.
    assert _latest_stamp(["2025-03-01T23:00:00-05:00", "2025-03-02T01:00:00Z"]) == (
        "2025-03-02T04:00:00Z"
    )
    assert _latest_stamp([None, ""]) is None
