"""The polars engine agrees, row by row, with the plain-Python reference catalogue.

Each case writes an org as canonical CSVs, runs the real CLI (``kpisync compute --from-csv``) and
computes the same catalogue with ``tests/reference`` (stdlib only, written from the spec alone);
the two must produce the same set of rows and the same numbers.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.reference.catalogue import compute_reference
from tests.reference.hand_made import write_hand_made_org

CURRENCY = "EUR"
REL_TOL = 1e-6
ABS_TOL = 0.01
Key = tuple[str, str, str, str, str]

# --------------------------------------------------------------------------------------------
# Engine, comparison
# --------------------------------------------------------------------------------------------


def _kpisync() -> list[str]:
    script = Path(sys.executable).with_name("kpisync")
    if script.exists():
        return [str(script)]
    found = shutil.which("kpisync")
    if found:
        return [found]
    return [sys.executable, "-c", "from service.cli import app; app()"]


def run_engine(
    csv_dir: Path, out: Path, *, period: str, timezone: str, as_of: date
) -> list[dict[str, Any]]:
    """Run ``kpisync compute`` in a subprocess (the real CLI) and read its output rows."""
    cmd = [
        *_kpisync(),
        "compute",
        "--from-csv",
        str(csv_dir),
        "--out",
        str(out),
        "--currency",
        CURRENCY,
        "--timezone",
        timezone,
        "--period",
        period,
        "--as-of",
        as_of.isoformat(),
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, cwd=out.parent, timeout=300, check=False
    )
    if proc.returncode != 0:
        pytest.fail(f"kpisync compute failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    with out.open(newline="", encoding="utf-8") as fh:
        return [
            {
                "metric": r["metric"],
                "scope": r["scope"],
                "subject_id": r["subject_id"],
                "period_start": r["period_start"],
                "period_end": r["period_end"],
                "value": _num(r["value"]),
                "unit": r["unit"],
                "numerator": _num(r["numerator"]),
                "denominator": _num(r["denominator"]),
                "records": int(float(r["records"])) if r["records"] not in ("", None) else None,
                "dimension": r.get("dimension") or None,
            }
            for r in csv.DictReader(fh)
        ]


def _num(text: str | None) -> float | None:
    return None if text is None or text == "" else float(text)


def _key(row: dict[str, Any]) -> Key:
    ps = row["period_start"]
    return (
        row["metric"],
        row["scope"],
        str(row["subject_id"]),
        ps.isoformat() if isinstance(ps, date) else str(ps),
        row["dimension"] or "",
    )


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= max(ABS_TOL, REL_TOL * max(abs(a), abs(b)))


def _differences(ref: dict[str, Any], eng: dict[str, Any]) -> list[str]:
    out = []
    for col in ("value", "numerator", "denominator"):
        if not _close(ref[col], eng[col]):
            out.append(f"{col}: ref={ref[col]!r} engine={eng[col]!r}")
    for col in ("unit", "records"):
        if ref[col] != eng[col]:
            out.append(f"{col}: ref={ref[col]!r} engine={eng[col]!r}")
    pe_ref = ref["period_end"]
    pe_ref = pe_ref.isoformat() if isinstance(pe_ref, date) else str(pe_ref)
    if pe_ref != str(eng["period_end"]):
        out.append(f"period_end: ref={pe_ref} engine={eng['period_end']}")
    return out


def compare(reference: list[dict[str, Any]], engine: list[dict[str, Any]]) -> str:
    """A readable report of every disagreement ('' when the two agree)."""
    ref_by = {_key(r): r for r in reference}
    eng_by = {_key(r): r for r in engine}
    problems: list[str] = []
    per_metric: Counter[str] = Counter()
    dup_ref, dup_eng = len(reference) - len(ref_by), len(engine) - len(eng_by)
    for key in sorted(set(ref_by) | set(eng_by)):
        if key not in eng_by:
            problems.append(f"{key}: missing from engine (ref value={ref_by[key]['value']!r})")
            per_metric[f"{key[0]} (missing from engine)"] += 1
        elif key not in ref_by:
            problems.append(f"{key}: not in reference (engine value={eng_by[key]['value']!r})")
            per_metric[f"{key[0]} (extra in engine)"] += 1
        else:
            diffs = _differences(ref_by[key], eng_by[key])
            if diffs:
                problems.append(f"{key}: " + "; ".join(diffs))
                per_metric[key[0]] += 1
    if not problems and not dup_ref and not dup_eng:
        return ""
    lines = [
        f"{len(problems)} differing rows (reference {len(reference)} rows, engine "
        f"{len(engine)} rows; duplicate keys: reference {dup_ref}, engine {dup_eng})",
        "per metric:",
        *(f"  {m}: {n}" for m, n in sorted(per_metric.items())),
        "first differences (metric, scope, subject, period_start, dimension):",
        *(f"  {p}" for p in problems[:20]),
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated_org(tmp_path_factory: pytest.TempPathFactory) -> Path:
    generator = pytest.importorskip("sandbox.generator")
    out = tmp_path_factory.mktemp("generated_org")
    generator.write_canonical_csv(generator.generate_org(generator.spec_for(3000, seed=7)), out)
    return out


@pytest.fixture(scope="module")
def hand_made_org(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_hand_made_org(tmp_path_factory.mktemp("hand_made_org"))


CASES = [
    pytest.param("generated_org", "month", "UTC", date(2024, 6, 15), id="generated-month-UTC"),
    pytest.param(
        "generated_org",
        "quarter",
        "Europe/Amsterdam",
        date(2024, 6, 15),
        id="generated-quarter-Amsterdam",
    ),
    pytest.param("generated_org", "year", "UTC", date(2024, 6, 15), id="generated-year-UTC"),
    pytest.param(
        "hand_made_org", "month", "Europe/Amsterdam", date(2025, 2, 10), id="hand-made-month"
    ),
]


@pytest.mark.parametrize(("org", "period", "timezone", "as_of"), CASES)
def test_engine_agrees_with_reference(
    org: str,
    period: str,
    timezone: str,
    as_of: date,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    csv_dir: Path = request.getfixturevalue(org)
    reference = compute_reference(
        csv_dir, currency=CURRENCY, timezone=timezone, period=period, as_of=as_of
    )
    assert reference, "the reference produced no rows"
    engine = run_engine(
        csv_dir, tmp_path / "kpis.csv", period=period, timezone=timezone, as_of=as_of
    )
    report = compare(reference, engine)
    if report:
        pytest.fail(report, pytrace=False)
