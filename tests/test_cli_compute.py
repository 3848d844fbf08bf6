"""`kpisync compute --from-csv` as a user runs it: files in, KPI rows, quarantine and errors out."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from sandbox.generator import generate_org, spec_for, write_canonical_csv
from service.cli import app


@pytest.fixture(scope="module")
def org_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("org")
    write_canonical_csv(generate_org(spec_for("small", seed=3)), path)
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_compute_writes_every_kpi_for_every_scope(org_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "kpis.csv"
    code, output = run(
        "compute", "--from-csv", str(org_dir), "--out", str(out), "--as-of", "2024-12-31"
    )
    assert code == 0, output
    values = pl.read_csv(out, infer_schema=False)
    assert values.columns == [
        "metric",
        "scope",
        "subject_id",
        "period_start",
        "period_end",
        "value",
        "unit",
        "numerator",
        "denominator",
        "records",
        "dimension",
    ]
    assert set(values["scope"]) == {"rep", "team", "org"}
    assert values.filter(pl.col("metric") == "revenue")["unit"].unique().to_list() == ["EUR"]
    assert (tmp_path / "kpis.insights.csv").exists()
    assert (tmp_path / "kpis.quarantine.csv").read_text().startswith("table,line,id,reason")


def test_missing_file_is_one_clear_error(org_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "in"
    shutil.copytree(org_dir, broken)
    (broken / "leads.csv").unlink()
    code, output = run("compute", "--from-csv", str(broken), "--out", str(tmp_path / "o.csv"))
    assert code == 2
    assert "leads.csv" in output and "not found" in output
    assert not (tmp_path / "o.csv").exists()


def test_missing_column_names_file_and_column(org_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "in"
    shutil.copytree(org_dir, broken)
    frame = pl.read_csv(broken / "opportunities.csv", infer_schema=False).drop("close_date")
    frame.write_csv(broken / "opportunities.csv")
    code, output = run("compute", "--from-csv", str(broken), "--out", str(tmp_path / "o.csv"))
    assert code == 2
    assert "opportunities.csv" in output and "close_date" in output


def test_bad_rows_are_quarantined_and_the_rest_computes(org_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "in"
    shutil.copytree(org_dir, broken)
    path = broken / "opportunities.csv"
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    fields = list(rows[0])
    rows[0]["close_date"] = "31/12/2024"  # line 2
    rows[1]["currency"] = "XXX"  # line 3
    rows[2]["is_closed"], rows[2]["is_won"] = "false", "true"  # line 4
    rows.append(dict(rows[5]))  # a duplicated id, last line
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "kpis.csv"
    code, output = run(
        "compute", "--from-csv", str(broken), "--out", str(out), "--as-of", "2024-12-31"
    )
    assert code == 0, output
    assert "quarantined 4 rows" in output
    quarantine = pl.read_csv(tmp_path / "kpis.quarantine.csv", infer_schema=False)
    reasons = dict(zip(quarantine["line"].to_list(), quarantine["reason"].to_list(), strict=True))
    assert "close_date" in reasons["2"]
    assert reasons["3"] == "unknown currency XXX"
    assert reasons["4"] == "is_won without is_closed"
    assert reasons[str(len(rows) + 1)].startswith("duplicate id (first on line 7)")
    # The other rows still count.
    revenue = pl.read_csv(out, infer_schema=False).filter(pl.col("metric") == "deals_won")
    assert revenue["value"].cast(pl.Float64).sum() > 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--currency", "EURO"], "kpi.corporate_currency"),
        (["--timezone", "Mars/Olympus"], "kpi.timezone"),
        (["--as-of", "yesterday"], "--as-of"),
        (["--metric", "no_such_kpi"], "no_such_kpi"),
    ],
)
def test_bad_options_name_the_setting(
    org_dir: Path, tmp_path: Path, args: list[str], needle: str
) -> None:
    code, output = run(
        "compute", "--from-csv", str(org_dir), "--out", str(tmp_path / "o.csv"), *args
    )
    assert code == 2
    assert needle in output


def test_settings_file_errors_name_key_and_file(org_dir: Path, tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text('[kpi]\nperiod = "fortnight"\n')
    code, output = run(
        "compute",
        "--from-csv",
        str(org_dir),
        "--out",
        str(tmp_path / "o.csv"),
        "--settings",
        str(settings),
    )
    assert code == 2
    assert "kpi.period" in output and "settings.toml" in output


def test_settings_file_sets_the_period(org_dir: Path, tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text('[kpi]\nperiod = "quarter"\ncorporate_currency = "eur"\n')
    out = tmp_path / "q.csv"
    code, output = run(
        "compute",
        "--from-csv",
        str(org_dir),
        "--out",
        str(out),
        "--settings",
        str(settings),
        "--as-of",
        "2024-12-31",
    )
    assert code == 0, output
    starts = pl.read_csv(out, infer_schema=False)["period_start"].unique().sort().to_list()
    assert starts == ["2024-01-01", "2024-04-01", "2024-07-01", "2024-10-01"]


def test_demo_writes_every_kpi_value_of_both_crms_back(tmp_path: Path) -> None:
    from connectors.store import Store

    out = tmp_path / "demo"
    code, output = run("demo", "--out", str(out))
    assert code == 0, output
    assert "Revenue" in output and "Quota %" in output
    assert (out / "kpis.csv").exists()
    store = Store(f"sqlite:///{out / 'kpisync.db'}")
    try:
        for name, target in (("salesforce", "KPI_Snapshot__c"), ("hubspot", "kpi_snapshot")):
            stored = store.read_kpis(name).height
            assert stored > 1000
            assert store.runs(name, limit=1)[0].outcome == "ok"
            # A fresh CRM: every stored value became one snapshot record.
            written = re.search(rf"{name}: ([0-9,]+) rows to {target}", " ".join(output.split()))
            assert written is not None, output
            assert int(written.group(1).replace(",", "")) == stored
    finally:
        store.close()
