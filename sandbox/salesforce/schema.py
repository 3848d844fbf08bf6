"""The sandbox org's object model: sObjects, their fields, and describe output.

Field and object names follow the Salesforce Object Reference (Lead, Opportunity, Task, Event,
ForecastingQuota, CurrencyType, DatedConversionRate, PermissionSet, FieldPermissions, ...).
Custom fields the seeded org carries (``Cost__c``, ``Lead__c``, ...) are listed here
too; fields created later through the Tooling API are added at run time and stay invisible until
field-level security is granted (``ObjectDef.add_field(..., needs_fls=True)``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import polars as pl

# Salesforce field type → polars dtype of its column.
DTYPES: dict[str, pl.DataType] = {
    "id": pl.Utf8(),
    "reference": pl.Utf8(),
    "string": pl.Utf8(),
    "textarea": pl.Utf8(),
    "picklist": pl.Utf8(),
    "email": pl.Utf8(),
    "phone": pl.Utf8(),
    "url": pl.Utf8(),
    "boolean": pl.Boolean(),
    "double": pl.Float64(),
    "currency": pl.Float64(),
    "percent": pl.Float64(),
    "int": pl.Int64(),
    "date": pl.Date(),
    "datetime": pl.Datetime("us", "UTC"),
}
STRING_TYPES = frozenset(
    {"id", "reference", "string", "textarea", "picklist", "email", "phone", "url"}
)
#: String comparisons in SOQL are case-insensitive for these (ids are case-sensitive).
CASE_INSENSITIVE_TYPES = STRING_TYPES - {"id", "reference"}
NUMBER_TYPES = frozenset({"double", "currency", "percent", "int"})

SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "int": "xsd:int",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
}

SYSTEM_FIELDS = (
    "Id",
    "IsDeleted",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
)


@dataclass
class FieldDef:
    name: str
    type: str
    label: str = ""
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    picklist: tuple[str, ...] = ()
    createable: bool = True
    updateable: bool = True
    nillable: bool = True
    custom: bool = False
    external_id: bool = False
    unique: bool = False
    length: int = 0
    #: Created through the Tooling API: visible only once FieldPermissions grant read access.
    needs_fls: bool = False
    tooling_id: str | None = None

    def __post_init__(self) -> None:
        if not self.label:
            self.label = self.name.removesuffix("__c").removesuffix("Id").replace("_", " ")
        if not self.length and self.type in STRING_TYPES - {"id", "reference"}:
            self.length = 255
        if self.type == "id":
            self.length = 18
        if self.type == "reference":
            self.length = 18

    @property
    def dtype(self) -> pl.DataType:
        return DTYPES[self.type]

    def describe(self) -> dict[str, Any]:
        name_field = self.name == "Name"
        return {
            "aggregatable": self.type not in ("textarea",),
            "autoNumber": False,
            "byteLength": self.length * 3,
            "calculated": False,
            "caseSensitive": False,
            "createable": self.createable,
            "custom": self.custom,
            "defaultValue": None,
            "defaultedOnCreate": self.name in SYSTEM_FIELDS or self.name == "OwnerId",
            "digits": 0,
            "externalId": self.external_id,
            "filterable": True,
            "groupable": self.type not in ("double", "currency", "percent", "datetime"),
            "idLookup": self.name == "Id" or self.external_id,
            "label": self.label,
            "length": self.length,
            "name": self.name,
            "nameField": name_field,
            "nillable": self.nillable,
            "picklistValues": [
                {"active": True, "defaultValue": False, "label": v, "validFor": None, "value": v}
                for v in self.picklist
            ],
            "precision": 18 if self.type in ("double", "currency", "percent") else 0,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "scale": 2 if self.type in ("currency", "double", "percent") else 0,
            "soapType": SOAP_TYPES.get(self.type, "xsd:string"),
            "sortable": self.type != "textarea",
            "type": self.type,
            "unique": self.unique,
            "updateable": self.updateable,
        }


@dataclass
class ObjectDef:
    name: str
    key_prefix: str
    label: str = ""
    label_plural: str = ""
    custom: bool = False
    fields: dict[str, FieldDef] = field(default_factory=dict)
    #: Tooling API id of a custom object (``01I...``).
    tooling_id: str | None = None
    #: describe's ``replicateable``: whether sObject Get Updated / Get Deleted serve the object
    #: ("The object must be configured to be replicateable", SOAP API guide,
    #: object-specific_requirements_for_data_replication.htm).
    replicateable: bool = True
    #: describe's ``deletable``: some objects cannot be deleted (CurrencyType: "Your client
    #: application can't delete this object", and its supported calls list no getDeleted(),
    #: sforce_api_objects_currencytype.htm), so Get Deleted has nothing to serve for them.
    deletable: bool = True

    def __post_init__(self) -> None:
        self.label = self.label or self.name.removesuffix("__c").replace("_", " ")
        self.label_plural = self.label_plural or self.label + "s"
        self._lower: dict[str, str] = {}
        for f in list(self.fields.values()):
            self._lower[f.name.lower()] = f.name

    def add_field(self, f: FieldDef) -> None:
        self.fields[f.name] = f
        self._lower[f.name.lower()] = f.name

    def remove_field(self, name: str) -> None:
        canonical = self._lower.pop(name.lower(), None)
        if canonical:
            self.fields.pop(canonical, None)

    def field(self, name: str) -> FieldDef | None:
        canonical = self._lower.get(name.lower())
        return self.fields.get(canonical) if canonical else None

    def relationship(self, name: str) -> FieldDef | None:
        """The reference field whose relationship name is ``name`` (case-insensitive)."""
        low = name.lower()
        for f in self.fields.values():
            if f.relationship_name and f.relationship_name.lower() == low:
                return f
        return None

    def schema(self) -> dict[str, pl.DataType]:
        return {f.name: f.dtype for f in self.fields.values()}

    def summary(self, version: str) -> dict[str, Any]:
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {
            "activateable": False,
            "createable": True,
            "custom": self.custom,
            "customSetting": False,
            "deletable": self.deletable,
            "deprecatedAndHidden": False,
            "feedEnabled": False,
            "hasSubtypes": False,
            "isSubtype": False,
            "keyPrefix": self.key_prefix,
            "label": self.label,
            "labelPlural": self.label_plural,
            "layoutable": True,
            "mergeable": self.name in ("Account", "Lead"),
            "mruEnabled": True,
            "name": self.name,
            "queryable": True,
            "replicateable": self.replicateable,
            "retrieveable": True,
            "searchable": True,
            "triggerable": True,
            "undeletable": True,
            "updateable": True,
            "urls": {
                "rowTemplate": f"{base}/{{ID}}",
                "defaultValues": f"{base}/defaultValues?recordTypeId&fields",
                "describe": f"{base}/describe",
                "sobject": base,
            },
        }


def _f(name: str, type_: str, **kw: Any) -> FieldDef:
    return FieldDef(name, type_, **kw)


def _ref(name: str, to: str, rel: str | None, **kw: Any) -> FieldDef:
    return FieldDef(name, "reference", reference_to=(to,), relationship_name=rel, **kw)


def _system_fields() -> list[FieldDef]:
    ro = {"createable": False, "updateable": False}
    return [
        _f("Id", "id", label="Record ID", nillable=False, **ro),
        _f("IsDeleted", "boolean", label="Deleted", nillable=False, **ro),
        _f("CreatedDate", "datetime", label="Created Date", nillable=False, **ro),
        _ref("CreatedById", "User", "CreatedBy", label="Created By ID", nillable=False, **ro),
        _f("LastModifiedDate", "datetime", label="Last Modified Date", nillable=False, **ro),
        _ref(
            "LastModifiedById", "User", "LastModifiedBy", label="Last Modified By ID",
            nillable=False, **ro,
        ),
        _f("SystemModstamp", "datetime", label="System Modstamp", nillable=False, **ro),
    ]  # fmt: skip


def _obj(name: str, prefix: str, fields: list[FieldDef], **kw: Any) -> ObjectDef:
    all_fields = {f.name: f for f in [*_system_fields(), *fields]}
    return ObjectDef(name, prefix, fields=all_fields, **kw)


OPPORTUNITY_TYPES = (
    "New Customer",
    "Existing Customer - Upgrade",
    "Existing Customer - Replacement",
    "Existing Customer - Downgrade",
    "Renewal",
    "Other",
)
DEFAULT_STAGES = (
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Id. Decision Makers",
    "Perception Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
)
LEAD_STATUSES = (
    "Open - Not Contacted",
    "Working - Contacted",
    "Qualified",
    "Unqualified",
    "Closed - Converted",
    "Closed - Not Converted",
)
LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
TASK_SUBTYPES = ("Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn")
CURRENCIES = ("EUR", "USD", "GBP", "JPY", "CHF", "AUD", "CAD")


def standard_objects() -> dict[str, ObjectDef]:
    """A fresh copy of the seeded org's object model (mutable: Tooling adds fields/objects)."""
    cur = _f("CurrencyIsoCode", "picklist", label="Currency ISO Code", picklist=CURRENCIES)
    owner = _ref("OwnerId", "User", "Owner", label="Owner ID")
    objs = [
        _obj("User", "005", [
            _f("Username", "string"), _f("Name", "string", createable=False, updateable=False),
            _f("FirstName", "string"), _f("LastName", "string"), _f("Email", "email"),
            _f("Alias", "string"), _f("IsActive", "boolean", label="Active"),
            _ref("UserRoleId", "UserRole", "UserRole", label="Role ID"),
            _ref("ManagerId", "User", "Manager", label="Manager ID"),
            _f("ProfileId", "reference", reference_to=("Profile",), relationship_name=None),
            _f("UserType", "picklist", picklist=("Standard", "AutomatedProcess")),
            _f("TimeZoneSidKey", "picklist"), _f("DefaultCurrencyIsoCode", "picklist",
                                                 picklist=CURRENCIES),
            _f("Title", "string"), _f("Department", "string"),
        ]),
        _obj("UserRole", "00E", [
            _f("Name", "string"), _f("DeveloperName", "string"),
            _ref("ParentRoleId", "UserRole", None, label="Parent Role ID"),
            _f("RollupDescription", "string"),
        ], label="Role"),
        _obj("Account", "001", [
            _f("Name", "string", nillable=False),
            _f("Type", "picklist", label="Account Type",
               picklist=("Prospect", "Customer", "Former Customer", "Partner", "Other")),
            _f("Industry", "picklist"), owner, _ref("ParentId", "Account", "Parent"),
            _f("AnnualRevenue", "currency"), _f("NumberOfEmployees", "int"),
            _f("BillingCountry", "string"), cur,
        ]),
        _obj("Lead", "00Q", [
            _f("FirstName", "string"), _f("LastName", "string", nillable=False),
            _f("Name", "string", createable=False, updateable=False),
            _f("Company", "string", nillable=False), _f("Email", "email"),
            _f("Status", "picklist", picklist=LEAD_STATUSES, nillable=False),
            _f("LeadSource", "picklist", picklist=LEAD_SOURCES), _f("Rating", "picklist"),
            _f("IsConverted", "boolean", label="Converted", updateable=False),
            _f("ConvertedDate", "date", updateable=False),
            _ref("ConvertedAccountId", "Account", "ConvertedAccount", updateable=False),
            _ref("ConvertedOpportunityId", "Opportunity", "ConvertedOpportunity",
                 updateable=False),
            _f("ConvertedContactId", "reference", reference_to=("Contact",), updateable=False),
            _ref("OwnerId", "User", "Owner", label="Owner ID"),
            _f("Qualified_Date__c", "datetime", label="Qualified Date", custom=True),
            _f("Disqualified_Date__c", "datetime", label="Disqualified Date", custom=True),
            _f("Lead_Score__c", "double", label="Lead Score", custom=True), cur,
        ]),
        _obj("Opportunity", "006", [
            _f("Name", "string", nillable=False), _ref("AccountId", "Account", "Account"),
            _ref("OwnerId", "User", "Owner", label="Owner ID"),
            _f("StageName", "picklist", label="Stage", picklist=DEFAULT_STAGES, nillable=False),
            _f("IsClosed", "boolean", label="Closed", createable=False, updateable=False),
            _f("IsWon", "boolean", label="Won", createable=False, updateable=False),
            _f("Amount", "currency"), _f("CloseDate", "date", nillable=False),
            _f("Type", "picklist", label="Opportunity Type", picklist=OPPORTUNITY_TYPES),
            _f("Probability", "percent"),
            _f("ForecastCategory", "picklist", createable=False, updateable=False,
               picklist=("Omitted", "Pipeline", "BestCase", "Forecast", "Closed")),
            _f("ForecastCategoryName", "picklist",
               picklist=("Omitted", "Pipeline", "Best Case", "Commit", "Closed")),
            _f("LeadSource", "picklist", picklist=LEAD_SOURCES),
            _f("FiscalYear", "int", createable=False, updateable=False),
            _f("FiscalQuarter", "int", createable=False, updateable=False), cur,
            _f("Cost__c", "currency", label="Cost", custom=True),
            _f("Recurring_Monthly_Amount__c", "currency", label="Recurring Monthly Amount",
               custom=True),
            _f("Contract_Start__c", "date", label="Contract Start", custom=True),
            _f("Contract_End__c", "date", label="Contract End", custom=True),
            _ref("Lead__c", "Lead", "Lead__r", label="Lead", custom=True),
        ]),
        _obj("OpportunityCompetitor", "00J", [
            _ref("OpportunityId", "Opportunity", "Opportunity", nillable=False),
            _f("CompetitorName", "string"), _f("Strengths", "string"),
            _f("Weaknesses", "string"),
            _f("Competitor_Price__c", "currency", label="Competitor Price", custom=True), cur,
        ], label="Opportunity: Competitor", label_plural="Opportunity: Competitors"),
        _obj("Task", "00T", [
            _f("Subject", "string"),
            _f("TaskSubtype", "picklist", picklist=TASK_SUBTYPES, updateable=False),
            _f("Type", "picklist"),
            _f("Status", "picklist", picklist=("Not Started", "In Progress", "Completed")),
            _f("IsClosed", "boolean", createable=False, updateable=False),
            _f("ActivityDate", "date", label="Due Date Only"),
            _f("CompletedDateTime", "datetime", createable=False, updateable=False),
            _f("CallDurationInSeconds", "int", label="Call Duration"),
            _f("CallType", "picklist", picklist=("Internal", "Inbound", "Outbound")),
            _f("CallDisposition", "string", label="Call Result"),
            _f("WhoId", "reference", reference_to=("Contact", "Lead"), label="Name ID"),
            _f("WhatId", "reference", reference_to=("Account", "Opportunity"),
               label="Related To ID"),
            _ref("AccountId", "Account", "Account", createable=False, updateable=False),
            _ref("OwnerId", "User", "Owner", label="Assigned To ID"),
        ]),
        _obj("Event", "00U", [
            _f("Subject", "string"),
            _f("EventSubtype", "picklist", picklist=("Event",), updateable=False),
            _f("Type", "picklist"), _f("ActivityDate", "date"),
            _f("ActivityDateTime", "datetime"), _f("StartDateTime", "datetime"),
            _f("EndDateTime", "datetime"), _f("DurationInMinutes", "int"),
            _f("WhoId", "reference", reference_to=("Contact", "Lead"), label="Name ID"),
            _f("WhatId", "reference", reference_to=("Account", "Opportunity"),
               label="Related To ID"),
            _ref("AccountId", "Account", "Account", createable=False, updateable=False),
            _ref("OwnerId", "User", "Owner", label="Assigned To ID"),
        ]),
        _obj("ForecastingQuota", "0J9", [
            _ref("QuotaOwnerId", "User", "QuotaOwner", label="Quota Owner ID"),
            _f("StartDate", "date"), _f("QuotaAmount", "currency"),
            _f("QuotaQuantity", "double"), _f("IsAmount", "boolean"),
            _f("IsQuantity", "boolean"), _f("PeriodId", "reference", reference_to=("Period",)),
            _f("ForecastingTypeId", "reference", reference_to=("ForecastingType",)),
            _f("ProductFamily", "picklist"), cur,
        ], label="Forecasting Quota"),
        _obj("CurrencyType", "02A", [
            _f("IsoCode", "picklist", picklist=CURRENCIES), _f("ConversionRate", "double"),
            _f("DecimalPlaces", "int"), _f("IsActive", "boolean"),
            _f("IsCorporate", "boolean", createable=False, updateable=False),
        ], label="Currency Type", deletable=False),
        _obj("DatedConversionRate", "04w", [
            _f("IsoCode", "picklist", picklist=CURRENCIES), _f("ConversionRate", "double"),
            _f("StartDate", "date"),
            _f("NextStartDate", "date", createable=False, updateable=False),
        ], label="Dated Conversion Rate"),
        _obj("PermissionSet", "0PS", [
            _f("Name", "string", nillable=False), _f("Label", "string", nillable=False),
            _f("Description", "string"),
            _f("IsOwnedByProfile", "boolean", createable=False, updateable=False),
        ], label="Permission Set"),
        _obj("FieldPermissions", "01k", [
            _ref("ParentId", "PermissionSet", "Parent", nillable=False, updateable=False),
            _f("SobjectType", "picklist", nillable=False, updateable=False),
            _f("Field", "picklist", nillable=False, updateable=False),
            _f("PermissionsRead", "boolean"), _f("PermissionsEdit", "boolean"),
        ], label="Field Permissions", label_plural="Field Permissions"),
        # sforce_api_objects_objectpermissions.htm (key prefix 110).
        _obj("ObjectPermissions", "110", [
            _ref("ParentId", "PermissionSet", "Parent", nillable=False, updateable=False),
            _f("SobjectType", "picklist", nillable=False, updateable=False),
            _f("PermissionsCreate", "boolean"), _f("PermissionsRead", "boolean"),
            _f("PermissionsEdit", "boolean"), _f("PermissionsDelete", "boolean"),
            _f("PermissionsViewAllRecords", "boolean"),
            _f("PermissionsModifyAllRecords", "boolean"),
        ], label="Object Permissions", label_plural="Object Permissions"),
        _obj("PermissionSetAssignment", "0Pa", [
            _ref("PermissionSetId", "PermissionSet", "PermissionSet", nillable=False),
            _ref("AssigneeId", "User", "Assignee", nillable=False),
        ], label="Permission Set Assignment"),
        _obj("Report", "00O", [
            _f("Name", "string", createable=False, updateable=False),
            _f("DeveloperName", "string", createable=False, updateable=False),
            _f("FolderName", "string", createable=False, updateable=False),
            _f("Format", "picklist", createable=False, updateable=False),
            _f("Description", "string", createable=False, updateable=False),
        ]),
    ]  # fmt: skip
    return {o.name: o for o in objs}


def make_object(name: str, prefix: str, fields: list[FieldDef], **kw: Any) -> ObjectDef:
    """An object with the system fields plus ``fields`` (also used for Tooling objects)."""
    return _obj(name, prefix, fields, **kw)


def custom_object(name: str, label: str, plural: str, prefix: str, tooling_id: str) -> ObjectDef:
    """A custom object as a Tooling ``CustomObject`` create makes it (standard fields only)."""
    cur = _f("CurrencyIsoCode", "picklist", label="Currency ISO Code", picklist=CURRENCIES)
    return _obj(
        name,
        prefix,
        [
            _f("Name", "string", label=f"{label} Name"),
            _ref("OwnerId", "User", "Owner", label="Owner ID"),
            cur,
        ],
        label=label,
        label_plural=plural,
        custom=True,
        tooling_id=tooling_id,
    )


def clone_objects(objs: dict[str, ObjectDef]) -> dict[str, ObjectDef]:
    return copy.deepcopy(objs)
