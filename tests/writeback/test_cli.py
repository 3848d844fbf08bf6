"""``kpisync install | check | writeback | status | uninstall`` against the Salesforce sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import app
from service.settings import SettingsError, parse_settings
from tests.connectors.conftest import SfOrg


def _kpisync(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_commands_end_to_end(sf_org: SfOrg, tmp_path: Path) -> None:
    i = sf_org.info
    settings = tmp_path / "settings.toml"
    settings.write_text(f"""
[kpi]
period = "year"
[store]
url = "sqlite:///{tmp_path / "store.db"}"
[sync]
retry_base_s = 0.01
[writeback]
prefix = "KS_"
user_fields = ["revenue"]
retry_base_s = 0
[connections.sf]
crm = "salesforce"
instance_url = "{i["instance_url"]}"
token_url = "{i["token_url"]}"
client_id = "{i["client_id"]}"
client_secret = "{i["client_secret"]}"
ca_bundle = "{sf_org.server.ca_bundle}"
""")
    s = ("--settings", str(settings))
    assert _kpisync("sync", *s)[0] == 0
    assert _kpisync("compute", *s, "--as-of", "2024-11-15")[0] == 0
    code, out = _kpisync("check", *s)
    assert code == 1 and "missing     salesforce object KS_KPI_Snapshot__c" in out
    code, out = _kpisync("install", *s, "--dry-run")
    assert code == 0 and "create      salesforce field User.KS_KPI_Revenue__c" in out
    code, out = _kpisync("install", *s)
    assert code == 0 and "create      salesforce report" in out
    code, out = _kpisync("check", *s)
    assert code == 0 and "sf: 0 problem(s)" in out, out
    code, out = _kpisync("writeback", *s, "--dry-run", "--today", "2024-11-15")
    assert code == 0 and "plan KS_KPI_Snapshot__c:" in out and "sf: 0 API calls" in out
    code, out = _kpisync("writeback", *s, "--today", "2024-11-15")
    assert code == 0 and "0 refused" in out
    code, out = _kpisync("writeback", *s, "--today", "2024-11-15")
    assert code == 0 and "sf: 0 API calls" in out
    code, out = _kpisync("status", *s, "--format", "json")
    assert code == 0 and json.loads(out)["sf"]["writeback_parked"] == {}
    code, out = _kpisync("uninstall", *s)
    assert code == 0 and "remove      salesforce object KS_KPI_Snapshot__c" in out
    assert _kpisync("check", *s)[0] == 1


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"user_fields": ["no_such_kpi"]}, "writeback.user_fields"),
        ({"user_fields": ["roi"]}, "writeback.user_fields"),
        ({"prefix": "bad prefix"}, "writeback.prefix"),
        ({"max_failures": 0}, "writeback.max_failures"),
        ({"targets": {"revenue": "nope"}}, "writeback.targets"),
        ({"colour": "red"}, "writeback.colour"),
    ],
)
def test_settings_errors_name_the_key(table: dict[str, object], key: str) -> None:
    with pytest.raises(SettingsError) as exc:
        parse_settings({"writeback": table})
    assert exc.value.key == key


def test_example_settings_parse() -> None:
    import tomllib

    root = Path(__file__).resolve().parents[2]
    data = tomllib.loads((root / "settings.example.toml").read_text())
    assert parse_settings(data).writeback.max_failures == 5
