"""HubSpot records → canonical rows (CANONICAL.md): the object descriptors and the normalisers.

Pure: no HTTP, no store.  :data:`OBJECTS` describes every HubSpot CRM object the connector pulls
as data (API name, canonical table, properties, the last-modified property, the associations the
row needs, the normaliser) and is fed to one generic extract loop in ``connectors.hubspot``.

The mapping reverses how a canonical org is represented in a HubSpot portal (and how the sandbox
seeds one, ``sandbox/hubspot/seed.py``):

* owners → reps (archived owner = inactive rep); teams (``/settings/v3/users/teams``,
  ``parentTeamId``) → teams.  HubSpot has no manager field: a rep's manager is the lead of their
  team (its first member by owner id), or, for a team lead, the lead of the parent team
  (``derive_managers`` setting; off → ``manager_id`` empty).
* contacts → leads (``hs_lead_status`` → status, lifecycle-stage dates → qualified / converted,
  custom ``disqualified_date``; the converted opportunity is the associated deal).
* companies → accounts; deals → opportunities (stage labels from the pipelines API, ``dealtype``
  + ``is_renewal`` → type); calls / emails / meetings / tasks → activities (associations to
  contact, company and deal); goal targets → quotas; currency exchange rates → fx_rates.

Every property name that is a customer's choice (custom fields for cost, recurring amount,
customer status, lead qualification, renewal flag...) lives in :class:`HubSpotMapping` and can be
overridden from settings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Literal

from connectors.errors import ConfigError, SkippableRecord

Row = dict[str, str | None]
Raw = Mapping[str, Any]

__all__ = [
    "OBJECTS",
    "HubSpotMapping",
    "HubSpotObject",
    "MappingContext",
    "NormaliseError",
    "fx_rows",
    "owner_rows",
    "team_rows",
]


class NormaliseError(SkippableRecord):
    """A record that cannot become a canonical row (it is quarantined with this reason)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, crm="hubspot")


# Call outcome GUIDs of HubSpot's default call dispositions ("hs_call_disposition"; calls guide,
# developers.hubspot.com/docs/api/crm/calls, and GET /calling/v1/dispositions).
CALL_DISPOSITIONS: dict[str, str] = {
    "f240bbac-87c9-4f6e-bf70-924b57d47db7": "connected",
    "73a0d17f-1163-4015-bdd5-ec830791da20": "no_answer",
    "b2cf5968-551e-4856-9783-52b3da59a7d0": "voicemail",
    "a4c4c377-d246-4b32-a13b-75a56a4cd0ff": "live_message",
    "9d9162e7-6cf3-4944-bf63-4dff82258764": "busy",
    "17b47fee-58de-441e-a44c-c6300d46f273": "wrong_number",
}


