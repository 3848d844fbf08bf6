"""Salesforce record ids: 15-character case-sensitive ids and their 18-character form."""

from __future__ import annotations

import itertools
import threading

_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def to18(id15: str) -> str:
    """Append the 3-character case checksum (each chunk of 5 → bitmask of upper-case letters)."""
    if len(id15) != 15:
        raise ValueError(f"not a 15-character id: {id15!r}")
    suffix = ""
    for chunk in range(3):
        bits = 0
        for i, ch in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        suffix += _CHECKSUM[bits]
    return id15 + suffix


def is_valid_id(value: str) -> bool:
    if len(value) == 15:
        return value.isalnum()
    return len(value) == 18 and value.isalnum() and to18(value[:15]) == value


def _base62(n: int, width: int) -> str:
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = _BASE62[r] + out
    return out.rjust(width, "0")


class IdFactory:
    """Ids for records the sandbox creates at run time.

    The 4th-5th characters are ``Sx`` (a made-up pod marker) so run-time ids never collide with
    the generator's seeded ids, whatever pattern those use for their counter part.
    """

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def new(self, prefix: str) -> str:
        with self._lock:
            n = next(self._counter)
        return to18(prefix + "Sx" + _base62(n, 10))
