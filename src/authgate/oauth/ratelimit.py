"""Rate limits for abuse-prone endpoints (registration per source address, sign-in per
username and address), behind one small async Protocol, `RateLimits` (a store Protocol,
`authgate.store.protocols`: the `Stores` bundle makes shared ones, `rate_limits.limiter`).

Two implementations:

- `RateLimiter` (here): an exact sliding window in this process. Used when authgate has no
  store (tests, library code building an `Authority` by hand). With several replicas each
  would enforce its own window, so it is not what `serve` uses on a database.
- `authgate.store.sql.ratelimits.SqlRateLimits` (`Stores.rate_limits`): counters in the store's database, shared by
  every replica, so N replicas still allow `limit` attempts a minute, not N × `limit`. Its
  window is the two-window weighted estimate computed by `weighted_wait` below.

Never fail open: when the store cannot count, the SQL limiter's in-process count decides
alone (see `authgate.store.sql.ratelimits`). A limit that lets attempts through whenever the
database is busy is no limit under the very load it exists for.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import deque
from collections.abc import Callable

from authgate.memo import Remembered
from authgate.store.protocols import RateLimits  # a store Protocol; named here too

__all__ = ["RateLimiter", "RateLimits", "address_key", "weighted_wait"]


def address_key(address: str) -> str:
    """The part of a client address a limit counts by: an IPv4 address whole, an IPv6 address
    by its /64 (one subscriber's usual allocation, RFC 6177 §3, so rotating addresses inside
    it counts as one source). IPv4-mapped IPv6 is the IPv4 address; anything unparseable (a
    Unix socket, "-") is kept as is. Remembered per address (3 calls a flow, ~3 µs of parsing
    each), for addresses of up to 64 characters: an IPv6 zone makes one as long as a client
    likes (`memo.Remembered`)."""
    return _KEYS[address]


def _address_key(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone ("fe80::1%eth0")
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


_KEYS = Remembered(_address_key, max_length=64)


class RateLimiter:
    """`RateLimits` in this process: an exact sliding window, at most `max_keys` keys."""

    def __init__(
        self, limit: int, window: float = 60.0, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._max_keys = max_keys

    def _recent(self, key: str) -> deque[float]:
        now = self._clock()
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self._max_keys:
                self._evict(now)
            hits = self._hits[key] = deque()
        while hits and now - hits[0] >= self.window:
            hits.popleft()
        return hits

    async def hit(self, key: str) -> bool:
        hits = self._recent(key)
        if len(hits) >= self.limit:
            return False
        hits.append(self._clock())
        return True

    async def retry_after(self, key: str) -> int:
        hits = self._recent(key)
        if len(hits) < self.limit:
            return 0
        return max(1, math.ceil(self.window - (self._clock() - hits[0])))  # the oldest hit leaves the window

    async def reset(self, key: str) -> None:
        self._hits.pop(key, None)

    def _evict(self, now: float) -> None:
        for k in [k for k, v in self._hits.items() if not v or now - v[-1] >= self.window]:
            del self._hits[k]


def weighted_wait(limit: int, window: float, previous: int, current: int, elapsed: float) -> int:
    """Whole seconds (a Retry-After) until one more event fits under the two-window weighted
    estimate; 0 if it fits now.

    The estimate of events in the last `window` seconds, `elapsed` seconds into the current
    fixed window, counts the previous window's events in proportion to the part of it still
    inside the sliding window: `current + previous * (1 - elapsed / window)`. An event fits
    while that is below `limit`. Unlike a plain fixed window, a burst at the end of one
    window is not followed by a full new allowance at the start of the next.
    """
    if current + previous * (1 - elapsed / window) < limit:
        return 0
    if current < limit:  # the previous window's share (> 0 here) fades within this one
        wait = window * (1 - (limit - current) / previous) - elapsed
    else:  # next window: this one becomes the previous, weighted down as the new one goes on
        wait = (window - elapsed) + window * (1 - limit / current)
    return max(1, math.ceil(wait))
