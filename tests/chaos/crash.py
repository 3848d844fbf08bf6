"""Crash harness: ``kpisync run`` in a child process, killed with SIGKILL at a chosen point, and
images of what a run leaves behind (store and CRM report objects) to compare with an undisturbed
run.

* :class:`Child` — one ``kpisync`` child process, its JSON log in a file; :meth:`Child.kill_at`
  waits for a step of a connection to start (the ``step started`` debug lines of
  ``service.cycle``), sleeps, and sends SIGKILL; :func:`phase_of` reads from the log which step
  was in flight when the process died.
* :func:`store_image` / :func:`crm_image` — the store's canonical tables, raw records, quarantine,
  deletions, KPI values and writeback ledger, and every row of each CRM's KPI report object, as
  plain dictionaries; timestamps, run logs and ids that legitimately differ between two runs are
  left out. :func:`differences` lists what two images disagree on.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from connectors import schema as db
from connectors.store import Store
from kpis.tables import TABLES
from service import journal
from service.cycle import STEPS
from service.settings import Settings
from writeback import ledger
from writeback.spec import SNAPSHOT_COLUMNS, UNHASHED, Kind, build_spec

KPISYNC = str(Path(sys.executable).parent / "kpisync")
NAMES = ("salesforce", "hubspot")

#: Where a kill landed: ``(connection, step)`` while a step ran, else one of these.
STARTUP, BETWEEN = "startup", "between"

#: Raw-record fields the sandbox CRMs stamp with the wall clock when their org is (re)built: two
#: undisturbed runs against a reset sandbox see different values there, nothing else.
VOLATILE_RAW_FIELDS = frozenset(
    {"createdAt", "updatedAt", "archivedAt", "hs_lastmodifieddate", "lastmodifieddate",
     "hs_createdate", "createdate"}
)  # fmt: skip


#: Report-object columns holding numbers (compared as numbers, whatever the CRM's wire type).
NUMBERS = frozenset(c.key for c in SNAPSHOT_COLUMNS if c.kind is Kind.NUMBER)


def child_env(**extra: str) -> dict[str, str]:
    """The test's environment without ``KPISYNC*`` overrides, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPISYNC")}
    env.update(extra)
    return env


class Child:
    """One ``kpisync`` child process; its stdout and stderr go to ``log``."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen([KPISYNC, *args], stdout=out, stderr=subprocess.STDOUT,
                                         env=env or child_env())  # fmt: skip

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (other lines are skipped)."""
        out: list[dict[str, Any]] = []
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut short by the kill
                    continue
        return out

    def text(self, tail: int = 4000) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-tail:]

    def wait_for(self, what: str, seen: Callable[[dict[str, Any]], bool], timeout: float) -> bool:
        """Poll the log until an event satisfies ``seen`` (True) or the process exits (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(seen(e) for e in self.events()):
                return True
            if self.proc.poll() is not None:
                return any(seen(e) for e in self.events())
            time.sleep(0.01)
        self.kill()
        raise AssertionError(f"timed out waiting for {what}; log:\n{self.text()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"kpisync did not finish in {timeout}s; log:\n{self.text()}"
            ) from None


def step_started(connection: str, step: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("connection") == connection and e.get("step") == step


def phase_of(events: Iterable[dict[str, Any]]) -> str | tuple[str, str]:
    """The step in flight at the last event: ``(connection, step)``, or :data:`STARTUP` before
    any cycle, :data:`BETWEEN` after a cycle ended and before the next step started."""
    phase: str | tuple[str, str] = STARTUP
    for e in events:
        if "step" in e and "connection" in e:
            phase = (str(e["connection"]), str(e["step"]))
        elif "outcome" in e and "connection" in e:
            phase = BETWEEN
    return phase


@dataclass
class KillPoint:
    """One planned kill: after ``target``'s step started, wait ``delay_s``; ``hit`` is where the
    process really was when it died (None: it finished first)."""

    target: tuple[str, str]
    delay_s: float
    hit: str | tuple[str, str] | None = None
    exit_code: int | None = None
    #: How long the killed process lived.
    seconds: float = 0.0

    def describe(self) -> str:
        hit = self.hit if isinstance(self.hit, str) else "/".join(self.hit or ("finished first",))
        return f"{'/'.join(self.target)} +{self.delay_s:.2f}s -> {hit} ({self.seconds:.1f}s)"


#: Every step of every connection, in the order a cycle of ``run --once`` reaches them.
WALK = tuple((name, step) for name in NAMES for step in STEPS)


def plan_kills(
    rng: random.Random, count: int, durations: dict[tuple[str, str], float]
) -> list[KillPoint]:
    """``count`` kill points: the first ones walk every step of every connection in cycle order
    (each restart resumes from the checkpoints the previous kill left, so the next kill lands in
    work not done yet), the rest aim at random steps; each at a random delay into the step."""
    points = []
    for i in range(count):
        target = WALK[i] if i < len(WALK) else rng.choice(WALK)
        # Within the first 80 % of the step's reference time: a run a little faster than the
        # reference still dies inside the step aimed at, rather than just after it.
        points.append(KillPoint(target, rng.uniform(0, 0.8 * durations[target])))
    return points


def run_args(settings_file: Path, *extra: str) -> list[str]:
    return ["run", "--once", "--settings", str(settings_file), *extra]


def kill_run(settings_file: Path, log: Path, point: KillPoint, timeout: float = 120) -> None:
    """Start ``kpisync run --once``, kill it at ``point``; fills ``point.hit``/``exit_code``."""
    began = time.monotonic()
    child = Child(run_args(settings_file), log)
    started = child.wait_for(f"{point.target} to start", step_started(*point.target), timeout)
    if started:
        time.sleep(point.delay_s)
    if child.proc.poll() is None:
        child.kill()
        point.hit = phase_of(child.events())
    point.exit_code = child.proc.returncode
    point.seconds = time.monotonic() - began


def reference_durations(store: Store) -> dict[tuple[str, str], float]:
    """Seconds each step of each connection took in the store's last cycle."""
    out: dict[tuple[str, str], float] = {}
    for name in NAMES:
        last = journal.cycles(store, name, 1)[0]
        assert last.outcome == "ok", last
        for step in STEPS:
            out[(name, step)] = last.seconds[step]
    return out