@dataclass(frozen=True)
class HubSpotMapping:
    """Which HubSpot properties and values mean what; every field is overridable in settings."""

    # hs_lead_status value → canonical lead status.
    lead_status: Mapping[str, str] = field(
        default_factory=lambda: {
            "NEW": "Open",
            "IN_PROGRESS": "Working",
            "CONNECTED": "Qualified",
            "UNQUALIFIED": "Unqualified",
            "OPEN_DEAL": "Converted",
        }
    )
    lead_source_property: str = "lead_source"
    # First non-empty property wins: a custom date, then HubSpot's lifecycle-stage date.
    qualified_properties: tuple[str, ...] = (
        "qualified_date",
        "hs_lifecyclestage_salesqualifiedlead_date",
    )
    converted_properties: tuple[str, ...] = ("hs_lifecyclestage_opportunity_date",)
    disqualified_properties: tuple[str, ...] = ("disqualified_date",)
    score_property: str = "hubspotscore"
    customer_status_property: str | None = "customer_status"
    # dealtype value → canonical type; a deal flagged by ``renewal_property`` is a renewal.
    deal_types: Mapping[str, str] = field(
        default_factory=lambda: {"newbusiness": "new_business", "existingbusiness": "upsell"}
    )
    renewal_property: str | None = "is_renewal"
    cost_property: str | None = "cost"
    recurring_property: str | None = "recurring_monthly_amount"
    contract_start_property: str | None = "contract_start_date"
    contract_end_property: str | None = "contract_end_date"
    competitor_property: str | None = "competitor"
    competitor_price_property: str | None = "competitor_price"
    # Call outcome GUID → canonical outcome (``connected`` is what counts as a conversation).
    call_outcomes: Mapping[str, str] = field(default_factory=lambda: dict(CALL_DISPOSITIONS))
    derive_managers: bool = True

    @classmethod
    def from_settings(cls, overrides: Mapping[str, Any]) -> HubSpotMapping:
        """Defaults with ``overrides`` applied; an unknown key is an error naming it."""
        base = cls()
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(
                f"unknown setting mappings.hubspot.{unknown[0]}; known: {', '.join(sorted(known))}",
                crm="hubspot",
            )
        conv: dict[str, Any] = {}
        for k, v in overrides.items():
            conv[k] = tuple(v) if isinstance(getattr(base, k), tuple) else v
        return replace(base, **conv)


@dataclass(frozen=True)
class MappingContext:
    """What normalisers need beyond the record: portal metadata pulled before the objects."""

    mapping: HubSpotMapping
    company_currency: str
    # deal stage id → (label, is_closed, probability) over every deals pipeline.
    stages: Mapping[str, tuple[str, bool, float | None]] = field(default_factory=dict)
    # user id (userIdIncludingInactive) → owner id, for goal targets assigned to users.
    owner_of_user: Mapping[str, str] = field(default_factory=dict)


Normaliser = Callable[[Raw, MappingContext], Row]


@dataclass(frozen=True)
class HubSpotObject:
    """One CRM object type as data for the generic extract loop.

    ``name`` is the API object type (``/crm/v3/objects/{name}``) and the key of its raw records
    and cursor in the store; ``associations`` are the object types whose ids the row needs (read
    with the records on full pulls, through the v4 batch API on incremental ones).
    """

    name: str
    table: str
    properties: tuple[str, ...]
    modified_property: str
    normalise: Normaliser
    associations: tuple[str, ...] = ()
    created_property: str = "hs_createdate"
    optional: bool = False  # e.g. goal targets: skipped (not failed) when the portal lacks them

    def all_properties(self, mapping: HubSpotMapping) -> list[str]:
        extra = [p for p in _mapped_properties(self.table, mapping) if p]
        return sorted({*self.properties, *extra, self.modified_property, self.created_property})


# -- value helpers -------------------------------------------------------------------------------
def _prop(raw: Raw, name: str | None) -> str | None:
    if not name:
        return None
    v = (raw.get("properties") or {}).get(name)
    if v is None:
        return None
    s = str(v).strip()
    return s or None


def _first(raw: Raw, names: Sequence[str]) -> str | None:
    for n in names:
        v = _prop(raw, n)
        if v is not None:
            return v
    return None


def parse_instant(text: str | None, what: str) -> dt.datetime | None:
    """HubSpot datetime text (ISO with ``Z`` or epoch milliseconds) → aware UTC datetime."""
    if text is None:
        return None
    try:
        if text.isdigit():
            return dt.datetime.fromtimestamp(int(text) / 1000, tz=dt.UTC)
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)
    except (ValueError, OverflowError) as exc:
        raise NormaliseError(f"{what}: not a datetime: {text!r}") from exc


def ms_of(text: str | None) -> int | None:
    """Epoch milliseconds of a HubSpot datetime (None when empty)."""
    t = parse_instant(text, "timestamp")
    return None if t is None else round(t.timestamp() * 1000)


