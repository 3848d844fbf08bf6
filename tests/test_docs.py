"""The generated docs must match the registry they are generated from."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from kpis.docs import render_markdown
from kpis.registry import catalogue
from service.cli import app

ROOT = Path(__file__).resolve().parents[1]


def test_docs_kpis_md_is_current() -> None:
    committed = (ROOT / "docs" / "kpis.md").read_text(encoding="utf-8")
    assert committed == render_markdown(), (
        "docs/kpis.md is stale: run `kpisync kpis --format markdown > docs/kpis.md`"
    )


def test_every_kpi_is_documented_with_formula_and_seeds() -> None:
    text = render_markdown()
    for key, definition in catalogue().items():
        assert f"`{key}`" in text
        assert definition.formula and definition.description, key
        assert definition.records, key


def test_cli_lists_kpis_as_json() -> None:
    result = CliRunner().invoke(app, ["kpis", "--format", "json"])
    assert result.exit_code == 0, result.output
    listed = {item["key"] for item in json.loads(result.stdout)}
    assert listed == set(catalogue())
    # Every catalogue row of KPIS.md except the two reasoned out is here.
    for key in ("revenue", "win_rate", "churn_rate", "clv", "cac", "pipeline_velocity", "roi"):
        assert key in listed