# -- images -------------------------------------------------------------------------------------
Section = dict[Any, Any]


@dataclass
class Image:
    """Named sections of ``key -> value``; ``duplicates`` lists keys seen twice in a section."""

    sections: dict[str, Section] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)

    def add(self, section: str, key: Any, value: Any) -> None:
        rows = self.sections.setdefault(section, {})
        if key in rows:
            self.duplicates.append(f"{section}: {key!r}")
        rows[key] = value


def _num(v: Any) -> Any:
    # 12 significant digits: what writeback hashes, and what survives a CRM round trip.
    return None if v is None else float(f"{float(v):.12g}")


def _masked(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _masked(v) for k, v in data.items() if k not in VOLATILE_RAW_FIELDS}
    if isinstance(data, list):
        return [_masked(v) for v in data]
    return data


def store_image(store: Store, names: Iterable[str] = NAMES) -> Image:
    """Everything the store holds for ``names`` that two equivalent runs agree on."""
    img = Image()
    with store.engine.connect() as conn:
        for name in names:

            def rows(table: sa.Table, name: str = name) -> list[sa.RowMapping]:
                q = sa.select(table).where(table.c.connection == name)
                return list(conn.execute(q).mappings())

            for t in TABLES:
                cols = db.canonical_columns(t)
                for r in rows(db.canonical[t]):
                    img.add(f"{name}/canonical_{t}", r["row_key"], tuple(r[c] for c in cols))
            for r in rows(db.raw_records):
                data = json.dumps(_masked(json.loads(r["data"])), sort_keys=True)
                img.add(f"{name}/raw/{r['object']}", r["record_id"], data)
            for r in rows(db.quarantine):
                img.add(f"{name}/quarantine", (r["object"], r["record_id"]), r["reason"])
            for r in rows(db.deletions):
                img.add(f"{name}/deletions", (r["object"], r["record_id"]), None)
            for r in rows(db.cursors):
                img.add(f"{name}/cursors", r["object"], None)
            for r in rows(db.kpi_values):
                key = (r["metric"], r["scope"], r["subject_id"], r["period_start"], r["dimension"])
                kpi = (r["period_end"], _num(r["value"]), r["unit"], _num(r["numerator"]),
                       _num(r["denominator"]), r["records"])  # fmt: skip
                img.add(f"{name}/kpi_values", key, kpi)
            for r in rows(db.writeback_ledger):
                entry = (r["value_hash"], r["pending_hash"], r["failures"], bool(r["parked"]),
                         r["crm_id"] is not None)  # fmt: skip
                img.add(f"{name}/ledger/{r['target']}", r["row_key"], entry)
            for r in rows(db.writeback_installed):
                img.add(f"{name}/installed", (r["kind"], r["name"]), r["crm"])
    return img