def ts_text(text: str | None, what: str) -> str | None:
    """Canonical timestamp text (``2025-03-01T09:30:00Z``, whole seconds as in CANONICAL.md)."""
    if text is not None and len(text) == 24 and text[10] == "T" and text[19:20] + text[23] == ".Z":
        # HubSpot's own form (``2025-03-01T09:30:00.123Z``, UTC): its seconds, once checked.
        try:
            dt.datetime.fromisoformat(text[:19])
            if text[20:23].isdigit():
                return text[:19] + "Z"
        except ValueError:
            pass  # the general path names the error
    t = parse_instant(text, what)
    # Four-digit years always: strftime's %Y writes year 1 as "1" on glibc.
    return None if t is None else f"{t.year:04d}" + t.strftime("-%m-%dT%H:%M:%SZ")


def date_text(text: str | None, what: str) -> str | None:
    """Canonical date text from a HubSpot date (``YYYY-MM-DD``) or datetime (its UTC date)."""
    if text is None:
        return None
    if len(text) == 10:
        try:
            return dt.date.fromisoformat(text).isoformat()
        except ValueError as exc:
            raise NormaliseError(f"{what}: not a date: {text!r}") from exc
    t = parse_instant(text, what)
    assert t is not None
    return t.date().isoformat()


def num_text(text: str | None, what: str, places: int = 2) -> str | None:
    """Decimal text with ``places`` decimals (exact: Decimal, never float)."""
    if text is None:
        return None
    try:
        d = Decimal(text)
    except InvalidOperation as exc:
        raise NormaliseError(f"{what}: not a number: {text!r}") from exc
    if not d.is_finite():
        raise NormaliseError(f"{what}: not a finite number: {text!r}")
    return str(d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN))


def bool_text(text: str | None) -> str | None:
    if text is None:
        return None
    return "true" if text.lower() == "true" else "false"


def _assoc_ids(raw: Raw, to_type: str) -> list[str]:
    """Associated record ids of one type, smallest first (deterministic when several)."""
    block = (raw.get("associations") or {}).get(to_type) or {}
    ids = {str(a["id"]) for a in block.get("results") or [] if a.get("id") is not None}
    return sorted(ids, key=lambda x: (len(x), x))


def _one_assoc(raw: Raw, to_type: str) -> str | None:
    ids = _assoc_ids(raw, to_type)
    return ids[0] if ids else None


def _rid(raw: Raw) -> str:
    rid = raw.get("id")
    if rid is None or str(rid) == "":
        raise NormaliseError("record has no id")
    return str(rid)


# -- normalisers ---------------------------------------------------------------------------------
def lead_row(raw: Raw, ctx: MappingContext) -> Row:
    m = ctx.mapping
    created = ts_text(_prop(raw, "createdate") or raw.get("createdAt"), "createdate")
    if created is None:
        raise NormaliseError("contact has no createdate")
    status_raw = _prop(raw, "hs_lead_status")
    score = _prop(raw, m.score_property)
    return {
        "id": _rid(raw),
        "owner_id": _prop(raw, "hubspot_owner_id"),
        "created_at": created,
        "source": _prop(raw, m.lead_source_property),
        "status": None if status_raw is None else m.lead_status.get(status_raw, status_raw),
        "qualified_at": ts_text(_first(raw, m.qualified_properties), "qualified date"),
        "converted_at": ts_text(_first(raw, m.converted_properties), "converted date"),
        "converted_account_id": _prop(raw, "associatedcompanyid") or _one_assoc(raw, "companies"),
        "converted_opportunity_id": _one_assoc(raw, "deals"),
        "disqualified_at": ts_text(_first(raw, m.disqualified_properties), "disqualified date"),
        "score": num_text(score, m.score_property),
    }


