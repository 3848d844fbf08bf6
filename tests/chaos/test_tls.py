"""Certificate verification cannot be switched off.

Two sandbox deployments of the same org run side by side: the *trusted* one, whose CA is the
connection's ``ca_bundle``, and an *impostor* with a certificate from a CA nobody configured.
Every client kpisync builds — the Salesforce ``requests`` session behind simple-salesforce (OAuth
token call and REST calls; Bulk API 2.0 and writeback use the same session) and the
hubspot-api-client configurations (private-app calls and the OAuth refresh) — must refuse the
impostor before sending a single request (its request log stays empty), whatever the settings
say and whatever ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` hold.
"""

from __future__ import annotations

import tomllib
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
import requests

from connectors.config import ConnectionConfig, SyncOptions
from connectors.errors import ConfigError, ConnectorError
from connectors.salesforce import SalesforceClient
from sandbox.server import SandboxServer
from service.settings import SettingsError, load_settings, parse_settings
from writeback.hubspot import hubspot_http

#: One attempt: a refused certificate is not worth the retry schedule in a test.
FAST = SyncOptions(retry_attempts=1, retry_base_s=0.0, rate_per_s=0)


@dataclass
class Deployments:
    trusted: SandboxServer
    impostor: SandboxServer

    def info(self, server: SandboxServer, crm: str) -> dict[str, Any]:
        info: dict[str, Any] = server.apps[crm].connection_info()
        return info


@pytest.fixture(scope="module")
def deployments() -> Iterator[Deployments]:
    from sandbox.generator import generate_org, spec_for
    from sandbox.hubspot import create_app
    from sandbox.salesforce import SalesforceApp

    org = generate_org(spec_for(20, 0))
    servers = [SandboxServer([SalesforceApp.from_org(org), create_app(org=org)]) for _ in "ab"]
    with servers[0] as trusted, servers[1] as impostor:
        yield Deployments(trusted, impostor)


def _config(d: Deployments, crm: str, server: SandboxServer, **kw: Any) -> ConnectionConfig:
    """A connection to ``server`` with the *trusted* deployment's credentials and CA."""
    from connectors.config import Secret

    info = d.info(d.trusted, crm)
    base = d.info(server, crm)
    if crm == "salesforce":
        cfg = ConnectionConfig(
            name="sf",
            crm="salesforce",
            instance_url=base["instance_url"],
            token_url=base["token_url"],
            client_id=info["client_id"],
            client_secret=Secret(info["client_secret"]),
            ca_bundle=d.trusted.ca_bundle,
            options=FAST,
        )
    else:
        cfg = ConnectionConfig(
            name="hs",
            crm="hubspot",
            base_url=base["base_url"],
            auth="private_app",
            access_token=Secret(info["access_token"]),
            ca_bundle=d.trusted.ca_bundle,
            options=FAST,
        )
    return replace(cfg, **kw)


def _oauth(d: Deployments, server: SandboxServer) -> ConnectionConfig:
    from connectors.config import Secret

    info = d.info(d.trusted, "hubspot")
    return _config(
        d,
        "hubspot",
        server,
        auth="refresh_token",
        access_token=None,
        client_id=info["client_id"],
        client_secret=Secret(info["client_secret"]),
        refresh_token=Secret(info["refresh_token"]),
    )


def _sf_query(cfg: ConnectionConfig) -> Any:
    return SalesforceClient(cfg).query("SELECT Id FROM User", obj="User")


def _hs_teams(cfg: ConnectionConfig) -> Any:
    return hubspot_http(cfg).call("settings.users.teams_api.get_all", obj="teams")


def _sf_api_behind_a_trusted_login(d: Deployments) -> ConnectionConfig:
    """Log in at the trusted token endpoint, then call an untrusted instance."""
    trusted = d.info(d.trusted, "salesforce")
    return _config(d, "salesforce", d.impostor, token_url=trusted["token_url"])


#: Each way kpisync reaches a CRM, as (config for a server, the call).
PATHS: dict[
    str,
    tuple[
        Callable[[Deployments, SandboxServer], ConnectionConfig], Callable[[ConnectionConfig], Any]
    ],
] = {
    "salesforce login and query": (lambda d, s: _config(d, "salesforce", s), _sf_query),
    "hubspot private app": (lambda d, s: _config(d, "hubspot", s), _hs_teams),
    "hubspot OAuth refresh": (_oauth, _hs_teams),
}


def _refused(d: Deployments, call: Callable[[], Any]) -> str:
    """Run ``call``; it must fail on the certificate before the impostor sees any request.
    Returns the whole exception chain as text."""
    d.impostor.reset()
    with pytest.raises(ConnectorError) as info:
        call()
    # Not retried: no retry can make an untrusted certificate trusted.
    assert isinstance(info.value, ConfigError), repr(info.value)
    assert "TLS certificate is not trusted" in str(info.value)
    chain = "".join(traceback.format_exception(info.value))
    assert d.impostor.requests_log() == [], "a request reached the untrusted server"
    return chain


