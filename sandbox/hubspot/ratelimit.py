"""HubSpot's API rate limits: a rolling 10-second budget and a daily budget per portal tier, and
a separate per-second limit for the search endpoints.

Numbers follow the usage-guidelines table (developers.hubspot.com/docs/api/usage-details: Free/
Starter 100 per 10 s and 250,000 a day; Professional 190 per 10 s and 625,000 a day; Enterprise
190 per 10 s and 1,000,000 a day) and the search guide (5 requests per second per account).
Headers follow the same page:
``X-HubSpot-RateLimit-Daily``, ``-Daily-Remaining`` (not sent on OAuth calls), ``-Interval-
Milliseconds``, ``-Max``, ``-Remaining`` and the legacy ``-Secondly``/``-Secondly-Remaining``.
Search responses carry none of them (the docs say search is rate limited separately).
A rejected call does not consume budget; the daily budget resets at midnight UTC (the real one
resets at midnight in the portal's time zone, which is UTC here).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.hubspot.errors import HubSpotError, rate_limit_body


@dataclass(frozen=True)
class Tier:
    name: str
    per_10s: int
    daily: int
    search_per_s: int = 5


TIERS: dict[str, Tier] = {
    "free": Tier("free", 100, 250_000),
    "starter": Tier("starter", 100, 250_000),
    "professional": Tier("professional", 190, 625_000),
    "enterprise": Tier("enterprise", 190, 1_000_000),
    # Not a HubSpot tier: for load tests that must not be throttled.
    "unlimited": Tier("unlimited", 10**9, 10**12, 10**9),
}

INTERVAL_MS = 10_000


class RateLimited(HubSpotError):
    """A 429 with HubSpot's RATE_LIMIT body and a ``Retry-After`` header."""

    def __init__(
        self, policy: str, retry_after_s: float, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(
            429,
            "rate limited",
            "RATE_LIMITS",
            headers={**(headers or {}), "Retry-After": str(max(1, math.ceil(retry_after_s)))},
        )
        self.policy = policy

    def body(self) -> dict[str, Any]:
        return dict(rate_limit_body(self.policy))


class RateLimiter:
    """Counts calls per portal and decides admit / 429; thread-safe (the server is threaded)."""

    def __init__(self, tier: Tier, clock: Callable[[], float] = time.monotonic) -> None:
        self.tier = tier
        self._clock = clock
        self._lock = threading.Lock()
        self._window: deque[float] = deque()
        self._search: deque[float] = deque()
        self._second: deque[float] = deque()  # for the legacy -Secondly-Remaining header
        self._day = self._today()
        self._daily_used = 0

    def set_tier(self, tier: Tier) -> None:
        with self._lock:
            self.tier = tier

    def reset(self) -> None:
        with self._lock:
            self._window.clear()
            self._search.clear()
            self._second.clear()
            self._daily_used = 0

    @staticmethod
    def _today() -> int:
        return int(time.time() // 86_400)

    def admit(self, *, search: bool, oauth: bool) -> dict[str, str]:
        """Count one call; return the headers to send, or raise :class:`RateLimited`."""
        with self._lock:
            now = self._clock()
            day = self._today()
            if day != self._day:
                self._day, self._daily_used = day, 0
            while self._window and now - self._window[0] >= INTERVAL_MS / 1000:
                self._window.popleft()
            while self._search and now - self._search[0] >= 1.0:
                self._search.popleft()
            while self._second and now - self._second[0] >= 1.0:
                self._second.popleft()
            if self._daily_used >= self.tier.daily:
                midnight = (day + 1) * 86_400 - time.time()
                raise RateLimited("DAILY", midnight, {} if search else self._headers(oauth))
            if search:
                if len(self._search) >= self.tier.search_per_s:
                    raise RateLimited("SECONDLY", 1.0 - (now - self._search[0]))
                self._search.append(now)
                self._daily_used += 1
                return {}
            if len(self._window) >= self.tier.per_10s:
                raise RateLimited(
                    "TEN_SECONDLY_ROLLING",
                    INTERVAL_MS / 1000 - (now - self._window[0]),
                    self._headers(oauth),  # HubSpot's 429s carry the budget headers too
                )
            self._window.append(now)
            self._second.append(now)
            self._daily_used += 1
            return self._headers(oauth)

    def _headers(self, oauth: bool) -> dict[str, str]:
        per_s = max(1, self.tier.per_10s // 10)
        recent = len(self._second)
        h = {
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(INTERVAL_MS),
            "X-HubSpot-RateLimit-Max": str(self.tier.per_10s),
            "X-HubSpot-RateLimit-Remaining": str(max(0, self.tier.per_10s - len(self._window))),
            "X-HubSpot-RateLimit-Secondly": str(per_s),
            "X-HubSpot-RateLimit-Secondly-Remaining": str(max(0, per_s - recent)),
        }
        if not oauth:
            h["X-HubSpot-RateLimit-Daily"] = str(self.tier.daily)
            h["X-HubSpot-RateLimit-Daily-Remaining"] = str(
                max(0, self.tier.daily - self._daily_used)
            )
        return h

    def usage(self) -> dict[str, int | str]:
        with self._lock:
            return {
                "tier": self.tier.name,
                "daily_used": self._daily_used,
                "window_used": len(self._window),
            }