def account_row(raw: Raw, ctx: MappingContext) -> Row:
    m = ctx.mapping
    status = _prop(raw, m.customer_status_property)
    if status is not None and status not in ("customer", "former_customer", "prospect"):
        raise NormaliseError(f"customer status {status!r} is not customer/former_customer/prospect")
    return {
        "id": _rid(raw),
        "name": _prop(raw, "name"),
        "owner_id": _prop(raw, "hubspot_owner_id"),
        "created_at": ts_text(_prop(raw, "createdate") or raw.get("createdAt"), "createdate"),
        "customer_status": status,
    }


def opportunity_row(raw: Raw, ctx: MappingContext) -> Row:
    m = ctx.mapping
    created = ts_text(_prop(raw, "createdate") or raw.get("createdAt"), "createdate")
    if created is None:
        raise NormaliseError("deal has no createdate")
    stage_id = _prop(raw, "dealstage")
    label, stage_closed, prob = ctx.stages.get(stage_id or "", (stage_id, False, None))
    closed_raw = _prop(raw, "hs_is_closed")
    won_raw = _prop(raw, "hs_is_closed_won")
    for name, flag in (("hs_is_closed", closed_raw), ("hs_is_closed_won", won_raw)):
        # Booleans travel as "true"/"false" (properties guide); anything else is not a boolean,
        # and reading it as false would count a closed deal as open.
        if flag is not None and flag.lower() not in ("true", "false"):
            raise NormaliseError(f"{name}: not a boolean: {flag[:40]!r}")
    is_closed = closed_raw.lower() == "true" if closed_raw is not None else stage_closed
    if won_raw is not None:
        is_won = won_raw.lower() == "true"
    else:
        is_won = stage_closed and prob is not None and prob >= 1.0
    is_won = is_won and is_closed  # CANONICAL: is_won only when is_closed
    dealtype = _prop(raw, "dealtype")
    if dealtype is None:
        kind = "other"
    elif _prop(raw, m.renewal_property) == "true":
        kind = "renewal"
    else:
        kind = m.deal_types.get(dealtype, "other")
    return {
        "id": _rid(raw),
        "owner_id": _prop(raw, "hubspot_owner_id"),
        "account_id": _one_assoc(raw, "companies"),
        "lead_id": _one_assoc(raw, "contacts"),
        "created_at": created,
        "close_date": date_text(_prop(raw, "closedate"), "closedate"),
        "stage": label,
        "is_closed": "true" if is_closed else "false",
        "is_won": "true" if is_won else "false",
        "amount": num_text(_prop(raw, "amount"), "amount"),
        "currency": _prop(raw, "deal_currency_code") or ctx.company_currency,
        "type": kind,
        "cost": num_text(_prop(raw, m.cost_property), "cost"),
        "recurring_monthly_amount": num_text(_prop(raw, m.recurring_property), "recurring"),
        "contract_start": date_text(_prop(raw, m.contract_start_property), "contract start"),
        "contract_end": date_text(_prop(raw, m.contract_end_property), "contract end"),
        "competitor": _prop(raw, m.competitor_property),
        "competitor_price": num_text(_prop(raw, m.competitor_price_property), "competitor price"),
    }


def _activity(
    raw: Raw, kind: str, direction: str | None, outcome: str | None, minutes: str | None
) -> Row:
    occurred = ts_text(_prop(raw, "hs_timestamp"), "hs_timestamp")
    if occurred is None:
        raise NormaliseError(f"{kind} has no hs_timestamp")
    return {
        "id": _rid(raw),
        "owner_id": _prop(raw, "hubspot_owner_id"),
        "kind": kind,
        "direction": direction,
        "outcome": outcome,
        "occurred_at": occurred,
        "duration_minutes": minutes,
        "lead_id": _one_assoc(raw, "contacts"),
        "account_id": _one_assoc(raw, "companies"),
        "opportunity_id": _one_assoc(raw, "deals"),
    }


def _minutes(ms: Decimal) -> str:
    return str((ms / Decimal(60_000)).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN))


