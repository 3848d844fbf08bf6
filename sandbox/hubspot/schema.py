"""Object types and property definitions of the emulated portal, described as data.

Object type ids follow HubSpot's object-type-id table
(developers.hubspot.com/docs/guides/crm/using-object-apis).  Property names are HubSpot's own
internal names; where a name is not confirmed by HubSpot docs the comment next to it says so.
Custom properties the sandbox org needs (cost, contract dates, ...) are created as a portal admin
would: not ``hubspotDefined``, in their own group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox.hubspot.values import iso_from_ms

PROPERTY_TYPES = {"string", "number", "date", "datetime", "enumeration", "bool", "phone_number"}
FIELD_TYPES = {
    "text",
    "textarea",
    "number",
    "date",
    "select",
    "radio",
    "checkbox",
    "booleancheckbox",
    "file",
    "html",
    "phonenumber",
    "calculation_equation",
}


@dataclass
class PropertyDef:
    """One property definition, as ``/crm/v3/properties/{objectType}`` returns it."""

    name: str
    label: str
    type: str
    field_type: str
    group_name: str
    options: list[dict[str, Any]] = field(default_factory=list)
    description: str = ""
    has_unique_value: bool = False
    hubspot_defined: bool = True
    read_only_value: bool = False
    hidden: bool = False
    display_order: int = -1
    form_field: bool = False
    created_ms: int = 0
    updated_ms: int = 0
    archived: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "updatedAt": iso_from_ms(self.updated_ms),
            "createdAt": iso_from_ms(self.created_ms),
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group_name,
            "options": self.options,
            "displayOrder": self.display_order,
            "calculated": False,
            "externalOptions": False,
            "hasUniqueValue": self.has_unique_value,
            "hidden": self.hidden,
            "modificationMetadata": {
                "archivable": not self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only_value,
            },
            "formField": self.form_field,
            "dataSensitivity": "non_sensitive",
            "archived": self.archived,
        }
        if self.hubspot_defined:
            out["hubspotDefined"] = True
        return out

    @property
    def option_values(self) -> set[str]:
        return {str(o["value"]) for o in self.options}


@dataclass
class GroupDef:
    name: str
    label: str
    display_order: int = -1
    archived: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "displayOrder": self.display_order,
            "archived": self.archived,
        }


def options(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [
        {"label": label, "value": value, "displayOrder": i, "hidden": False}
        for i, (value, label) in enumerate(pairs)
    ]


@dataclass
class ObjectType:
    """A CRM object type: how it is addressed and which properties it always carries."""

    name: str  # the plural path name, e.g. "contacts"
    type_id: str  # "0-1", or "2-<n>" for custom objects
    singular: str
    default_properties: tuple[str, ...]
    modified_property: str = "hs_lastmodifieddate"
    created_property: str = "hs_createdate"
    searchable: tuple[str, ...] = ()
    fully_qualified_name: str | None = None
    custom: bool = False
    aliases: tuple[str, ...] = ()

    def names(self) -> set[str]:
        out = {self.name, self.type_id, self.singular, *self.aliases}
        if self.fully_qualified_name:
            out.add(self.fully_qualified_name)
        return out


# (name, label, type, fieldType, group, extra kwargs)
_P = tuple[str, str, str, str, str, dict[str, Any]]

LIFECYCLE_STAGES = (
    ("subscriber", "Subscriber"),
    ("lead", "Lead"),
    ("marketingqualifiedlead", "Marketing Qualified Lead"),
    ("salesqualifiedlead", "Sales Qualified Lead"),
    ("opportunity", "Opportunity"),
    ("customer", "Customer"),
    ("evangelist", "Evangelist"),
    ("other", "Other"),
)

# hs_lead_status default options (HubSpot knowledge base "lead status" property).
LEAD_STATUSES = (
    ("NEW", "New"),
    ("OPEN", "Open"),
    ("IN_PROGRESS", "In Progress"),
    ("OPEN_DEAL", "Open Deal"),
    ("UNQUALIFIED", "Unqualified"),
    ("ATTEMPTED_TO_CONTACT", "Attempted to Contact"),
    ("CONNECTED", "Connected"),
    ("BAD_TIMING", "Bad Timing"),
)

# hs_analytics_source ("Original Source") options.
SOURCES = (
    ("ORGANIC_SEARCH", "Organic Search"),
    ("PAID_SEARCH", "Paid Search"),
    ("EMAIL_MARKETING", "Email Marketing"),
    ("SOCIAL_MEDIA", "Organic Social"),
    ("REFERRALS", "Referrals"),
    ("OTHER_CAMPAIGNS", "Other Campaigns"),
    ("DIRECT_TRAFFIC", "Direct Traffic"),
    ("OFFLINE", "Offline Sources"),
    ("PAID_SOCIAL", "Paid Social"),
    ("AI_REFERRALS", "AI Referrals"),
)

# Default call dispositions: HubSpot's call-outcome GUIDs from the calls API guide
# (developers.hubspot.com/docs/api/crm/calls, "hs_call_disposition").  Custom outcomes get
# new GUIDs in real portals, so connectors should read the labels from the property options.
CALL_DISPOSITIONS = (
    ("f240bbac-87c9-4f6e-bf70-924b57d47db7", "Connected"),
    ("73a0d17f-1163-4015-bdd5-ec830791da20", "No answer"),
    ("b2cf5968-551e-4856-9783-52b3da59a7d0", "Left voicemail"),
    ("a4c4c377-d246-4b32-a13b-75a56a4cd0ff", "Left live message"),
    ("9d9162e7-6cf3-4944-bf63-4dff82258764", "Busy"),
    ("17b47fee-58de-441e-a44c-c6300d46f273", "Wrong number"),
)
CONNECTED_DISPOSITION = CALL_DISPOSITIONS[0][0]

CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CAD", "AUD", "CHF", "SEK", "NOK", "DKK", "INR", "BRL")


# Compact constructors for the property tables below: (name, label, type, fieldType, extra);
# the group is added per object type.
_S = tuple[str, str, str, str, dict[str, Any]]
_RO = {"read_only_value": True}


def _text(name: str, label: str, field_type: str = "text") -> _S:
    return (name, label, "string", field_type, {})


def _num(name: str, label: str, ro: bool = False) -> _S:
    return (name, label, "number", "number", dict(_RO) if ro else {})


def _when(name: str, label: str, ro: bool = False, kind: str = "datetime") -> _S:
    return (name, label, kind, "date", dict(_RO) if ro else {})


def _enum(name: str, label: str, opts: tuple[tuple[str, str], ...], field: str = "select",
          ro: bool = False) -> _S:  # fmt: skip
    extra: dict[str, Any] = {"options": options(*opts)}
    if ro:
        extra.update(_RO)
    return (name, label, "enumeration", field, extra)


def _bool(name: str, label: str, ro: bool = False) -> _S:
    extra: dict[str, Any] = {"options": options(("true", "True"), ("false", "False"))}
    if ro:
        extra.update(_RO)
    return (name, label, "bool", "booleancheckbox", extra)


def _grouped(group: str, specs: list[_S]) -> list[_P]:
    return [(n, label, t, f, group, extra) for n, label, t, f, extra in specs]


def _common(created: str, modified: str) -> list[_S]:
    return [
        _num("hs_object_id", "Record ID", ro=True),
        # createdate on contacts/companies/deals can be set (imports do); hs_createdate cannot.
        _when(created, "Create Date", ro=created != "createdate"),
        _when(modified, "Last Modified Date", ro=True),
        ("hubspot_owner_id", "Owner", "enumeration", "select", {}),
        ("hs_merged_object_ids", "Merged Record IDs", "enumeration", "checkbox", dict(_RO)),
    ]


def _contacts() -> list[_P]:
    specs = [
        _text("email", "Email"),
        _text("firstname", "First Name"),
        _text("lastname", "Last Name"),
        _text("phone", "Phone Number", "phonenumber"),
        _text("company", "Company Name"),
        _enum("lifecyclestage", "Lifecycle Stage", LIFECYCLE_STAGES, "radio"),
        _num("hubspotscore", "HubSpot Score", ro=True),
        _num("associatedcompanyid", "Primary Associated Company ID"),
    ]
    for value, label in LIFECYCLE_STAGES:
        # Both generations of stage dates exist in real portals: the legacy
        # hs_lifecyclestage_<stage>_date and the newer hs_v2_date_entered_/exited_<stage>.
        specs += [
            _when(f"hs_lifecyclestage_{value}_date", f"Became a {label} Date", ro=True),
            _when(f"hs_v2_date_entered_{value}", f"Date entered '{label}'", ro=True),
            _when(f"hs_v2_date_exited_{value}", f"Date exited '{label}'", ro=True),
        ]
    return [
        *_grouped("contactinformation", specs),
        *_grouped("sales_properties", [_enum("hs_lead_status", "Lead Status", LEAD_STATUSES,
                                             "radio")]),
        *_grouped("analyticsinformation", [_enum("hs_analytics_source", "Original Source",
                                                 SOURCES, ro=True)]),
    ]  # fmt: skip


def _companies() -> list[_P]:
    return _grouped("companyinformation", [
        _text("name", "Company name"),
        _text("domain", "Company Domain Name"),
        _enum("lifecyclestage", "Lifecycle Stage", LIFECYCLE_STAGES, "radio"),
        _text("industry", "Industry"),
    ])  # fmt: skip


def _deals() -> list[_P]:
    deal_types = (("newbusiness", "New Business"), ("existingbusiness", "Existing Business"))
    return _grouped("dealinformation", [
        _text("dealname", "Deal Name"),
        # Options of dealstage and pipeline mirror the pipelines API (Portal keeps them in sync).
        ("dealstage", "Deal Stage", "enumeration", "radio", {}),
        ("pipeline", "Pipeline", "enumeration", "select", {}),
        _num("amount", "Amount"),
        _num("amount_in_home_currency", "Amount in company currency", ro=True),
        _enum("deal_currency_code", "Currency", tuple((c, c) for c in CURRENCIES)),
        _when("closedate", "Close Date"),
        _enum("dealtype", "Deal Type", deal_types, "radio"),
        _bool("hs_is_closed", "Is Deal Closed?", ro=True),
        _bool("hs_is_closed_won", "Is Closed Won", ro=True),
        _num("hs_deal_stage_probability", "Deal probability", ro=True),
    ])  # fmt: skip


def _calls() -> list[_P]:
    statuses = (("COMPLETED", "Completed"), ("BUSY", "Busy"), ("NO_ANSWER", "No answer"),
                ("FAILED", "Failed"), ("CANCELED", "Canceled"))  # fmt: skip
    return _grouped("call", [
        _when("hs_timestamp", "Activity date"),
        _text("hs_call_title", "Call Title"),
        _text("hs_call_body", "Call notes", "html"),
        _num("hs_call_duration", "Call duration"),  # milliseconds
        _enum("hs_call_direction", "Call direction", (("INBOUND", "Inbound"),
                                                      ("OUTBOUND", "Outbound"))),
        _enum("hs_call_disposition", "Call outcome", CALL_DISPOSITIONS),
        _enum("hs_call_status", "Call status", statuses),
    ])  # fmt: skip


def _emails() -> list[_P]:
    directions = (("EMAIL", "Logged email"), ("INCOMING_EMAIL", "Incoming email"),
                  ("FORWARDED_EMAIL", "Forwarded email"))  # fmt: skip
    statuses = (("SENT", "Sent"), ("BOUNCED", "Bounced"), ("FAILED", "Failed"),
                ("SCHEDULED", "Scheduled"), ("SENDING", "Sending"))  # fmt: skip
    return _grouped("email", [
        _when("hs_timestamp", "Activity date"),
        _text("hs_email_subject", "Email subject"),
        _enum("hs_email_direction", "Email direction", directions),
        _enum("hs_email_status", "Email send status", statuses),
    ])  # fmt: skip


def _meetings() -> list[_P]:
    outcomes = (("SCHEDULED", "Scheduled"), ("COMPLETED", "Completed"),
                ("RESCHEDULED", "Rescheduled"), ("NO_SHOW", "No Show"),
                ("CANCELED", "Canceled"))  # fmt: skip
    return _grouped("meeting", [
        _when("hs_timestamp", "Activity date"),
        _text("hs_meeting_title", "Meeting name"),
        _when("hs_meeting_start_time", "Start Time"),
        _when("hs_meeting_end_time", "End Time"),
        _enum("hs_meeting_outcome", "Meeting outcome", outcomes),
    ])  # fmt: skip


def _tasks() -> list[_P]:
    statuses = (("NOT_STARTED", "Not Started"), ("IN_PROGRESS", "In Progress"),
                ("WAITING", "Waiting"), ("COMPLETED", "Completed"),
                ("DEFERRED", "Deferred"))  # fmt: skip
    types = (("CALL", "Call"), ("EMAIL", "Email"), ("TODO", "To-do"))
    return _grouped("task", [
        _when("hs_timestamp", "Due date"),
        _text("hs_task_subject", "Task Title"),
        _enum("hs_task_status", "Task Status", statuses),
        _enum("hs_task_type", "Task Type", types),
    ])  # fmt: skip


def _goal_targets() -> list[_P]:
    # Goal target property names are [UNVERIFIED] beyond hs_createdate/hs_lastmodifieddate/
    # hs_object_id (developers.hubspot.com/docs/api/crm/goals lists those as defaults).
    # hs_assignee_user_id holds a *user* id (owners' userId), not an owner id, as in HubSpot.
    return _grouped("goal_target_information", [
        _text("hs_goal_name", "Goal name"),
        _num("hs_target_amount", "Target amount"),
        _when("hs_start_datetime", "Start date"),
        _when("hs_end_datetime", "End date"),
        _num("hs_assignee_user_id", "Assignee user id"),
        _num("hs_assignee_team_id", "Assignee team id"),
        _enum("hs_currency", "Currency", tuple((c, c) for c in CURRENCIES)),
        _text("hs_kpi_metric_type", "Metric"),
    ])  # fmt: skip


# Custom properties the sandbox org has created (the portal admin's, not HubSpot's).
CUSTOM_GROUP = "kpisync_sandbox"
CUSTOMER_STATUSES = (
    ("customer", "Customer"), ("former_customer", "Former customer"), ("prospect", "Prospect"),
)  # fmt: skip
DEAL_CUSTOM: list[_P] = _grouped(CUSTOM_GROUP, [
    _num("cost", "Cost"),
    _num("recurring_monthly_amount", "Recurring monthly amount"),
    _when("contract_start_date", "Contract start date", kind="date"),
    _when("contract_end_date", "Contract end date", kind="date"),
    _text("competitor", "Competitor"),
    _num("competitor_price", "Competitor price"),
    # dealtype has only new/existing business; the org tells renewals apart with this flag.
    _bool("is_renewal", "Is renewal"),
])  # fmt: skip
COMPANY_CUSTOM: list[_P] = _grouped(CUSTOM_GROUP, [
    _enum("customer_status", "Customer status", CUSTOMER_STATUSES),
])  # fmt: skip
CONTACT_CUSTOM: list[_P] = _grouped(CUSTOM_GROUP, [
    _when("qualified_date", "Qualified date"),
    _when("disqualified_date", "Disqualified date"),
    _text("lead_source", "Lead source"),
])  # fmt: skip


STANDARD_TYPES: tuple[ObjectType, ...] = (
    ObjectType(
        "contacts",
        "0-1",
        "contact",
        ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
        modified_property="lastmodifieddate",
        created_property="createdate",
        searchable=("email", "firstname", "lastname", "phone", "company"),
    ),
    ObjectType(
        "companies",
        "0-2",
        "company",
        ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
        created_property="createdate",
        searchable=("name", "domain"),
    ),
    ObjectType(
        "deals",
        "0-3",
        "deal",
        (
            "amount",
            "closedate",
            "createdate",
            "dealname",
            "dealstage",
            "hs_lastmodifieddate",
            "hs_object_id",
            "pipeline",
        ),
        created_property="createdate",
        searchable=("dealname",),
    ),
    ObjectType(
        "calls",
        "0-48",
        "call",
        ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
        searchable=("hs_call_title",),
    ),
    ObjectType(
        "emails",
        "0-49",
        "email",
        ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
        searchable=("hs_email_subject",),
    ),
    ObjectType(
        "meetings",
        "0-47",
        "meeting",
        ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
        searchable=("hs_meeting_title",),
    ),
    ObjectType(
        "tasks",
        "0-27",
        "task",
        ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
        searchable=("hs_task_subject",),
    ),
    ObjectType(
        "goal_targets",
        "0-74",
        "goal_target",
        ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
        aliases=("goals",),
    ),
)

_STANDARD_PROPS = {
    "contacts": _contacts,
    "companies": _companies,
    "deals": _deals,
    "calls": _calls,
    "emails": _emails,
    "meetings": _meetings,
    "tasks": _tasks,
    "goal_targets": _goal_targets,
}
_CUSTOM_PROPS = {"deals": DEAL_CUSTOM, "companies": COMPANY_CUSTOM, "contacts": CONTACT_CUSTOM}

_GROUP_LABELS = {
    "contactinformation": "Contact information",
    "companyinformation": "Company information",
    "dealinformation": "Deal information",
    "sales_properties": "Sales properties",
    "analyticsinformation": "Analytics information",
    "call": "Call",
    "email": "Email",
    "meeting": "Meeting",
    "task": "Task",
    "goal_target_information": "Goal target information",
    CUSTOM_GROUP: "kpisync sandbox",
}


def _def(p: _P, created_ms: int, hubspot_defined: bool) -> PropertyDef:
    name, label, typ, ftype, group, extra = p
    return PropertyDef(
        name,
        label,
        typ,
        ftype,
        group,
        created_ms=created_ms,
        updated_ms=created_ms,
        hubspot_defined=hubspot_defined,
        **extra,
    )


def standard_properties(ot: ObjectType, created_ms: int) -> list[PropertyDef]:
    """HubSpot-defined plus the sandbox org's custom properties of a standard object type."""
    main_group = {
        "contacts": "contactinformation",
        "companies": "companyinformation",
        "deals": "dealinformation",
    }.get(ot.name, ot.singular if ot.name != "goal_targets" else "goal_target_information")
    out: list[PropertyDef] = []
    for p in _grouped(main_group, _common(ot.created_property, ot.modified_property)):
        out.append(_def(p, created_ms, True))
    names = {d.name for d in out}
    for p in _STANDARD_PROPS[ot.name]():
        if p[0] not in names:
            out.append(_def(p, created_ms, True))
    for p in _CUSTOM_PROPS.get(ot.name, []):
        out.append(_def(p, created_ms, False))
    return out


def group_label(name: str) -> str:
    return _GROUP_LABELS.get(name, name.replace("_", " ").capitalize())