def crm_image(settings: Settings, store: Store, names: Iterable[str] = NAMES) -> Image:
    """Every row of each connection's KPI report object (and the Salesforce User KPI fields),
    read back with the CRM's own client; a key seen twice is a duplicate CRM row."""
    img = Image()
    for name in names:
        ids = crm_ids(settings, store, name, img)
        # The ledger names the CRM record it wrote each row to: that record must exist and carry
        # that key (a ledger ahead of the CRM would skip the row forever).
        for target, entries in ((t, ledger.load(store, name, t)) for t in ids):
            for key, e in entries.items():
                if e.value_hash is not None:
                    img.add(f"{name}/ledger-vs-crm/{target}", key, ids[target].get(key) == e.crm_id)
    return img


def crm_ids(settings: Settings, store: Store, name: str, img: Image) -> dict[str, dict[str, str]]:
    """Fill ``img`` with the connection's CRM rows; returns target -> key -> CRM record id."""
    cfg = settings.connections[name]
    spec = build_spec(settings.writeback)
    cols = [c.key for c in SNAPSHOT_COLUMNS if c.key not in UNHASHED]
    if cfg.crm == "salesforce":
        from connectors.salesforce import SalesforceClient

        sf = SalesforceClient(cfg).sf
        api = {c.key: api for api, c in spec.sf_columns().items()}
        key_field = spec.sf_key_field
        fields = ", ".join(["Id", key_field, *(api[c] for c in cols)])
        ids: dict[str, dict[str, str]] = {spec.sf_object: {}}
        for r in sf.query_all(f"SELECT {fields} FROM {spec.sf_object}")["records"]:
            value = tuple(_num(r[api[c]]) if c in NUMBERS else r[api[c]] for c in cols)
            img.add(f"{name}/crm/{spec.sf_object}", r[key_field], value)
            ids[spec.sf_object][r[key_field]] = r["Id"]
        if spec.user_fields:
            user_fields = [f.name for f in spec.user_fields]
            ids["User"] = {}
            soql = f"SELECT Id, {', '.join(user_fields)} FROM User"
            for r in sf.query_all(soql)["records"]:
                img.add(f"{name}/crm/User", r["Id"], tuple(_num(r[f]) for f in user_fields))
                ids["User"][r["Id"]] = r["Id"]
        return ids
    from hubspot import HubSpot

    assert cfg.access_token is not None
    client = HubSpot(access_token=cfg.access_token.get(), host=cfg.base_url,
                     base_url=cfg.base_url, ssl_ca_cert=cfg.ca_bundle)  # fmt: skip
    object_type = next(i.crm_id for i in ledger.installed(store, name) if i.kind == "schema")
    prop = {c.key: p for p, c in spec.hs_columns().items()}
    key_prop = spec.hs_key_property
    props = [key_prop, *(prop[c] for c in cols)]
    found: dict[str, str] = {}
    after = None
    while True:
        page = client.crm.objects.basic_api.get_page(object_type, limit=100, after=after,
                                                      properties=props)  # fmt: skip
        for rec in page.results:
            p = rec.properties
            value = tuple(_num(p[prop[c]]) if c in NUMBERS and p[prop[c]] else p[prop[c]] or None
                          for c in cols)  # fmt: skip
            img.add(f"{name}/crm/{spec.hs_object}", p[key_prop], value)
            found[p[key_prop]] = str(rec.id)
        if page.paging is None or page.paging.next is None:
            return {spec.hs_object: found}
        after = page.paging.next.after


def differences(reference: Image, got: Image, limit: int = 12) -> list[str]:
    """What ``got`` lacks, adds or holds differently from ``reference`` (at most ``limit``
    examples per section), and every duplicate key of ``got``."""
    out = [f"duplicate {d}" for d in got.duplicates]
    for section in sorted(set(reference.sections) | set(got.sections)):
        want, have = reference.sections.get(section, {}), got.sections.get(section, {})
        lost = [k for k in want if k not in have]
        extra = [k for k in have if k not in want]
        changed = [k for k in want if k in have and want[k] != have[k]]
        if lost:
            out.append(f"{section}: {len(lost)} missing, e.g. {lost[:limit]}")
        if extra:
            out.append(f"{section}: {len(extra)} unexpected, e.g. {extra[:limit]}")
        for k in changed[:limit]:
            out.append(f"{section}: {k!r} is {have[k]!r}, expected {want[k]!r}")
        if len(changed) > limit:
            out.append(f"{section}: ... {len(changed) - limit} more differ")
    return out


def count_rows(image: Image, section_suffix: str) -> int:
    return sum(len(rows) for s, rows in image.sections.items() if s.endswith(section_suffix))


def hit_counts(points: Iterable[KillPoint]) -> Counter[str]:
    """Kills per step (``sync``, ``compute``, ``writeback``, ``startup``, ``between``)."""
    out: Counter[str] = Counter()
    for p in points:
        if p.hit is None:
            out["finished first"] += 1
        else:
            out[p.hit[1] if isinstance(p.hit, tuple) else p.hit] += 1
    return out