def call_row(raw: Raw, ctx: MappingContext) -> Row:
    d = _prop(raw, "hs_call_direction")
    disp = _prop(raw, "hs_call_disposition")
    outcome = None if disp is None else ctx.mapping.call_outcomes.get(disp, disp)
    dur = _prop(raw, "hs_call_duration")  # milliseconds (calls guide)
    minutes = None
    if dur is not None:
        try:
            minutes = _minutes(Decimal(dur))
        except InvalidOperation as exc:
            raise NormaliseError(f"hs_call_duration: not a number: {dur!r}") from exc
    # hs_call_direction is INBOUND or OUTBOUND (calls guide); any other value is no canonical
    # direction (CANONICAL.md: outbound, inbound or empty), as on the Salesforce side.
    direction = d.lower() if d is not None and d.lower() in ("inbound", "outbound") else None
    return _activity(raw, "call", direction, outcome, minutes)


def email_row(raw: Raw, ctx: MappingContext) -> Row:
    d = _prop(raw, "hs_email_direction")
    # EMAIL and FORWARDED_EMAIL are sent by the rep; INCOMING_EMAIL is a reply (emails guide).
    direction = None if d is None else ("inbound" if d == "INCOMING_EMAIL" else "outbound")
    return _activity(raw, "email", direction, None, None)


def meeting_row(raw: Raw, ctx: MappingContext) -> Row:
    start = ms_of(_prop(raw, "hs_meeting_start_time"))
    end = ms_of(_prop(raw, "hs_meeting_end_time"))
    minutes = None if start is None or end is None else _minutes(Decimal(end - start))
    out = _prop(raw, "hs_meeting_outcome")
    outcome = None if out is None else ("connected" if out == "COMPLETED" else out.lower())
    return _activity(raw, "meeting", None, outcome, minutes)


def task_row(raw: Raw, ctx: MappingContext) -> Row:
    return _activity(raw, "task", None, None, None)


def quota_row(raw: Raw, ctx: MappingContext) -> Row:
    user = _prop(raw, "hs_assignee_user_id")
    owner = ctx.owner_of_user.get(user or "")
    if owner is None:
        raise NormaliseError(f"goal target assignee user {user!r} is not a known owner")
    start = parse_instant(_prop(raw, "hs_start_datetime"), "hs_start_datetime")
    end = parse_instant(_prop(raw, "hs_end_datetime"), "hs_end_datetime")
    if start is None or end is None:
        raise NormaliseError("goal target without start or end")
    # hs_end_datetime is the period's last millisecond; canonical period_end is exclusive.
    end_excl = end + dt.timedelta(milliseconds=1)
    amount = num_text(_prop(raw, "hs_target_amount"), "hs_target_amount")
    if amount is None:
        raise NormaliseError("goal target without hs_target_amount")
    return {
        "owner_id": owner,
        "period_start": start.date().isoformat(),
        "period_end": end_excl.date().isoformat(),
        "amount": amount,
        "currency": _prop(raw, "hs_currency") or ctx.company_currency,
    }


_ACTIVITY_PROPS = ("hs_timestamp", "hubspot_owner_id")
_ENGAGEMENT_ASSOC = ("contacts", "companies", "deals")

