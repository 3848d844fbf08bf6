"""Settings: one TOML file loaded once into typed, frozen objects.

An error names the key and the file. Unknown keys are errors too, so a typo never silently falls
back to a default.

Sections: ``[kpi]``, ``[mappings.<crm>]``, ``[connections.NAME]`` (``crm = "salesforce"`` or
``"hubspot"``, URLs, client id; every secret — ``client_secret``, ``refresh_token``,
``access_token``, ``private_key`` — from ``<key>_env`` (an environment variable) or
``<key>_file`` (a file; for JWT the key file is ``private_key_file``); a literal value is accepted
only because ``kpisync sandbox serve --write-settings`` writes throwaway sandbox credentials),
``[store] url`` (default ``sqlite:///kpisync.db``; ``schema``: a PostgreSQL schema), ``[sync]``
(defaults of every connection's sync options, which a connection may override) and ``[service]``
(``kpisync run``: schedule, locks, logs, metrics; :class:`ServiceSettings`). Any scalar key can be
overridden from the environment as ``KPISYNC__SECTION__KEY`` (e.g. ``KPISYNC__STORE__URL``,
``KPISYNC__SERVICE__METRICS_PORT=9464``); the value is read as a TOML value, else as a string.
Secrets are :class:`Secret` values that never print. Which file: ``--settings FILE``, else
``$KPISYNC_SETTINGS``, else ``./settings.toml`` (:func:`settings_path`).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from connectors.config import ConnectionConfig, Secret, SyncOptions
from kpis.settings import KpiSettings, KpiSettingsError, PeriodType
from writeback.settings import WritebackSettings

__all__ = [
    "ConnectionConfig",
    "Secret",
    "ServiceSettings",
    "Settings",
    "SettingsError",
    "StoreSettings",
    "SyncOptions",
    "load_settings",
    "parse_settings",
    "settings_path",
]

DEFAULT_SETTINGS_FILE = Path("settings.toml")
SETTINGS_ENV = "KPISYNC_SETTINGS"
DEFAULT_STORE_URL = "sqlite:///kpisync.db"


class SettingsError(ValueError):
    """A setting is missing, unknown or invalid; the message names the key and the file."""

    def __init__(self, path: Path | None, key: str, problem: str) -> None:
        where = f"{path}: " if path else ""
        super().__init__(f"{where}{key}: {problem}")
        self.path = path
        self.key = key


@dataclass(frozen=True)
class StoreSettings:
    url: str = DEFAULT_STORE_URL
    #: PostgreSQL only: the schema every table lives in (created by the first migration).
    schema: str | None = None


@dataclass(frozen=True)
class ServiceSettings:
    """``[service]``: how ``kpisync run`` schedules, locks and reports (see settings.example)."""

    #: Seconds from the start of one cycle of a connection to the start of the next.
    interval_s: int = 900
    #: A crontab line (``"*/15 * * * *"``), in the ``[kpi] timezone``; replaces ``interval_s``.
    cron: str = ""
    #: Port of the ``/metrics`` and ``/healthz`` HTTP endpoint (0 = off), and its address.
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    log_format: str = "human"
    log_level: str = "INFO"
    #: While another process holds a connection, check this often whether it finished or died.
    lock_retry_s: float = 5.0
    #: How long ``kpisync run --once`` waits for a connection another process is running.
    lock_wait_s: float = 600.0


@dataclass(frozen=True)
class Settings:
    kpi: KpiSettings = field(default_factory=KpiSettings)
    mappings: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: Path | None = None
    connections: dict[str, ConnectionConfig] = field(default_factory=dict)
    store: StoreSettings = field(default_factory=StoreSettings)
    sync: SyncOptions = field(default_factory=SyncOptions)
    writeback: WritebackSettings = field(default_factory=WritebackSettings)
    service: ServiceSettings = field(default_factory=ServiceSettings)

    def connection(self, name: str | None) -> list[ConnectionConfig]:
        """The named connection, or every connection when ``name`` is None."""
        if name is None:
            return list(self.connections.values())
        if name not in self.connections:
            known = ", ".join(self.connections) or "none"
            raise SettingsError(self.source, f"connections.{name}",
                                f"no such connection (configured: {known})")  # fmt: skip
        return [self.connections[name]]


_KPI_TYPES: dict[str, tuple[type, ...]] = {
    "corporate_currency": (str,),
    "timezone": (str,),
    "period": (str,),
    "seasonality": (list,),
    "monthly_growth_pct": (int, float),
    "quota_hit_insight_pct": (int, float),
    "over_contact_per_day": (int,),
}
_TOP_LEVEL = {"kpi", "mappings", "connections", "service", "writeback", "store", "sync"}


def _kpi_settings(path: Path | None, table: dict[str, Any]) -> KpiSettings:
    values: dict[str, Any] = {}
    for key, value in table.items():
        expected = _KPI_TYPES.get(key)
        if expected is None:
            raise SettingsError(path, f"kpi.{key}", "unknown setting")
        if isinstance(value, bool) or not isinstance(value, expected):
            names = " or ".join(t.__name__ for t in expected)
            raise SettingsError(path, f"kpi.{key}", f"expected {names}, got {value!r}")
        values[key] = value
    if "period" in values:
        try:
            values["period"] = PeriodType(values["period"])
        except ValueError:
            raise SettingsError(path, "kpi.period", "expected month, quarter or year") from None
    if "seasonality" in values:
        weights = values["seasonality"]
        if any(isinstance(w, bool) or not isinstance(w, int | float) for w in weights):
            raise SettingsError(path, "kpi.seasonality", "expected 12 numbers (Jan..Dec)")
        values["seasonality"] = tuple(float(w) for w in weights)
    if "corporate_currency" in values:
        values["corporate_currency"] = values["corporate_currency"].upper()
    try:
        return KpiSettings(**values)
    except KpiSettingsError as exc:
        key, _, problem = str(exc).partition(": ")
        raise SettingsError(path, key, problem) from None


def _table(path: Path | None, key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SettingsError(path, key, "expected a table")
    return value


_SYNC_FIELDS = {f.name: f for f in fields(SyncOptions)}
#: A HubSpot pull has 12 objects (8 once the metadata is in): more threads gain nothing.
MAX_HUBSPOT_CONCURRENCY = 16


def _sync_options(
    path: Path | None, prefix: str, table: Mapping[str, Any], base: SyncOptions
) -> SyncOptions:
    values: dict[str, Any] = {}
    for key, value in table.items():
        default = getattr(base, key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SettingsError(path, f"{prefix}.{key}", f"expected a number, got {value!r}")
        if isinstance(default, int) and not isinstance(value, int):
            raise SettingsError(path, f"{prefix}.{key}", f"expected an integer, got {value!r}")
        if value < 0:
            raise SettingsError(path, f"{prefix}.{key}", "must not be negative")
        values[key] = float(value) if isinstance(default, float) else value
    if "budget_share" in values and not 0 < values["budget_share"] <= 1:
        raise SettingsError(path, f"{prefix}.budget_share", "expected a share in (0, 1]")
    if values.get("retry_attempts") == 0:
        raise SettingsError(path, f"{prefix}.retry_attempts", "expected at least 1")
    if not 1 <= values.get("hubspot_concurrency", 1) <= MAX_HUBSPOT_CONCURRENCY:
        raise SettingsError(path, f"{prefix}.hubspot_concurrency",
                            f"expected 1 to {MAX_HUBSPOT_CONCURRENCY} objects at once")  # fmt: skip
    return replace(base, **values)


_SECRETS = ("client_secret", "refresh_token", "access_token", "private_key")
_TEXT_KEYS = {"instance_url", "token_url", "base_url", "auth", "client_id", "username",
              "jwt_audience", "api_version", "ca_bundle"}  # fmt: skip
_AUTHS = {
    "salesforce": ("client_credentials", "jwt", "refresh_token"),
    "hubspot": ("private_app", "refresh_token"),
}


def _secret(
    path: Path | None, prefix: str, name: str, table: Mapping[str, Any], env: Mapping[str, str]
) -> Secret | None:
    given = [k for k in (name, f"{name}_env", f"{name}_file") if k in table]
    if len(given) > 1:
        raise SettingsError(path, f"{prefix}.{given[1]}", f"give only one of {', '.join(given)}")
    if not given:
        return None
    key = given[0]
    value = table[key]
    if not isinstance(value, str) or not value:
        raise SettingsError(path, f"{prefix}.{key}", "expected a non-empty string")
    if key.endswith("_env"):
        if value not in env:
            raise SettingsError(path, f"{prefix}.{key}", f"environment variable {value} is not set")
        return Secret(env[value])
    if key.endswith("_file"):
        file = Path(value).expanduser()
        if not file.is_absolute() and path is not None:
            file = path.parent / file
        try:
            return Secret(file.read_text(encoding="utf-8").strip())
        except OSError as exc:
            problem = f"cannot read {file}: {exc.strerror}"
            raise SettingsError(path, f"{prefix}.{key}", problem) from None
    return Secret(value)


def _connection(
    path: Path | None, name: str, table: Mapping[str, Any], sync: SyncOptions,
    env: Mapping[str, str],
) -> ConnectionConfig:  # fmt: skip
    prefix = f"connections.{name}"
    crm = table.get("crm")
    if crm not in _AUTHS:
        raise SettingsError(path, f"{prefix}.crm", f"expected salesforce or hubspot, got {crm!r}")
    secret_keys = {f"{s}{sfx}" for s in _SECRETS for sfx in ("", "_env", "_file")}
    texts: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for key, value in table.items():
        if key == "crm" or key in secret_keys:
            continue
        if key in _SYNC_FIELDS:
            options[key] = value
        elif key in _TEXT_KEYS:
            if not isinstance(value, str):
                raise SettingsError(path, f"{prefix}.{key}", f"expected a string, got {value!r}")
            texts[key] = value
        else:
            raise SettingsError(path, f"{prefix}.{key}", "unknown setting")
    secrets = {s: _secret(path, prefix, s, table, env) for s in _SECRETS}
    auth = texts.get("auth")
    if auth is None:
        if crm == "hubspot":
            auth = "refresh_token" if secrets["refresh_token"] else "private_app"
        elif secrets["private_key"] is not None:
            auth = "jwt"
        elif secrets["refresh_token"] is not None and secrets["client_secret"] is None:
            auth = "refresh_token"
        else:
            auth = "client_credentials"
    if auth not in _AUTHS[crm]:
        raise SettingsError(path, f"{prefix}.auth", f"expected one of {', '.join(_AUTHS[crm])}")
    texts["auth"] = auth
    needs: dict[str, tuple[str, ...]] = {
        "client_credentials": ("client_id", "client_secret"),
        "jwt": ("client_id", "username", "private_key"),
        "refresh_token": ("client_id", "refresh_token"),
        "private_app": ("access_token",),
    }
    for key in needs[auth]:
        if texts.get(key) is None and secrets.get(key) is None:
            hint = f" (or {key}_env / {key}_file)" if key in _SECRETS else ""
            raise SettingsError(path, f"{prefix}.{key}", f"required for auth {auth!r}{hint}")
    if crm == "salesforce" and not (texts.get("instance_url") or texts.get("token_url")):
        raise SettingsError(path, f"{prefix}.instance_url", "required for Salesforce")
    for key in ("instance_url", "token_url", "base_url"):
        url = texts.get(key)
        if url is not None and not url.startswith("https://"):
            raise SettingsError(path, f"{prefix}.{key}", "expected an https:// URL")
    if texts.get("ca_bundle") and path is not None and not Path(texts["ca_bundle"]).is_absolute():
        texts["ca_bundle"] = str(path.parent / texts["ca_bundle"])
    given_secrets: dict[str, Any] = {k: val for k, val in secrets.items() if val is not None}
    return ConnectionConfig(
        name=name, crm=crm, options=_sync_options(path, prefix, options, sync),
        **texts, **given_secrets,
    )  # fmt: skip


_API_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,79}")


def _mappings(path: Path | None, mappings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from connectors.salesforce_map import SalesforceMapping

    for crm, table in mappings.items():
        if crm not in _AUTHS:
            raise SettingsError(
                path, f"mappings.{crm}", "unknown CRM; expected salesforce or hubspot"
            )
        _table(path, f"mappings.{crm}", table)
        if crm == "hubspot":
            _hubspot_mapping(path, table)
        if crm == "salesforce":
            try:
                SalesforceMapping.from_settings(table)
            except ValueError as exc:
                key, _, problem = str(exc).partition(": ")
                raise SettingsError(path, f"mappings.salesforce.{key}", problem) from None
            for key, value in table.items():
                # Field names are written into SOQL as they are (a literal is escaped, a name
                # cannot be): only API names pass — letters, digits and underscores, starting
                # with a letter ("Field Name" rules in the Salesforce custom field help).
                if key.endswith("_field") and not _API_NAME.fullmatch(value):
                    raise SettingsError(path, f"mappings.salesforce.{key}",
                                        f"expected a field API name, got {value!r}")  # fmt: skip
    return mappings


def _hubspot_mapping(path: Path | None, table: Mapping[str, Any]) -> None:
    """``[mappings.hubspot]``: known keys with values of the default's type (checked here, so a
    typo stops every command before any store or CRM is touched)."""
    from connectors.hubspot_mapping import HubSpotMapping

    base = HubSpotMapping()
    for key, value in table.items():
        where = f"mappings.hubspot.{key}"
        if key not in HubSpotMapping.__dataclass_fields__:
            raise SettingsError(path, where, "unknown mapping key")
        default = getattr(base, key)
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, tuple):
            ok = isinstance(value, list) and all(isinstance(x, str) for x in value)
        elif isinstance(default, Mapping):
            ok = isinstance(value, dict) and all(isinstance(x, str) for x in value.values())
        else:  # a property name (str, or None for "not mapped")
            ok = isinstance(value, str)
        if not ok:
            kind = type(default).__name__ if default is not None else "str"
            raise SettingsError(path, where, f"expected {kind}, got {value!r}")


def _writeback_settings(path: Path | None, table: Mapping[str, Any]) -> WritebackSettings:
    """``[writeback]``: every key checked here, KPI keys against the registry."""
    from writeback.spec import build_spec

    values: dict[str, Any] = {}
    lists = {"user_fields", "assignees", "mapped_fields"}
    for key, value in table.items():
        where = f"writeback.{key}"
        if key == "prefix":
            if not isinstance(value, str) or not re.fullmatch(r"([A-Za-z][A-Za-z0-9]{0,9}_)?",
                                                               value):  # fmt: skip
                raise SettingsError(path, where, "expected letters/digits ending in _, e.g. KS_")
        elif key in lists:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise SettingsError(path, where, "expected a list of strings")
            value = tuple(value)
        elif key in ("max_failures", "lock_retries"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SettingsError(path, where, "expected a non-negative integer")
            if key == "max_failures" and value < 1:
                raise SettingsError(path, where, "expected at least 1")
        elif key == "retry_base_s":
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise SettingsError(path, where, "expected a non-negative number of seconds")
            value = float(value)
        elif key == "targets":
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise SettingsError(path, where, "expected a table of metric = KPI key")
        else:
            raise SettingsError(path, where, "unknown setting")
        values[key] = value
    settings = WritebackSettings(**values)
    try:
        build_spec(settings)
    except ValueError as exc:
        key, _, problem = str(exc).partition(": ")
        raise SettingsError(path, f"writeback.{key}", problem) from None
    return settings


def parse_settings(
    data: dict[str, Any], path: Path | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Check and type a parsed TOML document (``env``: where ``*_env`` secrets are read)."""
    env = os.environ if env is None else env
    for key in data:
        if key not in _TOP_LEVEL:
            raise SettingsError(path, key, "unknown section")
    kpi_table = _table(path, "kpi", data.get("kpi", {}))
    mappings = _mappings(path, _table(path, "mappings", data.get("mappings", {})))
    store_table = _table(path, "store", data.get("store", {}))
    for key in store_table:
        if key not in ("url", "schema"):
            raise SettingsError(path, f"store.{key}", "unknown setting")
    url = store_table.get("url", DEFAULT_STORE_URL)
    if not isinstance(url, str) or not url.startswith(("sqlite:", "postgresql")):
        raise SettingsError(path, "store.url", "expected sqlite:///FILE or postgresql+psycopg://…")
    schema = store_table.get("schema")
    if schema is not None and (not isinstance(schema, str) or not schema.isidentifier()):
        raise SettingsError(path, "store.schema", "expected a name of letters, digits and _")
    if schema is not None and not url.startswith("postgresql"):
        raise SettingsError(path, "store.schema", "only a PostgreSQL store has schemas")
    sync_table = _table(path, "sync", data.get("sync", {}))
    for key in sync_table:
        if key not in _SYNC_FIELDS:
            raise SettingsError(path, f"sync.{key}", "unknown setting")
    sync = _sync_options(path, "sync", sync_table, SyncOptions())
    connections = {
        name: _connection(path, name, _table(path, f"connections.{name}", table), sync, env)
        for name, table in _table(path, "connections", data.get("connections", {})).items()
    }
    writeback = _writeback_settings(path, _table(path, "writeback", data.get("writeback", {})))
    return Settings(
        kpi=_kpi_settings(path, kpi_table), mappings=mappings, source=path,
        connections=connections, store=StoreSettings(url, schema), sync=sync,
        writeback=writeback, service=_service_settings(path, _table(path, "service",
                                                                    data.get("service", {}))),
    )  # fmt: skip


