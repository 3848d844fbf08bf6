"""What install, check and uninstall report, shared by both CRMs.

Each step is an :class:`Action`: something install creates (or would create, in a dry run),
finds already in place, or cannot do — and for ``check`` what is missing or has drifted. Every
creation is recorded in the store (``writeback.ledger.remember``) the moment the CRM confirms it,
so uninstall removes exactly what install created; a thing of the same name that install did not
create is reported as a conflict and left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    CREATE = "create"  # created now (or would be, in a dry run)
    OK = "ok"  # in place, created by kpisync
    MAPPED = "mapped"  # in place, mapped explicitly by the admin (never removed)
    CONFLICT = "conflict"  # exists, but kpisync did not create it: left alone
    MISSING = "missing"  # check: should exist, does not
    DRIFT = "drift"  # check: exists, but differs from what install made
    UNAVAILABLE = "unavailable"  # the CRM cannot hold it (feature not in this org/portal)
    REMOVE = "remove"  # uninstall: removed now (or would be)
    GONE = "gone"  # uninstall: already gone from the CRM; forgotten
    SKIP = "skip"  # nothing to do (e.g. no KPI of that level in the catalogue)


@dataclass(frozen=True)
class Action:
    crm: str
    kind: str
    name: str
    status: Status
    detail: str = ""

    def line(self) -> str:
        extra = f" — {self.detail}" if self.detail else ""
        return f"{self.status.value:<11} {self.crm} {self.kind} {self.name}{extra}"


def problems(actions: list[Action]) -> list[Action]:
    """What stops writeback or needs the admin (check's non-zero exit)."""
    bad = (Status.MISSING, Status.DRIFT, Status.CONFLICT, Status.UNAVAILABLE)
    return [a for a in actions if a.status in bad]