OBJECTS: tuple[HubSpotObject, ...] = (
    HubSpotObject(
        "companies",
        "accounts",
        ("name", "hubspot_owner_id", "createdate"),
        "hs_lastmodifieddate",
        account_row,
        created_property="createdate",
    ),
    HubSpotObject(
        "contacts",
        "leads",
        (
            "hubspot_owner_id",
            "createdate",
            "hs_lead_status",
            "lifecyclestage",
            "associatedcompanyid",
        ),
        # Contacts carry ``lastmodifieddate``, not ``hs_lastmodifieddate`` (amp-labs/connectors#45,
        # supaglue-labs/supaglue#478): searching the wrong one silently returns nothing new.
        "lastmodifieddate",
        lead_row,
        associations=("deals",),
        created_property="createdate",
    ),
    HubSpotObject(
        "deals",
        "opportunities",
        (
            "hubspot_owner_id",
            "createdate",
            "closedate",
            "dealstage",
            "pipeline",
            "amount",
            "deal_currency_code",
            "dealtype",
            "hs_is_closed",
            "hs_is_closed_won",
        ),
        "hs_lastmodifieddate",
        opportunity_row,
        associations=("companies", "contacts"),
        created_property="createdate",
    ),
    HubSpotObject(
        "calls",
        "activities",
        (*_ACTIVITY_PROPS, "hs_call_direction", "hs_call_disposition", "hs_call_duration"),
        "hs_lastmodifieddate",
        call_row,
        associations=_ENGAGEMENT_ASSOC,
    ),
    HubSpotObject(
        "emails",
        "activities",
        (*_ACTIVITY_PROPS, "hs_email_direction"),
        "hs_lastmodifieddate",
        email_row,
        associations=_ENGAGEMENT_ASSOC,
    ),
    HubSpotObject(
        "meetings",
        "activities",
        (*_ACTIVITY_PROPS, "hs_meeting_start_time", "hs_meeting_end_time", "hs_meeting_outcome"),
        "hs_lastmodifieddate",
        meeting_row,
        associations=_ENGAGEMENT_ASSOC,
    ),
    HubSpotObject(
        "tasks",
        "activities",
        _ACTIVITY_PROPS,
        "hs_lastmodifieddate",
        task_row,
        associations=_ENGAGEMENT_ASSOC,
    ),
    HubSpotObject(
        # Goal targets (0-74) through the objects API; property names per the goals guide
        # (developers.hubspot.com/docs/api/crm/goals; the names are unverified).
        "goal_targets",
        "quotas",
        (
            "hs_target_amount",
            "hs_start_datetime",
            "hs_end_datetime",
            "hs_assignee_user_id",
            "hs_currency",
            "hs_goal_name",
        ),
        "hs_lastmodifieddate",
        quota_row,
        optional=True,
    ),
)


def _mapped_properties(table: str, m: HubSpotMapping) -> list[str | None]:
    if table == "leads":
        return [
            m.lead_source_property,
            m.score_property,
            *m.qualified_properties,
            *m.converted_properties,
            *m.disqualified_properties,
        ]
    if table == "accounts":
        return [m.customer_status_property]
    if table == "opportunities":
        return [
            m.renewal_property,
            m.cost_property,
            m.recurring_property,
            m.contract_start_property,
            m.contract_end_property,
            m.competitor_property,
            m.competitor_price_property,
        ]
    return []


# -- owners, teams, exchange rates (settings APIs, not CRM objects) ------------------------------
def team_rows(teams: Sequence[Raw]) -> list[tuple[str, Row]]:
    rows: list[tuple[str, Row]] = []
    for t in teams:
        tid = str(t["id"])
        parent = t.get("parentTeamId")
        parent_id = None if parent in (None, "") else str(parent)
        rows.append((tid, {"id": tid, "name": t.get("name"), "parent_id": parent_id}))
    return rows


def _primary_team(owner: Raw) -> str | None:
    teams = owner.get("teams") or []
    for t in teams:
        if t.get("primary"):
            return str(t["id"])
    return str(teams[0]["id"]) if teams else None