@pytest.mark.parametrize("path", sorted(PATHS))
def test_an_untrusted_certificate_is_refused(deployments: Deployments, path: str) -> None:
    make, call = PATHS[path]
    assert call(make(deployments, deployments.trusted))  # the same call works when trusted
    _refused(deployments, lambda: call(make(deployments, deployments.impostor)))


def test_api_calls_after_a_trusted_login_are_verified_too(deployments: Deployments) -> None:
    cfg = _sf_api_behind_a_trusted_login(deployments)
    chain = _refused(deployments, lambda: _sf_query(cfg))
    assert "token request failed" not in chain  # the login itself went through


@pytest.mark.parametrize(
    "line",
    [
        "verify = false",
        "verify_ssl = false",
        "ssl_verify = false",
        "tls_verify = false",
        "insecure = true",
        "insecure_skip_verify = true",
        "ca_bundle = false",
        "ca_bundle = 0",
        'cert_reqs = "none"',
    ],
)
def test_no_setting_turns_verification_off(deployments: Deployments, line: str) -> None:
    for crm, url_key in (("salesforce", "instance_url"), ("hubspot", "base_url")):
        url = deployments.info(deployments.impostor, crm)[url_key]
        text = (
            f'[connections.x]\ncrm = "{crm}"\n{url_key} = "{url}"\nclient_id = "c"\n'
            f'client_secret = "s"\naccess_token = "t"\n{line}\n'
        )
        key = line.split(" = ")[0]
        with pytest.raises(SettingsError, match=rf"connections\.x\.{key}: "):
            parse_settings(tomllib.loads(text), env={})
    with pytest.raises(SettingsError, match=r"sync\.verify: unknown setting"):
        parse_settings({"sync": {"verify": False}}, env={})


def test_an_environment_override_cannot_turn_it_off(
    deployments: Deployments, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = deployments.info(deployments.impostor, "salesforce")["instance_url"]
    file = tmp_path / "settings.toml"
    file.write_text(
        f'[connections.x]\ncrm = "salesforce"\ninstance_url = "{url}"\n'
        'client_id = "c"\nclient_secret = "s"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("KPISYNC__CONNECTIONS__X__VERIFY", "false")
    with pytest.raises(SettingsError, match=r"connections\.x\.verify: unknown setting"):
        load_settings(file)


@pytest.mark.parametrize("path", sorted(PATHS))
def test_an_empty_ca_bundle_means_the_system_store_not_no_verification(
    deployments: Deployments, path: str
) -> None:
    make, call = PATHS[path]
    cfg = replace(make(deployments, deployments.impostor), ca_bundle="")
    _refused(deployments, lambda: call(cfg))


ENV_TRICKS: dict[str, Callable[[Deployments], dict[str, str]]] = {
    "CURL_CA_BUNDLE empty": lambda d: {"CURL_CA_BUNDLE": ""},
    "REQUESTS_CA_BUNDLE empty": lambda d: {"REQUESTS_CA_BUNDLE": ""},
    "both empty": lambda d: {"CURL_CA_BUNDLE": "", "REQUESTS_CA_BUNDLE": ""},
    "REQUESTS_CA_BUNDLE = impostor CA": lambda d: {"REQUESTS_CA_BUNDLE": d.impostor.ca_bundle},
    "CURL_CA_BUNDLE = impostor CA": lambda d: {"CURL_CA_BUNDLE": d.impostor.ca_bundle},
}


@pytest.mark.parametrize("trick", sorted(ENV_TRICKS))
@pytest.mark.parametrize("path", sorted(PATHS))
def test_ca_bundle_environment_variables_change_nothing(
    deployments: Deployments, path: str, trick: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENV_TRICKS[trick](deployments).items():
        monkeypatch.setenv(name, value)
    make, call = PATHS[path]
    _refused(deployments, lambda: call(make(deployments, deployments.impostor)))
    _refused(
        deployments, lambda: call(replace(make(deployments, deployments.impostor), ca_bundle=None))
    )


def test_the_environment_trick_is_real_for_a_default_session(
    deployments: Deployments, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: a plain ``requests.Session`` (``trust_env`` on) configured to trust only the
    trusted CA does reach the impostor once ``REQUESTS_CA_BUNDLE`` names the impostor's CA
    (psf/requests#3829) — which is why kpisync's session turns ``trust_env`` off."""
    url = deployments.info(deployments.impostor, "salesforce")["instance_url"]
    health = f"{url}/__sandbox/health"
    session = requests.Session()
    session.verify = deployments.trusted.ca_bundle
    with pytest.raises(requests.exceptions.SSLError):
        session.get(health, timeout=10)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", deployments.impostor.ca_bundle)
    assert session.get(health, timeout=10).status_code == 200
    assert (
        SalesforceClient(_config(deployments, "salesforce", deployments.impostor)).session.trust_env
        is False
    )
