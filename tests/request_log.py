"""Reading the sandbox's request log in tests."""

from __future__ import annotations

from typing import Any


def most_in_flight(log: list[dict[str, Any]]) -> int:
    """The most requests the sandbox was serving at one moment (each entry is logged when its
    answer is ready, ``duration_ms`` after the request arrived)."""
    edges = []
    for e in log:
        edges += [(e["time"] - e["duration_ms"] / 1000, 1), (e["time"], -1)]
    most = now = 0
    for _, step in sorted(edges):
        now += step
        most = max(most, now)
    return most
