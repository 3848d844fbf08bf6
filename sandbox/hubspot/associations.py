"""Associations between records, v4 style (type ids with a category and an optional label).

Seeded pairs live in sorted numpy arrays per direction (a million deal→company links cost two
int64 arrays, not a million Python objects); associations added or removed through the API sit in
small overlays.  Type ids are HubSpot's HUBSPOT_DEFINED ones (see ``seed.ASSOC_TYPES``); pairs
involving custom objects get USER_DEFINED-looking ids allocated on first use.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from sandbox.hubspot.seed import ASSOC_TYPES, SeedPairs


@dataclass
class _Index:
    src: np.ndarray[Any, np.dtype[np.int64]]
    dst: np.ndarray[Any, np.dtype[np.int64]]
    primary: np.ndarray[Any, np.dtype[np.bool_]]

    def lookup(self, sid: int) -> list[tuple[int, bool]]:
        lo = int(np.searchsorted(self.src, sid, "left"))
        hi = int(np.searchsorted(self.src, sid, "right"))
        return [(int(self.dst[i]), bool(self.primary[i])) for i in range(lo, hi)]


def _build(
    src: np.ndarray[Any, Any], dst: np.ndarray[Any, Any], prim: np.ndarray[Any, Any]
) -> _Index:
    order = np.argsort(src, kind="stable")
    return _Index(src[order], dst[order], prim[order])


class AssocStore:
    """All associations of one portal; type names are plural object names ("deals")."""

    def __init__(self, seeds: list[SeedPairs]) -> None:
        # Re-entrant: add() resolves reverse type ids (type_ids takes the lock) while holding it.
        self._lock = threading.RLock()
        parts: dict[tuple[str, str], list[tuple[Any, Any, Any]]] = {}
        for s in seeds:
            prim = np.full(len(s.from_ids), s.primary, dtype=bool)
            parts.setdefault((s.from_type, s.to_type), []).append((s.from_ids, s.to_ids, prim))
            parts.setdefault((s.to_type, s.from_type), []).append((s.to_ids, s.from_ids, prim))
        self._seed: dict[tuple[str, str], _Index] = {}
        for key, chunks in parts.items():
            self._seed[key] = _build(
                np.concatenate([c[0] for c in chunks]),
                np.concatenate([c[1] for c in chunks]),
                np.concatenate([c[2] for c in chunks]),
            )
        self._added: dict[tuple[str, str], dict[int, dict[int, set[int]]]] = {}
        self._removed: dict[tuple[str, str], set[tuple[int, int]]] = {}
        self._custom_types: dict[tuple[str, str], tuple[int, int | None]] = {}
        self._next_type = 1000
        #: Bumped on every change, so cached searches on associations are invalidated.
        self.version = 0

    # -- type ids ------------------------------------------------------------------------------
    def type_ids(self, ft: str, tt: str) -> tuple[int, int | None]:
        """(unlabeled type id, primary type id or None) of a direction."""
        known = ASSOC_TYPES.get((ft, tt))
        if known is not None:
            return known
        with self._lock:
            if (ft, tt) not in self._custom_types:
                self._custom_types[(ft, tt)] = (self._next_type, None)
                self._custom_types[(tt, ft)] = (self._next_type + 1, None)
                self._next_type += 2
            return self._custom_types[(ft, tt)]

    def labels(self, ft: str, tt: str) -> list[dict[str, Any]]:
        unl, prim = self.type_ids(ft, tt)
        category = "HUBSPOT_DEFINED" if (ft, tt) in ASSOC_TYPES else "USER_DEFINED"
        out = [{"category": category, "typeId": unl, "label": None}]
        if prim is not None:
            out.append({"category": "HUBSPOT_DEFINED", "typeId": prim, "label": "Primary"})
        return out

    def _type_dicts(self, ft: str, tt: str, ids: set[int]) -> list[dict[str, Any]]:
        prim = self.type_ids(ft, tt)[1]
        category = "HUBSPOT_DEFINED" if (ft, tt) in ASSOC_TYPES else "USER_DEFINED"
        out = []
        for tid in sorted(ids):
            label = "Primary" if tid == prim else None
            out.append({"category": category, "typeId": tid, "label": label})
        return out

    def reverse_type(self, ft: str, tt: str, type_id: int) -> int:
        unl, prim = self.type_ids(ft, tt)
        runl, rprim = self.type_ids(tt, ft)
        if type_id == prim and rprim is not None:
            return rprim
        if type_id == unl:
            return runl
        return type_id

    # -- reads ---------------------------------------------------------------------------------
    def targets(self, ft: str, tt: str, sid: int) -> list[tuple[int, list[dict[str, Any]]]]:
        """(to id, association types) of one record, in to-id order."""
        found: dict[int, set[int]] = {}
        unl, prim = self.type_ids(ft, tt)
        idx = self._seed.get((ft, tt))
        removed = self._removed.get((ft, tt), set())
        if idx is not None:
            for did, is_primary in idx.lookup(sid):
                if (sid, did) in removed:
                    continue
                ids = found.setdefault(did, {unl})
                if is_primary and prim is not None:
                    ids.add(prim)
        with self._lock:
            for did, ids in self._added.get((ft, tt), {}).get(sid, {}).items():
                found.setdefault(did, set()).update(ids)
        return [(did, self._type_dicts(ft, tt, found[did])) for did in sorted(found)]

    # -- writes --------------------------------------------------------------------------------
    def add(self, ft: str, tt: str, sid: int, did: int, type_ids: list[int] | None = None) -> None:
        tids = type_ids or [self.type_ids(ft, tt)[0]]
        with self._lock:
            self.version += 1
            for a, b, x, y, ts in (
                (ft, tt, sid, did, tids),
                (tt, ft, did, sid, [self.reverse_type(ft, tt, t) for t in tids]),
            ):
                self._removed.get((a, b), set()).discard((x, y))
                self._added.setdefault((a, b), {}).setdefault(x, {}).setdefault(y, set()).update(ts)

    def remove(self, ft: str, tt: str, sid: int, did: int) -> None:
        with self._lock:
            self.version += 1
            for a, b, x, y in ((ft, tt, sid, did), (tt, ft, did, sid)):
                self._removed.setdefault((a, b), set()).add((x, y))
                self._added.get((a, b), {}).get(x, {}).pop(y, None)
