"""Sliding-window counters for abuse-prone endpoints (registration, sign-in).

Per process: with several replicas each enforces its own window, so the effective limit is
the configured one times the replica count — documented, and enough to stop a flood.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    def __init__(self, limit: int, window: float = 60.0, *, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000) -> None:
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

    def allowed(self, key: str) -> bool:
        return len(self._recent(key)) < self.limit

    def hit(self, key: str) -> bool:
        """Count one event; False if the key was already at its limit."""
        hits = self._recent(key)
        if len(hits) >= self.limit:
            return False
        hits.append(self._clock())
        return True

    def retry_after(self, key: str) -> int:
        hits = self._recent(key)
        if len(hits) < self.limit:
            return 0
        return max(1, int(self.window - (self._clock() - hits[0])) + 1)

    def reset(self, key: str) -> None:
        self._hits.pop(key, None)

    def _evict(self, now: float) -> None:
        for k in [k for k, v in self._hits.items() if not v or now - v[-1] >= self.window]:
            del self._hits[k]
