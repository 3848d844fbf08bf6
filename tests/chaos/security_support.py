"""Helpers of the security tests: sandbox CRMs that accept credentials the test made up, the
settings that hand those credentials to kpisync the documented ways, and the forms in which a
client could spell a secret out (raw, URL-encoded, base64) for the leak searches."""

from __future__ import annotations

import base64
import secrets
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from connectors.config import ConnectionConfig, Secret, SyncOptions
from sandbox.server import SandboxServer

#: One attempt, no waits, no pacing: the security tests inject no faults.
FAST = SyncOptions(retry_attempts=1, retry_base_s=0.0, rate_per_s=0)

#: Opportunities in the generated org: a small org keeps every command of the suite fast.
ORG_SIZE = 100


def make_secret(label: str) -> str:
    """A unique secret with characters that URL encoding changes (``/``, ``+``, ``=``, ``&``),
    so its encoded forms differ from the raw one and are searched for separately."""
    return f"{label}/{secrets.token_hex(12)}+{secrets.token_urlsafe(9)}=&"


@dataclass(frozen=True)
class Credentials:
    """Every secret of one test module: the ones the sandbox accepts and wrong ones."""

    sf_client_secret: str
    hs_private_app_token: str
    hs_client_secret: str
    hs_refresh_token: str
    pg_password: str
    pg_env_password: str
    wrong_sf_client_secret: str
    wrong_hs_private_app_token: str
    wrong_hs_refresh_token: str

    @classmethod
    def generate(cls) -> Credentials:
        return cls(**{f.name: make_secret(f.name.replace("_", "-")) for f in fields(cls)})

    def values(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def build_server(creds: Credentials, size: int = ORG_SIZE) -> tuple[SandboxServer, str]:
    """Both sandbox CRMs over one generated org, accepting ``creds`` (not started); and the
    org's corporate currency."""
    from sandbox.generator import generate_org, spec_for
    from sandbox.hubspot import create_app
    from sandbox.salesforce import SalesforceApp

    org = generate_org(spec_for(size, 0))
    sf = SalesforceApp.from_org(org, client_secret=creds.sf_client_secret)
    hs = create_app(org=org, access_token=creds.hs_private_app_token)
    hs.auth.config.client_secret = creds.hs_client_secret
    hs.auth.config.refresh_token = creds.hs_refresh_token
    hs.auth.reset()  # registers the refresh token above
    return SandboxServer([sf, hs]), org.spec.corporate_currency


def issued_tokens(server: SandboxServer) -> list[str]:
    """Access tokens the sandbox CRMs handed out so far (Salesforce sessions, HubSpot OAuth
    access tokens): secrets too, though no test chose them."""
    sf: Any = server.apps["salesforce"]
    hs: Any = server.apps["hubspot"]
    with sf.auth._lock:
        out = list(sf.auth._sessions)
    with hs.auth._lock:
        out += [t for t, acc in hs.auth._tokens.items() if acc.oauth]
    return out


def toml_str(value: str) -> str:
    import json

    return json.dumps(value)  # a JSON string is a valid TOML basic string


def connection_toml(
    server: SandboxServer, name: str, crm: str, secret_keys: dict[str, str], **extra: str
) -> str:
    """One ``[connections.NAME]`` table for a sandbox CRM; ``secret_keys`` holds the
    ``*_env``/``*_file`` keys (never a secret itself)."""
    info: dict[str, Any] = server.apps[crm].connection_info()
    lines = [f"[connections.{name}]", f"crm = {toml_str(crm)}"]
    if crm == "salesforce":
        lines += [
            f"instance_url = {toml_str(info['instance_url'])}",
            f"token_url = {toml_str(info['token_url'])}",
            f"client_id = {toml_str(info['client_id'])}",
        ]
    else:
        lines.append(f"base_url = {toml_str(info['base_url'])}")
        if "refresh_token_env" in secret_keys or "refresh_token_file" in secret_keys:
            lines.append(f"client_id = {toml_str(info['client_id'])}")
    lines.append(f"ca_bundle = {toml_str(server.ca_bundle)}")
    lines += [f"{k} = {toml_str(v)}" for k, v in {**secret_keys, **extra}.items()]
    return "\n".join(lines) + "\n"


def settings_toml(currency: str, store_url: str, connections: Iterable[str], service: str) -> str:
    return (
        f'[kpi]\ncorporate_currency = {toml_str(currency)}\ntimezone = "UTC"\nperiod = "year"\n\n'
        + "\n".join(connections)
        + f"\n[store]\nurl = {toml_str(store_url)}\n\n"
        "[sync]\nrate_per_s = 0\nretry_attempts = 2\nretry_base_s = 0.05\nretry_cap_s = 0.2\n\n"
        f"[service]\n{service}\n"
    )


def write_secret_file(directory: Path, name: str, value: str) -> Path:
    """A secrets file as an operator would keep it: one value, readable by the owner only."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / name
    path.write_text(value + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def _base64_cores(raw: bytes) -> Iterator[bytes]:
    """The part of base64 text that any string containing ``raw`` encodes to, whatever came
    before it: one form per alignment, without the groups a prefix or suffix would change
    (catches ``Basic base64(client_id:secret)`` as well as ``base64(secret)``)."""
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * shift + raw)
            core = text[4 if shift else 0 : -4]
            if len(core) >= 16:
                yield core


def leak_forms(secret: str) -> list[bytes]:
    """Every spelling of ``secret`` a log, store or answer could carry."""
    raw = secret.encode()
    forms = {
        raw,
        urllib.parse.quote(secret, safe="").encode(),
        urllib.parse.quote_plus(secret).encode(),
        urllib.parse.quote(secret).encode(),
    }
    forms.update(_base64_cores(raw))
    return sorted(forms)


def find_leaks(secrets_by_name: dict[str, str], places: dict[str, bytes]) -> list[str]:
    """``"<secret name> in <place>"`` for every secret form found in a place."""
    found = []
    for name, secret in secrets_by_name.items():
        for form in leak_forms(secret):
            for where, blob in places.items():
                if form in blob:
                    found.append(f"{name} ({form[:12]!r}...) in {where}")
    return found


def sandbox_config(server: SandboxServer, crm: str, name: str) -> ConnectionConfig:
    """A connection to one sandbox CRM with the credentials it issued (HubSpot: private app)."""
    info: dict[str, Any] = server.apps[crm].connection_info()
    if crm == "salesforce":
        return ConnectionConfig(
            name=name,
            crm="salesforce",
            instance_url=info["instance_url"],
            token_url=info["token_url"],
            client_id=info["client_id"],
            client_secret=Secret(info["client_secret"]),
            ca_bundle=server.ca_bundle,
            options=FAST,
        )
    return ConnectionConfig(
        name=name,
        crm="hubspot",
        base_url=info["base_url"],
        auth="private_app",
        access_token=Secret(info["access_token"]),
        ca_bundle=server.ca_bundle,
        options=FAST,
    )
