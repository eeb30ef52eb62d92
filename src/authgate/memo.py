"""`Remembered`: a function's answers kept per key, bounded (issue 18's hot path).

Parsing an address or a host name costs a few µs (`ipaddress` builds objects), more than the
rest of what a request does with it, and a server sees the same few values again and again.
`Remembered(compute, max_length=N)[key]` answers from a dict (a hit is a plain dict lookup:
`__missing__` runs only on a miss), computes on a miss, and keeps the answer only for a key of
at most `max_length` characters (a client chooses how long a host name or an IPv6 zone is);
past `max_items` keys the lot is forgotten at once (no eviction order to keep up per hit).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = ["Remembered"]

_V = TypeVar("_V")


class Remembered(dict[str, _V]):
    __slots__ = ("_compute", "_max_items", "_max_length")

    def __init__(self, compute: Callable[[str], _V], *, max_length: int, max_items: int = 4096) -> None:
        super().__init__()
        self._compute = compute
        self._max_length = max_length
        self._max_items = max_items

    def __missing__(self, key: str) -> _V:
        value = self._compute(key)
        if len(key) <= self._max_length:
            if len(self) >= self._max_items:
                self.clear()
            self[key] = value
        return value
