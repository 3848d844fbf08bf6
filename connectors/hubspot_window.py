"""Incremental pulls through the HubSpot search API without losing a record to the 10,000 cap.

The search API returns at most 10,000 results per query; asking for ``after >= 10000`` is a 400
(airbyte#10700).  Windowing on the last-modified timestamp alone loops forever when
more than 10,000 records share one timestamp (a bulk import; airbyte#43317, fixed in PR #44899 by
breaking ties on ``hs_object_id``).  :class:`SearchPlan` therefore runs two kinds of window:

* **forward**: ``modified >= since`` (``> since`` after a tie pass), sorted by the modified
  property ascending, paged with ``after``.  When the next page would cross the cap, the window
  restarts from the last timestamp seen.  Tie order inside one timestamp is not documented, so a
  restart re-reads that timestamp (de-duplicated by id) instead of trusting an id order.
* **ties**: when one whole capped window shares one timestamp ``T``, the plan switches to
  ``modified == T and hs_object_id > last_id`` sorted by ``hs_object_id`` ascending, one query per
  page with ``last_id`` moved to the page's last id (keyset paging: a strict order, so it never
  loses or repeats a record and never nears the cap) — and then continues forward with
  ``modified > T``.

:attr:`SearchPlan.position` is what may be committed after a page: ``(ts, tie_id)`` means every
record modified before ``ts`` has been delivered, and (when ``tie_id`` is set) every record at
``ts`` with an id up to ``tie_id``.  Resuming from it re-reads at most one timestamp.

The search index trails writes by a little, so a record written just before a query may be
invisible to it (airbyte#27146 is the Salesforce twin of this).  When a pass completes, the
position moves to ``query time - lag`` at most: records newer than that are read again next
time (and de-duplicated by id and timestamp by the caller), so none is lost to index lag.

Pure: the plan builds request bodies and is fed the pages; HTTP lives in ``connectors.hubspot``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

RESULT_CAP = 10_000
SEARCH_LIMIT = 200  # search pages hold up to 200 records (halves the calls; airbyte#45653)

__all__ = ["RESULT_CAP", "SEARCH_LIMIT", "Position", "SearchPlan", "settled"]


@dataclass(frozen=True)
class Position:
    """A committed place in the change stream (see the module docstring)."""

    ts: int  # epoch ms
    tie_id: int | None = None


class SearchPlan:
    """The sequence of search requests that delivers every record modified since a position."""

    def __init__(
        self,
        modified_property: str,
        start: Position,
        *,
        properties: Sequence[str],
        lag_ms: int = 30_000,
        limit: int = SEARCH_LIMIT,
        cap: int = RESULT_CAP,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.prop = modified_property
        self.properties = list(properties)
        self.limit = limit
        self.cap = cap
        self.mode: Literal["ties", "forward", "done"]
        self.after = 0
        self.position = start
        self.requests = 0
        self.lag_ms = lag_ms
        self.clock_ms = clock_ms
        self._window_started_ms = clock_ms()
        if start.tie_id is not None:
            self.mode, self.tie_ts, self.tie_id = "ties", start.ts, start.tie_id
            self.since, self.strict = start.ts, True
        else:
            self.mode, self.tie_ts, self.tie_id = "forward", 0, 0
            self.since, self.strict = start.ts, False
        self._window_first_ts: int | None = None

    @property
    def done(self) -> bool:
        return self.mode == "done"

    def request(self) -> dict[str, Any]:
        """The next search body (``PublicObjectSearchRequest`` as JSON)."""
        if self.mode == "ties":
            filters = [
                {"propertyName": self.prop, "operator": "EQ", "value": str(self.tie_ts)},
                {"propertyName": "hs_object_id", "operator": "GT", "value": str(self.tie_id)},
            ]
            sort = "hs_object_id"
        elif self.mode == "forward":
            op = "GT" if self.strict else "GTE"
            filters = [{"propertyName": self.prop, "operator": op, "value": str(self.since)}]
            sort = self.prop
        else:
            raise RuntimeError("the plan is done")
        body: dict[str, Any] = {
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
            "properties": self.properties,
            "limit": self.limit,
        }
        if self.after:
            body["after"] = str(self.after)
        else:
            self._window_started_ms = self.clock_ms()
        self.requests += 1
        return body

    def feed(self, page: Sequence[tuple[int, int]], next_after: str | None) -> None:
        """Account for one page: ``(id, modified_ms)`` per result in order, and the cursor the
        response offered for the next page (None on the last page)."""
        if self.mode == "done":
            raise RuntimeError("the plan is done")
        more = next_after is not None and bool(page)
        if self.mode == "ties":
            if page:
                self.tie_id = max(self.tie_id, max(rid for rid, _ in page))
                self.position = Position(self.tie_ts, self.tie_id)
            if not more:
                # Every record at tie_ts is delivered: continue strictly after it.
                self.mode, self.since, self.strict, self.after = "forward", self.tie_ts, True, 0
                self._window_first_ts = None
                self.position = Position(self.tie_ts + 1, None)
                return
            # Keyset paging: the next query starts after the last id seen, so it never pages with
            # ``after`` (which would skip a page on top of the moved id filter) and never nears
            # the cap.
            self.after = 0
            return
        # forward
        if page:
            if self._window_first_ts is None:
                self._window_first_ts = page[0][1]
            last_ts = max(ts for _, ts in page)
            # Everything before the last timestamp of a page sorted ascending has been seen.
            if last_ts > self.position.ts or self.position.tie_id is not None:
                self.position = Position(last_ts, None)
        if not more:
            self.mode = "done"
            self.position = settled(self.position, self._window_started_ms, self.lag_ms)
            return
        assert next_after is not None
        if int(next_after) + self.limit <= self.cap:
            self.after = int(next_after)
            return
        # The next page would cross the cap: start a new window.
        last_ts = page[-1][1]
        if self._window_first_ts == last_ts:
            # A whole window shares one timestamp: page it by id instead.
            self.mode, self.tie_ts, self.tie_id, self.after = "ties", last_ts, 0, 0
            self.position = Position(last_ts, None)
        else:
            self.since, self.strict, self.after = last_ts, False, 0
        self._window_first_ts = None


def settled(position: Position, queried_at_ms: int, lag_ms: int) -> Position:
    """The position after a complete pass whose last window was queried at ``queried_at_ms``:
    every record older than ``queried_at_ms - lag_ms`` was visible to it, none newer is trusted."""
    if position.tie_id is None and queried_at_ms - lag_ms > position.ts:
        return Position(queried_at_ms - lag_ms, None)
    return position
