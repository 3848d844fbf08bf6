"""Validating and normalising property values on create/update, and the properties HubSpot
derives on write (lifecycle stage dates on contacts; closed/won flags and home-currency amount on
deals).  Invalid values fail the whole request with HubSpot's "Property values were not valid"
400, whose message embeds a JSON list of per-property errors (as the real API does)."""

from __future__ import annotations

import json
from typing import Any

from sandbox.hubspot.errors import HubSpotError
from sandbox.hubspot.portal import PORTAL_ID, Portal
from sandbox.hubspot.store import ObjectTable, Row
from sandbox.hubspot.values import (
    date_from_ms,
    iso_from_ms,
    now_ms,
    parse_ms,
    parse_number,
    to_text,
)


def _err(name: str, message: str, code: str) -> dict[str, Any]:
    return {
        "isValid": False,
        "message": message,
        "error": code,
        "name": name,
        "localizedErrorMessage": message,
        "portalId": PORTAL_ID,
    }


def required_error(name: str) -> dict[str, Any]:
    return _err(name, f"{name} is required", "REQUIRED_PROPERTY")


def invalid(errors: list[dict[str, Any]]) -> HubSpotError:
    return HubSpotError(
        400,
        "Property values were not valid: " + json.dumps(errors, separators=(",", ":")),
        "VALIDATION_ERROR",
    )


def normalize(
    table: ObjectTable,
    props: Any,
    portal: Portal,
    *,
    trusted: bool = False,
) -> tuple[dict[str, str | None], list[dict[str, Any]]]:
    """Input property values → stored strings, plus per-property errors.

    ``trusted`` (control-plane edits, "as a CRM user would") may set read-only properties.
    """
    if props is None:
        return {}, []
    if not isinstance(props, dict):
        return {}, [_err("properties", "properties must be an object", "INVALID_INPUT")]
    out: dict[str, str | None] = {}
    errors: list[dict[str, Any]] = []
    reg = table.registry
    for name, raw in props.items():
        p = reg.get(name)
        if p is None and name not in table.virtual:
            errors.append(_err(name, f'Property "{name}" does not exist', "PROPERTY_DOESNT_EXIST"))
            continue
        if not trusted and (
            name in ("hs_object_id", table.ot.modified_property)
            or (p is not None and p.read_only_value and name != table.ot.created_property)
        ):
            errors.append(
                _err(
                    name,
                    f'"{name}" is a read only property; its value cannot be set.',
                    "READ_ONLY_VALUE",
                )
            )
            continue
        text = to_text(raw)
        if text is None or text == "":
            out[name] = None  # an empty string clears the value
            continue
        kind = p.type if p is not None else "datetime"
        if kind == "number":
            n = parse_number(text)
            if n is None:
                errors.append(_err(name, f"{text} was not a valid number.", "INVALID_INTEGER"))
                continue
            # HubSpot stores numbers canonically: "1500.50" reads back as "1500.5", "2.0" as "2".
            text = str(int(n)) if n.is_integer() and abs(n) < 1e15 else repr(n)
        elif kind in ("datetime", "date"):
            ms = parse_ms(text)
            if ms is None:
                errors.append(_err(name, f"{text} was not a valid long.", "INVALID_LONG"))
                continue
            if kind == "date" and ms % 86_400_000 != 0:
                errors.append(
                    _err(
                        name,
                        f"{text} is at {iso_from_ms(ms)}, which is not midnight!",
                        "INVALID_DATE",
                    )
                )
                continue
            text = date_from_ms(ms) if kind == "date" else iso_from_ms(ms)
        elif kind == "bool":
            low = text.lower()
            if low not in ("true", "false"):
                errors.append(_err(name, f"{text} was not a valid boolean.", "INVALID_BOOLEAN"))
                continue
            text = low
        elif kind == "enumeration" and p is not None and p.options and name != "hubspot_owner_id":
            allowed = p.option_values
            values = text.split(";") if p.field_type == "checkbox" else [text]
            bad = [v for v in values if v not in allowed]
            if bad:
                errors.append(
                    _err(
                        name,
                        f"{bad[0]} was not one of the allowed options: "
                        + ", ".join(
                            f"[label: {o['label']!r}, value: {o['value']!r}]" for o in p.options
                        ),
                        "INVALID_OPTION",
                    )
                )
                continue
        out[name] = text
    return out, errors


def derive(
    portal: Portal,
    table: ObjectTable,
    before: dict[str, str | None] | None,
    changes: dict[str, str | None],
) -> dict[str, str | None]:
    """Properties HubSpot computes from ``changes`` (merged into them by the caller)."""
    extra: dict[str, str | None] = {}
    now = iso_from_ms(now_ms())
    old = before or {}
    if table.ot.name == "contacts" and "lifecyclestage" in changes:
        new_stage, old_stage = changes["lifecyclestage"], old.get("lifecyclestage")
        if new_stage and new_stage != old_stage:
            for prop in (f"hs_lifecyclestage_{new_stage}_date", f"hs_v2_date_entered_{new_stage}"):
                if not old.get(prop):
                    extra[prop] = now
            if old_stage:
                extra[f"hs_v2_date_exited_{old_stage}"] = now
    if table.ot.name == "deals":
        if changes.get("dealstage"):
            stage = portal.stage(changes["dealstage"] or "")
            if stage is not None:
                closed = stage["metadata"]["isClosed"] == "true"
                prob = stage["metadata"]["probability"]
                extra["hs_is_closed"] = "true" if closed else "false"
                extra["hs_is_closed_won"] = "true" if closed and float(prob) >= 1.0 else "false"
                extra["hs_deal_stage_probability"] = prob
        if "amount" in changes or "deal_currency_code" in changes:
            amount = changes.get("amount", old.get("amount"))
            currency = changes.get("deal_currency_code", old.get("deal_currency_code"))
            rate = portal.fx_rate_to_home(currency)
            n = parse_number(amount) if amount else None
            extra["amount_in_home_currency"] = (
                None if n is None or rate is None else f"{round(n * rate, 2):.2f}"
            )
    return extra


def validate_stage(
    portal: Portal, table: ObjectTable, props: dict[str, str | None]
) -> list[dict[str, Any]]:
    if table.ot.name != "deals" or not props.get("dealstage"):
        return []
    if portal.stage(props["dealstage"] or "") is None:
        v = props["dealstage"]
        return [_err("dealstage", f"{v} was not one of the allowed options", "INVALID_OPTION")]
    return []


def apply_create(portal: Portal, table: ObjectTable, props: dict[str, str | None]) -> Row:
    changes = dict(props)
    if table.ot.name == "deals":
        changes.setdefault("pipeline", "default")
    changes.update(derive(portal, table, None, changes))
    created_override = changes.pop(table.ot.created_property, None)
    at = parse_ms(created_override) if created_override else None
    row = table.create(changes)
    if at is not None:
        row.created_ms = at
    return row


def apply_update(
    portal: Portal, table: ObjectTable, rid: int, props: dict[str, str | None]
) -> Row | None:
    current = table.get(rid)
    if current is None:
        return None
    changes = dict(props)
    changes.update(derive(portal, table, current.props, changes))
    created_override = changes.pop(table.ot.created_property, None)
    row = table.update(rid, changes)
    if row is not None and created_override:
        ms = parse_ms(created_override)
        if ms is not None:
            row.created_ms = ms
    return row