def owner_rows(
    owners: Sequence[Raw], teams: Sequence[Raw], mapping: HubSpotMapping
) -> list[tuple[str, Row]]:
    """Owners (active and archived) → reps; managers derived from the team tree (module doc)."""
    team_of = {str(o["id"]): _primary_team(o) for o in owners}
    parent = {
        str(t["id"]): (str(t["parentTeamId"]) if t.get("parentTeamId") else None) for t in teams
    }
    members: dict[str, list[str]] = {}
    for oid, tid in team_of.items():
        if tid is not None:
            members.setdefault(tid, []).append(oid)
    lead_cache: dict[str, str | None] = {}

    def lead(tid: str | None, depth: int = 0) -> str | None:
        if tid is None or depth > 64:
            return None
        if tid not in lead_cache:
            ms = members.get(tid)
            # A team without members borrows its parent's lead.
            lead_cache[tid] = (
                min(ms, key=lambda x: (len(x), x)) if ms else lead(parent.get(tid), depth + 1)
            )
        return lead_cache[tid]

    rows: list[tuple[str, Row]] = []
    for o in owners:
        oid = str(o["id"])
        name = " ".join(p for p in (o.get("firstName") or "", o.get("lastName") or "") if p)
        tid = team_of[oid]
        manager: str | None = None
        if mapping.derive_managers and tid is not None:
            own_lead = lead(tid)
            manager = own_lead if own_lead != oid else lead(parent.get(tid))
        rows.append(
            (
                oid,
                {
                    "id": oid,
                    "name": name or None,
                    "email": o.get("email"),
                    "team_id": tid,
                    "manager_id": manager,
                    "is_active": "false" if o.get("archived") else "true",
                },
            )
        )
    return rows


def canonical_rate(conversion_rate: float | str) -> str:
    """HubSpot's ``conversionRate`` (company currency per unit) → canonical rate text (units per
    unit of the corporate currency, 6 decimals).

    HubSpot stores the inverse with 6 decimals, so ``1 / rate`` is off by up to ~1e-6; among
    6-decimal candidates next to it, prefer one whose inverse rounds back to the stored value.
    """
    c = Decimal(str(conversion_rate))
    if c <= 0:
        raise NormaliseError(f"conversionRate must be positive, got {conversion_rate!r}")
    q = Decimal("0.000001")
    guess = (1 / c).quantize(q, rounding=ROUND_HALF_EVEN)
    text = str(conversion_rate)
    places = len(text.split(".", 1)[1]) if "." in text else 0
    cq = Decimal(1).scaleb(-places)
    for step in (0, -1, 1, -2, 2):
        cand = guess + step * q
        if cand > 0 and (1 / cand).quantize(cq, rounding=ROUND_HALF_EVEN) == c:
            return str(cand)
    return str(guess)


def fx_rows(rates: Sequence[Raw], company_currency: str) -> list[tuple[str, Row]]:
    rows: list[tuple[str, Row]] = []
    for r in rates:
        if str(r.get("toCurrencyCode") or company_currency) != company_currency:
            continue  # only rates into the company currency are the corporate rates
        start = date_text(str(r.get("effectiveAt") or "") or None, "effectiveAt")
        if start is None:
            continue
        rows.append(
            (
                str(r["id"]),
                {
                    "currency": str(r["fromCurrencyCode"]),
                    "start_date": start,
                    "rate": canonical_rate(r["conversionRate"]),
                },
            )
        )
    return rows


def stage_map(pipelines: Sequence[Raw]) -> dict[str, tuple[str, bool, float | None]]:
    """Deal stage id → (label, closed, probability) from the pipelines API (metadata values are
    strings: ``{"isClosed": "true", "probability": "1.0"}``, pipelines guide)."""
    out: dict[str, tuple[str, bool, float | None]] = {}
    for p in pipelines:
        for s in p.get("stages") or []:
            meta = s.get("metadata") or {}
            try:
                prob: float | None = float(meta["probability"])
            except (KeyError, TypeError, ValueError):
                prob = None
            out[str(s["id"])] = (
                str(s.get("label") or s["id"]),
                str(meta.get("isClosed", "false")).lower() == "true",
                prob,
            )
    return out


def owner_of_user(owners: Sequence[Raw]) -> dict[str, str]:
    out: dict[str, str] = {}
    for o in owners:
        uid = o.get("userIdIncludingInactive") or o.get("userId")
        if uid is not None:
            out[str(uid)] = str(o["id"])
    return out


ObjectName = Literal[
    "companies", "contacts", "deals", "calls", "emails", "meetings", "tasks", "goal_targets"
]