_SERVICE_TYPES: dict[str, tuple[type, ...]] = {
    "interval_s": (int,), "cron": (str,), "metrics_port": (int,), "metrics_host": (str,),
    "log_format": (str,), "log_level": (str,), "lock_retry_s": (int, float),
    "lock_wait_s": (int, float),
}  # fmt: skip


def _service_settings(path: Path | None, table: Mapping[str, Any]) -> ServiceSettings:
    """``[service]``: every key checked here (the crontab line by APScheduler itself)."""
    values: dict[str, Any] = {}
    for key, value in table.items():
        where = f"service.{key}"
        expected = _SERVICE_TYPES.get(key)
        if expected is None:
            raise SettingsError(path, where, "unknown setting")
        if isinstance(value, bool) or not isinstance(value, expected):
            names = " or ".join(t.__name__ for t in expected)
            raise SettingsError(path, where, f"expected {names}, got {value!r}")
        if isinstance(value, int | float):
            if value < 0:
                raise SettingsError(path, where, "must not be negative")
            if key in ("lock_retry_s", "lock_wait_s"):
                value = float(value)
        values[key] = value
    if values.get("interval_s") == 0:
        raise SettingsError(path, "service.interval_s", "expected at least 1 second")
    if values.get("lock_retry_s") == 0:
        raise SettingsError(path, "service.lock_retry_s", "expected more than 0 seconds")
    if values.get("metrics_port", 0) > 65535:
        raise SettingsError(path, "service.metrics_port", "expected a port, 0..65535")
    if values.get("log_format", "human") not in ("human", "json"):
        raise SettingsError(path, "service.log_format", "expected human or json")
    level = values.get("log_level", "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(path, "service.log_level", "expected DEBUG, INFO, WARNING or ERROR")
    values["log_level"] = level
    if values.get("cron"):
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(values["cron"], timezone="UTC")
        except ValueError as exc:
            raise SettingsError(path, "service.cron", f"not a crontab line: {exc}") from None
    return ServiceSettings(**values)


ENV_PREFIX = "KPISYNC__"


def _env_overrides(
    data: dict[str, Any], path: Path | None, env: Mapping[str, str]
) -> dict[str, str]:
    """Apply ``KPISYNC__SECTION__KEY=value`` variables over the TOML document (in place);
    returns dotted key -> the variable that set it."""
    origins: dict[str, str] = {}
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX):
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__")]
        if len(keys) < 2 or not all(keys):
            raise SettingsError(path, f"${name}", "expected KPISYNC__SECTION__KEY")
        try:
            value: Any = tomllib.loads(f"v = {env[name]}")["v"]
        except tomllib.TOMLDecodeError:
            value = env[name]
        table = data
        for i, key in enumerate(keys[:-1]):
            inner = table.setdefault(key, {})
            if not isinstance(inner, dict):
                raise SettingsError(path, ".".join(keys[: i + 1]), f"${name}: not a table")
            table = inner
        table[keys[-1]] = value
        origins[".".join(keys)] = name
    return origins


def settings_path(option: Path | None, env: Mapping[str, str] | None = None) -> Path:
    """``--settings FILE``, else ``$KPISYNC_SETTINGS``, else ``./settings.toml``."""
    env = os.environ if env is None else env
    if option is not None:
        return option
    if env.get(SETTINGS_ENV):
        return Path(env[SETTINGS_ENV])
    return DEFAULT_SETTINGS_FILE


def load_settings(path: Path, env: Mapping[str, str] | None = None) -> Settings:
    """Read and check a settings file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError(path, "(file)", "not found") from None
    except UnicodeDecodeError as exc:
        problem = f"not UTF-8 text (byte {exc.start}); a settings file is TOML"
        raise SettingsError(path, "(file)", problem) from None
    except OSError as exc:  # a directory, no permission, a symlink loop...
        raise SettingsError(path, "(file)", f"cannot read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(path, "(syntax)", str(exc)) from None
    origins = _env_overrides(data, path, os.environ if env is None else env)
    try:
        return parse_settings(data, path, env)
    except SettingsError as exc:
        if exc.key in origins:
            problem = str(exc).partition(f"{exc.key}: ")[2]
            raise SettingsError(path, exc.key, f"{problem} (set by ${origins[exc.key]})") from None
        raise
